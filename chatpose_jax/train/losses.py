"""ChatPose's loss: cross-entropy on the answer tokens plus an L1 pose loss on rotation matrices.

L = ce_weight * CE + pose_weight * L_pose (+ joints_weight * |J_pred - J_gt|^2
+ vertices_weight * |V_pred - V_gt| through the body model). Each term is returned as a
(sum, count) pair so micro-batches of one step add up to the same mean as the whole batch.

L_pose is the released ChatPose loss by default (`rotmat_l1_root_and_body`): per pose, the mean
|R_pred - R_gt| over the 23 body-pose matrices (207 numbers) plus the mean over the root's 9,
two means added (Feng et al., CVPR 2024, and its public PyTorch release). `rotmat_l1` (one mean
over all 216 numbers, which weighs the root 24 times less) is kept for configs that name it.
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
    return target_cross_entropy(logits[:, :-1], labels[:, 1:])


def token_accuracy(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(correct next-token predictions on learned positions, learned positions)."""
    return target_accuracy(logits[:, :-1], labels[:, 1:])


def learned_positions(labels: jax.Array, count: int) -> tuple[jax.Array, jax.Array]:
    """The positions whose next token is learned, so that the LM head runs only there.

    Args:
      labels: int[B, T]; IGNORE_INDEX where nothing is learned (not shifted).
      count: K, the most learned tokens a row may hold (static; T - 1 always suffices).

    Returns:
      positions int32[B, K]: the t with labels[t + 1] learned, ascending, then 0 as padding;
      targets int32[B, K]: labels[t + 1] at those t, IGNORE_INDEX at the padding. A row with more
      than K learned tokens keeps its first K.
    """
    targets = labels[:, 1:]
    valid = targets != IGNORE_INDEX
    count = min(count, targets.shape[1])
    order = jnp.argsort(~valid, axis=1, stable=True)[:, :count]  # learned positions first, in order
    kept = jnp.take_along_axis(valid, order, axis=1)
    picked = jnp.take_along_axis(targets, order, axis=1)
    return jnp.where(kept, order, 0).astype(jnp.int32), jnp.where(kept, picked, IGNORE_INDEX)


def target_cross_entropy(logits: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Cross-entropy of aligned logits and targets, summed over the learned ones.

    Args:
      logits: float[B, K, V]; logits[b, k] predicts targets[b, k].
      targets: int[B, K]; IGNORE_INDEX where nothing is learned.

    Returns:
      (sum of -log p over learned targets: float32[], number of learned targets: float32[]).
    """
    valid = targets != IGNORE_INDEX
    nll = _softmax_cross_entropy(logits.astype(jnp.float32), jnp.where(valid, targets, 0))
    return (nll * valid).sum(), valid.sum().astype(jnp.float32)


@jax.custom_vjp
def _softmax_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """-log softmax(logits)[target], float32[...] from float32[..., V] and int[...]."""
    return _softmax_cross_entropy_fwd(logits, targets)[0]


def _softmax_cross_entropy_fwd(logits, targets):
    log_z = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return log_z - picked, (logits, log_z, targets)


def _softmax_cross_entropy_bwd(residuals, grad):
    # softmax - onehot in one elementwise pass over the logits (autodiff builds the one-hot part
    # with a scatter into a zero [..., V] array and adds the two).
    logits, log_z, targets = residuals
    onehot = jnp.arange(logits.shape[-1]) == targets[..., None]
    dlogits = (jnp.exp(logits - log_z[..., None]) - onehot) * grad[..., None]
    return dlogits, None


_softmax_cross_entropy.defvjp(_softmax_cross_entropy_fwd, _softmax_cross_entropy_bwd)


def target_accuracy(logits: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(correct predictions on learned targets, learned targets); shapes as `target_cross_entropy`."""
    valid = targets != IGNORE_INDEX
    correct = (jnp.argmax(logits, axis=-1) == targets) & valid
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


def rotmat_l1_root_and_body(
    pred_rotmat: jax.Array, target_rotmat: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """ChatPose's released pose loss: mean |dR| over the body joints plus mean |dR| over the root.

    Args:
      pred_rotmat, target_rotmat: float[B, P, J, 3, 3] (joint 0 = global orientation, 1.. = body).
      mask: bool[B, P], which pose slots hold a target (and a predicted `<POSE>`).

    Returns:
      (sum over valid poses of mean|R_body_pred - R_body_gt| + mean|R_root_pred - R_root_gt|,
      number of valid poses).
    """
    diff = jnp.abs(pred_rotmat.astype(jnp.float32) - target_rotmat.astype(jnp.float32))
    per_pose = diff[..., 1:, :, :].mean(axis=(-3, -2, -1)) + diff[..., 0, :, :].mean(axis=(-2, -1))
    return jnp.sum(per_pose * mask), mask.sum().astype(jnp.float32)


POSE_LOSSES = {"released": rotmat_l1_root_and_body, "flat": rotmat_l1}


def pose_loss(
    kind: str, pred_rotmat: jax.Array, target_rotmat: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The pose term a config names: "released" (`rotmat_l1_root_and_body`) or "flat" (`rotmat_l1`).

    Shapes as `rotmat_l1`; returns (sum over valid poses, number of valid poses).
    """
    if kind not in POSE_LOSSES:
        raise ValueError(f"train.loss.pose_loss={kind!r} is not one of {sorted(POSE_LOSSES)}")
    return POSE_LOSSES[kind](pred_rotmat, target_rotmat, mask)


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
