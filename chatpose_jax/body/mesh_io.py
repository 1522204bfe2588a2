"""Writing a posed body as OBJ / PLY and rendering it to a PNG (front and side views, shaded).

OBJ and PLY are written directly (both are a few lines of text or a header plus packed arrays);
the picture is drawn with matplotlib's Agg backend, which needs no display and no GPU.
"""

from __future__ import annotations

import os

import numpy as np


def _check_mesh(vertices, faces) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices has shape {vertices.shape}; expected (V, 3) (one body, not a batch)")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces has shape {faces.shape}; expected (F, 3)")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"faces index vertex {int(faces.max())}; expected indices in [0, {len(vertices)})")
    return vertices, faces.astype(np.int64)


def write_obj(path: str, vertices, faces) -> str:
    """Write a triangle mesh as Wavefront OBJ.

    vertices: float[V, 3] (metres); faces: int[F, 3], 0-based (written 1-based, as OBJ counts).
    """
    vertices, faces = _check_mesh(vertices, faces)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="ascii") as f:
        f.write(f"# {len(vertices)} vertices, {len(faces)} faces\n")
        np.savetxt(f, vertices, fmt="v %.6f %.6f %.6f")
        np.savetxt(f, faces + 1, fmt="f %d %d %d")
    return path


def write_ply(path: str, vertices, faces) -> str:
    """Write a triangle mesh as binary little-endian PLY (float32 vertices, int32 indices)."""
    vertices, faces = _check_mesh(vertices, faces)
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    face_records = np.zeros(len(faces), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    face_records["n"] = 3
    face_records["idx"] = faces
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(vertices.astype("<f4").tobytes())
        f.write(face_records.tobytes())
    return path


def read_obj(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read back the vertices float[V, 3] and 0-based faces int[F, 3] of a triangle OBJ."""
    verts, faces = [], []
    with open(path, encoding="ascii") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "v":
                verts.append([float(x) for x in parts[1:4]])
            elif parts[0] == "f":
                faces.append([int(x.split("/")[0]) - 1 for x in parts[1:4]])
    return np.asarray(verts), np.asarray(faces, dtype=np.int64)


def _draw_view(ax, vertices, faces, yaw_deg, light):
    """Orthographic view after turning the body by yaw about the vertical (y) axis."""
    from matplotlib.collections import PolyCollection  # lazy: matplotlib, loaded only to draw

    yaw = np.deg2rad(yaw_deg)
    rot = np.array([[np.cos(yaw), 0.0, np.sin(yaw)], [0.0, 1.0, 0.0], [-np.sin(yaw), 0.0, np.cos(yaw)]])
    v = vertices @ rot.T
    tri = v[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    facing = normal[:, 2] > 0  # the camera looks down -z: back faces are hidden
    order = np.argsort(tri[facing, :, 2].mean(1))  # painter's algorithm, far to near
    shade = np.clip(normal[facing] @ light, 0.0, 1.0)[order]
    base = np.array([0.62, 0.70, 0.86])
    colours = np.clip(base[None] * (0.25 + 0.75 * shade[:, None]), 0, 1)
    polys = tri[facing][order][:, :, :2]
    ax.add_collection(PolyCollection(polys, facecolors=colours, edgecolors=colours, linewidths=0.2))
    lo, hi = v[:, :2].min(0), v[:, :2].max(0)
    centre, half = (lo + hi) / 2, (hi - lo).max() / 2 * 1.05
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_aspect("equal")
    ax.axis("off")


def render_png(path: str, vertices, faces, *, views=(("front", 0.0), ("side", 90.0)), size_px: int = 512, title=None):
    """Render a shaded orthographic picture of one body, one panel per view, and save it as PNG.

    vertices: float[V, 3] metres, y up, facing +z; faces: int[F, 3]; views: (label, yaw in degrees)
    pairs (0 = front, 90 = seen from the body's right). Returns the path.
    """
    import matplotlib  # lazy: matplotlib, loaded only to draw

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    vertices, faces = _check_mesh(vertices, faces)
    light = np.array([0.3, 0.5, 1.0])
    light /= np.linalg.norm(light)
    dpi = 100
    fig, axes = plt.subplots(1, len(views), figsize=(len(views) * size_px / dpi, size_px / dpi), dpi=dpi)
    axes = np.atleast_1d(axes)
    for ax, (label, yaw) in zip(axes, views, strict=True):
        _draw_view(ax, vertices, faces, yaw, light)
        ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, facecolor="white")
    plt.close(fig)
    return path
