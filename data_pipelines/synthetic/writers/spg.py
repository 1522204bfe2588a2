"""The SPG benchmark: text and pose pairs."""

from __future__ import annotations

import os

import numpy as np

from data_pipelines.orientation import CAMERA_TO_Y_UP, change_frame
from data_pipelines.synthetic import posecodes, poses, scenes
from data_pipelines.synthetic.writers.common import dump_json


def write_spg(root: str, body_model, num_pairs: int = 60, seed: int = 3) -> dict:
    """SPG-style pairs: {id, description, global_orient (OpenCV camera frame), body_pose} in spg.json."""
    rng = np.random.default_rng(seed)
    go, bp = poses.sample_poses(num_pairs, seed, yaw_range=0.0)
    _, joints = scenes.pose_bodies(body_model, go, bp, np.zeros((num_pairs, 10), np.float32))
    go_camera = change_frame(go, CAMERA_TO_Y_UP.T).astype(np.float32)  # as ChatPose's PoseScript handling gives
    records = [
        {
            "id": i,
            "description": posecodes.describe(joints[i], rng, human=True),
            "global_orient": go_camera[i].tolist(),
            "body_pose": bp[i].tolist(),
        }
        for i in range(num_pairs)
    ]
    dump_json(os.path.join(root, "spg.json"), records)
    return {"records": records}
