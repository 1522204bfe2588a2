"""SPIN's image-to-pose protocol (3DPW test, H36M protocol 2, RPE): 14 LSP joints, MPJPE and PA-MPJPE.

Prediction: the neutral SMPL with the predicted pose and zero betas (ChatPose predicts no shape),
the 17 H36M joints regressed from its vertices, centred on the regressed pelvis, 14 kept.
Ground truth: for 3DPW / RPE the file's pose and betas through the person's gendered SMPL ('m',
'f'; 'n' uses the neutral one), then the same regressor, pelvis and selection; for H36M the file's
joints `S[:, J24_TO_J14, :3]`, already root-centred. Errors in millimetres, per sample.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from chatpose_jax.eval import metrics
from chatpose_jax.eval.benchmarks import J24_TO_J14, BenchmarkData

GENDERS = {"m": "male", "f": "female", "n": "neutral"}
CHUNK = 64  # bodies posed per call (one compiled shape)


@dataclasses.dataclass(frozen=True)
class BodyModels:
    """The SMPL models of the protocol, by gender letter, and the float32[17, V] H36M regressor."""

    models: dict
    h36m_regressor: np.ndarray

    def model(self, gender: str):
        key = gender if gender in self.models else "n"
        if key not in self.models:
            raise ValueError(f"no body model for gender {gender!r} (have {sorted(self.models)})")
        return self.models[key]


def load_body_models(folder: str, genders=("n", "m", "f"), regressor: str | None = None) -> BodyModels:
    """SMPL_{NEUTRAL,MALE,FEMALE} from an smplx-style `folder` and its `J_regressor_h36m.npy`.

    Raises ValueError naming the folder / file missing.
    """
    from chatpose_jax.body import load_body_model

    models = {g: load_body_model(folder, model_type="smpl", gender=GENDERS[g]) for g in genders}
    regressor = regressor or os.path.join(folder, "J_regressor_h36m.npy")
    if not os.path.exists(regressor):
        raise ValueError(f"{regressor}: no H36M joint regressor (J_regressor_h36m.npy) in the body-model folder")
    return BodyModels(models, metrics.load_h36m_regressor(regressor, models["n"].num_vertices))


@jax.jit
def _lsp14(model, regressor, global_orient, body_pose, betas):
    vertices = model(betas=betas, body_pose=body_pose, global_orient=global_orient).vertices
    return metrics.lsp14_joints(vertices, regressor)


def smpl_lsp14(model, regressor: np.ndarray, global_orient, body_pose, betas) -> np.ndarray:
    """float32[N, 14, 3] metres, pelvis-centred: SPIN's joints of posed bodies (in chunks of CHUNK)."""
    go, bp, be = (np.asarray(x, np.float32) for x in (global_orient, body_pose, betas))
    n, out = len(go), []
    reg = jnp.asarray(regressor)
    for start in range(0, n, CHUNK):
        sl = slice(start, min(start + CHUNK, n))
        pad = CHUNK - (sl.stop - sl.start)
        args = [np.concatenate([x[sl], np.zeros((pad, *x.shape[1:]), np.float32)]) for x in (go, bp, be)]
        out.append(np.asarray(_lsp14(model, reg, *args))[: sl.stop - sl.start])
    return np.concatenate(out) if out else np.zeros((0, 14, 3), np.float32)


def ground_truth_joints(data: BenchmarkData, bodies: BodyModels) -> np.ndarray:
    """float32[N, 14, 3] metres: the benchmark's ground-truth joints (see the module docstring)."""
    if data.ground_truth == "joints":
        return data.joints_3d[:, list(J24_TO_J14), :3].astype(np.float32)
    out = np.zeros((len(data), 14, 3), np.float32)
    for gender in np.unique(data.gender):
        rows = np.flatnonzero(data.gender == gender)
        out[rows] = smpl_lsp14(
            bodies.model(str(gender)), bodies.h36m_regressor, data.global_orient[rows], data.body_pose[rows],
            data.betas[rows],
        )  # fmt: skip
    return out


def predicted_joints(global_orient: np.ndarray, body_pose: np.ndarray, bodies: BodyModels) -> np.ndarray:
    """float32[N, 14, 3] metres: predictions through the neutral model with zero betas."""
    betas = np.zeros((len(global_orient), 10), np.float32)
    return smpl_lsp14(bodies.model("n"), bodies.h36m_regressor, global_orient, body_pose, betas)


def errors_mm(pred_joints: np.ndarray, gt_joints: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample {'mpjpe_mm', 'pa_mpjpe_mm'}: float[N] each, from float[N, 14, 3] metres."""
    pred, gt = jnp.asarray(pred_joints, jnp.float32), jnp.asarray(gt_joints, jnp.float32)
    return {
        "mpjpe_mm": 1000.0 * np.asarray(metrics.mpjpe(pred, gt)),
        "pa_mpjpe_mm": 1000.0 * np.asarray(metrics.pa_mpjpe(pred, gt)),
    }


def score(global_orient, body_pose, data: BenchmarkData, bodies: BodyModels) -> dict:
    """Summary {'n', 'mpjpe_mm', 'pa_mpjpe_mm'} and per-sample errors of predictions aligned with `data`."""
    per = errors_mm(predicted_joints(global_orient, body_pose, bodies), ground_truth_joints(data, bodies))
    summary = {"n": len(data), **{k: float(np.mean(v)) if len(v) else float("nan") for k, v in per.items()}}
    return {"summary": summary, "per_sample": per}
