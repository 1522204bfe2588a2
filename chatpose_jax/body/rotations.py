"""Rotation representations: axis-angle, rotation matrices, HMR2.0 6D, quaternions, Euler angles.

Every function works on arrays with any leading batch shape `[...]`, is pure and jit-able, and
keeps finite gradients at the identity (the pose a network starts from). Quaternions are scalar
first, `(w, x, y, z)`, as in smplx and PyTorch3D (scipy is scalar last unless told otherwise).
"""

from __future__ import annotations

import jax.numpy as jnp

# Below this squared angle the closed forms lose precision in float32; their Taylor series take over.
_SMALL_ANGLE_SQ = 1e-6


def skew(v: jnp.ndarray) -> jnp.ndarray:
    """Cross-product matrix: `skew(v) @ u == cross(v, u)`.

    v: float[..., 3] -> float[..., 3, 3]
    """
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    zero = jnp.zeros_like(x)
    rows = [
        jnp.stack([zero, -z, y], axis=-1),
        jnp.stack([z, zero, -x], axis=-1),
        jnp.stack([-y, x, zero], axis=-1),
    ]
    return jnp.stack(rows, axis=-2)


def _safe_sqrt(x: jnp.ndarray, small: float) -> jnp.ndarray:
    """sqrt(x) with the square root's infinite slope at 0 kept out of the gradient."""
    return jnp.sqrt(jnp.where(x > small, x, small))


def axis_angle_to_rotmat(axis_angle: jnp.ndarray) -> jnp.ndarray:
    """Rodrigues' formula: R = I + sin(t)/t K + (1 - cos(t))/t^2 K^2, with K = skew(axis_angle).

    axis_angle: float[..., 3] radians (direction = axis, norm = angle) -> rotmat: float[..., 3, 3]
    The coefficients switch to their Taylor series near t = 0 (both branches computed on safe
    inputs, so the gradient at the identity is finite and exact).
    """
    theta_sq = jnp.sum(axis_angle * axis_angle, axis=-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    theta = _safe_sqrt(theta_sq, _SMALL_ANGLE_SQ)
    sin_over_theta = jnp.where(small, 1.0 - theta_sq / 6.0, jnp.sin(theta) / theta)
    one_minus_cos_over_theta_sq = jnp.where(
        small, 0.5 - theta_sq / 24.0, (1.0 - jnp.cos(theta)) / jnp.where(small, 1.0, theta_sq)
    )
    k = skew(axis_angle)
    eye = jnp.eye(3, dtype=axis_angle.dtype)
    return eye + sin_over_theta[..., None, None] * k + one_minus_cos_over_theta_sq[..., None, None] * (k @ k)


def rotmat_to_quat(rotmat: jnp.ndarray) -> jnp.ndarray:
    """Rotation matrix to unit quaternion (w, x, y, z) with w >= 0.

    rotmat: float[..., 3, 3] -> quat: float[..., 4]
    Shepperd's method: each of the four candidate formulas divides by the component it solves for,
    so the one whose component is largest is taken (no division by a value near zero, which is
    what makes the naive trace formula fail near a half turn).
    """
    m = rotmat
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 q_i^2 for i = w, x, y, z; clipped at a tiny positive value so the sqrt has a finite slope.
    four_sq = jnp.stack(
        [
            1.0 + m00 + m11 + m22,
            1.0 + m00 - m11 - m22,
            1.0 - m00 + m11 - m22,
            1.0 - m00 - m11 + m22,
        ],
        axis=-1,
    )
    two_q = _safe_sqrt(four_sq, 1e-12)
    # Candidate i: the full quaternion times 4 q_i, built from the off-diagonal sums/differences.
    candidates = jnp.stack(
        [
            jnp.stack([four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01], axis=-1),
            jnp.stack([m21 - m12, four_sq[..., 1], m10 + m01, m02 + m20], axis=-1),
            jnp.stack([m02 - m20, m10 + m01, four_sq[..., 2], m12 + m21], axis=-1),
            jnp.stack([m10 - m01, m20 + m02, m21 + m12, four_sq[..., 3]], axis=-1),
        ],
        axis=-2,
    )
    quats = candidates / (2.0 * two_q[..., :, None])
    best = jnp.argmax(four_sq, axis=-1)
    quat = jnp.take_along_axis(quats, best[..., None, None], axis=-2)[..., 0, :]
    quat = quat / jnp.linalg.norm(quat, axis=-1, keepdims=True)
    return jnp.where(quat[..., :1] < 0, -quat, quat)


def quat_to_rotmat(quat: jnp.ndarray) -> jnp.ndarray:
    """Quaternion (w, x, y, z), normalised here, to rotation matrix.

    quat: float[..., 4] -> rotmat: float[..., 3, 3]
    """
    q = quat / jnp.linalg.norm(quat, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [
        jnp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], axis=-1),
        jnp.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=-1),
        jnp.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1),
    ]
    return jnp.stack(rows, axis=-2)


