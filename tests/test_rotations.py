"""Rotation conversions against scipy and a numpy Gram-Schmidt; round trips; gradients at the identity."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial.transform import Rotation

from chatpose_jax.body import rotations as rot


def _axis_angles(n, seed=0):
    """Random rotation vectors over all angles, plus the identity, tiny angles and half turns."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.concatenate(
        [
            rng.uniform(0, np.pi, n - 40),
            np.zeros(4),
            10.0 ** rng.uniform(-9, -3, 12),
            np.pi - 10.0 ** rng.uniform(-7, -2, 20),
            np.full(4, np.pi),
        ]
    )
    return (axis * angle[:, None]).astype(np.float64)


def test_axis_angle_to_rotmat_matches_scipy():
    aa = _axis_angles(400)
    ours = jax.jit(rot.axis_angle_to_rotmat)(aa.astype(np.float32))
    np.testing.assert_allclose(ours, Rotation.from_rotvec(aa).as_matrix(), atol=2e-6)


def test_rotmat_to_axis_angle_is_stable_at_zero_and_half_turn():
    aa = _axis_angles(400, seed=1)
    mats = Rotation.from_rotvec(aa).as_matrix().astype(np.float32)
    back = np.asarray(jax.jit(rot.rotmat_to_axis_angle)(mats), np.float64)
    # The matrix is what must survive; a half turn's axis-angle is defined up to sign.
    np.testing.assert_allclose(Rotation.from_rotvec(back).as_matrix(), mats, atol=3e-6)
    np.testing.assert_allclose(np.linalg.norm(back, axis=1), np.linalg.norm(aa, axis=1), atol=2e-6)
    away_from_pi = np.linalg.norm(aa, axis=1) < np.pi - 1e-2
    np.testing.assert_allclose(back[away_from_pi], aa[away_from_pi], atol=2e-6)


def test_quaternions_match_scipy_scalar_first():
    aa = _axis_angles(200, seed=2)
    expected = Rotation.from_rotvec(aa).as_quat(scalar_first=True)

    def assert_same_rotation(quat, what):
        # q and -q are the same rotation; at a half turn (w = 0) either sign is right.
        err = np.minimum(np.abs(quat - expected).max(1), np.abs(quat + expected).max(1))
        assert err.max() < 3e-6, f"{what}: max error {err.max()}"

    assert_same_rotation(np.asarray(rot.axis_angle_to_quat(aa.astype(np.float32))), "axis_angle_to_quat")
    mats = Rotation.from_rotvec(aa).as_matrix().astype(np.float32)
    quat = np.asarray(rot.rotmat_to_quat(mats))
    assert_same_rotation(quat, "rotmat_to_quat")
    assert np.all(quat[:, 0] >= 0), "rotmat_to_quat returns w >= 0"
    np.testing.assert_allclose(rot.quat_to_rotmat(expected.astype(np.float32)), mats, atol=2e-6)
    back = np.asarray(rot.quat_to_axis_angle(expected.astype(np.float32)), np.float64)
    np.testing.assert_allclose(Rotation.from_rotvec(back).as_matrix(), mats, atol=3e-6)


def numpy_rot6d_hmr2(x):
    """HMR2.0's 6D -> matrix, written out: (2, 3) rows are the first two columns, Gram-Schmidt."""
    x = x.reshape(-1, 2, 3)
    a1, a2 = x[:, 0], x[:, 1]
    b1 = a1 / np.linalg.norm(a1, axis=1, keepdims=True)
    b2 = a2 - np.sum(b1 * a2, axis=1, keepdims=True) * b1
    b2 /= np.linalg.norm(b2, axis=1, keepdims=True)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)


def test_rot6d_hmr2_layout_matches_numpy_gram_schmidt():
    x = np.random.default_rng(3).normal(size=(100, 6)).astype(np.float32)
    ours = jax.jit(rot.rot6d_hmr2_to_rotmat)(x)
    np.testing.assert_allclose(ours, numpy_rot6d_hmr2(x.astype(np.float64)), atol=2e-6)
    np.testing.assert_allclose(np.linalg.det(np.asarray(ours)), 1.0, atol=1e-5)
    # SPIN's (3, 2) reading of the same numbers is a different rotation: the layout matters.
    spin = numpy_rot6d_hmr2(np.swapaxes(x.reshape(-1, 3, 2), 1, 2).reshape(-1, 6))
    assert np.abs(np.asarray(ours) - spin).max() > 0.1


