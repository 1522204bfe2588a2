"""Vision-to-text projector: `mlp2x_gelu` = Linear(D_vision, d) - GELU(erf) - Linear(d, d)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from chatpose_jax.model.config import ProjectorConfig
from chatpose_jax.model.layers import Linear, activation


class Projector(nn.Module):
    """float[B, N, D_vision] -> float[B, N, d]; params linear_1, linear_2 (HF names)."""

    cfg: ProjectorConfig
    text_hidden_size: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    init_std: float = 0.02

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        dense = dict(use_bias=self.cfg.bias, dtype=self.dtype, param_dtype=self.param_dtype, init_std=self.init_std)
        # The vision width is sharded like any hidden width; the text width likewise.
        x = Linear(self.text_hidden_size, (None, "embed"), name="linear_1", **dense)(features)
        if self.cfg.type == "linear":
            return x
        x = activation("gelu")(x)
        return Linear(self.text_hidden_size, (None, "embed"), name="linear_2", **dense)(x)
