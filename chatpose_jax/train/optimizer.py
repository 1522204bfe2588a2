"""AdamW with warm-up then decay and global-norm clipping, built from `OptimizerConfig`.

Only the trainable pytree reaches the optimizer (the frozen base never has optimizer state),
so no mask is needed for the frozen set; `weight_decay_mask` keeps decay off biases, norms and
embeddings, as is usual for LLaMA fine-tuning.
"""

from __future__ import annotations

import jax
import optax

from chatpose_jax.experiment import OptimizerConfig


def learning_rate_schedule(cfg: OptimizerConfig, num_steps: int) -> optax.Schedule:
    """Linear warm-up from 0 to `lr` over `warmup_steps`, then decay to `end_lr_ratio * lr` at `num_steps`."""
    end = cfg.lr * cfg.end_lr_ratio
    warmup = optax.linear_schedule(0.0, cfg.lr, max(cfg.warmup_steps, 1))
    decay_steps = max(num_steps - cfg.warmup_steps, 1)
    if cfg.schedule == "linear":
        decay = optax.linear_schedule(cfg.lr, end, decay_steps)
    elif cfg.schedule == "cosine":
        decay = optax.cosine_decay_schedule(cfg.lr, decay_steps, alpha=cfg.end_lr_ratio)
    else:
        decay = optax.constant_schedule(cfg.lr)
    if cfg.warmup_steps <= 0:
        return decay
    return optax.join_schedules([warmup, decay], [cfg.warmup_steps])


def weight_decay_mask(params) -> dict:
    """True for matrices that take weight decay: 2-D+ kernels, not biases, norms or embeddings."""

    def decays(path, leaf) -> bool:
        names = [getattr(k, "key", getattr(k, "name", str(k))) for k in path]
        if any(n in ("embedding", "embed_tokens", "bias", "scale") for n in names):
            return False
        return leaf.ndim >= 2

    return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(cfg: OptimizerConfig, num_steps: int) -> optax.GradientTransformation:
    """Clipping (when clip_norm > 0) then AdamW on the scheduled learning rate."""
    schedule = learning_rate_schedule(cfg, num_steps)
    parts = []
    if cfg.clip_norm > 0:
        parts.append(optax.clip_by_global_norm(cfg.clip_norm))
    parts.append(
        optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay, mask=weight_decay_mask)
    )
    return optax.chain(*parts)
