"""The ViT vision tower of every family (CLIP, SigLIP); the family is `VisionConfig` data.

CLIP: class token, pre-LayerNorm, no patch bias, quick-GELU. SigLIP: no class token, no
pre-LayerNorm, a patch bias, tanh-GELU. Both: pre-norm encoder layers with biased linears.

Parameter layout (HF names, flax leaves):
  embeddings/patch_embedding/kernel  float[C*p*p, D]   (HF conv weight [D, C, p, p] flattened)
  embeddings/patch_embedding/bias    float[D]          (patch_bias only)
  embeddings/class_embedding         float[D]          (class_token only)
  embeddings/position_embedding     float[N(+1), D]   (HF position_embedding.weight)
  pre_layrnorm/{scale,bias}                            (pre_layernorm only; HF's spelling)
  post_layernorm/{scale,bias}
  layers_{i}/{layer_norm1,layer_norm2}/{scale,bias}
  layers_{i}/self_attn/{q_proj,k_proj,v_proj,out_proj}/{kernel,bias}
  layers_{i}/mlp/{fc1,fc2}/{kernel,bias}
or, with `scan_layers`, one `layers/...` whose leaves stack the layers on axis 0 (logical axis
"layers"), run by one `lax.scan` so that compile time and program size do not grow with depth.
All `num_layers` layers and `post_layernorm` exist (as in the checkpoints), but the forward runs
only as deep as `feature_layer` needs.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from chatpose_jax.model.attention import dot_product_attention
from chatpose_jax.model.config import VisionConfig
from chatpose_jax.model.layers import LayerNorm, Linear, activation, normal_init
from chatpose_jax.parallel.axes import BTD, constrain


class VisionAttention(nn.Module):
    cfg: VisionConfig
    dtype: Any
    param_dtype: Any
    attention_impl: str
    init_std: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """float[B, N, D] -> float[B, N, D], every patch sees every patch."""
        d, h = self.cfg.hidden_size, self.cfg.num_heads
        dense = dict(use_bias=True, dtype=self.dtype, param_dtype=self.param_dtype, init_std=self.init_std)
        q = Linear(d, ("embed", "heads"), name="q_proj", **dense)(x)
        k = Linear(d, ("embed", "heads"), name="k_proj", **dense)(x)
        v = Linear(d, ("embed", "heads"), name="v_proj", **dense)(x)
        b, n = x.shape[:2]
        q, k, v = (t.reshape(b, n, h, d // h) for t in (q, k, v))
        out = dot_product_attention(q, k, v, None, impl=self.attention_impl)
        return Linear(d, ("heads", "embed"), name="out_proj", **dense)(out.reshape(b, n, d))


class VisionEncoderLayer(nn.Module):
    cfg: VisionConfig
    dtype: Any
    param_dtype: Any
    attention_impl: str
    init_std: float

    @nn.compact
    def __call__(self, x: jax.Array, _unused=None) -> tuple[jax.Array, None]:
        """float[B, N, D] -> (float[B, N, D], None): the (carry, output) signature of `nn.scan`."""
        cfg = self.cfg
        norm = dict(eps=cfg.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        dense = dict(use_bias=True, dtype=self.dtype, param_dtype=self.param_dtype, init_std=self.init_std)
        h = LayerNorm(name="layer_norm1", **norm)(x)
        x = x + VisionAttention(
            cfg, self.dtype, self.param_dtype, self.attention_impl, self.init_std, name="self_attn"
        )(h)
        h = LayerNorm(name="layer_norm2", **norm)(x)
        x = x + _VisionMlp(cfg, dense, name="mlp")(h)
        return constrain(x, BTD), None


class _VisionMlp(nn.Module):
    cfg: VisionConfig
    dense: dict

    @nn.compact
    def __call__(self, x):
        h = Linear(self.cfg.intermediate_size, ("embed", "mlp"), name="fc1", **self.dense)(x)
        h = activation(self.cfg.hidden_act)(h)
        return Linear(self.cfg.hidden_size, ("mlp", "embed"), name="fc2", **self.dense)(h)


class VisionTower(nn.Module):
    """pixel_values float[B, C, H, W] -> image features float[B, num_image_tokens, D_vision]."""

    cfg: VisionConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    attention_impl: str = "xla"
    init_std: float = 0.02
    scan_layers: bool = False

    @nn.compact
    def __call__(self, pixel_values: jax.Array) -> jax.Array:
        cfg = self.cfg
        b, c, height, width = pixel_values.shape
        p = cfg.patch_size
        if (height, width) != (cfg.image_size, cfg.image_size) or c != cfg.num_channels:
            raise ValueError(
                f"pixel_values has shape {pixel_values.shape}, the tower expects "
                f"(B, {cfg.num_channels}, {cfg.image_size}, {cfg.image_size})"
            )
        # Non-overlapping patches flattened in (C, p, p) order: the conv becomes one matmul. A stride-p
        # "valid" conv never reads the last height % p rows and columns (SigLIP: 384 = 27 * 14 + 6).
        n = height // p
        pixel_values = pixel_values[:, :, : n * p, : n * p]
        patches = pixel_values.reshape(b, c, n, p, n, p).transpose(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(b, -1, c * p * p)
        emb = _VisionEmbeddings(cfg, self.dtype, self.param_dtype, self.init_std, name="embeddings")(patches)
        norm = dict(eps=cfg.layer_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        x = LayerNorm(name="pre_layrnorm", **norm)(emb) if cfg.pre_layernorm else emb
        # hidden_states[0] is the embedding output, hidden_states[i] the output of layer i (HF).
        index = cfg.feature_layer % (cfg.num_layers + 1)
        layer_args = (cfg, self.dtype, self.param_dtype, self.attention_impl, self.init_std)
        if self.scan_layers:
            x, hidden = self._scanned_layers(x, index, layer_args)
        else:
            depth = cfg.num_layers if self.is_initializing() else index
            hidden = x
            for i in range(depth):
                x, _ = VisionEncoderLayer(*layer_args, name=f"layers_{i}")(x)
                if i + 1 == index:
                    hidden = x
        if self.is_initializing():
            # Created so the params match the checkpoints; LLaVA never uses the pooled output.
            LayerNorm(name="post_layernorm", **norm)(x[:, 0])
        if cfg.feature_select == "default":
            hidden = hidden[:, 1:]
        return hidden

    def _scanned_layers(self, x: jax.Array, index: int, layer_args: tuple) -> tuple[jax.Array, jax.Array]:
        """(output of the last layer run, output of layer `index`) of the stacked `layers`; float[B, N, D] each.

        Init creates and runs all `num_layers` layers with `nn.scan` (the first output then feeds the
        post-layernorm); the forward scans the first `index` of the stacked params only (LLaVA-1.5
        reads layer 23 of 24), so both outputs are layer `index`'s.
        """
        if self.is_initializing():
            scanned = nn.scan(
                VisionEncoderLayer,
                variable_axes={"params": 0},
                split_rngs={"params": True},
                length=self.cfg.num_layers,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )
            x, _ = scanned(*layer_args, name="layers")(x, None)
            return x, x
        if index == 0:
            return x, x
        stacked = nn.unbox(self.variables["params"]["layers"])
        layer = VisionEncoderLayer(*layer_args, parent=None)

        def body(h, layer_params):
            return layer.apply({"params": layer_params}, h)

        hidden, _ = jax.lax.scan(body, x, jax.tree.map(lambda a: a[:index], stacked))
        return hidden, hidden


class _VisionEmbeddings(nn.Module):
    cfg: VisionConfig
    dtype: Any
    param_dtype: Any
    init_std: float

    @nn.compact
    def __call__(self, patches: jax.Array) -> jax.Array:
        """float[B, N, C*p*p] -> float[B, N(+1), D] (class token first when there is one, positions added)."""
        cfg = self.cfg
        d = cfg.hidden_size
        x = Linear(
            d,
            (None, "embed"),
            use_bias=cfg.patch_bias,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="patch_embedding",
        )(patches)
        b = x.shape[0]
        if cfg.class_token:
            cls = self.param(
                "class_embedding",
                nn.with_logical_partitioning(normal_init(self.init_std), ("embed",)),
                (d,),
                self.param_dtype,
            )
            x = jnp.concatenate([jnp.broadcast_to(cls.astype(self.dtype), (b, 1, d)), x], axis=1)
        pos = self.param(
            "position_embedding",
            nn.with_logical_partitioning(normal_init(self.init_std), ("patches", "embed")),
            (x.shape[1], d),
            self.param_dtype,
        )
        return x + pos.astype(self.dtype)[None]
