"""PoseScript (V2 and V1) release files and the AMASS sequences their poses come from."""

from __future__ import annotations

import os

import numpy as np

from data_pipelines.orientation import (
    CAMERA_TO_Y_UP,
    Z_UP_TO_Y_UP,
    change_frame,
    chatpose_orientation,
    euler_xyz_to_rotmat,
)
from data_pipelines.synthetic import posecodes, poses, scenes
from data_pipelines.synthetic.writers.common import dump_json

AUTO_VERSIONS = "ABCDEF"  # PoseScript V1's automatic caption files


def _y_up_to_amass_root(global_orient_y_up: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An AMASS (z-up) root whose ChatPose handling gives back a y-up root with some yaw.

    The y-up root R maps to the z-up root Rz(yaw) (Z_UP_TO_Y_UP^T R): a random heading, which
    PoseScript's yaw removal takes off again.
    """
    yaw = rng.uniform(-np.pi, np.pi)
    z_up = change_frame(global_orient_y_up, Z_UP_TO_Y_UP.T)
    heading = euler_xyz_to_rotmat(np.zeros(()), np.zeros(()), np.asarray(yaw))
    return change_frame(z_up, heading)


def write_posescript(root: str, body_model, num_poses: int = 300, seed: int = 0, versions=("v2", "v1")) -> dict:
    """PoseScript release files and AMASS sequences for `num_poses` poses.

    Poses are sampled facing +z (the yaw is put into the AMASS root, as in real captures), so
    the descriptions, made from the yaw-free y-up joints, match what the builder returns.
    Returns {'ids': [...], 'texts': {id: [human + automatic texts]}, 'global_orient': the roots the
    builder gives back (OpenCV camera frame), ...} for tests and the tokenizer.
    """
    rng = np.random.default_rng(seed)
    go, bp = poses.sample_poses(num_poses, seed, yaw_range=0.0)
    # The canonical (yaw-free) root that the builder reconstructs (camera frame), and the same
    # body standing in the y-up world the descriptions are made in.
    amass_roots = np.stack([_y_up_to_amass_root(g, rng) for g in go])
    canonical = np.stack([chatpose_orientation(r) for r in amass_roots]).astype(np.float32)
    canonical_y_up = change_frame(canonical, CAMERA_TO_Y_UP).astype(np.float32)
    _, joints = scenes.pose_bodies(body_model, canonical_y_up, bp, np.zeros((num_poses, 10), np.float32))
    frames_per_seq = 10
    index, human, auto = {}, {}, {}
    v1_auto = {v: {} for v in AUTO_VERSIONS}
    all_texts = {}
    for start in range(0, num_poses, frames_per_seq):
        seq = start // frames_per_seq
        rel = f"SynthMocap/subject{seq % 7:02d}/seq{seq:04d}_poses.npz"
        count = min(frames_per_seq, num_poses - start)
        smplh = np.zeros((count, 156), np.float32)
        smplh[:, :3] = amass_roots[start : start + count]
        smplh[:, 3:66] = bp[start : start + count, :63]
        smplh[:, 66:69] = bp[start : start + count, 63:66]  # left hand root (first left finger joint)
        smplh[:, 111:114] = bp[start : start + count, 66:69]  # right hand root (first right finger joint)
        path = os.path.join(root, "AMASS", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.savez(
            path,
            poses=smplh,
            trans=np.zeros((count, 3), np.float32),
            betas=np.zeros(16, np.float32),
            gender=np.array("neutral"),
            mocap_framerate=np.array(120.0),
        )
        for k in range(count):
            pid = start + k
            index[str(pid)] = ["AMASS", rel, k]
            autos = [posecodes.describe(joints[pid], rng) for _ in AUTO_VERSIONS]
            auto[str(pid)] = autos
            for v, text in zip(AUTO_VERSIONS, autos, strict=True):
                v1_auto[v][str(pid)] = text
            texts = list(autos)
            if rng.random() < 0.4:  # human captions cover a subset, as in the release
                human[str(pid)] = posecodes.describe(joints[pid], rng, human=True)
                texts.insert(0, human[str(pid)])
            all_texts[pid] = texts
    ids = rng.permutation(num_poses).tolist()
    n_val, n_test = max(1, num_poses // 10), max(1, num_poses // 10)
    splits = {"val": ids[:n_val], "test": ids[n_val : n_val + n_test], "train": ids[n_val + n_test :]}
    release = os.path.join(root, "posescript_release")
    if "v2" in versions:
        dump_json(os.path.join(release, "ids_2_dataset_sequence_and_frame_index_100k.json"), index)
        for split, split_ids in splits.items():
            dump_json(os.path.join(release, f"{split}_ids_100k.json"), sorted(split_ids))
        dump_json(os.path.join(release, "posescript_human_6293.json"), human)
        dump_json(os.path.join(release, "posescript_auto_100k.json"), auto)
    if "v1" in versions:
        dump_json(os.path.join(release, "ids_2_dataset_sequence_and_frame_index.json"), index)
        for split, split_ids in splits.items():
            dump_json(os.path.join(release, f"{split}_ids.json"), sorted(split_ids))
        dump_json(os.path.join(release, "human3893.json"), human)
        for v in AUTO_VERSIONS:
            dump_json(os.path.join(release, f"automatic_{v}.json"), v1_auto[v])
    return {
        "ids": list(range(num_poses)),
        "texts": all_texts,
        "splits": splits,
        "body_pose": bp,
        "global_orient": canonical,
    }