def test_rot6d_round_trip():
    mats = Rotation.random(50, random_state=4).as_matrix().astype(np.float32)
    six = rot.rotmat_to_rot6d_hmr2(mats)
    np.testing.assert_array_equal(np.asarray(six).reshape(-1, 2, 3), np.swapaxes(mats[:, :, :2], 1, 2))
    np.testing.assert_allclose(rot.rot6d_hmr2_to_rotmat(six), mats, atol=2e-6)


def test_euler_xyz_matches_scipy_extrinsic_xyz():
    rng = np.random.default_rng(5)
    angles = rng.uniform([-np.pi, -np.pi / 2 + 0.01, -np.pi], [np.pi, np.pi / 2 - 0.01, np.pi], size=(100, 3))
    expected = Rotation.from_euler("xyz", angles).as_matrix()
    a32 = angles.astype(np.float32)
    np.testing.assert_allclose(rot.euler_xyz_to_rotmat(a32[:, 0], a32[:, 1], a32[:, 2]), expected, atol=2e-6)
    back = np.stack(rot.rotmat_to_euler_xyz(expected.astype(np.float32)), axis=1)
    np.testing.assert_allclose(back, angles, atol=5e-5)
    aa = Rotation.from_euler("xyz", angles).as_rotvec()
    np.testing.assert_allclose(np.stack(rot.axis_angle_to_euler_xyz(aa.astype(np.float32)), 1), angles, atol=5e-5)
    via_euler = np.asarray(rot.euler_xyz_to_axis_angle(a32[:, 0], a32[:, 1], a32[:, 2]), np.float64)
    np.testing.assert_allclose(Rotation.from_rotvec(via_euler).as_matrix(), expected, atol=3e-6)


def jacobian(fn):
    """Jitted Jacobian (eager differentiation compiles every small op on its own, which is slow)."""
    return jax.jit(jax.jacobian(fn))


def test_gradients_at_identity_are_finite_and_exact():
    zero = jnp.zeros(3)
    jac = jacobian(rot.axis_angle_to_rotmat)(zero)  # [3, 3, 3]: dR/dw_k = skew(e_k)
    np.testing.assert_allclose(jac, np.stack([rot.skew(e) for e in np.eye(3)], axis=-1), atol=1e-6)
    # matrix -> axis-angle -> matrix is the identity map, so its Jacobian at 0 is the identity.
    round_trip = jacobian(lambda w: rot.rotmat_to_axis_angle(rot.axis_angle_to_rotmat(w)))(zero)
    np.testing.assert_allclose(round_trip, np.eye(3), atol=1e-5)
    for fn in (rot.axis_angle_to_quat, lambda w: rot.quat_to_axis_angle(rot.axis_angle_to_quat(w))):
        assert np.all(np.isfinite(jacobian(fn)(zero)))
    six = rot.rotmat_to_rot6d_hmr2(jnp.eye(3))
    assert np.all(np.isfinite(jacobian(rot.rot6d_hmr2_to_rotmat)(six)))
    quat_jac = jacobian(lambda w: rot.rotmat_to_quat(rot.axis_angle_to_rotmat(w)))(zero)
    np.testing.assert_allclose(quat_jac, np.vstack([np.zeros((1, 3)), 0.5 * np.eye(3)]), atol=1e-5)


def test_round_trips_compose_to_identity_over_random_rotations():
    aa = _axis_angles(300, seed=6).astype(np.float32)
    mats = rot.axis_angle_to_rotmat(aa)
    via_quat = rot.quat_to_rotmat(rot.axis_angle_to_quat(aa))
    via_6d = rot.rot6d_hmr2_to_rotmat(rot.rotmat_to_rot6d_hmr2(mats))
    via_aa = rot.axis_angle_to_rotmat(rot.rotmat_to_axis_angle(mats))
    for name, other in (("quat", via_quat), ("6d", via_6d), ("axis-angle", via_aa)):
        err = np.abs(np.asarray(other) - np.asarray(mats)).max()
        assert err < 3e-6, f"round trip through {name}: max error {err}"
