"""Image-to-pose protocols (3DPW test, H36M protocol 2, RPE): 14 joints, MPJPE and PA-MPJPE.

`protocol="spin"` (default, SPIN's eval.py): the 17 H36M joints regressed from the mesh with
`J_regressor_h36m.npy`, centred on the regressed pelvis (row 0), 14 kept (H36M_TO_LSP14); H36M
ground truth is the file's `S[:, J24_TO_J14, :3]`, already root-centred.
`protocol="hmr2"` (4D-Humans' eval.py): the 19 joints of `SMPL_to_J19.pkl` (the model's joints
25..43), centred on joint 39 (row 14, the MPII pelvis), joints [25..37, 43] kept (rows 0..12, 18);
ground truth from a file is its `extra_keypoints_3d` (the builder's `joints_3d` rows 0..18) with
the same centring and selection.

Prediction: the neutral SMPL with the predicted pose and zero betas (ChatPose predicts no shape).
SMPL ground truth (3DPW, RPE): the file's pose and betas through the person's gendered SMPL ('m',
'f'; 'n' uses the neutral one), then the protocol's regressor, pelvis and selection. Errors in
millimetres, per sample.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from chatpose_jax import paths
from chatpose_jax.body import load_body_model
from chatpose_jax.eval import metrics
from chatpose_jax.eval.benchmarks import J24_TO_J14, BenchmarkData

GENDERS = {"m": "male", "f": "female", "n": "neutral"}
CHUNK = 64  # bodies posed per call (one compiled shape)
PROTOCOLS = ("spin", "hmr2")
J19_FILE = "SMPL_to_J19.pkl"  # 4D-Humans' name, looked for in the body-model folder


@dataclasses.dataclass(frozen=True)
class BodyModels:
    """The SMPL models of the protocol, by gender letter, the float32[17, V] H36M regressor and,
    for the hmr2 protocol, 4D-Humans' float32[19, V] regressor."""

    models: dict
    h36m_regressor: np.ndarray
    j19_regressor: np.ndarray | None = None

    def regressor(self, protocol: str) -> np.ndarray:
        if protocol == "spin":
            return self.h36m_regressor
        if protocol == "hmr2":
            if self.j19_regressor is None:
                raise ValueError(f"the hmr2 protocol needs 4D-Humans' {J19_FILE} (19 x V); none was loaded")
            return self.j19_regressor
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")

    def model(self, gender: str):
        key = gender if gender in self.models else "n"
        if key not in self.models:
            raise ValueError(f"no body model for gender {gender!r} (have {sorted(self.models)})")
        return self.models[key]


def load_body_models(
    folder: str, genders=("n", "m", "f"), regressor: str | None = None, j19_regressor: str | None = None
) -> BodyModels:
    """SMPL_{NEUTRAL,MALE,FEMALE} from an smplx-style `folder`, its `J_regressor_h36m.npy` and, when
    present (or named by `j19_regressor`), 4D-Humans' `SMPL_to_J19.pkl`.

    Raises ValueError naming the folder / file missing.
    """
    local = paths.local_copy(folder)  # gs://: one local copy for the pickle readers (the folder itself when local)
    models = {g: load_body_model(local, model_type="smpl", gender=GENDERS[g]) for g in genders}
    num_vertices = models["n"].num_vertices
    # The regressors are read through epath file handles (eval/metrics.py), so they may stay in a bucket.
    regressor = regressor or paths.join(folder, "J_regressor_h36m.npy")
    if not paths.path(regressor).exists():
        raise ValueError(f"{regressor}: no H36M joint regressor (J_regressor_h36m.npy) in the body-model folder")
    j19 = None
    if j19_regressor is not None and not paths.path(j19_regressor).exists():
        raise ValueError(f"{j19_regressor}: no such 4D-Humans joint regressor ({J19_FILE})")
    j19_path = j19_regressor or paths.join(folder, J19_FILE)
    if paths.path(j19_path).exists():
        j19 = metrics.load_j19_regressor(j19_path, num_vertices)
    return BodyModels(models, metrics.load_h36m_regressor(regressor, num_vertices), j19)


@functools.partial(jax.jit, static_argnums=(0,))
def _joints14(protocol, model, regressor, global_orient, body_pose, betas):
    vertices = model(betas=betas, body_pose=body_pose, global_orient=global_orient).vertices
    if protocol == "hmr2":
        return metrics.hmr2_joints14(vertices, regressor)
    return metrics.lsp14_joints(vertices, regressor)


@jax.jit
def _vertices(model, global_orient, body_pose, betas):
    return model(betas=betas, body_pose=body_pose, global_orient=global_orient).vertices


