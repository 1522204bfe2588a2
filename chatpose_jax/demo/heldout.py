"""Held-out text-to-pose and image-to-pose scores of a model next to the mean-pose baseline.

The demo's quick check that the model learnt something: greedy answers to the first question of
the text (Table 3) and image (Table 1) templates on held-out synthetic sets, the pose read at the
generated `<POSE>` (an answer without one scores as the mean pose), and MPJPE / PA-MPJPE over the
24 SMPL joints, pelvis-aligned, in millimetres. The full benchmark protocols live in
`chatpose_jax.eval`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from chatpose_jax.body.rotations import axis_angle_to_rotmat
from chatpose_jax.eval import metrics
from chatpose_jax.inference import prompt
from chatpose_jax.inference.session import ChatModel, left_pad, round_up
from chatpose_jax.model import decoding


@dataclasses.dataclass
class HeldOut:
    """A held-out set: questions, optional preprocessed images, ground-truth rotations."""

    questions: list[str]
    pixel_values: np.ndarray | None  # float32[N, 3, S, S], CLIP-normalised person crops
    rotmat: np.ndarray  # float32[N, 24, 3, 3] ground truth (joint 0 = global orientation)


def chordal_mean_rotations(rotmat: np.ndarray) -> np.ndarray:
    """Per-joint rotation closest (Frobenius) to the mean matrix: float[N, J, 3, 3] -> float[J, 3, 3]."""
    u, _, vt = np.linalg.svd(rotmat.mean(axis=0))
    fix = np.sign(np.linalg.det(u @ vt))
    u[..., :, -1] *= fix[..., None]
    return u @ vt


def rotmat_from_axis_angle(global_orient: np.ndarray, body_pose: np.ndarray) -> np.ndarray:
    aa = np.concatenate([global_orient, body_pose], axis=-1).reshape(len(global_orient), 24, 3)
    return np.asarray(axis_angle_to_rotmat(jnp.asarray(aa)))


def generated_poses(
    model: ChatModel,
    questions: list[str],
    pixel_values: np.ndarray | None,
    batch_size: int = 16,
    max_new_tokens: int = 24,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy answers -> (rotmat float[N, 24, 3, 3] of the first generated `<POSE>`, has_pose bool[N])."""
    cfg = model.config
    with_image = pixel_values is not None
    encoded = [model.encode([], prompt.user_turn(q, with_image)) for q in questions]
    rotmats = np.zeros((len(questions), 24, 3, 3), np.float32)
    has_pose = np.zeros(len(questions), bool)
    for start in range(0, len(questions), batch_size):
        rows = list(range(start, min(start + batch_size, len(questions))))
        filled = rows + [rows[0]] * (batch_size - len(rows))
        length = round_up(max(len(encoded[i]) for i in filled), model.length_bucket)
        ids, mask = left_pad([encoded[i] for i in filled], length, cfg.pad_token_id)
        pixels = jnp.asarray(pixel_values[filled]) if with_image else None
        out = decoding.generate(
            cfg,
            model.params,
            model.lora,
            jnp.asarray(ids),
            pixels,
            jnp.asarray(mask),
            jax.random.key(0),
            max_new_tokens=max_new_tokens,
            max_length=length + max_new_tokens,
        )
        pose = jax.device_get(out.pose)
        for row, i in enumerate(rows):
            if pose.valid[row, 0]:
                rotmats[i], has_pose[i] = pose.rotmat[row, 0], True
    return rotmats, has_pose


def pose_errors_mm(body_model, pred_rotmat: np.ndarray, target_rotmat: np.ndarray) -> tuple[float, float]:
    """(MPJPE, PA-MPJPE) in mm over the 24 pelvis-aligned SMPL joints, mean shape."""
    pred = _pelvis_aligned_joints(body_model, jnp.asarray(pred_rotmat))
    target = _pelvis_aligned_joints(body_model, jnp.asarray(target_rotmat))
    return 1000 * float(metrics.mpjpe(pred, target).mean()), 1000 * float(metrics.pa_mpjpe(pred, target).mean())


@jax.jit
def _pelvis_aligned_joints(body_model, rotmat: jax.Array) -> jax.Array:
    """float[N, 24, 3] metres, pelvis at the origin, of bodies of mean shape posed by rotmat float[N, 24, 3, 3]."""
    out = body_model(betas=jnp.zeros((rotmat.shape[0], 10)), global_orient=rotmat[:, :1], body_pose=rotmat[:, 1:])
    joints = out.joints[:, :24]
    return joints - joints[:, :1]


def score(model: ChatModel, body_model, heldout: HeldOut, mean_pose: np.ndarray) -> dict:
    """{mpjpe_mm, pa_mpjpe_mm, baseline_mpjpe_mm, baseline_pa_mpjpe_mm, no_pose_rate, n} of one set."""
    pred, has_pose = generated_poses(model, heldout.questions, heldout.pixel_values)
    pred[~has_pose] = mean_pose
    mpjpe, pa = pose_errors_mm(body_model, pred, heldout.rotmat)
    baseline = np.broadcast_to(mean_pose, heldout.rotmat.shape)
    base_mpjpe, base_pa = pose_errors_mm(body_model, baseline, heldout.rotmat)
    return {
        "n": len(heldout.questions),
        "mpjpe_mm": mpjpe,
        "pa_mpjpe_mm": pa,
        "baseline_mpjpe_mm": base_mpjpe,
        "baseline_pa_mpjpe_mm": base_pa,
        "no_pose_rate": float(1 - has_pose.mean()),
    }
