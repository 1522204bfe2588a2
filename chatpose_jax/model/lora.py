"""LoRA: low-rank adapters kept in their own pytree, next to a frozen base.

The model is applied as `apply({"params": base, "lora": lora}, ...)`: each targeted linear adds
`dropout(x) @ lora_a @ lora_b * alpha / rank` to its output. Without a `lora` collection the
same code is the base model. The base pytree is only read, never copied per step; `merge_lora`
folds the adapters into a new base for export or fast inference.

LoRA tree layout mirrors the params tree: for every target linear at `.../q_proj/kernel` the
LoRA tree holds `.../q_proj/lora/lora_a` float[d_in, r] and `.../q_proj/lora/lora_b`
float[r, d_out] (with a leading layers axis when the decoder is scanned).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from chatpose_jax.model.matmul import matmul

LORA_COLLECTION = "lora"


@dataclasses.dataclass(frozen=True)
class LoraSpec:
    """What one targeted linear needs to know."""

    rank: int
    alpha: float
    dropout: float

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


def spec_for(lora_cfg, module_name: str) -> LoraSpec | None:
    """The LoraSpec for a decoder linear named `module_name` (q_proj, v_proj, ...), or None."""
    if lora_cfg.rank <= 0 or module_name not in lora_cfg.target_modules:
        return None
    return LoraSpec(lora_cfg.rank, lora_cfg.alpha, lora_cfg.dropout)


class LoraAdapter(nn.Module):
    """The low-rank update of one linear; a no-op when the `lora` collection lacks it.

    A is initialised like PEFT (kaiming-uniform, a=sqrt(5): U(+-1/sqrt(d_in))), B with zeros, so
    a fresh adapter leaves the base model unchanged.
    """

    spec: LoraSpec
    features: int
    axes: tuple[str | None, str | None]
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """float[..., d_in] -> float[..., d_out] (zeros when no adapter is given)."""
        if not (self.is_initializing() or self.has_variable(LORA_COLLECTION, "lora_a")):
            return jnp.zeros((*x.shape[:-1], self.features), self.dtype)
        init_a = nn.with_logical_partitioning(
            nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"), (self.axes[0], "lora_rank")
        )
        init_b = nn.with_logical_partitioning(nn.initializers.zeros, ("lora_rank", self.axes[1]))
        a = self.variable(
            LORA_COLLECTION,
            "lora_a",
            lambda: init_a(self.make_rng("params"), (x.shape[-1], self.spec.rank), self.param_dtype),
        ).value
        b = self.variable(
            LORA_COLLECTION,
            "lora_b",
            lambda: init_b(self.make_rng("params"), (self.spec.rank, self.features), self.param_dtype),
        ).value
        if not self.deterministic and self.spec.dropout > 0:
            x = dropout(x, self.spec.dropout, self.make_rng("dropout"))
        low = matmul(x.astype(self.dtype), a.astype(self.dtype))
        return matmul(low, b.astype(self.dtype)) * jnp.asarray(self.spec.scaling, self.dtype)


def dropout(x: jax.Array, rate: float, rng: jax.Array) -> jax.Array:
    """Inverted dropout, x / (1 - rate) where kept and 0 elsewhere, as `nn.Dropout`, on cheaper bits.

    The keep mask compares 16-bit uniform integers with round((1 - rate) * 2**16), taking both
    halves of each 32-bit random word: half the threefry work of a float32 uniform per element
    (the random bits are most of a dropout's cost), with the rate exact to 2**-17. Rows of odd
    length fall back to `jax.random.bernoulli`.
    """
    keep = 1.0 - rate
    if x.ndim < 2 or x.shape[-2] % 2:
        mask = jax.random.bernoulli(rng, keep, x.shape)
    else:
        half = (*x.shape[:-2], x.shape[-2] // 2, x.shape[-1])
        bits = jax.random.bits(rng, half, jnp.uint32)
        halves = jnp.concatenate([bits.astype(jnp.uint16), (bits >> 16).astype(jnp.uint16)], axis=-2)
        mask = halves < jnp.uint16(min(round(keep * 65536), 65535))
    return jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros((), x.dtype))


def merge_lora(base: dict, lora: dict, lora_cfg) -> dict:
    """Folds every adapter into its kernel: kernel + lora_a @ lora_b * alpha / rank.

    Args:
      base: the params tree.
      lora: the LoRA tree (same nesting as `base`; each target holds `lora/{lora_a, lora_b}`).
      lora_cfg: `LoraConfig` (rank, alpha).

    Returns:
      A new params tree (untouched leaves are shared, not copied) for `apply` without LoRA.
    """
    scaling = lora_cfg.alpha / lora_cfg.rank

    def merge(base_node, lora_node, path):
        if not isinstance(lora_node, dict):
            raise ValueError(f"LoRA tree has a leaf at {'/'.join(path)} where the params tree has a module")
        out = dict(base_node)
        for name, sub in lora_node.items():
            if name == "lora":
                kernel = base_node["kernel"]
                # Stacked (scanned) layers: lora_a [L, d_in, r] @ lora_b [L, r, d_out].
                delta = jnp.matmul(sub["lora_a"].astype(jnp.float32), sub["lora_b"].astype(jnp.float32))
                out["kernel"] = (kernel.astype(jnp.float32) + delta * scaling).astype(kernel.dtype)
            else:
                if name not in base_node:
                    raise KeyError(f"LoRA tree has {'/'.join((*path, name))}, which the params tree lacks")
                out[name] = merge(base_node[name], sub, (*path, name))
        return out

    return merge(base, lora, ())