def _in_chunks(fn, arrays, chunk: int, empty_shape: tuple) -> np.ndarray:
    """fn(*rows) over float32 arrays [N, ...] in zero-padded chunks of `chunk` rows (one compiled shape)."""
    arrays = [np.asarray(x, np.float32) for x in arrays]
    n, out = len(arrays[0]), []
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        pad = chunk - (sl.stop - sl.start)
        args = [np.concatenate([x[sl], np.zeros((pad, *x.shape[1:]), np.float32)]) for x in arrays]
        out.append(np.asarray(fn(*args))[: sl.stop - sl.start])
    return np.concatenate(out) if out else np.zeros((0, *empty_shape), np.float32)


def smpl_joints14(model, regressor: np.ndarray, global_orient, body_pose, betas, protocol: str = "spin") -> np.ndarray:
    """float32[N, 14, 3] metres, pelvis-centred: the protocol's joints of posed bodies (in chunks of CHUNK).

    regressor: float[17, V] (spin) or float[19, V] (hmr2).
    """
    reg = jnp.asarray(regressor)
    fn = functools.partial(_joints14, protocol, model, reg)
    return _in_chunks(fn, (global_orient, body_pose, betas), CHUNK, (14, 3))


def posed_vertices(model, global_orient, body_pose, betas=None, chunk: int = 8) -> np.ndarray:
    """float32[N, V, 3] metres: bodies posed by `model` (jitted, in chunks; betas default to zeros)."""
    betas = np.zeros((len(global_orient), 10), np.float32) if betas is None else betas
    return _in_chunks(functools.partial(_vertices, model), (global_orient, body_pose, betas), chunk,
                      (model.num_vertices, 3))  # fmt: skip


def smpl_lsp14(model, regressor: np.ndarray, global_orient, body_pose, betas) -> np.ndarray:
    """float32[N, 14, 3] metres, pelvis-centred: SPIN's joints of posed bodies."""
    return smpl_joints14(model, regressor, global_orient, body_pose, betas, "spin")


def ground_truth_joints(data: BenchmarkData, bodies: BodyModels, protocol: str = "spin") -> np.ndarray:
    """float32[N, 14, 3] metres: the benchmark's ground-truth joints (see the module docstring)."""
    if data.ground_truth == "joints":
        if protocol == "hmr2":
            return metrics.hmr2_keypoints14(data.joints_3d[:, : metrics.NUM_J19_JOINTS])
        return data.joints_3d[:, list(J24_TO_J14), :3].astype(np.float32)
    regressor = bodies.regressor(protocol)
    out = np.zeros((len(data), 14, 3), np.float32)
    for gender in np.unique(data.gender):
        rows = np.flatnonzero(data.gender == gender)
        out[rows] = smpl_joints14(
            bodies.model(str(gender)), regressor, data.global_orient[rows], data.body_pose[rows], data.betas[rows],
            protocol,
        )  # fmt: skip
    return out


def predicted_joints(
    global_orient: np.ndarray, body_pose: np.ndarray, bodies: BodyModels, protocol: str = "spin"
) -> np.ndarray:
    """float32[N, 14, 3] metres: predictions through the neutral model with zero betas."""
    betas = np.zeros((len(global_orient), 10), np.float32)
    return smpl_joints14(bodies.model("n"), bodies.regressor(protocol), global_orient, body_pose, betas, protocol)


@jax.jit
def _errors(pred, gt):
    return metrics.mpjpe(pred, gt), metrics.pa_mpjpe(pred, gt)


def errors_mm(pred_joints: np.ndarray, gt_joints: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample {'mpjpe_mm', 'pa_mpjpe_mm'}: float[N] each, from float[N, 14, 3] metres."""
    mpjpe, pa_mpjpe = _errors(jnp.asarray(pred_joints, jnp.float32), jnp.asarray(gt_joints, jnp.float32))
    return {"mpjpe_mm": 1000.0 * np.asarray(mpjpe), "pa_mpjpe_mm": 1000.0 * np.asarray(pa_mpjpe)}


def score(global_orient, body_pose, data: BenchmarkData, bodies: BodyModels, protocol: str = "spin") -> dict:
    """Summary {'n', 'mpjpe_mm', 'pa_mpjpe_mm'} and per-sample errors of predictions aligned with `data`."""
    per = errors_mm(
        predicted_joints(global_orient, body_pose, bodies, protocol), ground_truth_joints(data, bodies, protocol)
    )
    summary = {"n": len(data), **{k: float(np.mean(v)) if len(v) else float("nan") for k, v in per.items()}}
    return {"summary": summary, "per_sample": per}
