"""One attention function for the whole model: a plain reference or `jax.nn.dot_product_attention`.

Grouped-query attention is native: `key`/`value` carry `K` heads and `query` carries `H = G * K`.
Softmax runs in float32 whatever the compute dtype. Masked scores get a large finite negative
number, not -inf, so a row with no visible key (a left-padding query) stays finite instead of
spreading NaN through the value matmul of later layers.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

AttentionImpl = Literal["reference", "xla", "cudnn"]


def dot_product_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array | None = None,
    *,
    impl: AttentionImpl = "xla",
    scale: float | None = None,
) -> jax.Array:
    """Scaled dot-product attention.

    Args:
      query: float[B, T, H, Dh].
      key, value: float[B, S, K, Dh] with H % K == 0.
      mask: bool[B, 1, T, S] (or broadcastable to it), True where a query may see a key; None = all.
      impl: "reference" (einsum + float32 softmax, any backend), "xla" or "cudnn" (fused on GPU).
      scale: multiplier of the scores; default Dh**-0.5.

    Returns:
      float[B, T, H, Dh] in the dtype of `query`.
    """
    if impl == "reference":
        return reference_attention(query, key, value, mask, scale=scale)
    if mask is not None:
        mask = jnp.broadcast_to(mask, (query.shape[0], 1, query.shape[1], key.shape[1]))
    return jax.nn.dot_product_attention(query, key, value, mask=mask, scale=scale, implementation=impl)


def reference_attention(query, key, value, mask=None, *, scale=None):
    """Plain einsum attention (the numerical reference of the fused paths); shapes as above."""
    b, t, h, d = query.shape
    k_heads = key.shape[2]
    groups = h // k_heads
    scale = d**-0.5 if scale is None else scale
    q = query.reshape(b, t, k_heads, groups, d)
    scores = jnp.einsum("btkgd,bskd->bkgts", q, key, preferred_element_type=jnp.float32) * scale
    if mask is not None:
        mask = jnp.broadcast_to(mask, (b, 1, t, key.shape[1]))[:, :, None]  # [B, 1, 1, T, S]
        scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(value.dtype)
    out = jnp.einsum("bkgts,bskd->btkgd", probs, value)
    return out.reshape(b, t, h, d).astype(query.dtype)


def causal_mask(query_positions: jax.Array, key_valid: jax.Array, sliding_window: int = 0) -> jax.Array:
    """bool[B, 1, T, S]: query slot t sees key slot s when t - window < s <= t and s holds a real token.

    Args:
      query_positions: int[B, T] or int[T], the cache slot each query sits in.
      key_valid: bool[B, S], False at padding and at slots not written yet.
      sliding_window: W > 0 limits each query to the W slots ending at its own (Mistral; slots,
        padding included, as transformers counts them); 0 = no limit.
    """
    slots = jnp.arange(key_valid.shape[-1])
    query_positions = jnp.broadcast_to(query_positions, (key_valid.shape[0], query_positions.shape[-1]))
    visible = slots[None, None, :] <= query_positions[:, :, None]
    if sliding_window:
        visible &= slots[None, None, :] > query_positions[:, :, None] - sliding_window
    return (visible & key_valid[:, None, :])[:, None]
