"""Building blocks with logical axis names: Linear (optionally LoRA-adapted), LayerNorm, RMSNorm, Embed.

Parameter names follow flax (`kernel` [d_in, d_out], `bias`, `scale`, `embedding`); every
parameter carries logical axis names that the mesh rules of the config map to mesh axes.
Norms compute in float32 and return the compute dtype. Every matmul goes through `matmul.matmul`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from chatpose_jax.model import lora as lora_lib
from chatpose_jax.model.matmul import matmul
from chatpose_jax.parallel.axes import VOCAB, constrain

Dtype = Any


def normal_init(std: float):
    return nn.initializers.normal(stddev=std)


class Linear(nn.Module):
    """y = x @ kernel (+ bias), plus a LoRA update when the `lora` collection holds one for it.

    Attributes:
      features: d_out.
      axes: logical names of the kernel's (d_in, d_out) dimensions.
      lora: a `LoraSpec` when this linear is a LoRA target, else None.
    """

    features: int
    axes: tuple[str | None, str | None]
    use_bias: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    init_std: float = 0.02
    lora: lora_lib.LoraSpec | None = None
    deterministic: bool = True
    bias_init: Any = nn.initializers.zeros
    out_dtype: Dtype | None = None  # dtype of the product (default `dtype`; float32 for the LM head)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """float[..., d_in] -> float[..., d_out] in `out_dtype` (default `dtype`)."""
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(normal_init(self.init_std), self.axes),
            (x.shape[-1], self.features),
            self.param_dtype,
        )
        x = x.astype(self.dtype)
        y = matmul(x, kernel.astype(self.dtype), self.out_dtype)
        if self.use_bias:
            bias = self.param(
                "bias",
                nn.with_logical_partitioning(self.bias_init, (self.axes[1],)),
                (self.features,),
                self.param_dtype,
            )
            y = y + bias.astype(y.dtype)
        if self.lora is not None:
            y = y + lora_lib.LoraAdapter(
                self.lora, self.features, self.axes, self.dtype, self.param_dtype, self.deterministic, name="lora"
            )(x).astype(y.dtype)
        return y


class LayerNorm(nn.Module):
    """LayerNorm with scale and bias (CLIP), statistics in float32."""

    eps: float = 1e-5
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        d = x.shape[-1]
        scale = self.param(
            "scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)), (d,), self.param_dtype
        )
        bias = self.param(
            "bias", nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)), (d,), self.param_dtype
        )
        x32 = x.astype(jnp.float32)
        mean = x32.mean(-1, keepdims=True)
        var = jnp.square(x32 - mean).mean(-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        return (y * scale.astype(jnp.float32) + bias.astype(jnp.float32)).astype(self.dtype)


class RMSNorm(nn.Module):
    """RMSNorm (LLaMA): x / rms(x) in float32, cast to the compute dtype, then times `scale`."""

    eps: float = 1e-6
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        d = x.shape[-1]
        scale = self.param(
            "scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)), (d,), self.param_dtype
        )
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), -1, keepdims=True) + self.eps)
        return y.astype(self.dtype) * scale.astype(self.dtype)


class Embed(nn.Module):
    """Token embedding table float[V, D]; `attend` gives tied-head logits."""

    num_embeddings: int
    features: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    init_std: float = 0.02

    def setup(self):
        self.embedding = self.param(
            "embedding",
            nn.with_logical_partitioning(normal_init(self.init_std), ("vocab", "embed")),
            (self.num_embeddings, self.features),
            self.param_dtype,
        )

    def __call__(self, ids: jax.Array) -> jax.Array:
        """int[B, T] -> float[B, T, D].

        The table is gathered whole along D first (in the compute dtype), like any FSDP weight: a
        lookup into a D-sharded table would otherwise gather every device's ids, the global batch.
        """
        table = constrain(self.embedding.astype(self.dtype), (VOCAB, None))
        return jnp.take(table, ids, axis=0)

    def attend(self, x: jax.Array, out_dtype: Dtype | None = None) -> jax.Array:
        """float[B, T, D] -> float[B, T, V] in `out_dtype` (default `dtype`)."""
        return matmul(x.astype(self.dtype), self.embedding.astype(self.dtype).T, out_dtype)


def activation(name: str):
    """The activation functions the towers and projectors use, by their HF names."""
    if name == "quick_gelu":
        return lambda x: x * jax.nn.sigmoid(1.702 * x)
    if name == "gelu":
        return lambda x: jax.nn.gelu(x, approximate=False)
    if name == "gelu_tanh":
        return lambda x: jax.nn.gelu(x, approximate=True)
    if name == "silu":
        return jax.nn.silu
    raise ValueError(f"unknown activation {name!r}")
