"""The training step: `train_step(state, frozen, batch) -> (state, metrics)`, pure and jit-able.

One optimizer step covers `grad_accum_steps` micro-batches, scanned so that memory holds one
micro-batch's activations. Every loss term is a (sum, count) pair normalised by the whole
step's counts, so the accumulated gradient equals the full-batch gradient. A non-finite loss or
gradient leaves params and optimizer state untouched and is counted in the state.

The batch layout is the one `data_pipelines` documents: input_ids, attention_mask, labels
int32[B, T]; pixel_values float32[B, 3, H, W] (absent for text-only streams); pose_global_orient
float32[B, P, 3], pose_body_pose float32[B, P, 69], pose_betas float32[B, P, 10], pose_mask bool[B, P];
with packed rows (`data.pack`) also segment_ids and positions int32[B, T], which the model reads
as its attention segments and rotary positions.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from chatpose_jax.body.rotations import axis_angle_to_rotmat
from chatpose_jax.eval import metrics
from chatpose_jax.experiment import LossConfig
from chatpose_jax.model import chatpose
from chatpose_jax.model.config import ModelConfig
from chatpose_jax.train import losses
from chatpose_jax.train.state import TrainState, join_params

MODEL_INPUTS = ("input_ids", "attention_mask", "labels", "pixel_values", "segment_ids", "positions")
POSE_TARGETS = ("pose_global_orient", "pose_body_pose", "pose_betas", "pose_mask")


@dataclasses.dataclass(frozen=True)
class StepSettings:
    """The static parts of a step (hashable, so the jitted step is built once).

    `max_text_length`: the data's bound on the text (non-image) tokens of a row (the pipeline
    truncates to `train.max_text_length`). Labels sit on text tokens only, so a row learns at most
    that many tokens, and the LM head and cross-entropy run on that many positions per row instead
    of all T (with 576 image tokens per row most positions never need logits). 0: all positions.
    """

    model: ModelConfig
    loss: LossConfig
    grad_accum_steps: int = 1
    new_token_ids: tuple[int, ...] = ()
    max_text_length: int = 0


def target_rotmats(batch: dict) -> jax.Array:
    """float[B, P, 24, 3, 3] from the batch's axis-angle pose targets (joint 0 = global orientation)."""
    aa = jnp.concatenate([batch["pose_global_orient"], batch["pose_body_pose"]], axis=-1)
    return axis_angle_to_rotmat(aa.reshape(*aa.shape[:-1], -1, 3))


def body_joints(body_model, rotmat: jax.Array, betas: jax.Array) -> jax.Array:
    """(root-relative SMPL joints float[B, P, 24, 3], vertices float[B, P, V, 3]), metres, of rotmats [B, P, 24, 3, 3]."""
    b, p = rotmat.shape[:2]
    out = body_model(
        betas=betas.reshape(b * p, -1),
        global_orient=rotmat[:, :, :1].reshape(b * p, 1, 3, 3),
        body_pose=rotmat[:, :, 1:].reshape(b * p, -1, 3, 3),
    )
    joints = out.joints[:, :24]
    return (joints - joints[:, :1]).reshape(b, p, 24, 3), out.vertices.reshape(b, p, -1, 3)


def step_counts(batch: dict) -> dict[str, jax.Array]:
    """Normalisers for the whole step: learned tokens and target poses (at least 1 each)."""
    tokens = (batch["labels"][:, 1:] != losses.IGNORE_INDEX).sum().astype(jnp.float32)
    poses = batch["pose_mask"].sum().astype(jnp.float32)
    return {"tokens": jnp.maximum(tokens, 1.0), "poses": jnp.maximum(poses, 1.0)}


