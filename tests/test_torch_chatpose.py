"""The PyTorch wrapper of an export-hf folder gives our logits, pose and generated tokens."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from llava_tiny import image_prompt, make_hf_llava, pixels, save_hf_llava

from chatpose_jax.body import rotations
from chatpose_jax.convert.hf import load_llava
from chatpose_jax.export.hf_export import export_hf
from chatpose_jax.export.torch_chatpose import TorchChatPose, rotmat_to_axis_angle
from chatpose_jax.model import decoding
from chatpose_jax.model.config import PoseHeadConfig
from tests import jit_model


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    """A tiny LLaVA imported with <POSE> at 160 and two pose slots; the pose head scaled up from its
    small init so that its rotations are far from the identity."""
    folder = save_hf_llava(make_hf_llava(seed=3), tmp_path_factory.mktemp("base"))
    config, params = load_llava(folder, dtype="float32", pose_head=PoseHeadConfig(num_joints=24, max_poses=2))
    fc2 = params["pose_head"]["fc2"]
    params["pose_head"]["fc2"] = {"kernel": fc2["kernel"] * 40.0, "bias": fc2["bias"] + 0.3}
    return config, params


@pytest.fixture(scope="module")
def wrapper(ours, tmp_path_factory):
    config, params = ours
    out = str(tmp_path_factory.mktemp("export") / "hf")
    export_hf(config, params, out)
    return TorchChatPose.from_pretrained(out)


def _with_poses(config, seed=0):
    """Row 0: two <POSE> tokens; row 1: none."""
    rng = np.random.RandomState(seed)
    ids, px = image_prompt(rng, 2), pixels(rng, 2)
    ids[0, -4] = ids[0, -1] = config.pose_token_id
    return ids, px


def test_forward_logits_and_pose_equal_ours(ours, wrapper):
    config, params = ours
    ids, px = _with_poses(config)
    ref = jit_model.apply(config, params, None, jnp.asarray(ids), jnp.asarray(px))
    out = wrapper(torch.from_numpy(ids), torch.from_numpy(px))
    assert np.abs(out.logits.numpy() - np.asarray(ref.logits)).max() < 1e-4
    np.testing.assert_array_equal(out.pose.valid.numpy(), np.asarray(ref.pose.valid))
    np.testing.assert_array_equal(out.pose.positions.numpy(), np.asarray(ref.pose.positions))
    valid = np.asarray(ref.pose.valid)
    assert valid.tolist() == [[True, True], [False, False]]
    err = np.abs(out.pose.rot6d.numpy() - np.asarray(ref.pose.rot6d))[valid].max()
    assert err < 1e-4, f"rot6d differs by {err}"
    err = np.abs(out.pose.rotmat.numpy() - np.asarray(ref.pose.rotmat))[valid].max()
    assert err < 1e-4, f"rotmat differs by {err}"
    aa = np.asarray(rotations.rotmat_to_axis_angle(ref.pose.rotmat))
    assert np.abs(out.pose.axis_angle.numpy() - aa)[valid].max() < 1e-4
    assert np.linalg.norm(aa[valid], axis=-1).max() > 1.0  # the rotations are not near the identity
    assert out.pose.body_pose.shape == (2, 2, 69) and out.pose.global_orient.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.pose.body_pose[0, 0].numpy(), out.pose.axis_angle[0, 0, 1:].flatten().numpy())


def test_axis_angle_at_zero_and_half_turn_matches_ours():
    angles = np.array([0.0, 1e-7, 0.5, np.pi - 1e-6, np.pi])
    axes = np.array([[0, 0, 1.0], [1, 0, 0], [0.6, 0.8, 0], [0, 1, 0], [0.48, 0.6, 0.64]])
    aa = (axes / np.linalg.norm(axes, axis=-1, keepdims=True) * angles[:, None]).astype(np.float32)
    rotmat = np.array(rotations.axis_angle_to_rotmat(jnp.asarray(aa)))
    back = rotmat_to_axis_angle(torch.from_numpy(rotmat)).numpy()
    np.testing.assert_allclose(np.asarray(rotations.axis_angle_to_rotmat(jnp.asarray(back))), rotmat, atol=1e-5)
    np.testing.assert_allclose(back[:4], aa[:4], atol=1e-5)


def test_greedy_generation_equals_ours(ours, wrapper):
    config, params = ours
    rng = np.random.RandomState(1)
    ids, px = image_prompt(rng, 2), pixels(rng, 2)
    ref = decoding.generate(config, params, None, jnp.asarray(ids), jnp.asarray(px), max_new_tokens=6)
    out = wrapper.generate(torch.from_numpy(ids), torch.from_numpy(px), max_new_tokens=6)
    np.testing.assert_array_equal(out.new_tokens.numpy(), np.asarray(ref.tokens))


def test_generated_pose_is_read_at_the_state_that_produced_it(ours, wrapper):
    """<POSE> forced at every step by a logit bias: the pose of the first one equals our forward pass
    over the generated sequence (the state before that <POSE>)."""
    config, params = ours
    rng = np.random.RandomState(2)
    ids, px = image_prompt(rng, 2), pixels(rng, 2)
    out = wrapper.generate(
        torch.from_numpy(ids), torch.from_numpy(px), max_new_tokens=3, sequence_bias={(config.pose_token_id,): 100.0}
    )
    seq = out.sequences.numpy()
    assert (seq[:, ids.shape[1]] == config.pose_token_id).all()
    ref = jit_model.apply(config, params, None, jnp.asarray(seq), jnp.asarray(px))
    assert out.pose.valid.numpy().all() and np.asarray(ref.pose.valid).all()
    np.testing.assert_array_equal(out.pose.positions.numpy(), np.asarray(ref.pose.positions))
    err = np.abs(out.pose.rotmat.numpy() - np.asarray(ref.pose.rotmat)).max()
    assert err < 1e-4, f"rotmat differs by {err}"
