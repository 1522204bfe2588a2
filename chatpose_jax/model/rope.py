"""Rotary position embeddings: inverse frequencies (plain or LLaMA-3 scaled) and their application.

The frequencies are a function of the text config alone, computed in numpy at trace time, so a
rope variant is data (`TextConfig.rope_type` and its factors), not a branch in the decoder.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from chatpose_jax.model.config import TextConfig


def inverse_frequencies(cfg: TextConfig) -> np.ndarray:
    """float32[Dh/2]: theta^(-2i/Dh), rescaled band by band for rope_type "llama3".

    llama3 (LLaMA-3.1): wavelengths longer than original_max / low_freq_factor are divided by
    `factor`, shorter than original_max / high_freq_factor kept, and the band between blended.
    """
    dh = cfg.resolved_head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (np.arange(0, dh, 2, dtype=np.float32) / np.float32(dh)))
    if cfg.rope_type == "default":
        return inv_freq.astype(np.float32)
    factor, low, high = cfg.rope_factor, cfg.rope_low_freq_factor, cfg.rope_high_freq_factor
    old_context = cfg.rope_original_max_position_embeddings
    wavelen = 2 * np.pi / inv_freq
    scaled = np.where(wavelen > old_context / low, inv_freq / factor, inv_freq)
    smooth = (old_context / wavelen - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_context / high) & (wavelen <= old_context / low)
    return np.where(medium, blended, scaled).astype(np.float32)


def apply_rotary(x: jax.Array, positions: jax.Array, inv_freq: np.ndarray) -> jax.Array:
    """Rotary embedding in the Hugging Face "rotate half" layout.

    Args:
      x: float[B, T, H, Dh].
      positions: int[B, T].
      inv_freq: float32[Dh/2] from `inverse_frequencies`.
    """
    dh = x.shape[-1]
    freqs = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)  # [B, T, Dh/2]
    emb = jnp.concatenate([freqs, freqs], axis=-1)[:, :, None, :]
    cos, sin = jnp.cos(emb).astype(x.dtype), jnp.sin(emb).astype(x.dtype)
    x1, x2 = x[..., : dh // 2], x[..., dh // 2 :]
    rotated = jnp.concatenate([-x2, x1], axis=-1)
    return x * cos + rotated * sin
