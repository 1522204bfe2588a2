"""Posed, shaded pictures of the synthetic body: camera, lighting, colours and person crop boxes.

A scene places one body (y-up pose, `poses.sample_pose`) in front of a pinhole camera at a random
distance and offset, lit from a random direction, in a random named body colour over a random
named background colour. Its annotation is what SPIN / 4D-Humans files hold: the person's box
as `center` (pixels) and `scale` (box side / 200), the pose with the root in the OpenCV camera
frame, the shape, and the names of the colours (for the VQA conversations).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from data_pipelines.orientation import CAMERA_TO_Y_UP, change_frame
from data_pipelines.synthetic import render

BACKGROUNDS = {
    "blue": (0.25, 0.45, 0.75),
    "green": (0.3, 0.6, 0.3),
    "grey": (0.55, 0.55, 0.55),
    "orange": (0.9, 0.55, 0.2),
    "purple": (0.5, 0.3, 0.6),
    "white": (0.92, 0.92, 0.9),
    "dark": (0.12, 0.12, 0.15),
}
BODY_COLORS = {
    "beige": (0.85, 0.7, 0.55),
    "brown": (0.55, 0.35, 0.2),
    "red": (0.8, 0.25, 0.2),
    "yellow": (0.9, 0.8, 0.3),
    "light blue": (0.55, 0.75, 0.95),
}
IMAGE_SIZES = ((160, 160), (160, 120), (128, 192), (192, 144))  # (height, width) pixels


@dataclasses.dataclass
class Scene:
    """One rendered person. image uint8[H, W, 3]; global_orient float[3] OpenCV camera frame;
    global_orient_y_up float[3] the same in the y-up camera frame; body_pose float[69]; betas
    float[10]; joints float[24, 3] metres, y-up camera frame; center float[2] pixels; scale: box / 200.

    The camera that rendered it: the y-up camera frame (x right, y up, the body in front at z < 0)
    with the pinhole `render.project`: pixel (u, v) = (cx + f x / -z, cy - f y / -z), v pointing down,
    pixel (column, row) = (floor(u), floor(v)). focal: f in pixels; principal_point: float[2] (cx, cy)
    pixels; transl: float[3] metres, y-up camera frame: the rendered mesh is the body posed with
    `global_orient_y_up` (`pose_bodies`, pelvis near the origin) plus transl.
    """

    image: np.ndarray
    global_orient: np.ndarray
    global_orient_y_up: np.ndarray
    body_pose: np.ndarray
    betas: np.ndarray
    joints: np.ndarray
    center: np.ndarray
    scale: float
    background: str
    body_color: str
    yaw: float  # radians; 0 = facing the camera, +-pi = facing away
    focal: float
    principal_point: np.ndarray
    transl: np.ndarray


def facing_yaw(joints: np.ndarray) -> float:
    """Where the body faces, radians about the vertical: 0 towards the camera (+z), pi away."""
    across = joints[1] - joints[2]  # left hip - right hip
    forward = np.cross(across, np.array([0.0, 1.0, 0.0]))
    return float(np.arctan2(forward[0], forward[2]))


@jax.jit
def _pose_chunk(body_model, global_orient, body_pose, betas):
    out = body_model(betas=betas, body_pose=body_pose, global_orient=global_orient)
    return out.vertices, out.joints


def pose_bodies(body_model, global_orient: np.ndarray, body_pose: np.ndarray, betas: np.ndarray, chunk: int = 64):
    """Vertices float[N, V, 3] and joints float[N, 24, 3] (metres, pelvis near the origin), in fixed-size chunks
    (one compilation per model size and chunk for the whole process)."""
    verts, joints = [], []
    n = len(global_orient)
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        pad = chunk - (sl.stop - sl.start)
        g, p, b = (
            np.concatenate([x[sl], np.zeros((pad,) + x.shape[1:], np.float32)])
            for x in (global_orient, body_pose, betas)
        )
        v, j = _pose_chunk(body_model, g, p, b)
        verts.append(np.asarray(v)[: chunk - pad])
        joints.append(np.asarray(j)[: chunk - pad])
    return np.concatenate(verts), np.concatenate(joints)


def render_scenes(body_model, global_orient_y_up, body_pose, betas, seed: int) -> list[Scene]:
    """One scene per pose. global_orient_y_up: float[N, 3] (the root in the y-up camera frame)."""
    rng = np.random.default_rng(seed)
    verts, joints = pose_bodies(body_model, global_orient_y_up, body_pose, betas)
    faces = np.asarray(body_model.faces)
    scenes = []
    for i in range(len(verts)):
        height, width = IMAGE_SIZES[rng.integers(len(IMAGE_SIZES))]
        distance = rng.uniform(2.6, 3.6)
        focal = max(height, width) * rng.uniform(1.3, 1.8)
        offset = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.15, 0.2), -distance])
        v = verts[i].astype(np.float64) + offset
        bg_name = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
        body_name = list(BODY_COLORS)[rng.integers(len(BODY_COLORS))]
        light = np.array([rng.uniform(-1, 1), rng.uniform(0.2, 1), rng.uniform(0.5, 1.5)])
        principal = (width / 2.0, height / 2.0)
        image = render.render_body(
            v,
            faces,
            height=height,
            width=width,
            focal=focal,
            center=principal,
            body_color=np.array(BODY_COLORS[body_name]) * rng.uniform(0.85, 1.1),
            background=np.array(BACKGROUNDS[bg_name]),
            light_dir=light,
        )
        uv = render.project(v, focal, principal)[:, :2]
        lo, hi = uv.min(axis=0), uv.max(axis=0)
        scenes.append(
            Scene(
                image=image,
                global_orient=change_frame(global_orient_y_up[i], CAMERA_TO_Y_UP.T).astype(np.float32),
                global_orient_y_up=np.asarray(global_orient_y_up[i], np.float32),
                body_pose=np.asarray(body_pose[i], np.float32),
                betas=np.asarray(betas[i], np.float32),
                joints=joints[i] + offset,
                center=((lo + hi) / 2.0).astype(np.float32),
                scale=float(1.2 * max(hi - lo) / 200.0),
                background=bg_name,
                body_color=body_name,
                yaw=facing_yaw(joints[i]),
                focal=float(focal),
                principal_point=np.asarray(principal, np.float32),
                transl=offset,
            )
        )
    return scenes
