"""The pose head reads the state just before each `<POSE>` and maps it to 24 rotations (HMR2.0 6D)."""

import jax.numpy as jnp
import numpy as np
import pytest
from llava_tiny import POSE_ID, image_prompt, make_hf_llava, pixels, save_hf_llava

from chatpose_jax.convert.hf import load_llava
from chatpose_jax.model.config import PoseHeadConfig
from tests import jit_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = save_hf_llava(make_hf_llava(seed=7), tmp_path_factory.mktemp("pose"))
    return load_llava(folder, dtype="float32", pose_head=PoseHeadConfig(num_joints=24, max_poses=2))


def _numpy_rot6d_hmr2(x):
    """HMR2.0: reshape (2, 3); rows are the first two columns; Gram-Schmidt; columns b1 b2 b3."""
    a1, a2 = x.reshape(2, 3)
    b1 = a1 / np.linalg.norm(a1)
    b2 = a2 - (b1 @ a2) * b1
    b2 /= np.linalg.norm(b2)
    return np.stack([b1, b2, np.cross(b1, b2)], axis=1)


def test_pose_head_at_state_before_pose_equals_numpy(model):
    config, params = model
    rng = np.random.RandomState(0)
    ids, px = image_prompt(rng, 2, text_after=8), pixels(rng, 2)
    ids[0, -6], ids[0, -2] = POSE_ID, POSE_ID  # two poses in row 0
    ids[1, -3] = POSE_ID  # one in row 1
    out = jit_model.apply(config, params, None, jnp.asarray(ids), jnp.asarray(px))
    hidden = np.asarray(out.hidden_states, np.float64)
    head = {k: {n: np.asarray(v, np.float64) for n, v in d.items()} for k, d in params["pose_head"].items()}

    t = ids.shape[1]
    np.testing.assert_array_equal(np.asarray(out.pose.valid), [[True, True], [True, False]])
    np.testing.assert_array_equal(np.asarray(out.pose.positions)[0], [t - 7, t - 3])
    np.testing.assert_array_equal(np.asarray(out.pose.positions)[1, 0], t - 4)
    for b, p in [(0, 0), (0, 1), (1, 0)]:
        before = int(np.flatnonzero(ids[b, 1:] == POSE_ID)[p])  # input_ids[t + 1] == <POSE>
        h = hidden[b, before]
        x = np.maximum(h @ head["fc1"]["kernel"] + head["fc1"]["bias"], 0) @ head["fc2"]["kernel"] + head["fc2"]["bias"]
        rot6d = x.reshape(24, 6)
        np.testing.assert_allclose(
            np.asarray(out.pose.rot6d[b, p]), rot6d, atol=1e-5, err_msg=f"rot6d row {b} pose {p}"
        )
        rotmat = np.stack([_numpy_rot6d_hmr2(r) for r in rot6d])
        np.testing.assert_allclose(
            np.asarray(out.pose.rotmat[b, p]), rotmat, atol=1e-5, err_msg=f"rotmat row {b} pose {p}"
        )
    # Proper rotations.
    r = np.asarray(out.pose.rotmat[0, 0], np.float64)
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-5)


def test_hmr2_layout_is_not_spin_layout():
    """Rows of the (2, 3) reshape are columns: the identity comes from (1,0,0, 0,1,0)."""
    from chatpose_jax.model.pose_head import rot6d_hmr2_to_rotmat

    x = np.array([1.0, 0, 0, 0, 1, 0], np.float32)
    np.testing.assert_allclose(np.asarray(rot6d_hmr2_to_rotmat(jnp.asarray(x))), np.eye(3), atol=1e-6)
    # (0,1,0 | -1,0,0): first column e_y, second -e_x -> rotation by +90 degrees about z.
    x = np.array([0.0, 1, 0, -1, 0, 0], np.float32)
    np.testing.assert_allclose(
        np.asarray(rot6d_hmr2_to_rotmat(jnp.asarray(x))), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-6
    )


def _rodrigues(axis_angle):
    angle = np.linalg.norm(axis_angle)
    k = np.asarray(axis_angle) / angle
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def test_fresh_pose_head_starts_upright_in_the_camera_frame():
    """At init (a zero state) the root is an upright person facing the camera in the OpenCV frame,
    the body joints the identity: the rest pose of the targets' frame."""
    import jax

    from chatpose_jax.body.frames import UPRIGHT_FACING_CAMERA_ROOT
    from chatpose_jax.model.pose_head import PoseHead, rot6d_hmr2_to_rotmat

    head = PoseHead(PoseHeadConfig(num_joints=24, max_poses=1), hidden_size=16)
    params = head.init(jax.random.PRNGKey(0), jnp.zeros((16,)))
    rotmat = np.asarray(rot6d_hmr2_to_rotmat(head.apply(params, jnp.zeros((16,)))))
    np.testing.assert_allclose(rotmat[0], _rodrigues(UPRIGHT_FACING_CAMERA_ROOT), atol=1e-6)
    np.testing.assert_allclose(rotmat[1:], np.broadcast_to(np.eye(3), (23, 3, 3)), atol=1e-6)


def test_identity_start_has_no_l1_gradient_towards_an_upright_camera_root():
    """Why the root does not start at the identity: 180 degrees from the target, the L1 loss on
    the Gram-Schmidt matrix is flat (the error is radial to each normalised column)."""
    import jax

    from chatpose_jax.model.pose_head import IDENTITY_ROT6D, UPRIGHT_ROOT_ROT6D, rot6d_hmr2_to_rotmat

    target = jnp.asarray(np.diag([1.0, -1.0, -1.0]), jnp.float32)

    def l1(x):
        return jnp.abs(rot6d_hmr2_to_rotmat(x) - target).mean()

    assert float(l1(jnp.asarray(IDENTITY_ROT6D))) > 0.4
    np.testing.assert_array_equal(np.asarray(jax.grad(l1)(jnp.asarray(IDENTITY_ROT6D))), 0.0)
    assert float(l1(jnp.asarray(UPRIGHT_ROOT_ROT6D))) < 1e-7
