"""Autoregressive decoding with a preallocated KV cache: prefill, decode_step, sampling, generate.

The cache holds `max_length` slots (static); prompts are left-padded so every row writes its
next token into the same slot. `cache_mask` marks the slots holding real tokens and rotary
positions count only those, so a left-padded row decodes exactly like the unpadded one.
"""

from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp

from chatpose_jax.model import chatpose
from chatpose_jax.model.config import ModelConfig
from chatpose_jax.model.pose_head import PoseHead, rot6d_hmr2_to_rotmat


class DecodeState(flax.struct.PyTreeNode):
    kv_cache: dict  # {"k", "v"}: float[L, B, S, K, Dh]
    cache_mask: jax.Array  # bool[B, S], True at slots holding real tokens
    index: jax.Array  # int32 scalar, the next free slot
    positions: jax.Array  # int32[B], the rotary position of each row's next token


class GenerateOutput(flax.struct.PyTreeNode):
    tokens: jax.Array  # int32[B, N] new tokens, pad_token_id after `</s>`
    lengths: jax.Array  # int32[B] new tokens up to and including `</s>`
    pose: chatpose.PoseOutput  # the pose head at the state that produced each generated `<POSE>`


def init_cache(config: ModelConfig, batch: int, max_length: int) -> dict:
    """Zeros {"k", "v"}: float[L, B, max_length, K, Dh] in the compute dtype."""
    t = config.text
    shape = (t.num_layers, batch, max_length, t.num_kv_heads, t.resolved_head_dim)
    dtype = chatpose.DTYPES[config.dtype]
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}


def prefill(config, params, lora_params, input_ids, pixel_values, attention_mask, max_length: int):
    """Runs the (left-padded) prompt int[B, T] and fills the first T cache slots.

    Returns:
      (output of the last position: logits float32[B, V] and hidden float[B, d], DecodeState).
    """
    b, t = input_ids.shape
    if attention_mask is None:
        attention_mask = jnp.ones((b, t), bool)
    attention_mask = attention_mask.astype(bool)
    cache_mask = jnp.zeros((b, max_length), bool).at[:, :t].set(attention_mask)
    positions = jnp.maximum(jnp.cumsum(attention_mask, axis=1) - 1, 0)
    out = chatpose.apply(
        config,
        params,
        lora_params,
        input_ids,
        pixel_values,
        attention_mask,
        positions,
        kv_cache=init_cache(config, b, max_length),
        cache_index=0,
        cache_mask=cache_mask,
    )
    state = DecodeState(out.kv_cache, cache_mask, jnp.asarray(t, jnp.int32), attention_mask.sum(1).astype(jnp.int32))
    return (out.logits[:, -1], out.hidden_states[:, -1]), state


def decode_step(config, params, lora_params, token: jax.Array, state: DecodeState):
    """Feeds one token int[B] at slot `state.index`; returns ((logits [B, V], hidden [B, d]), new state)."""
    cache_mask = state.cache_mask.at[:, state.index].set(True)
    out = chatpose.apply(
        config,
        params,
        lora_params,
        token[:, None],
        None,
        None,
        state.positions[:, None],
        kv_cache=state.kv_cache,
        cache_index=state.index,
        cache_mask=cache_mask,
    )
    new_state = DecodeState(out.kv_cache, cache_mask, state.index + 1, state.positions + 1)
    return (out.logits[:, 0], out.hidden_states[:, 0]), new_state


def sample_token(logits: jax.Array, rng: jax.Array, temperature: float = 0.0, top_p: float = 1.0) -> jax.Array:
    """int32[B] from logits float[B, V]: greedy when temperature == 0, else temperature + nucleus (top-p)."""
    if temperature == 0.0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits.astype(jnp.float32) / temperature
    if top_p < 1.0:
        sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
        cum = jnp.cumsum(jax.nn.softmax(sorted_logits, axis=-1), axis=-1)
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        keep = jnp.sum(cum - jax.nn.softmax(sorted_logits, axis=-1) < top_p, axis=-1, keepdims=True)
        threshold = jnp.take_along_axis(sorted_logits, keep - 1, axis=-1)
        logits = jnp.where(logits < threshold, -jnp.inf, logits)
    return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)


