"""The RPE benchmark: a picture, a description of the person, the pose."""

from __future__ import annotations

import os

import numpy as np

from data_pipelines.synthetic import posecodes
from data_pipelines.synthetic.writers.common import draw_scenes, dump_json, save_jpeg


def write_rpe(root: str, body_model, num_pairs: int = 40, seed: int = 4) -> dict:
    """RPE-style samples: an image, a description of the person, the pose, in rpe.json + images/."""
    rng = np.random.default_rng(seed)
    records = []
    for i, s in enumerate(draw_scenes(body_model, num_pairs, seed)):
        image = f"images/rpe_{i:05d}.jpg"
        save_jpeg(os.path.join(root, image), s.image)
        records.append(
            {
                "id": i,
                "image": image,
                "description": posecodes.describe(s.joints, rng, human=True),
                "center": s.center.tolist(),
                "scale": s.scale,
                "global_orient": s.global_orient.tolist(),  # OpenCV camera frame, as 3DPW
                "body_pose": s.body_pose.tolist(),
                "betas": s.betas.tolist(),
                "gender": "m" if i % 2 else "f",
            }
        )
    dump_json(os.path.join(root, "rpe.json"), records)
    return {"records": records}
