"""Pose and text encoders into one L2-normalised space, and the symmetric InfoNCE loss.

Pose encoder (PoseScript): axis-angle float[B, J, 3] flattened -> BatchNorm -> Linear(3J, H) ->
LeakyReLU -> BatchNorm -> Dropout -> Linear(H, H) -> Linear(H, H) -> Linear(H, 32) -> ReLU ->
Linear(32, D) -> L2 normalise. Text encoder: token embedding (E) -> ReLU -> Linear(E, D) ->
sinusoidal positions -> post-norm transformer encoder (GELU, dropout) -> masked mean -> L2 normalise.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from chatpose_jax.retrieval.config import RetrievalConfig


def l2_normalize(x: jnp.ndarray, eps: float = 1e-8) -> jnp.ndarray:
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def sinusoidal_positions(length: int, dim: int) -> jnp.ndarray:
    """float32[length, dim]: sin on even, cos on odd channels (Vaswani et al.)."""
    pos = jnp.arange(length, dtype=jnp.float32)[:, None]
    div = jnp.exp(jnp.arange(0, dim, 2, dtype=jnp.float32) * (-jnp.log(10000.0) / dim))
    out = jnp.zeros((length, dim), jnp.float32)
    out = out.at[:, 0::2].set(jnp.sin(pos * div))
    return out.at[:, 1::2].set(jnp.cos(pos * div[: dim // 2]))


class PoseEncoder(nn.Module):
    config: RetrievalConfig

    @nn.compact
    def __call__(self, poses: jnp.ndarray, train: bool) -> jnp.ndarray:
        """poses: float[B, J, 3] axis-angle radians -> float32[B, D] unit vectors."""
        c = self.config
        x = poses.reshape(poses.shape[0], -1).astype(jnp.float32)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.leaky_relu(nn.Dense(c.pose_hidden)(x), 0.01)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.Dropout(c.dropout, deterministic=not train)(x)
        x = nn.Dense(c.pose_hidden)(x)
        x = nn.Dense(c.pose_hidden)(x)
        x = nn.relu(nn.Dense(c.pose_bottleneck)(x))
        return l2_normalize(nn.Dense(c.latent_dim)(x))


class EncoderLayer(nn.Module):
    config: RetrievalConfig

    @nn.compact
    def __call__(self, x: jnp.ndarray, mask: jnp.ndarray, train: bool) -> jnp.ndarray:
        c = self.config
        attn_mask = nn.make_attention_mask(mask, mask)
        h = nn.MultiHeadDotProductAttention(c.text_heads, dropout_rate=c.dropout, deterministic=not train)(
            x, x, mask=attn_mask
        )
        x = nn.LayerNorm()(x + nn.Dropout(c.dropout, deterministic=not train)(h))
        h = nn.Dense(c.text_ff)(x)
        h = nn.Dropout(c.dropout, deterministic=not train)(nn.gelu(h, approximate=False))
        h = nn.Dense(x.shape[-1])(h)
        return nn.LayerNorm()(x + nn.Dropout(c.dropout, deterministic=not train)(h))


class TextEncoder(nn.Module):
    config: RetrievalConfig

    @nn.compact
    def __call__(self, tokens: jnp.ndarray, mask: jnp.ndarray, train: bool) -> jnp.ndarray:
        """tokens int[B, L], mask bool[B, L] -> float32[B, D] unit vectors."""
        c = self.config
        x = nn.Embed(c.vocab_size, c.embed_dim, name="token_embedding")(tokens)
        x = nn.Dense(c.latent_dim)(nn.relu(x))
        x = x + sinusoidal_positions(tokens.shape[1], c.latent_dim)[None]
        x = nn.Dropout(c.dropout, deterministic=not train)(x)
        for i in range(c.text_layers):
            x = EncoderLayer(c, name=f"layer_{i}")(x, mask, train)
        m = mask.astype(jnp.float32)[..., None]
        return l2_normalize(jnp.sum(x * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0))


class RetrievalModel(nn.Module):
    config: RetrievalConfig

    def setup(self):
        self.pose_encoder = PoseEncoder(self.config)
        self.text_encoder = TextEncoder(self.config)
        self.logit_scale = self.param("logit_scale", lambda _: jnp.asarray(self.config.init_logit_scale, jnp.float32))

    def encode_poses(self, poses, train: bool = False):
        return self.pose_encoder(poses, train)

    def encode_texts(self, tokens, mask, train: bool = False):
        return self.text_encoder(tokens, mask, train)

    def __call__(self, poses, tokens, mask, train: bool = False):
        """(text features float32[B, D], pose features float32[B, D], logit scale float32[])."""
        return self.encode_texts(tokens, mask, train), self.encode_poses(poses, train), self.logit_scale


def info_nce(text_features: jnp.ndarray, pose_features: jnp.ndarray, logit_scale: jnp.ndarray) -> jnp.ndarray:
    """Symmetric cross-entropy over scores = text . pose^T x scale, the diagonal as labels. -> float32[]."""
    scores = logit_scale * text_features @ pose_features.T
    labels = jnp.arange(scores.shape[0])
    t2p = optax.softmax_cross_entropy_with_integer_labels(scores, labels)
    p2t = optax.softmax_cross_entropy_with_integer_labels(scores.T, labels)
    return 0.5 * (jnp.mean(t2p) + jnp.mean(p2t))


def init_variables(config: RetrievalConfig, seed: int = 0, text_length: int | None = None) -> dict:
    """{'params', 'batch_stats'} of a fresh model."""
    length = text_length or config.max_text_length
    poses = jnp.zeros((2, config.num_joints, 3))
    tokens, mask = jnp.zeros((2, length), jnp.int32), jnp.ones((2, length), bool)
    return jax.jit(lambda k: RetrievalModel(config).init(k, poses, tokens, mask, train=False))(jax.random.key(seed))