def axis_angle_to_quat(axis_angle: jnp.ndarray) -> jnp.ndarray:
    """Axis-angle to quaternion (w, x, y, z).

    axis_angle: float[..., 3] radians -> quat: float[..., 4]
    """
    theta_sq = jnp.sum(axis_angle * axis_angle, axis=-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    theta = _safe_sqrt(theta_sq, _SMALL_ANGLE_SQ)
    half_sin_over_theta = jnp.where(small, 0.5 - theta_sq / 48.0, jnp.sin(0.5 * theta) / theta)
    w = jnp.where(small, 1.0 - theta_sq / 8.0, jnp.cos(0.5 * theta))
    return jnp.concatenate([w[..., None], axis_angle * half_sin_over_theta[..., None]], axis=-1)


def quat_to_axis_angle(quat: jnp.ndarray) -> jnp.ndarray:
    """Quaternion (w, x, y, z) to axis-angle with angle in [0, pi].

    quat: float[..., 4] -> axis_angle: float[..., 3] radians
    The angle comes from atan2(|v|, w), accurate at every angle (acos(w) is not near 0 and pi).
    """
    q = quat / jnp.linalg.norm(quat, axis=-1, keepdims=True)
    q = jnp.where(q[..., :1] < 0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    sin_half_sq = jnp.sum(v * v, axis=-1)
    small = sin_half_sq < _SMALL_ANGLE_SQ
    sin_half = _safe_sqrt(sin_half_sq, _SMALL_ANGLE_SQ)
    angle = 2.0 * jnp.arctan2(sin_half, w)
    # Near the identity angle / sin(angle / 2) = 2 atan(s / w) / s -> 2 / w * (1 - s^2 / (3 w^2)).
    w_safe = jnp.where(small, w, 1.0)
    scale = jnp.where(small, 2.0 / w_safe * (1.0 - sin_half_sq / (3.0 * w_safe * w_safe)), angle / sin_half)
    return v * scale[..., None]


def rotmat_to_axis_angle(rotmat: jnp.ndarray) -> jnp.ndarray:
    """Rotation matrix to axis-angle, stable at 0 and at a half turn (through the quaternion).

    rotmat: float[..., 3, 3] -> axis_angle: float[..., 3] radians, angle in [0, pi]
    """
    return quat_to_axis_angle(rotmat_to_quat(rotmat))


def _normalize(v: jnp.ndarray, eps: float = 1e-8) -> jnp.ndarray:
    norm_sq = jnp.sum(v * v, axis=-1, keepdims=True)
    return v / jnp.sqrt(jnp.maximum(norm_sq, eps * eps))


def rot6d_hmr2_to_rotmat(rot6d: jnp.ndarray) -> jnp.ndarray:
    """6D rotation (HMR2.0 / ChatPose layout) to rotation matrix by Gram-Schmidt.

    rot6d: float[..., 6], read as (2, 3): row 0 is the first column a1, row 1 the second column a2.
    Returns rotmat: float[..., 3, 3] with columns b1 = a1/|a1|, b2 = unit(a2 - (b1.a2) b1), b3 = b1 x b2.
    SPIN's layout reads the same 6 numbers as (3, 2) and is a different map; it is not this one.
    """
    pair = rot6d.reshape(rot6d.shape[:-1] + (2, 3))
    a1, a2 = pair[..., 0, :], pair[..., 1, :]
    b1 = _normalize(a1)
    b2 = _normalize(a2 - jnp.sum(b1 * a2, axis=-1, keepdims=True) * b1)
    b3 = jnp.cross(b1, b2)
    return jnp.stack([b1, b2, b3], axis=-1)


def rotmat_to_rot6d_hmr2(rotmat: jnp.ndarray) -> jnp.ndarray:
    """Rotation matrix to 6D in the HMR2.0 layout: the first two columns, written one after the other.

    rotmat: float[..., 3, 3] -> rot6d: float[..., 6] = (R[:, 0], R[:, 1])
    """
    first_two_columns = jnp.swapaxes(rotmat[..., :, :2], -1, -2)
    return first_two_columns.reshape(rotmat.shape[:-2] + (6,))


def _axis_rotmat(angle: jnp.ndarray, axis: int) -> jnp.ndarray:
    """Rotation by `angle` (radians, float[...]) about coordinate axis 0 (x), 1 (y) or 2 (z)."""
    c, s = jnp.cos(angle), jnp.sin(angle)
    one, zero = jnp.ones_like(angle), jnp.zeros_like(angle)
    if axis == 0:
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == 1:
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


def euler_xyz_to_rotmat(theta_x: jnp.ndarray, theta_y: jnp.ndarray, theta_z: jnp.ndarray) -> jnp.ndarray:
    """Euler angles to R = Rz(theta_z) @ Ry(theta_y) @ Rx(theta_x) (PoseScript's convention).

    theta_*: float[...] radians -> rotmat: float[..., 3, 3]. This is scipy's extrinsic "xyz".
    """
    return _axis_rotmat(theta_z, 2) @ _axis_rotmat(theta_y, 1) @ _axis_rotmat(theta_x, 0)


def rotmat_to_euler_xyz(rotmat: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Inverse of `euler_xyz_to_rotmat`: (theta_x, theta_y, theta_z), theta_y in [-pi/2, pi/2].

    rotmat: float[..., 3, 3] -> three float[...] radians
    """
    theta_x = jnp.arctan2(rotmat[..., 2, 1], rotmat[..., 2, 2])
    theta_y = jnp.arctan2(-rotmat[..., 2, 0], jnp.hypot(rotmat[..., 2, 1], rotmat[..., 2, 2]))
    theta_z = jnp.arctan2(rotmat[..., 1, 0], rotmat[..., 0, 0])
    return theta_x, theta_y, theta_z


def axis_angle_to_euler_xyz(axis_angle: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Axis-angle (float[..., 3] radians) to PoseScript's (theta_x, theta_y, theta_z)."""
    return rotmat_to_euler_xyz(axis_angle_to_rotmat(axis_angle))


def euler_xyz_to_axis_angle(theta_x: jnp.ndarray, theta_y: jnp.ndarray, theta_z: jnp.ndarray) -> jnp.ndarray:
    """PoseScript's (theta_x, theta_y, theta_z) radians to axis-angle float[..., 3]."""
    return rotmat_to_axis_angle(euler_xyz_to_rotmat(theta_x, theta_y, theta_z))
