"""Rotations in numpy for the builders: axis-angle <-> matrix, PoseScript's yaw removal, frames.

Frames. ChatPose's pose targets hold the root in the OpenCV camera frame (x right, y down, z away
from the camera), as its public PyTorch release trains on them (Feng et al., CVPR 2024): SPIN /
4D-Humans files already give the root in that frame and are kept as they are; AMASS is z-up, and
PoseScript roots have their yaw removed and are then left-multiplied by `Z_UP_TO_CAMERA`
(Rx(+90 degrees)), which sends AMASS's up (+z) to -y. A person standing upright and facing the
camera then has the root diag(1, -1, -1) in every dataset (see chatpose_jax.body.frames).
`Z_UP_TO_Y_UP` and `CAMERA_TO_Y_UP` (y-up camera axes: x right, y up, z towards the viewer) serve
the synthetic data, which poses and describes bodies standing up in a y-up world.
"""

from __future__ import annotations

import numpy as np

Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # Rx(-90 degrees)
CAMERA_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])  # Rx(180 degrees)
Z_UP_TO_CAMERA = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # Rx(+90 degrees)
POSE_FRAME = "opencv_camera"  # the frame of every builder's global_orient (chatpose_jax.body.frames)


def axis_angle_to_rotmat(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues: float[..., 3] radians -> float[..., 3, 3]."""
    aa = np.asarray(axis_angle, np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    axis = aa / np.where(angle > 1e-12, angle, 1.0)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(aa.shape[:-1] + (3, 3))
    s, c = np.sin(angle)[..., None], np.cos(angle)[..., None]
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


def rotmat_to_axis_angle(rotmat: np.ndarray) -> np.ndarray:
    """float[..., 3, 3] -> float[..., 3] radians (angle in [0, pi]), stable near 0 and pi."""
    r = np.asarray(rotmat, np.float64)
    cos = np.clip((np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    vec = np.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], axis=-1)
    sin = np.sin(angle)
    out = vec * np.where(sin > 1e-6, angle / (2.0 * np.where(sin > 1e-6, sin, 1.0)), 0.5)[..., None]
    # Near pi the antisymmetric part vanishes: read the axis from the symmetric part instead.
    near_pi = angle > np.pi - 1e-3
    if np.any(near_pi):
        sym = (r[near_pi] + np.swapaxes(r[near_pi], -1, -2)) / 2.0 - np.eye(3) * cos[near_pi][..., None, None]
        diag = np.clip(np.diagonal(sym, axis1=-2, axis2=-1) / np.maximum(1.0 - cos[near_pi], 1e-12)[..., None], 0, None)
        axis = np.sqrt(diag)
        big = np.argmax(axis, axis=-1)
        for i in range(len(axis)):
            j = big[i]
            for k in range(3):
                if k != j:
                    axis[i, k] = np.copysign(axis[i, k], sym[i][j, k])
            if vec[near_pi][i] @ axis[i] < 0:
                axis[i] = -axis[i]
        out[near_pi] = axis / np.linalg.norm(axis, axis=-1, keepdims=True) * angle[near_pi][..., None]
    return out


def euler_xyz_to_rotmat(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """R = Rz(z) Ry(y) Rx(x) (PoseScript's convention); angles float[...] radians."""
    cx, sx, cy, sy, cz, sz = np.cos(x), np.sin(x), np.cos(y), np.sin(y), np.cos(z), np.sin(z)
    rows = [
        [cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx],
        [sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx],
        [-sy, cy * sx, cy * cx],
    ]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def rotmat_to_euler_xyz(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of `euler_xyz_to_rotmat`: (x, y, z) radians, y in [-pi/2, pi/2]."""
    x = np.arctan2(r[..., 2, 1], r[..., 2, 2])
    y = np.arctan2(-r[..., 2, 0], np.hypot(r[..., 2, 1], r[..., 2, 2]))
    z = np.arctan2(r[..., 1, 0], r[..., 0, 0])
    return x, y, z


def remove_yaw_z_up(global_orient: np.ndarray) -> np.ndarray:
    """PoseScript's normalisation: Euler (x, y, z) of the z-up root with z (the yaw) set to 0.

    global_orient: float[..., 3] axis-angle in AMASS's z-up frame -> float[..., 3], same frame.
    """
    x, y, _ = rotmat_to_euler_xyz(axis_angle_to_rotmat(global_orient))
    return rotmat_to_axis_angle(euler_xyz_to_rotmat(x, y, np.zeros_like(x)))


def change_frame(global_orient: np.ndarray, frame_rotation: np.ndarray) -> np.ndarray:
    """Root orientation expressed in a rotated world frame: R' = F R (axis-angle in and out)."""
    return rotmat_to_axis_angle(frame_rotation @ axis_angle_to_rotmat(global_orient))


def chatpose_orientation(global_orient_z_up: np.ndarray) -> np.ndarray:
    """ChatPose's handling of an AMASS root: yaw removed (PoseScript), then Rx(+90 deg) into the camera frame.

    global_orient_z_up: float[..., 3] axis-angle in AMASS's z-up frame -> float[..., 3] axis-angle
    in the OpenCV camera frame (x right, y down, z away).
    """
    return change_frame(remove_yaw_z_up(global_orient_z_up), Z_UP_TO_CAMERA)
