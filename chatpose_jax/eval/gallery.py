"""gallery_<benchmark>.png: a grid of samples, each its input, the predicted and the true body, and its error.

Bodies come in the model's frame (the OpenCV camera frame, y down) and are drawn upright
(`chatpose_jax.body.frames.upright_for_display`).
"""

from __future__ import annotations

import io
import textwrap

import numpy as np
from PIL import Image

from chatpose_jax import paths
from chatpose_jax.body.frames import upright_for_display


def _draw_body(ax, vertices: np.ndarray, faces: np.ndarray, colour: str, title: str) -> None:
    """A front view (x right, y up) of a mesh in the camera frame: its triangles filled, shaded by facing."""
    from matplotlib.collections import PolyCollection  # lazy: matplotlib, loaded only to draw

    vertices = upright_for_display(vertices)
    tri = vertices[faces]  # [F, 3, 3]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    order = np.argsort(tri[:, :, 2].mean(1))  # far to near
    shade = 0.35 + 0.65 * np.clip(normal[order, 2], 0, 1)
    base = np.array({"pred": (0.3, 0.55, 0.9), "gt": (0.45, 0.8, 0.45)}[colour])
    ax.add_collection(PolyCollection(tri[order][:, :, :2], facecolors=shade[:, None] * base[None], edgecolors="none"))
    centre = (vertices.max(0) + vertices.min(0)) / 2
    half = max(np.ptp(vertices[:, 0]), np.ptp(vertices[:, 1])) / 2 + 0.05
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def pick(errors: np.ndarray, count: int) -> np.ndarray:
    """Indices of `count` samples spread over the error range (best to worst)."""
    order = np.argsort(errors)
    return order[np.linspace(0, len(order) - 1, min(count, len(order))).round().astype(int)]


def render_gallery(path: str, samples: list[dict], faces: np.ndarray, title: str = "") -> str:
    """samples: {input_image uint8[H, W, 3] or None, input_text str, pred_vertices float[V, 3],
    gt_vertices float[V, 3] or None, error str}; one row each (input | predicted | ground truth)."""
    import matplotlib  # lazy: matplotlib, loaded only to draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(len(samples), 1)
    fig, axes = plt.subplots(rows, 3, figsize=(7.5, 2.4 * rows), squeeze=False)
    for row, s in zip(axes, samples, strict=False):
        if s.get("input_image") is not None:
            row[0].imshow(s["input_image"])
        else:
            row[0].text(0.02, 0.98, textwrap.fill(s.get("input_text", ""), 34), va="top", ha="left", fontsize=7,
                        transform=row[0].transAxes)  # fmt: skip
        row[0].set_title(s.get("id", ""), fontsize=8)
        row[0].axis("off")
        _draw_body(row[1], s["pred_vertices"], faces, "pred", f"predicted ({s['error']})")
        if s.get("gt_vertices") is not None:
            _draw_body(row[2], s["gt_vertices"], faces, "gt", "ground truth")
        else:
            row[2].axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    target = paths.path(paths.absolute(path))  # local or gs://
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as f:
        fig.savefig(f, dpi=80, format=target.suffix.lstrip(".") or None)  # the format the name says, as before
    plt.close(fig)
    return path


def crop_image(image_bytes: bytes, crop: np.ndarray, size: int = 160) -> np.ndarray:
    """uint8[size, size, 3]: the person's box (center, scale = box / 200) of an encoded image."""
    with Image.open(io.BytesIO(image_bytes)) as im:
        im = im.convert("RGB")
        cx, cy, scale = (float(v) for v in crop)
        half = 100.0 * scale
        return np.asarray(im.crop((cx - half, cy - half, cx + half, cy + half)).resize((size, size)))
