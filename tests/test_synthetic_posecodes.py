"""Synthetic PoseScript captions: the facts they state hold for the posed body, and they state them all.

Poses are built joint by joint (Euler angles, the sampler's conventions), posed by the synthetic
SMPL model, and the measurements behind each fact are recomputed here with numpy.
"""

import numpy as np
import pytest

from chatpose_jax.body import load_body_model
from data_pipelines.orientation import euler_xyz_to_rotmat, rotmat_to_axis_angle
from data_pipelines.synthetic import posecodes, poses, scenes
from tests._body_files import model_file

J = poses.J


@pytest.fixture(scope="module")
def body():
    return load_body_model(model_file("smpl"))


def _joints(body, euler: dict[str, tuple[float, float, float]]) -> np.ndarray:
    """Joints float[24, 3] of the mean shape posed by per-joint Euler angles (x, y, z radians)."""
    e = np.zeros((24, 3))
    for name, angles in euler.items():
        e[J[name]] = angles
    aa = rotmat_to_axis_angle(euler_xyz_to_rotmat(e[:, 0], e[:, 1], e[:, 2])).astype(np.float32)
    _, joints = scenes.pose_bodies(body, aa[None, 0], aa[None, 1:].reshape(1, 69), np.zeros((1, 10), np.float32))
    return joints[0]


def test_limb_directions_are_named(body):
    # Left arm raised (T-pose arm along +x, +z rotation lifts it), right arm lowered, left thigh
    # swung forward-up, right leg out to the side.
    joints = _joints(
        body,
        {
            "left_shoulder": (0.0, 0.0, 1.2),
            "right_shoulder": (0.0, 0.0, 1.2),  # right arm along -x: +z lowers it
            "left_hip": (-1.5, 0.0, 0.0),
            "left_knee": (1.5, 0.0, 0.0),
            "right_hip": (0.0, 0.0, -0.55),
        },
    )
    codes = posecodes.posecodes(joints)
    assert codes["left_upper_arm"] == "raised up", codes
    assert codes["right_upper_arm"] == "pointing down", codes
    assert codes["left_thigh"] == "raised", codes
    assert codes["right_thigh"] == "out to the side", codes
    assert codes["left_knee"] in ("bent", "completely bent"), codes
    # The measurement behind "raised up": the elbow well above the shoulder, in numpy.
    frame = posecodes.body_frame(joints)
    upper = frame[J["left_elbow"]] - frame[J["left_shoulder"]]
    assert upper[1] / np.linalg.norm(upper) > 0.6


def test_arm_forward_and_leg_back(body):
    joints = _joints(
        body,
        {
            # Left arm (along +x): a negative y rotation swings it towards +z (forward).
            "left_shoulder": (0.0, -1.45, 0.0),
            "right_hip": (0.45, 0.0, 0.0),  # positive x rotation: the right foot goes back
        },
    )
    codes = posecodes.posecodes(joints)
    assert codes["left_upper_arm"] == "pointing forward", codes
    assert codes["right_thigh"] == "pointing back", codes
    assert codes["right_upper_arm"] == "out to the side", codes  # the rest T-pose arm


def test_captions_state_every_fact_by_default(body):
    go, bp = poses.sample_poses(24, seed=5, yaw_range=0.0)
    _, joints = scenes.pose_bodies(body, go, bp, np.zeros((24, 10), np.float32))
    rng = np.random.default_rng(0)
    for j in joints:
        codes = posecodes.posecodes(j)
        limb_facts = {k: v for k, v in codes.items() if k not in ("posture", "torso")}
        for human in (False, True):
            text = posecodes.describe(j, rng, human=human)
            phrases = posecodes._phrases(limb_facts, human)
            missing = [p for p in phrases if p not in text.lower()]
            assert not missing, (text, missing)
            short = posecodes.describe(j, rng, human=human, max_facts=2)
            assert sum(p in short.lower() for p in phrases) == min(2, len(phrases)), short
