"""What the writers share: JSON and JPEG files, and rendered scenes of the synthetic body."""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from data_pipelines.synthetic import poses, scenes


def dump_json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def save_jpeg(path: str, image: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(image).save(path, quality=92)


def draw_scenes(body_model, num: int, seed: int, yaw_range: float = np.pi) -> list[scenes.Scene]:
    """`num` rendered people: poses (turned at most `yaw_range` from the camera), shapes, pictures."""
    go, bp = poses.sample_poses(num, seed, yaw_range=yaw_range)
    betas = poses.sample_betas(num, seed + 1)
    return scenes.render_scenes(body_model, go, bp, betas, seed + 2)
