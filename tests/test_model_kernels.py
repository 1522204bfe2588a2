"""The model's CPU kernels against plain JAX: blockwise attention, the float32-accumulating matmul, LoRA dropout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chatpose_jax.model import attention, lora
from chatpose_jax.model.matmul import matmul


def _out_and_grads(fn, args, cotangent):
    """fn(*args) and its vector-Jacobian product with `cotangent`, as one compiled program (op-by-op
    dispatch of the blockwise loops would take most of the test's time)."""

    def both(args, cotangent):
        out, vjp = jax.vjp(fn, *args)
        return out, vjp(cotangent)

    return jax.jit(both)(args, cotangent)


def _qkv(b, t, s, h, k, d, seed=0):
    keys = jax.random.split(jax.random.key(seed), 4)
    q = jax.random.normal(keys[0], (b, t, h, d))
    kk = jax.random.normal(keys[1], (b, s, k, d))
    v = jax.random.normal(keys[2], (b, s, k, d))
    g = jax.random.normal(keys[3], (b, t, h, d))
    return q, kk, v, g


@pytest.mark.parametrize(
    "t, heads, kv_heads, block, causal, pad_left, pad_right",
    [
        (37, 4, 2, 8, True, 3, 5),  # grouped-query, both paddings, a short last block
        (37, 4, 4, 16, True, 0, 0),
        (50, 6, 2, 64, True, 7, 2),  # one block holds everything
        (37, 4, 2, 8, False, 3, 5),
    ],
)
def test_blockwise_attention_equals_reference(t, heads, kv_heads, block, causal, pad_left, pad_right):
    q, k, v, g = _qkv(2, t, t, heads, kv_heads, 8)
    valid = np.ones((2, t), bool)
    valid[0, :pad_left] = False
    valid[1, t - pad_right :] = False
    mask = attention.causal_mask(jnp.arange(t), jnp.asarray(valid))
    # Queries with no visible key (left padding) are excluded: their outputs are unused either way.
    rows = np.ones((2, t, 1, 1), np.float32)
    rows[0, :pad_left] = 0
    ref_out, ref_grads = _out_and_grads(lambda *a: attention.reference_attention(*a, mask), (q, k, v), g * rows)
    out, grads = _out_and_grads(
        lambda *a: attention.blockwise_attention(*a, mask, is_causal=causal, block=block), (q, k, v), g * rows
    )
    np.testing.assert_allclose(out * rows, ref_out * rows, atol=1e-5)
    for ours, ref in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_blockwise_attention_with_a_longer_cache_and_no_mask():
    q, k, v, g = _qkv(2, 5, 23, 4, 2, 8, seed=1)
    mask = attention.causal_mask(10 + jnp.arange(5), jnp.arange(23)[None].repeat(2, 0) < 15)
    for m in (mask, None):
        ref_out, ref_grads = _out_and_grads(lambda *a, m=m: attention.reference_attention(*a, m), (q, k, v), g)
        out, grads = _out_and_grads(lambda *a, m=m: attention.blockwise_attention(*a, m, block=2), (q, k, v), g)
        np.testing.assert_allclose(out, ref_out, atol=1e-5)
        for ours, ref in zip(grads, ref_grads, strict=True):
            np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_blockwise_attention_in_bfloat16_stays_close():
    q, k, v, g = _qkv(2, 96, 96, 4, 2, 32, seed=2)
    mask = attention.causal_mask(jnp.arange(96), jnp.ones((2, 96), bool))
    bf = [x.astype(jnp.bfloat16) for x in (q, k, v)]
    ref_out, ref_grads = _out_and_grads(lambda *a: attention.reference_attention(*a, mask), (q, k, v), g)
    out, grads = _out_and_grads(
        lambda *a: attention.blockwise_attention(*a, mask, is_causal=True, block=32), tuple(bf), g.astype(jnp.bfloat16)
    )
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(out.astype(jnp.float32), ref_out, atol=3e-2)
    for ours, ref in zip(grads, ref_grads, strict=True):
        scale = float(jnp.abs(ref).max())
        assert float(jnp.abs(ours.astype(jnp.float32) - ref).max()) < 2e-2 * scale


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_matmul_and_its_gradients_equal_the_plain_product(dtype):
    keys = jax.random.split(jax.random.key(3), 3)
    x = jax.random.normal(keys[0], (2, 5, 16)).astype(dtype)
    w = jax.random.normal(keys[1], (16, 12)).astype(dtype)
    g = jax.random.normal(keys[2], (2, 5, 12))

    def plain(x, w):
        return jnp.einsum("btk,kn->btn", x.astype(jnp.float32), w.astype(jnp.float32))

    out, vjp = jax.vjp(lambda x, w: matmul(x, w, jnp.float32), x, w)
    ref_out, ref_vjp = jax.vjp(plain, x, w)
    tol = 1e-5 if dtype == jnp.float32 else 1e-1
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)  # bf16 products are exact in float32
    for ours, ref in zip(vjp(g), ref_vjp(g), strict=True):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours.astype(jnp.float32), ref, rtol=tol, atol=tol)
    assert matmul(x, w).dtype == dtype


def test_lora_dropout_keeps_the_rate_and_scales_the_kept():
    x = jnp.ones((4, 256, 64))
    out = lora.dropout(x, 0.05, jax.random.key(0))
    kept = np.asarray(out != 0)
    assert abs(kept.mean() - 0.95) < 0.003
    np.testing.assert_allclose(np.asarray(out)[kept], 1 / 0.95, rtol=1e-6)
    # Both halves of the random words are used: the two halves of the rows are not copies.
    assert (kept[:, :128] != kept[:, 128:]).any()
    assert not np.array_equal(kept, np.asarray(lora.dropout(x, 0.05, jax.random.key(1)) != 0))
    odd = lora.dropout(jnp.ones((3, 5, 8)), 0.5, jax.random.key(2))  # odd rows: the bernoulli fallback
    assert set(np.unique(np.asarray(odd))) <= {0.0, 2.0}
