"""One attention function for the whole model: a plain reference, `jax.nn.dot_product_attention`, or
a blockwise kernel for CPUs.

Grouped-query attention is native: `key`/`value` carry `K` heads and `query` carries `H = G * K`.
Softmax runs in float32 whatever the compute dtype. Masked scores get a large finite negative
number, not -inf, so a row with no visible key (a left-padding query) stays finite instead of
spreading NaN through the value matmul of later layers.

`impl="xla"` compiles with XLA on every backend. On GPU/TPU it is `jax.nn.dot_product_attention`.
On CPU it is `blockwise_attention`: blocks of query rows that skip the keys a causal mask hides
(with four blocks, 62% of the full score matrix remains), matmuls on the compute dtype with float32
accumulation (XLA:CPU's bf16 kernels) in plain row-major layouts, and a hand-written backward that
reuses each block's probabilities (kept in the compute dtype, not as float32 scores) instead of
differentiating the softmax.
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp

from chatpose_jax.parallel.axes import target_platform

AttentionImpl = Literal["reference", "xla", "cudnn"]

# Most query rows per block of the CPU kernel. Smaller blocks skip more of a causal mask but issue
# more, smaller operations; at 832 tokens four blocks of 208 rows took the least CPU time.
CPU_BLOCK = 256
_MASKED = float(jnp.finfo(jnp.float32).min)


def dot_product_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array | None = None,
    *,
    impl: AttentionImpl = "xla",
    scale: float | None = None,
    is_causal: bool = False,
) -> jax.Array:
    """Scaled dot-product attention.

    Args:
      query: float[B, T, H, Dh].
      key, value: float[B, S, K, Dh] with H % K == 0.
      mask: bool[B, 1, T, S] (or broadcastable to it), True where a query may see a key; None = all.
      impl: "reference" (einsum + float32 softmax, any backend), "xla" (XLA-compiled: the blockwise
        kernel on CPU, `jax.nn.dot_product_attention` elsewhere) or "cudnn" (fused on GPU).
      scale: multiplier of the scores; default Dh**-0.5.
      is_causal: a promise that `mask` hides every key s > t + (S - T) from query t (a causal mask,
        padding allowed); lets the CPU kernel skip those keys. The mask is applied either way, and
        without a mask the promise is ignored.

    Returns:
      float[B, T, H, Dh] in the dtype of `query`.
    """
    if impl == "reference":
        return reference_attention(query, key, value, mask, scale=scale)
    if mask is not None:
        mask = jnp.broadcast_to(mask, (query.shape[0], 1, query.shape[1], key.shape[1]))
    if impl == "xla" and target_platform() == "cpu":
        return blockwise_attention(query, key, value, mask, scale=scale, is_causal=is_causal)
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


def blockwise_attention(query, key, value, mask=None, *, scale=None, is_causal=False, block=CPU_BLOCK):
    """Attention by blocks of `block` query rows (shapes and arguments as `dot_product_attention`).

    Equals `reference_attention` on every query with a visible key. A query with none (padding)
    gets the plain mean of the values its block does not skip, finite like the reference's.
    """
    d = query.shape[-1]
    scale = d**-0.5 if scale is None else float(scale)
    if mask is not None:
        mask = jnp.broadcast_to(mask, (query.shape[0], 1, query.shape[1], key.shape[1]))
    return _blockwise(query, key, value, mask, scale, bool(is_causal and mask is not None), int(block))


def _blocks(t: int, s: int, causal: bool, block: int) -> list[tuple[int, int, int]]:
    """(first query, end query, end key) per block; a causal block needs keys up to its last query.

    The T queries split into ceil(T / block) blocks of near-equal size (a multiple of 8).
    """
    n = -(-t // block)
    size = -(-t // n)
    size += -size % 8
    return [(q0, min(q0 + size, t), min(s, min(q0 + size, t) + s - t) if causal else s) for q0 in range(0, t, size)]


def _heads_first(x, k_heads):
    """[B, T, H, D] -> [B, K, G, T, D] (H = K * G)."""
    b, t, h, d = x.shape
    return x.reshape(b, t, k_heads, h // k_heads, d).transpose(0, 2, 3, 1, 4)


def _dot(spec, a, b):
    return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32)


# Every matmul below is a plain [M, K] x [K, N] product per (batch, kv head) on operands laid out
# that way (the small [T, D] / [D, S] operands are transposed once, the large [t, s] blocks never):
# XLA:CPU otherwise transposes score-sized float32 blocks or runs strided products.


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _blockwise(query, key, value, mask, scale, causal, block):
    return _blockwise_fwd(query, key, value, mask, scale, causal, block)[0]


def _blockwise_fwd(query, key, value, mask, scale, causal, block):
    """Per block: p = exp(scores - row max) in the compute dtype, out = (p @ v) / rowsum(p).

    The residuals are the inputs, each block's p (the backward needs no second scores matmul
    and no exp) and 1 / rowsum(p).
    """
    k_heads = key.shape[2]
    q = _heads_first(query, k_heads)  # [B, K, G, T, D]
    k_t = key.transpose(0, 2, 3, 1)  # [B, K, D, S]
    v = value.transpose(0, 2, 1, 3)  # [B, K, S, D]
    outs, probs, row_inv = [], [], []
    for q0, q1, k1 in _blocks(query.shape[1], key.shape[1], causal, block):
        scores = _dot("bkgtd,bkds->bkgts", q[:, :, :, q0:q1], k_t[..., :k1]) * scale
        if mask is not None:
            scores = jnp.where(mask[:, :, None, q0:q1, :k1], scores, _MASKED)
        p = jnp.exp(scores - scores.max(-1, keepdims=True))
        inv = 1.0 / p.sum(-1, keepdims=True)  # [B, K, G, t, 1]
        p = p.astype(value.dtype)
        outs.append((_dot("bkgts,bksd->bkgtd", p, v[:, :, :k1]) * inv).astype(query.dtype))
        probs.append(p)
        row_inv.append(inv)
    out = jnp.concatenate(outs, axis=3)  # [B, K, G, T, D]
    b, t, h, d = query.shape
    out_bthd = out.transpose(0, 3, 1, 2, 4).reshape(b, t, h, d)
    return out_bthd, (query, key, value, mask, out, tuple(probs), jnp.concatenate(row_inv, 3))


def _blockwise_bwd(scale, causal, block, residuals, grad):
    """With P = p / l (l = rowsum p): dv = P^T g, dP = g v^T, ds = P (dP - rowsum(P dP)) * scale.

    Folding 1 / l into g (a [T, D] scaling instead of a [T, S] one): dv = p^T g', ds = p (g' v^T - delta')
    * scale with g' = g / l and delta' = <g, out> / l.
    """
    query, key, value, mask, out, probs, row_inv = residuals
    b, t, h, d = query.shape
    s, k_heads = key.shape[1], key.shape[2]
    g = _heads_first(grad, k_heads).astype(jnp.float32)  # [B, K, G, T, D]
    delta = jnp.sum(g * out.astype(jnp.float32), axis=-1, keepdims=True) * row_inv  # [B, K, G, T, 1]
    g = (g * row_inv).astype(query.dtype)
    g_t = g.swapaxes(3, 4)  # [B, K, G, D, T]
    q_t = _heads_first(query, k_heads).swapaxes(3, 4)  # [B, K, G, D, T]
    k = key.transpose(0, 2, 1, 3)  # [B, K, S, D]
    v_t = value.transpose(0, 2, 3, 1)  # [B, K, D, S]
    dqs, dk_t, dv_t = [], [], []
    for (q0, q1, k1), p in zip(_blocks(t, s, causal, block), probs, strict=True):
        pad = ((0, 0), (0, 0), (0, 0), (0, s - k1))
        # dv^T [B, K, D, s] = sum over queries and groups of g'^T p.
        dv_t.append(jnp.pad(_dot("bkgdt,bkgts->bkds", g_t[..., q0:q1], p), pad))
        dp = _dot("bkgtd,bkds->bkgts", g[:, :, :, q0:q1], v_t[..., :k1])
        ds = p.astype(jnp.float32) * (dp - delta[:, :, :, q0:q1]) * scale
        if mask is not None:  # masked scores are constants: no gradient (matters for rows with no visible key)
            ds = jnp.where(mask[:, :, None, q0:q1, :k1], ds, 0.0)
        ds = ds.astype(query.dtype)
        dqs.append(_dot("bkgts,bksd->bkgtd", ds, k[:, :, :k1]))
        dk_t.append(jnp.pad(_dot("bkgdt,bkgts->bkds", q_t[..., q0:q1], ds), pad))
    dq = jnp.concatenate(dqs, axis=3).transpose(0, 3, 1, 2, 4).reshape(b, t, h, d)
    dk = sum(dk_t).transpose(0, 3, 1, 2)  # [B, S, K, D]
    dv = sum(dv_t).transpose(0, 3, 1, 2)
    return dq.astype(query.dtype), dk.astype(key.dtype), dv.astype(value.dtype), None


_blockwise.defvjp(_blockwise_fwd, _blockwise_bwd)


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
