"""Random batches in the pipeline's batch layout, for benchmarks, compile checks and smoke tests.

They hold no learnable signal; they make a step's shapes and costs real without TensorFlow or
any dataset (the GPU machine has neither). The iterator state is the number of batches drawn,
so a resumed stream continues exactly.
"""

from __future__ import annotations

import jax
import numpy as np

from chatpose_jax.model.config import ModelConfig


def random_batch(cfg: ModelConfig, batch_size: int, text_len: int, seed: int, with_images: bool = True) -> dict:
    """Host arrays: [B, T] tokens (T = image tokens + text_len), one image, answer span and <POSE> per row."""
    rng = np.random.default_rng(seed)
    n_img = cfg.vision.num_image_tokens if with_images else 0
    t = n_img + text_len
    low, high = 3, min(cfg.image_token_id, cfg.pose_token_id, cfg.pad_token_id)
    ids = rng.integers(low, high, (batch_size, t)).astype(np.int32)
    if with_images:
        ids[:, 1 : 1 + n_img] = cfg.image_token_id
    ids[:, t - 3] = cfg.pose_token_id
    labels = np.full_like(ids, -100)
    answer = max(text_len // 4, 4)
    labels[:, t - answer :] = ids[:, t - answer :]
    batch = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "labels": labels,
        "pose_global_orient": (0.3 * rng.normal(size=(batch_size, cfg.pose_head.max_poses, 3))).astype(np.float32),
        "pose_body_pose": (0.3 * rng.normal(size=(batch_size, cfg.pose_head.max_poses, 69))).astype(np.float32),
        "pose_betas": np.zeros((batch_size, cfg.pose_head.max_poses, 10), np.float32),
        "pose_mask": np.ones((batch_size, cfg.pose_head.max_poses), bool),
    }
    if with_images:
        side = cfg.vision.image_size
        batch["pixel_values"] = rng.normal(size=(batch_size, cfg.vision.num_channels, side, side)).astype(np.float32)
    return batch


class RandomBatches:
    """An endless stream of random global batches placed with `sharding`."""

    def __init__(self, cfg: ModelConfig, batch_size: int, text_len: int, sharding, seed: int = 0, with_images=True):
        self.cfg, self.batch_size, self.text_len = cfg, batch_size, text_len
        self.sharding, self.seed, self.with_images = sharding, seed, with_images
        self.drawn = 0

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        host = random_batch(self.cfg, self.batch_size, self.text_len, self.seed + self.drawn, self.with_images)
        self.drawn += 1
        # Every process draws the same global batch and contributes the rows its devices hold.
        return {k: jax.make_array_from_callback(v.shape, self.sharding, lambda i, v=v: v[i]) for k, v in host.items()}

    def state(self) -> dict:
        return {"drawn": self.drawn}

    def restore(self, state: dict) -> None:
        self.drawn = int(state["drawn"])
