"""The decoder of every text family (LLaMA, Mistral, Qwen2): RMSNorm, rotary embeddings, gated MLP,
grouped-query attention, KV cache. Families differ only in `TextConfig` fields (q/k/v bias, norm
eps, rope theta and scaling, sliding window, tied head); the window lives in the attention mask
(`attention.causal_mask`), which `chatpose.py` builds for both the full forward and the cache.

Parameter layout (HF names, flax leaves), `layers_{i}` or, with `scan_layers`, one `layers`
subtree whose leaves carry a leading layers axis:
  embed_tokens/embedding                       float[V, d]
  layers_{i}/input_layernorm/scale             float[d]
  layers_{i}/self_attn/{q_proj,o_proj}/kernel  float[d, H*Dh], float[H*Dh, d]
  layers_{i}/self_attn/{k_proj,v_proj}/kernel  float[d, K*Dh]
  layers_{i}/post_attention_layernorm/scale    float[d]
  layers_{i}/mlp/{gate_proj,up_proj}/kernel    float[d, F];  mlp/down_proj/kernel float[F, d]
  norm/scale                                   float[d]
The LM head lives in `chatpose.py` (it may be tied to `embed_tokens`).

KV cache: {"k", "v"}: float[L, B, S, K, Dh] preallocated at the static maximum length S;
a forward with a cache writes its T new keys at slot `cache_index`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from chatpose_jax.model import lora as lora_lib
from chatpose_jax.model.attention import dot_product_attention
from chatpose_jax.model.config import LoraConfig, TextConfig
from chatpose_jax.model.layers import Embed, Linear, RMSNorm, activation
from chatpose_jax.model.rope import apply_rotary, inverse_frequencies
from chatpose_jax.parallel.axes import BTD, BTF, BTHD, BTKD, constrain, target_platform

# Names of the activations a remat policy may keep (MaxText's names).
QKV_NAMES = ("query_proj", "key_proj", "value_proj")
OUT_PROJ_NAME = "out_proj"
MLP_IN_NAME, MLP_OUT_NAME = "mlpwi", "mlpwo"
OFFLOAD_POLICIES = ("qkv_proj_offloaded", "minimal_offloaded")


def remat_policy(name: str):
    """The `jax.checkpoint` policy of a decoder layer by name (MaxText's names and meanings).

    full: save nothing, recompute the whole layer in the backward pass; minimal: save every
    projection's output (dots with no batch dimension), recompute only attention and elementwise
    work; dots: save every dot; save_qkv_proj: save q, k, v; save_dot_except_mlp: save q, k, v and
    the attention output projection; qkv_proj_offloaded / minimal_offloaded: as save_qkv_proj /
    minimal, but kept in the host's pinned memory instead of HBM (TPU and GPU only).
    """
    cp = jax.checkpoint_policies
    policies = {
        "full": lambda: None,
        "minimal": lambda: cp.dots_with_no_batch_dims_saveable,
        "dots": lambda: cp.checkpoint_dots,
        "dots_no_batch": lambda: cp.dots_with_no_batch_dims_saveable,
        "save_qkv_proj": lambda: cp.save_only_these_names(*QKV_NAMES),
        "save_dot_except_mlp": lambda: cp.save_only_these_names(*QKV_NAMES, OUT_PROJ_NAME),
        "qkv_proj_offloaded": lambda: cp.save_and_offload_only_these_names(
            names_which_can_be_saved=[],
            names_which_can_be_offloaded=list(QKV_NAMES),
            offload_src="device",
            offload_dst="pinned_host",
        ),
        "minimal_offloaded": lambda: cp.offload_dot_with_no_batch_dims(offload_src="device", offload_dst="pinned_host"),
    }
    if name in OFFLOAD_POLICIES and target_platform() == "cpu":
        raise ValueError(
            f"model.remat_policy={name!r} offloads activations to the host's pinned memory, which CPU programs "
            "do not have; use it for TPU or GPU (chatpose-compile --topology compiles for TPU here)"
        )
    return policies[name]()


class LlamaAttention(nn.Module):
    cfg: TextConfig
    lora_cfg: LoraConfig
    dtype: Any
    param_dtype: Any
    attention_impl: str
    deterministic: bool
    init_std: float

    @nn.compact
    def __call__(self, x, positions, mask, cache_index, layer_cache, segment_ids=None):
        """x float[B, T, d] -> (float[B, T, d], updated layer cache or None); segment_ids: packed rows' ids or None."""
        cfg = self.cfg
        h, k_heads, dh = cfg.num_heads, cfg.num_kv_heads, cfg.resolved_head_dim
        b, t, _ = x.shape

        def dense(features, axes, name, bias=False):
            return Linear(
                features,
                axes,
                use_bias=bias,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                init_std=self.init_std,
                lora=lora_lib.spec_for(self.lora_cfg, name),
                deterministic=self.deterministic,
                name=name,
            )

        q = dense(h * dh, ("embed", "heads"), "q_proj", cfg.qkv_bias)(x).reshape(b, t, h, dh)
        k = dense(k_heads * dh, ("embed", "kv_heads"), "k_proj", cfg.qkv_bias)(x).reshape(b, t, k_heads, dh)
        v = dense(k_heads * dh, ("embed", "kv_heads"), "v_proj", cfg.qkv_bias)(x).reshape(b, t, k_heads, dh)
        q, k, v = (checkpoint_name(a, n) for a, n in zip((q, k, v), QKV_NAMES, strict=True))
        inv_freq = inverse_frequencies(cfg)
        q = constrain(apply_rotary(q, positions, inv_freq), BTHD)
        k = constrain(apply_rotary(k, positions, inv_freq), BTKD)
        v = constrain(v, BTKD)
        new_cache = None
        if layer_cache is not None:
            start = (0, cache_index, 0, 0)
            k = jax.lax.dynamic_update_slice(layer_cache["k"], k.astype(layer_cache["k"].dtype), start)
            v = jax.lax.dynamic_update_slice(layer_cache["v"], v.astype(layer_cache["v"].dtype), start)
            new_cache = {"k": k, "v": v}
            k, v = k.astype(self.dtype), v.astype(self.dtype)
        # Without a cache the mask is causal by construction (chatpose.py), so keys after a query can be skipped.
        out = dot_product_attention(
            q,
            k,
            v,
            mask,
            impl=self.attention_impl,
            is_causal=layer_cache is None,
            sliding_window=cfg.sliding_window,
            segment_ids=segment_ids,
        )
        out = constrain(out, BTHD).reshape(b, t, h * dh)
        return checkpoint_name(dense(cfg.hidden_size, ("heads", "embed"), "o_proj")(out), OUT_PROJ_NAME), new_cache


class LlamaMlp(nn.Module):
    cfg: TextConfig
    lora_cfg: LoraConfig
    dtype: Any
    param_dtype: Any
    deterministic: bool
    init_std: float

    @nn.compact
    def __call__(self, x):
        """Gated MLP: down(act(gate(x)) * up(x)), act = `cfg.hidden_act`; float[B, T, d] -> float[B, T, d]."""

        def dense(features, axes, name):
            return Linear(
                features,
                axes,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                init_std=self.init_std,
                lora=lora_lib.spec_for(self.lora_cfg, name),
                deterministic=self.deterministic,
                name=name,
            )

        f = self.cfg.intermediate_size
        gate = checkpoint_name(dense(f, ("embed", "mlp"), "gate_proj")(x), MLP_IN_NAME)
        up = checkpoint_name(dense(f, ("embed", "mlp"), "up_proj")(x), MLP_IN_NAME)
        hidden = constrain(activation(self.cfg.hidden_act)(gate) * up, BTF)
        return checkpoint_name(dense(self.cfg.hidden_size, ("mlp", "embed"), "down_proj")(hidden), MLP_OUT_NAME)


class LlamaDecoderLayer(nn.Module):
    """Pre-norm block; call signature fits `nn.scan`: (x, shared, layer_cache) -> (x, layer_cache)."""

    cfg: TextConfig
    lora_cfg: LoraConfig
    dtype: Any
    param_dtype: Any
    attention_impl: str
    deterministic: bool
    init_std: float

    @nn.compact
    def __call__(self, x, shared, layer_cache):
        positions, mask, cache_index, segment_ids = shared
        norm = dict(eps=self.cfg.rms_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        h = RMSNorm(name="input_layernorm", **norm)(x)
        attn, layer_cache = LlamaAttention(
            self.cfg,
            self.lora_cfg,
            self.dtype,
            self.param_dtype,
            self.attention_impl,
            self.deterministic,
            self.init_std,
            name="self_attn",
        )(h, positions, mask, cache_index, layer_cache, segment_ids)
        x = x + attn
        h = RMSNorm(name="post_attention_layernorm", **norm)(x)
        x = x + LlamaMlp(
            self.cfg, self.lora_cfg, self.dtype, self.param_dtype, self.deterministic, self.init_std, name="mlp"
        )(h)
        return constrain(x, BTD), layer_cache


class LlamaModel(nn.Module):
    """Token embedding, decoder layers and the final norm (no LM head)."""

    cfg: TextConfig
    lora_cfg: LoraConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    attention_impl: str = "xla"
    remat_policy: str = "none"
    scan_layers: bool = False
    deterministic: bool = True
    init_std: float = 0.02

    def setup(self):
        cfg = self.cfg
        self.embed_tokens = Embed(cfg.vocab_size, cfg.hidden_size, self.dtype, self.param_dtype, self.init_std)
        layer_cls = LlamaDecoderLayer
        if self.remat_policy != "none":
            layer_cls = nn.remat(layer_cls, policy=remat_policy(self.remat_policy), prevent_cse=not self.scan_layers)
        args = (
            cfg,
            self.lora_cfg,
            self.dtype,
            self.param_dtype,
            self.attention_impl,
            self.deterministic,
            self.init_std,
        )
        if self.scan_layers:
            scanned = nn.scan(
                layer_cls,
                variable_axes={"params": 0, lora_lib.LORA_COLLECTION: 0},
                split_rngs={"params": True, "dropout": True},
                in_axes=(nn.broadcast, 0),
                length=cfg.num_layers,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )
            self.layers = scanned(*args)
        else:
            self.layers = [layer_cls(*args, name=f"layers_{i}") for i in range(cfg.num_layers)]
        self.norm = RMSNorm(cfg.rms_norm_eps, self.dtype, self.param_dtype)

    def embed(self, input_ids: jax.Array) -> jax.Array:
        """int[B, T] -> float[B, T, d]."""
        return self.embed_tokens(input_ids)

    def attend(self, hidden: jax.Array, out_dtype=None) -> jax.Array:
        """Tied LM head: float[B, T, d] -> float[B, T, V] in `out_dtype` (default the compute dtype)."""
        return self.embed_tokens.attend(hidden, out_dtype)

    def __call__(self, inputs_embeds, positions, mask, kv_cache=None, cache_index=0, segment_ids=None):
        """Runs the decoder.

        Args:
          inputs_embeds: float[B, T, d].
          positions: int[B, T] rotary positions.
          mask: bool[B, 1, T, S] (S = T without a cache, the cache length with one).
          kv_cache: None or {"k", "v"}: float[L, B, S, K, Dh].
          cache_index: int scalar, the cache slot of the first of the T tokens.
          segment_ids: int[B, T] of packed rows (0 = padding, 1.. per conversation), the ids the
            mask was built from; only the "splash" kernel reads them (`attention.dot_product_attention`).

        Returns:
          (hidden float[B, T, d] after the final norm, updated cache or None).
        """
        x = constrain(inputs_embeds.astype(self.dtype), BTD)
        shared = (positions, mask, cache_index, segment_ids)
        if self.scan_layers:
            x, new_cache = self.layers(x, shared, kv_cache)
        else:
            new_cache = kv_cache
            for i, layer in enumerate(self.layers):
                layer_cache = None if kv_cache is None else {n: c[i] for n, c in new_cache.items()}
                x, layer_cache = layer(x, shared, layer_cache)
                if kv_cache is not None:  # in-place slot update of the stacked cache (donated under jit)
                    new_cache = {n: new_cache[n].at[i].set(layer_cache[n]) for n in new_cache}
        return self.norm(x), new_cache
