"""ChatPose = vision tower -> projector -> image tokens spliced into the text -> decoder -> LM head + pose head.

Inputs follow the Hugging Face convention: `input_ids` int[B, T] hold the image placeholder id
once per image token (so shapes stay static), `pixel_values` float[B, C, H, W] give one image per
row (row b's placeholders take image b's features, in order), or None for text-only batches (the
vision tower is then never traced). `attention_mask` int/bool[B, T] is 1 on real tokens.

Params tree (a plain dict; see vision_tower.py / llama.py for the inside of each part):
  vision_tower/...            CLIP or SigLIP ViT
  multi_modal_projector/{linear_1, linear_2}/{kernel, bias}
  language_model/...          decoder (LLaMA / Mistral / Qwen2) without head
  lm_head/kernel              float[d, V]   (absent when the embeddings are tied)
  pose_head/{fc1, fc2}/{kernel, bias}
The LoRA tree mirrors it (lora.py). `apply(config, params, lora_params, ...)` runs the model.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from chatpose_jax.model.attention import causal_mask, segment_causal_mask, segment_positions
from chatpose_jax.model.config import ModelConfig
from chatpose_jax.model.layers import Linear
from chatpose_jax.model.llama import LlamaModel
from chatpose_jax.model.lora import LORA_COLLECTION
from chatpose_jax.model.pose_head import PoseHead, positions_before_pose, rot6d_hmr2_to_rotmat
from chatpose_jax.model.projector import Projector
from chatpose_jax.model.vision_tower import VisionTower
from chatpose_jax.parallel.axes import BTD, BTV, constrain

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


class PoseOutput(flax.struct.PyTreeNode):
    """The pose head read at the state before each of the first P `<POSE>` tokens of a row."""

    rot6d: jax.Array  # float32[B, P, J, 6], HMR2.0 6D layout
    rotmat: jax.Array  # float32[B, P, J, 3, 3]
    valid: jax.Array  # bool[B, P], False where the row has fewer than P `<POSE>` tokens
    positions: jax.Array  # int32[B, P], index t of the state used (input_ids[t + 1] == <POSE>)


class ChatPoseOutput(flax.struct.PyTreeNode):
    logits: jax.Array  # float32[B, T, V] (or [B, K, V] at the `logits_positions` asked for)
    hidden_states: jax.Array  # float[B, T, d], the decoder's last hidden states (after the final norm)
    pose: PoseOutput
    kv_cache: Any = None  # the updated cache when one was given


class ChatPose(nn.Module):
    """The whole model as one linen module; use `init_params` / `apply` below for the functional API."""

    config: ModelConfig
    deterministic: bool = True

    def setup(self):
        cfg = self.config
        dtype, param_dtype = DTYPES[cfg.dtype], DTYPES[cfg.param_dtype]
        std = cfg.initializer_range
        self.vision_tower = VisionTower(cfg.vision, dtype, param_dtype, cfg.attention_impl, std, cfg.scan_layers)
        self.multi_modal_projector = Projector(cfg.projector, cfg.text.hidden_size, dtype, param_dtype, std)
        self.language_model = LlamaModel(
            cfg.text,
            cfg.lora,
            dtype,
            param_dtype,
            cfg.attention_impl,
            cfg.remat_policy,
            cfg.scan_layers,
            self.deterministic,
            std,
        )
        if not cfg.text.tie_word_embeddings:
            self.lm_head = Linear(
                cfg.text.vocab_size,
                ("embed", "vocab"),
                dtype=dtype,
                param_dtype=param_dtype,
                init_std=std,
                out_dtype=jnp.float32,
            )
        self.pose_head = PoseHead(cfg.pose_head, cfg.text.hidden_size, dtype, param_dtype, std)

    def encode_images(self, pixel_values: jax.Array) -> jax.Array:
        """float[B, C, H, W] -> projected image tokens float[B, N, d]."""
        return constrain(self.multi_modal_projector(self.vision_tower(pixel_values)), BTD)

    def embed(self, input_ids: jax.Array, pixel_values: jax.Array | None) -> jax.Array:
        """Token embeddings with the image tokens of row b written over its placeholders, in order."""
        embeds = constrain(self.language_model.embed(input_ids), BTD)
        if pixel_values is None:
            return embeds
        features = self.encode_images(pixel_values).astype(embeds.dtype)  # [B, N, d]
        is_image = input_ids == self.config.image_token_id
        index = jnp.clip(jnp.cumsum(is_image, axis=1) - 1, 0, features.shape[1] - 1)
        gathered = jnp.take_along_axis(features, index[..., None], axis=1)
        return constrain(jnp.where(is_image[..., None], gathered, embeds), BTD)

    def logits(self, hidden: jax.Array) -> jax.Array:
        """float[..., d] -> float32[..., V], straight from the float32 accumulator."""
        if self.config.text.tie_word_embeddings:
            logits = self.language_model.attend(hidden, jnp.float32)
        else:
            logits = self.lm_head(hidden)
        return constrain(logits, BTV) if logits.ndim == 3 else logits

    def pose(self, hidden: jax.Array, input_ids: jax.Array) -> PoseOutput:
        cfg = self.config
        positions, valid = positions_before_pose(input_ids, cfg.pose_token_id, cfg.pose_head.max_poses)
        states = constrain(jnp.take_along_axis(hidden, positions[..., None], axis=1), BTD)  # [B, P, d]
        rot6d = self.pose_head(states)
        return PoseOutput(rot6d, rot6d_hmr2_to_rotmat(rot6d), valid, positions.astype(jnp.int32))

    def __call__(
        self,
        input_ids: jax.Array,
        pixel_values: jax.Array | None = None,
        attention_mask: jax.Array | None = None,
        position_ids: jax.Array | None = None,
        kv_cache: dict | None = None,
        cache_index: jax.Array | int = 0,
        cache_mask: jax.Array | None = None,
        logits_positions: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
    ) -> ChatPoseOutput:
        """Forward pass.

        Args:
          input_ids: int[B, T].
          pixel_values: float[B, C, H, W] or None.
          attention_mask: int/bool[B, T], 1 on real tokens (default: all real).
          position_ids: int[B, T]; default cumsum(attention_mask) - 1 (0 at left padding), which
            equals arange(T) for unpadded or right-padded rows.
          kv_cache: None, or {"k", "v"} float[L, B, S, K, Dh] (see llama.py) for decoding.
          cache_index: first cache slot of these T tokens.
          cache_mask: bool[B, S], True at cache slots that hold real tokens, these T included.
          logits_positions: int[B, K], the positions whose logits to compute (training needs only
            those whose next token is learned: `train.losses.learned_positions`); default all T.
          segment_ids: int[B, T] for packed rows (several conversations per row, no cache): 0 at
            padding, 1.. one id per conversation. A token then sees only the earlier tokens of its
            own conversation (`attention.segment_causal_mask`, and-ed with `attention_mask`), and
            position_ids default to positions inside each conversation (`attention.segment_positions`).
            Images splice as ever: a row's placeholders, whichever conversation holds them, take its
            one image (the data packs at most one image conversation into a row).

        Returns:
          ChatPoseOutput (logits float32[B, T, V], or [B, K, V] at `logits_positions`; hidden_states,
          pose, kv_cache).
        """
        b, t = input_ids.shape
        if attention_mask is None:
            attention_mask = jnp.ones((b, t), bool)
        attention_mask = attention_mask.astype(bool)
        if segment_ids is not None:
            if kv_cache is not None:
                raise ValueError(
                    "segment_ids (packed rows) are for training and scoring, not for decoding with a cache"
                )
            segment_ids = jnp.where(attention_mask, segment_ids, 0).astype(jnp.int32)
        if position_ids is None:
            if segment_ids is not None:
                position_ids = segment_positions(segment_ids)
            else:
                position_ids = jnp.maximum(jnp.cumsum(attention_mask, axis=1) - 1, 0)
        if segment_ids is not None:
            mask = segment_causal_mask(segment_ids, self.config.text.sliding_window)
        elif kv_cache is None:
            mask = causal_mask(jnp.arange(t), attention_mask, self.config.text.sliding_window)
        else:
            mask = causal_mask(cache_index + jnp.arange(t), cache_mask, self.config.text.sliding_window)
        embeds = self.embed(input_ids, pixel_values)
        hidden, kv_cache = self.language_model(embeds, position_ids, mask, kv_cache, cache_index, segment_ids)
        head_in = hidden
        if logits_positions is not None:
            head_in = constrain(jnp.take_along_axis(hidden, logits_positions[..., None].astype(jnp.int32), axis=1), BTD)
        return ChatPoseOutput(self.logits(head_in), hidden, self.pose(hidden, input_ids), kv_cache)


# ---------------------------------------------------------------------------------------------
# Functional API: params are plain dicts, apply is a function.


def _dummy_inputs(config: ModelConfig):
    v = config.vision
    input_ids = jnp.zeros((1, 4), jnp.int32)
    pixel_values = jnp.zeros((1, v.num_channels, v.image_size, v.image_size), jnp.float32)
    return input_ids, pixel_values


def _init_boxed(config: ModelConfig, rng: jax.Array) -> dict:
    return ChatPose(config).init(rng, *_dummy_inputs(config))


def abstract_variables(config: ModelConfig) -> tuple[dict, dict]:
    """(shapes, logical axes) of {"params": ..., "lora": ...}, computed without allocating anything.

    Returns:
      shapes: a tree of `jax.ShapeDtypeStruct`; axes: the same tree of `PartitionSpec`s whose
      entries are logical axis names. Fresh containers on every call (the trace behind them is
      done once per config), so callers may change them.
    """
    shapes, axes = _traced_variables(config)
    return jax.tree.map(lambda x: x, shapes), jax.tree.map(lambda x: x, axes, is_leaf=_is_spec)


def _is_spec(x) -> bool:
    return isinstance(x, jax.sharding.PartitionSpec)


@functools.lru_cache(maxsize=16)
def _traced_variables(config: ModelConfig) -> tuple[dict, dict]:
    """abstract_variables' trace of the model's init (half a second for the tiny model), once per config."""
    boxed = jax.eval_shape(lambda r: _init_boxed(config, r), jax.random.key(0))
    return nn.unbox(boxed), nn.get_partition_spec(boxed)


def variable_shardings(config: ModelConfig, mesh: jax.sharding.Mesh, rules) -> dict:
    """NamedShardings of {"params", "lora"} on `mesh` by the logical-axis `rules`.

    A dimension that its mesh axes do not divide (e.g. a vocabulary of 32002 rows over 4
    devices) stays unsharded rather than failing.
    """
    shapes, axes = abstract_variables(config)
    shardings = nn.logical_to_mesh_sharding(axes, mesh, rules)
    return jax.tree.map(lambda s, sh: fit_sharding(s.shape, sh), shapes, shardings)


def fit_sharding(shape: tuple[int, ...], sharding: jax.sharding.NamedSharding) -> jax.sharding.NamedSharding:
    """`sharding` with the mesh axes dropped from every dimension of `shape` they do not divide."""
    spec = []
    for dim, entry in zip(shape, tuple(sharding.spec) + (None,) * (len(shape) - len(sharding.spec)), strict=True):
        axes = () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)
        size = 1
        for a in axes:
            size *= sharding.mesh.shape[a]
        spec.append(entry if dim % size == 0 else None)
    return jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec(*spec))


def init_variables(config: ModelConfig, rng: jax.Array, mesh=None, rules=None) -> dict:
    """Random {"params", "lora"} (the "lora" entry only when config.lora.rank > 0).

    With a mesh, every array is created directly in its sharding (no full copy on one device).
    """
    init = lambda r: nn.unbox(_init_boxed(config, r))  # noqa: E731
    if mesh is None:
        return jax.jit(init)(rng)
    return jax.jit(init, out_shardings=variable_shardings(config, mesh, rules))(rng)


def init_params(config: ModelConfig, rng: jax.Array, mesh=None, rules=None) -> tuple[dict, dict]:
    """(params, lora_params); lora_params is {} when LoRA is off."""
    variables = init_variables(config, rng, mesh, rules)
    return variables["params"], variables.get(LORA_COLLECTION, {})


def apply(
    config: ModelConfig,
    params: dict,
    lora_params: dict | None,
    input_ids: jax.Array,
    pixel_values: jax.Array | None = None,
    attention_mask: jax.Array | None = None,
    position_ids: jax.Array | None = None,
    *,
    dropout_rng: jax.Array | None = None,
    **kwargs,
) -> ChatPoseOutput:
    """The model as a pure function of (frozen base params, LoRA params, inputs).

    `lora_params` None or {} runs the base model. With `dropout_rng` the LoRA dropout is active
    (training); without it the forward is deterministic. Keyword arguments (the cache's,
    `logits_positions`) go to `ChatPose.__call__`.
    """
    variables = {"params": params}
    if lora_params:
        variables[LORA_COLLECTION] = lora_params
    model = ChatPose(config, deterministic=dropout_rng is None)
    rngs = None if dropout_rng is None else {"dropout": dropout_rng}
    return model.apply(variables, input_ids, pixel_values, attention_mask, position_ids, rngs=rngs, **kwargs)
