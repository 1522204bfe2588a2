"""One attention function for the whole model: a plain reference, `jax.nn.dot_product_attention`,
a blockwise kernel for CPUs, cuDNN's fused kernel on GPUs and Pallas splash attention on TPUs.

Grouped-query attention is native: `key`/`value` carry `K` heads and `query` carries `H = G * K`.
Softmax runs in float32 whatever the compute dtype. Masked scores get a large finite negative
number, not -inf, so a row with no visible key (a left-padding query) stays finite instead of
spreading NaN through the value matmul of later layers.

`impl` (`ModelConfig.attention_impl`) picks the kernel:
  - "reference": einsums and a float32 softmax over the full score matrix (the numerical reference).
  - "xla": compiled by XLA on every backend. On GPU/TPU it is `jax.nn.dot_product_attention`. On
    CPU it is `blockwise_attention`: blocks of query rows that skip the keys a causal mask hides
    (with four blocks, 62% of the full score matrix remains), matmuls on the compute dtype with
    float32 accumulation (XLA:CPU's bf16 kernels) in plain row-major layouts, and a hand-written
    backward that reuses each block's probabilities (kept in the compute dtype, not as float32
    scores) instead of differentiating the softmax.
  - "cudnn": `jax.nn.dot_product_attention(implementation="cudnn")`, cuDNN's fused attention on
    GPU (bf16/fp16 only); the mask goes in as a bias.
  - "splash": `splash_attention`, the Pallas splash attention kernel for TPU
    (`jax.experimental.pallas.ops.tpu.splash_attention`), for training and prefill without a cache:
    self-attention (T == S) that is causal (`is_causal` with a mask, the decoder) or unmasked (the
    vision tower). Any other call (a decoding step against the KV cache) takes the "xla" path.
    Off TPU the kernel runs in Pallas interpret mode: exact but slow, for tests.
  - "auto": the best the platform compiled for has (`parallel.axes.target_platform()`, so a TPU
    program compiled ahead of time on a CPU host picks TPU kernels): "splash" on TPU; "cudnn" on
    GPU where cuDNN takes the call (bf16/fp16, head_dim <= 128 and a multiple of 8, even lengths
    with a mask), else "xla"; "xla" on CPU.
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from chatpose_jax.parallel.axes import (
    ACT_BATCH,
    ACT_HEADS,
    ACT_KV_HEADS,
    current_context,
    logical_to_spec,
    target_platform,
)

AttentionImpl = Literal["reference", "xla", "cudnn", "splash", "auto"]
IMPLS = ("reference", "xla", "cudnn", "splash", "auto")

# Most query rows per block of the CPU kernel. Smaller blocks skip more of a causal mask but issue
# more, smaller operations; at 832 tokens four blocks of 208 rows took the least CPU time.
CPU_BLOCK = 256
_MASKED = float(jnp.finfo(jnp.float32).min)
# Block sizes (query and key rows) the splash kernel may take; every one a multiple of the TPU's
# 128 lanes. MaxText's default is 512.
SPLASH_BLOCKS = (512, 256, 128)


def dot_product_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array | None = None,
    *,
    impl: AttentionImpl = "xla",
    scale: float | None = None,
    is_causal: bool = False,
    sliding_window: int = 0,
    segment_ids: jax.Array | None = None,
) -> jax.Array:
    """Scaled dot-product attention.

    Args:
      query: float[B, T, H, Dh].
      key, value: float[B, S, K, Dh] with H % K == 0.
      mask: bool[B, 1, T, S] (or broadcastable to it), True where a query may see a key; None = all.
      impl: "reference", "xla", "cudnn", "splash" or "auto" (the module docstring says what each is).
      scale: multiplier of the scores; default Dh**-0.5.
      is_causal: a promise that `mask` hides every key s > t + (S - T) from query t (a causal mask,
        padding allowed); lets the CPU kernel skip those keys. The mask is applied either way, and
        without a mask the promise is ignored. With T == S, "splash" takes it further: the mask
        must be `causal_mask(arange(T), key_valid, sliding_window)`, and only its diagonal (which
        keys are real) is read.
      sliding_window: the window the mask was built with (0 = none); read by "splash" only.
      segment_ids: int[B, T] of packed rows (0 = padding, 1.. = one per conversation), the ids
        `mask` was built from (`segment_causal_mask`); read by "splash" only, whose segment ids they
        become (the mask's diagonal cannot tell one conversation from the next). The other kernels
        read the mask alone.

    Returns:
      float[B, T, H, Dh] in the dtype of `query`.
    """
    impl = resolve_impl(impl, query, key, mask, is_causal)
    if impl == "reference":
        return reference_attention(query, key, value, mask, scale=scale)
    if impl == "splash":
        return splash_attention(
            query,
            key,
            value,
            mask,
            scale=scale,
            is_causal=is_causal,
            sliding_window=sliding_window,
            segment_ids=segment_ids,
        )
    if mask is not None:
        mask = jnp.broadcast_to(mask, (query.shape[0], 1, query.shape[1], key.shape[1]))
    if impl == "xla" and target_platform() == "cpu":
        return blockwise_attention(query, key, value, mask, scale=scale, is_causal=is_causal)
    return jax.nn.dot_product_attention(query, key, value, mask=mask, scale=scale, implementation=impl)


def resolve_impl(impl: str, query, key, mask=None, is_causal: bool = False) -> str:
    """The kernel `dot_product_attention(impl=impl)` runs for these arguments on the target platform.

    "auto" becomes the platform's best; "splash" falls back to "xla" where the kernel does not apply
    (`splash_applies`).
    """
    if impl not in IMPLS:
        raise ValueError(f"unknown attention impl {impl!r}; known: {', '.join(IMPLS)}")
    if impl == "auto":
        platform = target_platform()
        if platform == "tpu":
            impl = "splash"
        elif platform in ("gpu", "cuda") and cudnn_supports(query, key, mask):
            return "cudnn"
        else:
            return "xla"
    if impl == "splash" and not splash_applies(query, key, mask, is_causal):
        return "xla"
    return impl


def cudnn_supports(query, key, mask=None) -> bool:
    """Whether cuDNN's fused attention takes these shapes (jax's `check_is_flash_attention`, pre-Hopper
    limits): bf16/fp16, head_dim <= 128 and a multiple of 8, even lengths when a mask (bias) is given."""
    d = query.shape[-1]
    if jnp.dtype(query.dtype) not in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
        return False
    if d > 128 or d % 8:
        return False
    return mask is None or (query.shape[1] % 2 == 0 and key.shape[1] % 2 == 0)


def splash_applies(query, key, mask=None, is_causal: bool = False) -> bool:
    """Whether `splash_attention` computes this call: self-attention (T == S, so no KV cache), causal
    with a mask or with no mask at all."""
    return query.shape[1] == key.shape[1] and (mask is None or is_causal)


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


def splash_block(length: int) -> int:
    """The splash block size for a sequence of `length`: least padding to a multiple, then the largest.

    1024 and 2048 tokens take 512; 640 or 1088 (LISA's 512 text tokens and a 576-token image) take 128
    rather than pad to 1024 or 1536.
    """
    return min(SPLASH_BLOCKS, key=lambda b: (-(-length // b) * b, -b))


def splash_attention(
    query, key, value, mask=None, *, scale=None, is_causal=False, sliding_window=0, segment_ids=None, interpret=None
):
    """Self-attention by the Pallas splash kernel (shapes and arguments as `dot_product_attention`, T == S).

    The kernel takes a static mask (causal, `sliding_window`'s local band, or full when `mask` is
    None) and-ed with segment ids: a query sees a key only where their ids agree. Real tokens get
    id 1 and padding id 0, read off the mask's diagonal, so every real query sees exactly the real
    keys the causal mask shows it, and a padding query sees padding keys, itself included (finite;
    the reference shows a right-padding query the real keys before it, but no real query ever sees
    a padding position, so those outputs reach no loss). The sequence is padded with id-0 rows to
    a multiple of the block (`splash_block`) and sliced back. Queries are multiplied by `scale`
    before the kernel (it has no scale of its own); its softmax statistics are float32.

    Under a `sharding_context` the kernel runs in `shard_map` over the batch (`activation_batch`'s
    mesh axes: data, fsdp) and the heads (`activation_heads`': tensor) as MaxText does: each device
    holds whole sequences of its heads. The sequence is never split (the kernel's causal mask is
    global). Query and key/value heads share the head split only where the key/value heads divide
    it too (device i then holds query heads [i H/n, (i+1) H/n) and their kv heads [i K/n, ...));
    otherwise the heads stay whole.

    Packed rows (several conversations per row) pass `segment_ids` int[B, T] (0 = padding, 1.. per
    conversation, the ids the mask was built from by `segment_causal_mask`): they replace the
    diagonal's real/padding ids, so no query sees a key of another conversation.

    Args:
      segment_ids: int[B, T] or None (read the diagonal of `mask`).
      interpret: run Pallas in interpret mode; default: unless the target platform is TPU.
    """
    b, t, _, d = query.shape
    if key.shape[1] != t:
        raise ValueError(f"splash attention is self-attention: {t} queries but {key.shape[1]} keys")
    if mask is not None and not is_causal:
        raise ValueError("splash attention takes a causal mask (is_causal=True) or no mask")
    scale = d**-0.5 if scale is None else float(scale)
    if interpret is None:
        interpret = target_platform() != "tpu"
    causal = mask is not None
    if segment_ids is not None:
        real = jnp.asarray(segment_ids, jnp.int32)
    elif causal:
        real = jnp.diagonal(jnp.broadcast_to(mask, (b, 1, t, t))[:, 0], axis1=1, axis2=2)
    else:
        real = jnp.ones((b, t), bool)
    window = sliding_window if causal and 0 < sliding_window < t else 0
    block = splash_block(t)
    padded = -(-t // block) * block
    segments = jnp.pad(real.astype(jnp.int32), ((0, 0), (0, padded - t)))
    q = (query.astype(jnp.float32) * scale).astype(query.dtype)  # one rounding, not the scale's in bf16 too

    def heads_first(x):  # [B, T, N, D] -> [B, N, T_padded, D]
        return jnp.pad(x, ((0, 0), (0, padded - t), (0, 0), (0, 0))).transpose(0, 2, 1, 3)

    q, k, v = heads_first(q), heads_first(key), heads_first(value)
    local = functools.partial(_splash_local, causal=causal, window=window, block=block, interpret=bool(interpret))
    ctx = current_context()
    if ctx is not None:
        mesh_shape = dict(ctx.mesh.shape)
        q_spec = logical_to_spec((ACT_BATCH, ACT_HEADS, None, None), ctx.rules, q.shape, mesh_shape)
        kv_spec = logical_to_spec((ACT_BATCH, ACT_KV_HEADS, None, None), ctx.rules, k.shape, mesh_shape)
        batch_axes, head_axes = q_spec[0], q_spec[1] if q_spec[1] == kv_spec[1] else None
        q_spec = kv_spec = PartitionSpec(batch_axes, head_axes, None, None)
        local = jax.shard_map(
            local,
            mesh=ctx.mesh,
            in_specs=(q_spec, kv_spec, kv_spec, PartitionSpec(batch_axes, None)),
            out_specs=q_spec,
            check_vma=False,
        )
    out = local(q, k, v, segments)
    return out[:, :, :t].transpose(0, 2, 1, 3).astype(query.dtype)


def _splash_local(q, k, v, segments, *, causal, window, block, interpret):
    """The kernel on one device's arrays: q float[B, H, T, D], k/v float[B, K, T, D], segments int32[B, T]."""
    from jax.experimental.pallas.ops.tpu import splash_attention as splash

    kernel = _splash_kernel(q.shape[1], q.shape[2], causal, window, block, interpret)
    return jax.vmap(kernel)(q, k, v, segment_ids=splash.SegmentIds(segments, segments))


@functools.lru_cache(maxsize=32)
def _splash_kernel(heads: int, length: int, causal: bool, window: int, block: int, interpret: bool):
    """A splash MHA kernel (its query heads share key/value heads in groups, as ours) for one static mask."""
    from jax.experimental.pallas.ops.tpu import splash_attention as splash

    shape = (length, length)
    if not causal:
        head_mask = splash.FullMask(shape)
    elif window:
        head_mask = splash.LocalMask(shape, window_size=(window - 1, 0), offset=0)
    else:
        head_mask = splash.CausalMask(shape)
    sizes = splash.BlockSizes(
        block_q=block,
        block_kv=block,
        block_kv_compute=block,
        block_q_dkv=block,
        block_kv_dkv=block,
        block_kv_dkv_compute=block,
        block_q_dq=block,
        block_kv_dq=block,
    )
    # The mask's block tables are numpy work; as concrete arrays they are cached across traces.
    with jax.ensure_compile_time_eval():
        return splash.make_splash_mha(
            splash.MultiHeadMask([head_mask] * heads),
            block_sizes=sizes,
            head_shards=1,
            q_seq_shards=1,
            interpret=interpret,
        )


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


def segment_causal_mask(segment_ids: jax.Array, sliding_window: int = 0) -> jax.Array:
    """bool[B, 1, T, T] of packed rows: causal, within one conversation, never at padding.

    Args:
      segment_ids: int[B, T], 0 at padding, 1.. one id per conversation of the row.
      sliding_window: as `causal_mask` (slots inside a conversation are its positions).
    """
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    return causal_mask(jnp.arange(segment_ids.shape[1]), segment_ids > 0, sliding_window) & same[:, None]


def segment_positions(segment_ids: jax.Array) -> jax.Array:
    """int32[B, T]: each token's position inside its conversation (0 at its first token, and at padding)."""
    t = segment_ids.shape[1]
    slots = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), segment_ids.shape)
    starts = jnp.concatenate(
        [jnp.ones_like(segment_ids[:, :1], bool), segment_ids[:, 1:] != segment_ids[:, :-1]], axis=1
    )
    first = jax.lax.cummax(jnp.where(starts, slots, 0), axis=1)
    return jnp.where(segment_ids > 0, slots - first, 0).astype(jnp.int32)
