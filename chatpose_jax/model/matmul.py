"""The one matmul of the model's linears: compute dtype operands, float32 accumulation.

On CPU the product and its two gradient products are dots with a float32 result, rounded to the
output dtype afterwards: XLA:CPU runs such dots on its bf16 kernels, while it upcasts a dot with a
bf16 result to float32 operands (and plain autodiff of a float32-result dot would feed float32
cotangents into the backward dots, upcast likewise). On GPU/TPU it is the plain dot, which those
backends already accumulate in float32.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from chatpose_jax.parallel.axes import target_platform


def matmul(x: jax.Array, w: jax.Array, out_dtype: Any = None) -> jax.Array:
    """x[..., k] @ w[k, n] on the operands' dtype with float32 accumulation, in `out_dtype` (default x's)."""
    out_dtype = x.dtype if out_dtype is None else jnp.dtype(out_dtype)
    if target_platform() == "cpu":
        return _cpu_matmul(x, w, out_dtype)
    return jnp.dot(x, w).astype(out_dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _cpu_matmul(x, w, out_dtype):
    return jnp.dot(x, w, preferred_element_type=jnp.float32).astype(out_dtype)


def _cpu_matmul_fwd(x, w, out_dtype):
    return _cpu_matmul(x, w, out_dtype), (x, w)


def _cpu_matmul_bwd(out_dtype, residuals, grad):
    x, w = residuals
    grad = grad.astype(x.dtype)
    # Both products take a physically transposed operand: XLA:CPU runs a bf16 product whose
    # operand is a transposed view (contracting dimension not innermost on the left, outermost on
    # the right) at about half speed, or upcasts it to float32. The barrier keeps XLA from folding
    # the transpose back into the dot; an unused dw (a frozen weight) is dropped with its transpose.
    w_t = jax.lax.optimization_barrier(jnp.transpose(w))
    dx = jnp.dot(grad, w_t, preferred_element_type=jnp.float32).astype(x.dtype)
    x2, g2 = x.reshape(-1, x.shape[-1]), grad.reshape(-1, grad.shape[-1])
    if x2.shape[1] <= g2.shape[1]:  # dw = x^T g, transposing the smaller of the two
        dw = jnp.dot(jax.lax.optimization_barrier(x2.T), g2, preferred_element_type=jnp.float32)
    else:  # dw = (g^T x)^T, e.g. a LoRA A [d, r]: the [M, r] gradient is the small one
        dw = jnp.dot(jax.lax.optimization_barrier(g2.T), x2, preferred_element_type=jnp.float32).T
    return dx, dw.astype(w.dtype)


_cpu_matmul.defvjp(_cpu_matmul_fwd, _cpu_matmul_bwd)
