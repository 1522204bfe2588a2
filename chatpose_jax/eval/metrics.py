"""3D pose metrics: MPJPE, PA-MPJPE, PVE, and the 14 joints of the SPIN and 4D-Humans protocols.

All errors are per sample, `float[B]`, in the units of the input (multiply metres by 1000 for the
millimetres papers report), and every function is pure and jit-able.
"""

from __future__ import annotations

import os
import pickle

import jax.numpy as jnp
import numpy as np

from chatpose_jax import paths

# SPIN's H36M_TO_J14: rows of `J_regressor_h36m.npy` giving the 14 LSP joints in LSP order
# (right ankle, knee, hip, left hip, knee, ankle, right wrist, elbow, shoulder, left shoulder,
# elbow, wrist, neck, head top). Row 0 of the regressor is the pelvis the joints are centred on.
H36M_TO_LSP14 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)
H36M_PELVIS = 0
NUM_H36M_JOINTS = 17
# 4D-Humans (HMR2.0): `SMPL_to_J19.pkl` regresses SPIN's first 19 joints, appended after the 25
# OpenPose joints (model joints 25..43). Its evaluator centres on joint 39 (= J19 row 14, the MPII
# pelvis) and scores joints [25..37, 43] (= J19 rows 0..12 and 18: the same 14 joints as SPIN's).
NUM_J19_JOINTS = 19
J19_PELVIS = 14
J19_TO_14 = tuple(range(13)) + (18,)


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
        with paths.path(path).open("rb") as f:  # local or gs://
            regressor = np.load(f, allow_pickle=False)
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
    return _centred_joints("h36m_regressor", vertices, h36m_regressor, NUM_H36M_JOINTS, H36M_TO_LSP14, H36M_PELVIS)


def _centred_joints(name: str, vertices, regressor, num_joints: int, rows, centre: int) -> jnp.ndarray:
    """Joints `rows` of a float[num_joints, V] regressor on vertices float[B, V, 3], minus joint `centre`."""
    if regressor.shape != (num_joints, vertices.shape[1]):
        raise ValueError(f"{name} has shape {tuple(regressor.shape)}; expected ({num_joints}, {vertices.shape[1]})")
    joints = jnp.einsum("jv,bvc->bjc", regressor, vertices)
    return joints[:, list(rows)] - joints[:, centre : centre + 1]


def load_j19_regressor(path: str, num_vertices: int | None = None) -> np.ndarray:
    """Read 4D-Humans' `SMPL_to_J19.pkl` (a pickled float[19, V] array; `.npy` also read).

    Raises ValueError naming the file and shapes.
    """
    path = os.fspath(path)
    try:
        with paths.path(path).open("rb") as f:  # local or gs://
            if path.endswith(".npy"):
                regressor = np.load(f, allow_pickle=False)
            else:
                regressor = pickle.load(f, encoding="latin1")
        if hasattr(regressor, "toarray"):  # a scipy sparse matrix
            regressor = regressor.toarray()
        regressor = np.asarray(regressor, np.float32)
    except (OSError, ValueError, pickle.UnpicklingError, EOFError) as err:
        raise ValueError(f"{path}: not a 4D-Humans joint regressor ({err})") from err
    if (
        regressor.ndim != 2
        or regressor.shape[0] != NUM_J19_JOINTS
        or (num_vertices and regressor.shape[1] != num_vertices)
    ):
        raise ValueError(
            f"{path}: J19 regressor has shape {regressor.shape}; expected ({NUM_J19_JOINTS}, {num_vertices or 'V'})"
        )
    return regressor


def hmr2_joints14(vertices: jnp.ndarray, j19_regressor: jnp.ndarray) -> jnp.ndarray:
    """The 14 joints of the 4D-Humans protocol, centred on the regressed MPII pelvis.

    vertices: float[B, V, 3]; j19_regressor: float[19, V] -> float[B, 14, 3] (input units).
    """
    return _centred_joints("j19_regressor", vertices, j19_regressor, NUM_J19_JOINTS, J19_TO_14, J19_PELVIS)


def hmr2_keypoints14(keypoints_j19: np.ndarray) -> np.ndarray:
    """Ground-truth 3D keypoints float[N, 19, >=3] (4D-Humans' `extra_keypoints_3d`) -> float[N, 14, 3],
    centred on row 14 (the pelvis, model joint 39) as 4D-Humans' evaluator does."""
    k = np.asarray(keypoints_j19)[..., :3]
    return (k[:, list(J19_TO_14)] - k[:, J19_PELVIS : J19_PELVIS + 1]).astype(np.float32)
