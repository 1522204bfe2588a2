"""The root's frame: the OpenCV camera frame everywhere, upright only for display, old files refused."""

import json

import jax
import numpy as np
import pytest
from _body_files import model_file

from chatpose_jax.body import frames, load_body_model, skeletons
from chatpose_jax.config_types import ConfigError
from chatpose_jax.convert import checkpoint_io
from chatpose_jax.experiment import load_experiment
from chatpose_jax.model import chatpose
from chatpose_jax.train import checkpoint as ckpt
from chatpose_jax.train.trained_model import load_trained


def _tiny_experiment():
    from chatpose_jax.config_files import repo_config

    return load_experiment(repo_config("tiny"))


def test_upright_for_display_stands_a_camera_frame_body_up_facing_the_viewer():
    body = load_body_model(model_file("smpl"))
    root = np.diag([1.0, -1.0, -1.0]).astype(np.float32)  # upright, facing the camera (OpenCV frame)
    out = body(global_orient=root[None, None], body_pose=np.tile(np.eye(3, dtype=np.float32), (1, 23, 1, 1)))
    joints = np.asarray(out.joints[0, :24])
    head, pelvis = skeletons.JOINT_NAMES["smpl"].index("head"), 0
    assert joints[head, 1] < joints[pelvis, 1] - 0.3, "in the camera frame the head is up, i.e. at smaller y"
    shown = frames.upright_for_display(joints)
    np.testing.assert_allclose(shown, joints * np.array([1.0, -1.0, -1.0]), atol=1e-7)  # Rx(180 deg)
    # Displayed: the head above the pelvis and the body as at rest (identity root, y up, facing +z).
    rest = np.asarray(body().joints[0, :24])
    np.testing.assert_allclose(shown - shown[pelvis], rest - rest[pelvis], atol=1e-5)


def test_model_checkpoint_without_a_pose_frame_is_refused(tmp_path):
    config = _tiny_experiment().model
    assert config.pose_frame == "opencv_camera"
    params, _ = chatpose.init_params(config, jax.random.key(0))
    params = jax.device_get(params)
    path = str(tmp_path / "ckpt")
    checkpoint_io.save_model_checkpoint(path, config, params)
    stored = json.loads((tmp_path / "ckpt" / checkpoint_io.CONFIG_FILE).read_text())
    assert stored["pose_frame"] == "opencv_camera"
    assert checkpoint_io.load_model_config(path) == config
    del stored["pose_frame"]  # as written before the camera frame
    (tmp_path / "ckpt" / checkpoint_io.CONFIG_FILE).write_text(json.dumps(stored))
    with pytest.raises(frames.PoseFrameError, match=r"model_config\.json has no pose frame.*OpenCV camera frame"):
        load_trained(path)
    stored["pose_frame"] = "y_up"
    with pytest.raises(ConfigError, match="model.pose_frame: 'y_up' is not one of"):
        from chatpose_jax.model.config import model_config_from_dict

        model_config_from_dict(stored)


def test_training_checkpoint_without_a_pose_frame_is_refused(tmp_path):
    saved = ckpt.experiment_to_json(_tiny_experiment())
    assert saved["model"]["pose_frame"] == "opencv_camera"
    del saved["model"]["pose_frame"]
    step = tmp_path / "workdir" / "checkpoints" / "300"
    (step / "state").mkdir(parents=True)
    (step / "config").mkdir()
    (step / "config" / "metadata").write_text(json.dumps(saved))
    with pytest.raises(frames.PoseFrameError, match=r"checkpoints/300.*no pose frame.*x right, y down, z away"):
        load_trained(str(tmp_path / "workdir"))
