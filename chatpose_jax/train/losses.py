"""ChatPose's loss: cross-entropy on the answer tokens plus an L1 pose loss on rotation matrices.

L = ce_weight * CE + pose_weight * L1(R_pred, R_gt) (+ joints_weight * |J_pred - J_gt|^2
+ vertices_weight * |V_pred - V_gt| through the body model). Each term is returned as a
(sum, count) pair so micro-batches of one step add up to the same mean as the whole batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

IGNORE_INDEX = -100


def token_cross_entropy(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Next-token cross-entropy summed over the learned positions.

    Args:
      logits: float[B, T, V]; position t predicts token t + 1.
      labels: int[B, T]; IGNORE_INDEX where nothing is learned (not shifted).

    Returns:
      (sum of -log p over learned tokens: float32[], number of learned tokens: float32[]).
    """
    logits = logits[:, :-1].astype(jnp.float32)
    targets = labels[:, 1:]
    valid = targets != IGNORE_INDEX
    safe = jnp.where(valid, targets, 0)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, safe[..., None], axis=-1)[..., 0]
    nll = (log_z - picked) * valid
    return nll.sum(), valid.sum().astype(jnp.float32)


def token_accuracy(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(correct next-token predictions on learned positions, learned positions)."""
    targets = labels[:, 1:]
    valid = targets != IGNORE_INDEX
    correct = (jnp.argmax(logits[:, :-1], axis=-1) == targets) & valid
    return correct.sum().astype(jnp.float32), valid.sum().astype(jnp.float32)


def rotmat_l1(pred_rotmat: jax.Array, target_rotmat: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean absolute difference of rotation matrices per pose, summed over the valid poses.

    Args:
      pred_rotmat, target_rotmat: float[B, P, J, 3, 3] (joint 0 = global orientation).
      mask: bool[B, P], which pose slots hold a target (and a predicted `<POSE>`).

    Returns:
      (sum over valid poses of the per-pose mean |R_pred - R_gt|, number of valid poses).
    """
    per_pose = jnp.abs(pred_rotmat.astype(jnp.float32) - target_rotmat.astype(jnp.float32)).mean(axis=(-3, -2, -1))
    return jnp.sum(per_pose * mask), mask.sum().astype(jnp.float32)


def masked_point_error(
    pred: jax.Array, target: jax.Array, mask: jax.Array, squared: bool
) -> tuple[jax.Array, jax.Array]:
    """Per-pose mean point error (L2 squared or L1), summed over the valid poses.

    Args:
      pred, target: float[B, P, N, 3] joints or vertices, metres.
      mask: bool[B, P].
    """
    diff = pred.astype(jnp.float32) - target.astype(jnp.float32)
    per_point = jnp.sum(diff**2, -1) if squared else jnp.abs(diff).sum(-1)
    per_pose = per_point.mean(-1)
    return jnp.sum(per_pose * mask), mask.sum().astype(jnp.float32)