def micro_loss(
    trainable: dict,
    frozen: dict,
    batch: dict,
    counts: dict,
    dropout_rng: jax.Array | None,
    settings: StepSettings,
    body_model: Any = None,
) -> tuple[jax.Array, dict]:
    """This micro-batch's share of the step loss, and its metric sums."""
    params, lora = join_params(frozen, trainable, settings.new_token_ids)
    t = batch["labels"].shape[1]
    if 0 < settings.max_text_length < t - 1:
        positions, targets = losses.learned_positions(batch["labels"], settings.max_text_length)
    else:
        positions, targets = None, batch["labels"][:, 1:]
    out = chatpose.apply(
        settings.model,
        params,
        lora,
        batch["input_ids"],
        batch.get("pixel_values"),
        batch["attention_mask"],
        batch.get("positions"),
        dropout_rng=dropout_rng,
        logits_positions=positions,
        segment_ids=batch.get("segment_ids"),
    )
    logits = out.logits if positions is not None else out.logits[:, :-1]
    ce_sum, n_tokens = losses.target_cross_entropy(logits, targets)
    correct, _ = losses.target_accuracy(logits, targets)
    mask = batch["pose_mask"] & out.pose.valid
    target = target_rotmats(batch)
    pose_sum, n_poses = losses.pose_loss(settings.loss.pose_loss, out.pose.rotmat, target, mask)
    cfg = settings.loss
    loss = cfg.ce_weight * ce_sum / counts["tokens"] + cfg.pose_weight * pose_sum / counts["poses"]
    sums = {
        "ce_sum": ce_sum,
        "tokens": n_tokens,
        "correct": correct,
        "pose_l1_sum": pose_sum,
        "poses": n_poses,
        "pose_missing": (batch["pose_mask"] & ~out.pose.valid).sum().astype(jnp.float32),
    }
    if body_model is not None:
        pred_joints, pred_verts = body_joints(body_model, out.pose.rotmat.astype(jnp.float32), batch["pose_betas"])
        gt_joints, gt_verts = body_joints(body_model, target, batch["pose_betas"])
        joints_sum, _ = losses.masked_point_error(pred_joints, gt_joints, mask, squared=True)
        verts_sum, _ = losses.masked_point_error(pred_verts, gt_verts, mask, squared=False)
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731  [B, P, J, 3] -> [B*P, J, 3]
        mpjpe = metrics.mpjpe(flat(pred_joints), flat(gt_joints)).reshape(mask.shape)
        pa_mpjpe = metrics.pa_mpjpe(flat(pred_joints), flat(gt_joints)).reshape(mask.shape)
        sums["joints_sum"], sums["vertices_sum"] = joints_sum, verts_sum
        sums["mpjpe_sum"] = jnp.sum(mpjpe * mask)
        sums["pa_mpjpe_sum"] = jnp.sum(jnp.where(mask, pa_mpjpe, 0.0))
        loss = loss + (cfg.joints_weight * joints_sum + cfg.vertices_weight * verts_sum) / counts["poses"]
    return loss, sums