def generate_unjitted(
    config: ModelConfig,
    params: dict,
    lora_params: dict | None,
    input_ids: jax.Array,
    pixel_values: jax.Array | None = None,
    attention_mask: jax.Array | None = None,
    rng: jax.Array | None = None,
    *,
    max_new_tokens: int = 32,
    max_length: int | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
) -> GenerateOutput:
    """Generates up to `max_new_tokens` after a left-padded prompt int[B, T]; a row stops at `</s>`.

    `generate` is this function jitted; a caller that jits its own program around it (the mesh
    decoder, under its sharding context) calls this one so that it is traced there, not taken from
    `generate`'s cache of a trace made without the mesh.
    """
    b, t = input_ids.shape
    max_length = max_length or t + max_new_tokens
    if max_length < t + max_new_tokens:
        raise ValueError(f"max_length {max_length} < prompt {t} + max_new_tokens {max_new_tokens}")
    rng = jax.random.key(0) if rng is None else rng
    num_poses = config.pose_head.max_poses
    (logits, hidden), state = prefill(config, params, lora_params, input_ids, pixel_values, attention_mask, max_length)

    def body(carry):
        step, logits, hidden, state, tokens, done, pose_states, pose_at, pose_count = carry
        token = sample_token(logits, jax.random.fold_in(rng, step), temperature, top_p)
        token = jnp.where(done, config.pad_token_id, token)
        tokens = tokens.at[:, step].set(token)
        # The state that produced <POSE> is the one the pose head reads.
        is_pose = (token == config.pose_token_id) & ~done & (pose_count < num_poses)
        slot = jnp.minimum(pose_count, num_poses - 1)
        current = pose_states[jnp.arange(b), slot]
        pose_states = pose_states.at[jnp.arange(b), slot].set(jnp.where(is_pose[:, None], hidden, current))
        # Index in the prompt + generated sequence of the state that produced this token.
        pose_at = pose_at.at[jnp.arange(b), slot].set(jnp.where(is_pose, t - 1 + step, pose_at[jnp.arange(b), slot]))
        pose_count = pose_count + is_pose
        done = done | (token == config.eos_token_id)
        (logits, hidden), state = decode_step(config, params, lora_params, token, state)
        return step + 1, logits, hidden, state, tokens, done, pose_states, pose_at, pose_count

    def cond(carry):
        step, done = carry[0], carry[5]
        return (step < max_new_tokens) & ~jnp.all(done)

    tokens = jnp.full((b, max_new_tokens), config.pad_token_id, jnp.int32)
    carry = (
        jnp.asarray(0, jnp.int32),
        logits,
        hidden,
        state,
        tokens,
        jnp.zeros((b,), bool),
        jnp.zeros((b, num_poses, hidden.shape[-1]), hidden.dtype),
        jnp.zeros((b, num_poses), jnp.int32),
        jnp.zeros((b,), jnp.int32),
    )
    _, _, _, _, tokens, _, pose_states, pose_at, pose_count = jax.lax.while_loop(cond, body, carry)
    is_eos = tokens == config.eos_token_id
    lengths = jnp.where(is_eos.any(1), jnp.argmax(is_eos, axis=1) + 1, max_new_tokens).astype(jnp.int32)
    dtype, param_dtype = chatpose.DTYPES[config.dtype], chatpose.DTYPES[config.param_dtype]
    head = PoseHead(config.pose_head, config.text.hidden_size, dtype, param_dtype)
    rot6d = head.apply({"params": params["pose_head"]}, pose_states)
    valid = jnp.arange(num_poses)[None] < pose_count[:, None]
    pose = chatpose.PoseOutput(rot6d, rot6d_hmr2_to_rotmat(rot6d), valid, pose_at)
    return GenerateOutput(tokens, lengths, pose)


generate = functools.partial(
    jax.jit, static_argnames=("config", "max_new_tokens", "max_length", "temperature", "top_p")
)(generate_unjitted)
