"""The 2D keypoints of rendered synthetic people, from the camera that rendered each picture.

Each scene's body is posed in the y-up camera frame (`Scene.global_orient_y_up`, `body_pose`,
`betas`) and moved by `Scene.transl`, as `scenes.render_scenes` drew it; its keypoints go through
the same pinhole (`render.project` with `Scene.focal`, `Scene.principal_point`), so they land on the
rendered body. Layout: `data_pipelines.keypoints_2d` (4D-Humans' 44 rows): BODY_25 as
`chatpose_jax.fitting` reads it from an SMPL body (`layout_keypoints`), then the 19 extra joints of
the J19 regressor (4D-Humans' `SMPL_to_J19.pkl`). x, y in pixels of the full image; confidence 1 for
a point inside the image (0 <= x < W, 0 <= y < H, in front of the camera), 0 otherwise.
Occlusion is not modelled: a joint behind the body keeps confidence 1.

The BODY_25 face and foot keypoints are SMPL vertex ids (real SMPL's nose, eyes, ears, toes and
heels); the synthetic SMPL numbers its vertices so that those ids sit on its head and feet where
their names say (`chatpose_jax.body.synthetic`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from chatpose_jax.fitting.body_keypoints import layout_keypoints, pose_rotmat, posed_joints_and_vertices
from chatpose_jax.fitting.keypoint_layouts import get_layout
from data_pipelines.keypoints_2d import NUM_BODY, NUM_EXTRA, NUM_KEYPOINTS
from data_pipelines.synthetic import render

CHUNK = 64  # people posed per call: one compilation per process for every batch size


@functools.partial(jax.jit, static_argnames=("vertex_ids",))
def _keypoints_3d_chunk(model, global_orient, body_pose, betas, regressor_columns, vertex_ids):
    body25, _ = layout_keypoints(model, get_layout("body25"), global_orient, body_pose, betas)
    rotmat = pose_rotmat(model, global_orient, body_pose)
    _, vertices = posed_joints_and_vertices(model, betas, rotmat, vertex_ids)
    extra = jnp.einsum("jv,bvc->bjc", regressor_columns, vertices)
    return jnp.concatenate([body25, extra], axis=1)


def keypoints_3d(body_model, j19_regressor: np.ndarray, global_orient, body_pose, betas) -> np.ndarray:
    """float64[N, 44, 3] metres, body frame of `global_orient` (no translation): BODY_25 then J19.

    global_orient float[N, 3], body_pose float[N, 69] radians; betas float[N, K]; j19_regressor
    float[19, V] (only its non-zero columns are posed).
    """
    regressor = np.asarray(j19_regressor, np.float64)
    if regressor.ndim != 2 or regressor.shape[0] != NUM_EXTRA:
        raise ValueError(f"J19 regressor: expected shape ({NUM_EXTRA}, V), got {regressor.shape}")
    ids = tuple(int(i) for i in np.flatnonzero(np.abs(regressor).sum(axis=0)))
    columns = jnp.asarray(regressor[:, list(ids)], jnp.float32)
    arrays = [np.asarray(x, np.float32) for x in (global_orient, body_pose, betas)]
    n = len(arrays[0])
    out = np.zeros((n, NUM_KEYPOINTS, 3))
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        pad = CHUNK - (stop - start)
        g, p, b = (np.concatenate([x[start:stop], np.zeros((pad,) + x.shape[1:], np.float32)]) for x in arrays)
        out[start:stop] = np.asarray(_keypoints_3d_chunk(body_model, g, p, b, columns, ids))[: stop - start]
    return out


def project_keypoints(points: np.ndarray, focal: float, principal_point, height: int, width: int) -> np.ndarray:
    """float32[K, 3] (x, y pixels, confidence) of points float[K, 3] (metres, y-up camera frame)."""
    uvd = render.project(np.asarray(points, np.float64), focal, tuple(principal_point))
    inside = (uvd[:, 2] > 0) & (uvd[:, 0] >= 0) & (uvd[:, 0] < width) & (uvd[:, 1] >= 0) & (uvd[:, 1] < height)
    return np.concatenate([uvd[:, :2], inside[:, None]], axis=1).astype(np.float32)


def scene_keypoints_2d(body_model, j19_regressor: np.ndarray | None, scenes) -> np.ndarray:
    """float32[N, 44, 3]: each rendered scene's keypoints (4D-Humans' layout) in its picture's pixels.

    body_model: the model that rendered the scenes; j19_regressor: float[19, V], or None (the 19
    extra rows are then zeros: not annotated).
    """
    if not scenes:
        return np.zeros((0, NUM_KEYPOINTS, 3), np.float32)
    regressor = np.zeros((NUM_EXTRA, 1)) if j19_regressor is None else j19_regressor  # no column posed
    stack = lambda field: np.stack([getattr(s, field) for s in scenes])  # noqa: E731
    points = keypoints_3d(body_model, regressor, stack("global_orient_y_up"), stack("body_pose"), stack("betas"))
    points += stack("transl")[:, None].astype(np.float64)
    out = np.stack(
        [
            project_keypoints(p, s.focal, s.principal_point, s.image.shape[0], s.image.shape[1])
            for p, s in zip(points, scenes, strict=True)
        ]
    )
    if j19_regressor is None:
        out[:, NUM_BODY:] = 0.0
    return out