def _split_micro(batch: dict, n: int) -> dict:
    """[B, ...] -> [n, B/n, ...], micro-batch m = rows m, m+n, ... so each device keeps its rows."""

    def split(x):
        return jnp.swapaxes(x.reshape(x.shape[0] // n, n, *x.shape[1:]), 0, 1)

    return jax.tree.map(split, batch)


def train_step(
    state: TrainState,
    frozen: dict,
    batch: dict,
    body_model: Any = None,
    *,
    settings: StepSettings,
    optimizer: optax.GradientTransformation,
) -> tuple[TrainState, dict]:
    """One optimizer step over `settings.grad_accum_steps` micro-batches.

    Returns:
      (new state, metrics: float32 scalars: loss, ce, pose_l1, token_accuracy, grad_norm,
      param_norm, update_norm, lr-free counts, tokens_beyond_max_text_length, and mpjpe / joints / vertices with a body model).
    """
    batch = {k: v for k, v in batch.items() if k in MODEL_INPUTS + POSE_TARGETS}
    counts = step_counts(batch)
    step_rng = jax.random.fold_in(state.rng, state.step)
    grad_fn = jax.value_and_grad(micro_loss, has_aux=True)
    n = settings.grad_accum_steps

    def one(carry, inputs):
        grads, sums = carry
        micro, index = inputs
        rng = jax.random.fold_in(step_rng, index)
        (loss, micro_sums), micro_grads = grad_fn(state.trainable, frozen, micro, counts, rng, settings, body_model)
        grads = jax.tree.map(jnp.add, grads, micro_grads)
        sums = jax.tree.map(jnp.add, sums, {**micro_sums, "loss": loss})
        return (grads, sums), None

    zero_grads = jax.tree.map(lambda x: jnp.zeros(x.shape, jnp.float32), state.trainable)
    if n == 1:
        rng = jax.random.fold_in(step_rng, 0)
        (loss, sums), grads = grad_fn(state.trainable, frozen, batch, counts, rng, settings, body_model)
        sums = {**sums, "loss": loss}
    else:
        _, sums_shape = jax.eval_shape(
            lambda: micro_loss(
                state.trainable,
                frozen,
                jax.tree.map(lambda x: x[: x.shape[0] // n], batch),
                counts,
                step_rng,
                settings,
                body_model,
            )
        )
        zero_sums = {**jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), sums_shape), "loss": jnp.zeros(())}
        (grads, sums), _ = jax.lax.scan(one, (zero_grads, zero_sums), (_split_micro(batch, n), jnp.arange(n)))
    grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, state.trainable)

    grad_norm = optax.global_norm(grads)
    updates, new_opt_state = optimizer.update(grads, state.opt_state, state.trainable)
    new_trainable = optax.apply_updates(state.trainable, updates)
    finite = jnp.isfinite(sums["loss"]) & jnp.isfinite(grad_norm)
    keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
    new_state = state.replace(
        step=state.step + 1,
        trainable=jax.tree.map(keep, new_trainable, state.trainable),
        opt_state=jax.tree.map(keep, new_opt_state, state.opt_state),
        nonfinite_in_row=jnp.where(finite, 0, state.nonfinite_in_row + 1),
        nonfinite_total=state.nonfinite_total + (~finite).astype(jnp.int32),
    )
    out = {
        "loss": sums["loss"],
        "ce": sums["ce_sum"] / counts["tokens"],
        "pose_l1": sums["pose_l1_sum"] / counts["poses"],
        "token_accuracy": sums["correct"] / counts["tokens"],
        "tokens": sums["tokens"],
        # Labelled tokens past train.max_text_length in some row, left out of the cross-entropy (the pipeline
        # truncates rows so this stays 0; the loop stops on anything else).
        "tokens_beyond_max_text_length": (batch["labels"][:, 1:] != losses.IGNORE_INDEX).sum() - sums["tokens"],
        "poses": sums["poses"],
        "pose_missing": sums["pose_missing"],
        "grad_norm": grad_norm,
        "param_norm": optax.global_norm(state.trainable),
        "update_norm": optax.global_norm(updates),
        "update_skipped": (~finite).astype(jnp.float32),
        "nonfinite_in_row": new_state.nonfinite_in_row.astype(jnp.float32),
    }
    if "mpjpe_sum" in sums:
        out["mpjpe_mm"] = 1000.0 * sums["mpjpe_sum"] / counts["poses"]
        out["pa_mpjpe_mm"] = 1000.0 * sums["pa_mpjpe_sum"] / counts["poses"]
        out["joints_l2"] = sums["joints_sum"] / counts["poses"]
        out["vertices_l1"] = sums["vertices_sum"] / counts["poses"]
    return new_state, out


def eval_step(frozen: dict, trainable: dict, batch: dict, body_model: Any = None, *, settings: StepSettings) -> dict:
    """Loss terms and pose error on a held-out batch (no dropout), as sums for averaging."""
    batch = {k: v for k, v in batch.items() if k in MODEL_INPUTS + POSE_TARGETS}
    counts = step_counts(batch)
    loss, sums = micro_loss(trainable, frozen, batch, counts, None, settings, body_model)
    return {**sums, "loss_x_tokens": loss * counts["tokens"]}
