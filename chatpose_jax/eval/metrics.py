"""3D pose metrics: MPJPE, PA-MPJPE, PVE, and the 14 LSP joints of the SPIN protocol.

All errors are per sample, `float[B]`, in the units of the input (multiply metres by 1000 for the
millimetres papers report), and every function is pure and jit-able.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np

# SPIN's H36M_TO_J14: rows of `J_regressor_h36m.npy` giving the 14 LSP joints in LSP order
# (right ankle, knee, hip, left hip, knee, ankle, right wrist, elbow, shoulder, left shoulder,
# elbow, wrist, neck, head top). Row 0 of the regressor is the pelvis the joints are centred on.
H36M_TO_LSP14 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)
H36M_PELVIS = 0
NUM_H36M_JOINTS = 17


def mpjpe(pred: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """Mean per-joint position error.

    pred, target: float[B, N, 3] -> float[B], the mean Euclidean distance over the N joints.
    """
    return jnp.mean(jnp.linalg.norm(pred - target, axis=-1), axis=-1)


def pve(pred_vertices: jnp.ndarray, target_vertices: jnp.ndarray) -> jnp.ndarray:
    """Per-vertex error: MPJPE over mesh vertices. float[B, V, 3] x 2 -> float[B]."""
    return mpjpe(pred_vertices, target_vertices)


def similarity_procrustes(pred: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """Align pred to target by the best similarity transform (scale, rotation, translation), per sample.

    pred, target: float[B, N, 3] -> float[B, N, 3] aligned pred. SPIN's `compute_similarity_transform`:
    centre both, K = X1^T X2, U S V^T = svd(K), R = V Z U^T with Z fixing a reflection,
    scale = trace(R K) / |X1|^2, t = mu2 - scale R mu1.
    """
    mu_pred = jnp.mean(pred, axis=1, keepdims=True)
    mu_target = jnp.mean(target, axis=1, keepdims=True)
    x1, x2 = pred - mu_pred, target - mu_target
    var1 = jnp.sum(x1 * x1, axis=(1, 2))
    k = jnp.einsum("bni,bnj->bij", x1, x2)  # [B, 3, 3] = X1 X2^T in SPIN's (3, N) convention
    u, _, vt = jnp.linalg.svd(k)
    v = jnp.swapaxes(vt, 1, 2)
    det = jnp.linalg.det(v @ jnp.swapaxes(u, 1, 2))
    ones = jnp.ones_like(det)
    z = jnp.stack([ones, ones, jnp.sign(det)], axis=-1)  # flips the last axis when R would reflect
    rot = v @ (z[:, :, None] * jnp.swapaxes(u, 1, 2))
    scale = jnp.trace(rot @ k, axis1=1, axis2=2) / var1
    aligned = scale[:, None, None] * jnp.einsum("bij,bnj->bni", rot, x1)
    return aligned + mu_target


def pa_mpjpe(pred: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """MPJPE after similarity Procrustes alignment of pred to target. float[B, N, 3] x 2 -> float[B]."""
    return mpjpe(similarity_procrustes(pred, target), target)


def load_h36m_regressor(path: str, num_vertices: int | None = None) -> np.ndarray:
    """Read `J_regressor_h36m.npy`: float[17, V]. Raises ValueError naming the file and shapes."""
    path = os.fspath(path)
    try:
        regressor = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not an H36M joint regressor ({err})") from err
    expected = (NUM_H36M_JOINTS, num_vertices if num_vertices else "V")
    if (
        regressor.ndim != 2
        or regressor.shape[0] != NUM_H36M_JOINTS
        or (num_vertices and regressor.shape[1] != num_vertices)
    ):
        raise ValueError(f"{path}: H36M regressor has shape {regressor.shape}; expected ({expected[0]}, {expected[1]})")
    return regressor.astype(np.float32)


def lsp14_joints(vertices: jnp.ndarray, h36m_regressor: jnp.ndarray) -> jnp.ndarray:
    """The 14 LSP joints of the SPIN protocol, centred on the regressed H36M pelvis.

    vertices: float[B, V, 3]; h36m_regressor: float[17, V] -> float[B, 14, 3] (input units).
    """
    if h36m_regressor.shape != (NUM_H36M_JOINTS, vertices.shape[1]):
        raise ValueError(
            f"h36m_regressor has shape {tuple(h36m_regressor.shape)}; expected ({NUM_H36M_JOINTS}, {vertices.shape[1]})"
        )
    joints = jnp.einsum("jv,bvc->bjc", h36m_regressor, vertices)
    pelvis = joints[:, H36M_PELVIS : H36M_PELVIS + 1]
    return joints[:, list(H36M_TO_LSP14)] - pelvis
