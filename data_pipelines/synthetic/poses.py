"""Random but plausible SMPL poses: every joint's Euler angles drawn inside joint limits.

Frame: SMPL's own, y up, the body facing +z, its left on +x (the synthetic model's T-pose).
Limbs take discrete modes first (an elbow straight or bent, an arm down, out or up, a leg
forward or out), then continuous jitter, so the rule-based descriptions have clear cases to name.
"""

from __future__ import annotations

import numpy as np

from data_pipelines.orientation import euler_xyz_to_rotmat, rotmat_to_axis_angle

J = {
    name: i
    for i, name in enumerate(
        "pelvis left_hip right_hip spine1 left_knee right_knee spine2 left_ankle right_ankle spine3 left_foot "
        "right_foot neck left_collar right_collar head left_shoulder right_shoulder left_elbow right_elbow "
        "left_wrist right_wrist left_hand right_hand".split()
    )
}


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def sample_pose(rng: np.random.Generator, yaw_range: float = np.pi) -> tuple[np.ndarray, np.ndarray]:
    """One pose: (global_orient float[3], body_pose float[69]) axis-angle radians, y-up frame.

    The root stands upright up to a lean of about 35 degrees, turned by a yaw in
    [-yaw_range, yaw_range] about the vertical axis.
    """
    euler = np.zeros((24, 3))  # (x, y, z) per joint, R = Rz Ry Rx
    lean = rng.choice([0.0, _u(rng, 0.35, 0.55), _u(rng, -0.4, -0.3)], p=[0.5, 0.3, 0.2])
    euler[0] = [lean + _u(rng, -0.05, 0.05), _u(rng, -yaw_range, yaw_range), _u(rng, -0.06, 0.06)]
    for spine in ("spine1", "spine2", "spine3"):
        euler[J[spine]] = [_u(rng, -0.04, 0.08), _u(rng, -0.06, 0.06), _u(rng, -0.04, 0.04)]
    euler[J["neck"]] = [_u(rng, -0.1, 0.15), _u(rng, -0.2, 0.2), _u(rng, -0.08, 0.08)]
    euler[J["head"]] = [_u(rng, -0.1, 0.15), _u(rng, -0.15, 0.15), _u(rng, -0.05, 0.05)]
    squat = rng.random() < 0.15
    for side, sign in (("left", 1.0), ("right", -1.0)):
        # Leg: hip flexion is a negative x rotation (the foot moves to +z), abduction moves the foot outwards.
        mode = (
            "squat"
            if squat
            else rng.choice(["straight", "forward", "out", "back", "kneel"], p=[0.4, 0.25, 0.2, 0.1, 0.05])
        )
        hip_x = {"straight": (-0.1, 0.05), "forward": (-1.4, -0.9), "out": (-0.2, 0.05), "back": (0.3, 0.5),
                 "kneel": (-1.6, -1.3), "squat": (-1.8, -1.5)}[mode]  # fmt: skip
        abduct = _u(rng, 0.45, 0.65) if mode == "out" else _u(rng, 0.0, 0.12)
        euler[J[f"{side}_hip"]] = [_u(rng, *hip_x), _u(rng, -0.1, 0.1), sign * abduct]
        knee = {"straight": (0.0, 0.1), "forward": rng.choice([(0.0, 0.15), (1.0, 1.6)]), "out": (0.0, 0.2),
                "back": rng.choice([(0.0, 0.15), (1.0, 1.5)]), "kneel": (1.7, 2.1), "squat": (1.9, 2.2)}[mode]  # fmt: skip
        euler[J[f"{side}_knee"]] = [_u(rng, *knee), 0.0, 0.0]
        euler[J[f"{side}_ankle"]] = [_u(rng, -0.15, 0.15), _u(rng, -0.1, 0.1), _u(rng, -0.05, 0.05)]
        # Arm (T-pose along sign * x): z rotation lowers (sign * z < 0) or raises it, y swings it forward.
        arm = rng.choice(["down", "out", "up", "forward"], p=[0.4, 0.2, 0.2, 0.2])
        lift = {"down": (-1.35, -1.1), "out": (-0.15, 0.15), "up": (1.0, 1.3), "forward": (-0.7, -0.4)}[arm]
        swing = _u(rng, -1.3, -1.0) if arm == "forward" else _u(rng, -0.15, 0.15)
        euler[J[f"{side}_collar"]] = [0.0, _u(rng, -0.05, 0.05), sign * _u(rng, -0.05, 0.08)]
        euler[J[f"{side}_shoulder"]] = [_u(rng, -0.2, 0.2), sign * swing, sign * _u(rng, *lift)]
        bend = _u(rng, 0.0, 0.2) if rng.random() < 0.5 else _u(rng, 1.4, 2.0)
        euler[J[f"{side}_elbow"]] = [0.0, -sign * bend, 0.0]
        euler[J[f"{side}_wrist"]] = [_u(rng, -0.15, 0.15), _u(rng, -0.15, 0.15), _u(rng, -0.15, 0.15)]
    aa = rotmat_to_axis_angle(euler_xyz_to_rotmat(euler[:, 0], euler[:, 1], euler[:, 2]))
    return aa[0].astype(np.float32), aa[1:].reshape(-1).astype(np.float32)


def sample_poses(num: int, seed: int, yaw_range: float = np.pi) -> tuple[np.ndarray, np.ndarray]:
    """`num` poses: global_orient float[N, 3], body_pose float[N, 69], y-up, deterministic for `seed`."""
    rng = np.random.default_rng(seed)
    pairs = [sample_pose(rng, yaw_range) for _ in range(num)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def sample_betas(num: int, seed: int, spread: float = 1.0) -> np.ndarray:
    """Body shapes: float[N, 10], standard normal times `spread` on the first coefficients."""
    rng = np.random.default_rng(seed)
    betas = rng.normal(size=(num, 10)) * spread
    betas[:, 3:] *= 0.3
    return betas.astype(np.float32)
