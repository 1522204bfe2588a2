"""chatpose-chat: streamed answers, poses read where `<POSE>` was produced, files, terminal commands, errors."""

import io
import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from chatpose_jax.inference import prompt
from chatpose_jax.inference.session import ChatModel, ChatSession
from tests import chat_fixtures
from tests.cli_in_process import run_console

pytestmark = pytest.mark.slow  # make test-fast leaves this file out (make test runs it)

BIN = Path(sys.executable).parent


def run_cli(*args, cache, stdin=None, timeout=300):
    """Runs chatpose-chat as a process; `cache` stands in for ~/.cache (where the synthetic body model goes)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", "XDG_CACHE_HOME": str(cache)}
    return subprocess.run(
        [str(BIN / "chatpose-chat"), *args], input=stdin, capture_output=True, text=True, timeout=timeout, env=env
    )


def run_in_process(*args, cache):
    """chatpose-chat ARGS through its `main` in this process (its output and exit status are under test)."""
    return run_console("chatpose-chat", *args, env={"XDG_CACHE_HOME": str(cache)})


@pytest.fixture(scope="module")
def pose_ckpt(tmp_path_factory):
    return chat_fixtures.pose_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def model(pose_ckpt):
    return ChatModel.load(pose_ckpt)


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("chat_images") / "person.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 70, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_streamed_pose_is_the_pose_head_at_the_state_that_produced_pose(model):
    ids = model.encode([], prompt.user_turn(chat_fixtures.POSE_PROMPT, False))
    pieces = []
    answer = model.stream(ids, max_new_tokens=6, on_text=pieces.append)
    assert model.config.pose_token_id in answer.tokens.tolist(), answer.tokens
    assert "".join(pieces) == answer.text and "<POSE>" in answer.text
    (pose,) = answer.poses
    sequence = np.concatenate([ids, answer.tokens])
    assert sequence[pose.position + 1] == model.config.pose_token_id and pose.position >= len(ids) - 1

    # decoding.generate reads the same state.
    from chatpose_jax.model import chatpose, decoding

    out = decoding.generate(model.config, model.params, None, jnp.asarray(ids)[None], max_new_tokens=6)
    np.testing.assert_array_equal(np.asarray(out.tokens[0]), answer.tokens)
    assert bool(out.pose.valid[0, 0]) and int(out.pose.positions[0, 0]) == pose.position
    np.testing.assert_allclose(np.asarray(out.pose.rotmat[0, 0]), pose.rotmat, atol=1e-5)

    # Teacher forcing the whole sequence through the model reads the same pose (training's path).
    forced = chatpose.apply(model.config, model.params, None, jnp.asarray(sequence)[None])
    assert int(forced.pose.positions[0, 0]) == pose.position
    np.testing.assert_allclose(np.asarray(forced.pose.rot6d[0, 0]), pose.rot6d, atol=1e-4)
    np.testing.assert_allclose(np.asarray(forced.pose.rotmat[0, 0]), pose.rotmat, atol=1e-4)


def test_prompt_run_writes_npz_obj_png_of_the_model_pose(model, pose_ckpt, tmp_path):
    from chatpose_jax.body import mesh_io, rotations
    from chatpose_jax.inference import outputs

    out_dir = tmp_path / "out"
    result = run_in_process(
        f"--checkpoint={pose_ckpt}",
        f"--prompt={chat_fixtures.POSE_PROMPT}",
        f"--out={out_dir}",
        "--max_new_tokens=6",
        cache=tmp_path / "cache",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Not a demo checkpoint (no training run said train.body_model=synthetic): the stand-in body is flagged.
    assert "--body_model=synthetic" in result.stderr and "--body_model=PATH" in result.stderr, result.stderr[-2000:]
    expected = model.answer(chat_fixtures.POSE_PROMPT, max_new_tokens=6)
    assert f"ASSISTANT: {expected.text}" in result.stdout
    paths = {ext: out_dir / f"turn_1.{ext}" for ext in ("npz", "obj", "png")}
    assert all(str(p) in result.stdout for p in paths.values()), result.stdout

    with np.load(paths["npz"]) as npz:
        arrays = dict(npz)
    assert set(arrays) == {"global_orient", "body_pose", "rotmat", "rot6d", "pose_frame"}
    assert str(arrays["pose_frame"]) == "opencv_camera"
    assert arrays["global_orient"].shape == (3,) and arrays["body_pose"].shape == (69,)
    (pose,) = expected.poses
    np.testing.assert_allclose(arrays["rotmat"], pose.rotmat, atol=1e-5)
    np.testing.assert_allclose(arrays["rot6d"], pose.rot6d, atol=1e-5)
    axis_angle = np.concatenate([arrays["global_orient"][None], arrays["body_pose"].reshape(23, 3)])
    np.testing.assert_allclose(np.asarray(rotations.axis_angle_to_rotmat(axis_angle)), pose.rotmat, atol=1e-4)

    body = outputs.load_body(str(tmp_path / "cache" / "chatpose_jax" / "body_model" / "SMPL_NEUTRAL.pkl"))
    vertices, faces = mesh_io.read_obj(str(paths["obj"]))
    want_vertices, want_faces = outputs.posed_mesh(body, pose.rotmat)
    assert vertices.shape == (6890, 3) and faces.shape == want_faces.shape
    # The OBJ shows the camera-frame body upright: x, -y, -z (Rx(180 deg)).
    np.testing.assert_allclose(vertices, want_vertices * [1.0, -1.0, -1.0], atol=2e-6)  # OBJ keeps 6 decimals
    # The body is posed: not the rest mesh.
    rest = np.asarray(body().vertices[0])
    assert np.abs(vertices - rest).max() > 1e-3

    picture = np.asarray(Image.open(paths["png"]).convert("RGB"))
    assert picture.shape == (512, 1024, 3)
    for half in (picture[:, :512], picture[:, 512:]):  # front and side views both drawn
        assert (half.reshape(-1, 3) != 255).any(axis=1).mean() > 0.02


def test_terminal_session_through_a_pipe(tmp_path, tmp_path_factory, image_path):
    workdir = chat_fixtures.tiny_workdir(tmp_path_factory)
    script = "\n".join(
        [
            "hello there",
            f"/image {tmp_path}/missing.png",
            f"/image {image_path}",
            "what is the pose?",
            "/reset",
            "and now?",
            "/quit",
            "never asked",
        ]
    )
    result = run_cli(
        f"--checkpoint={workdir}", f"--out={tmp_path}", "--max_new_tokens=4", stdin=script + "\n", cache=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("ASSISTANT:") == 3, result.stdout  # /quit stops before "never asked"
    assert f"image {tmp_path}/missing.png does not exist" in result.stderr
    assert f"(image {image_path} attached to the next turn)" in result.stdout
    assert "(conversation reset)" in result.stdout
    assert "Traceback" not in result.stderr


def test_terminal_commands_shape_the_conversation(model, image_path, tmp_path, monkeypatch):
    from chatpose_jax.inference.terminal import PoseFileWriter, run_terminal

    session = ChatSession(model, max_new_tokens=3)
    seen = []
    stream = model.stream

    def spy(ids, pixel_values=None, **kwargs):
        seen.append((ids, pixel_values))
        return stream(ids, pixel_values, **kwargs)

    monkeypatch.setattr(model, "stream", spy)
    script = f"/image {image_path}\nwhat is the pose?\nand the arms?\n/reset\nhello\n/image {image_path}\n"
    out, err = io.StringIO(), io.StringIO()
    answered = run_terminal(session, PoseFileWriter(str(tmp_path)), io.StringIO(script), out, err)
    assert answered == 3 and err.getvalue() == ""
    n_image = model.config.vision.num_image_tokens
    (ids1, pix1), (ids2, pix2), (ids3, pix3) = seen
    # Turn 1 carries the image; turn 2 keeps it (it is in turn 1 of the history); after /reset none.
    assert (ids1 == model.config.image_token_id).sum() == n_image and pix1 is not None
    assert (ids2 == model.config.image_token_id).sum() == n_image and pix2 is not None
    assert len(ids2) > len(ids1) and np.array_equal(ids2[: len(ids1)], ids1)
    assert (ids3 == model.config.image_token_id).sum() == 0 and pix3 is None
    assert session.history[0][0] == "hello" and len(session.history) == 1
    # An image after /reset: pending for the next turn, the conversation so far kept (no image yet).
    assert session.image_pending and session.pixel_values is not None


def test_new_image_restarts_a_conversation_about_another_image(model, image_path):
    session = ChatSession(model, max_new_tokens=2)
    assert not session.attach_image(image_path)
    session.ask("what is the pose?")
    assert session.attach_image(image_path) and session.history == []


@pytest.mark.parametrize("case", ["missing_image", "missing_checkpoint", "unreadable_checkpoint", "long_prompt"])
def test_errors_are_one_clear_line(case, pose_ckpt, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model_config.json").write_text("{ not json")
    args, message = {
        "missing_image": ([f"--checkpoint={pose_ckpt}", f"--image={tmp_path}/nope.jpg", "--prompt=hi"], "nope.jpg"),
        "missing_checkpoint": ([f"--checkpoint={tmp_path}/none", "--prompt=hi"], f"checkpoint {tmp_path}/none"),
        "unreadable_checkpoint": ([f"--checkpoint={bad}", "--prompt=hi"], f"cannot load checkpoint {bad}"),
        "long_prompt": ([f"--checkpoint={pose_ckpt}", "--prompt=" + "pose " * 600], "context holds 512"),
    }[case]
    result = run_in_process(*args, f"--out={tmp_path}", cache=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("chatpose-chat: ") and message in last, result.stderr[-2000:]


def test_hugging_face_folder_loads_with_a_tokenizer(tmp_path, tmp_path_factory, image_path):
    from chatpose_jax.inference.session import CheckpointLoadError
    from chatpose_jax.model import decoding
    from tests import llava_tiny

    config = llava_tiny.tiny_llava_config()
    # The synthetic tokenizer's ids: 1000 pieces, <image> 1000, <pad> 1001 (<POSE> is appended at 1002).
    config.text_config.vocab_size, config.text_config.pad_token_id = 1002, 1001
    config.image_token_index, config.pad_token_id = 1000, 1001
    config.vision_config.image_size = 56
    import torch
    from transformers import LlavaForConditionalGeneration

    torch.manual_seed(0)
    hf_dir = llava_tiny.save_hf_llava(LlavaForConditionalGeneration(config).float().eval(), tmp_path / "hf")
    with pytest.raises(CheckpointLoadError, match="pass --tokenizer"):
        ChatModel.load(hf_dir)
    tokenizer_dir = chat_fixtures.tiny_tokenizer(tmp_path_factory)
    model = ChatModel.load(hf_dir, tokenizer_dir)
    assert model.config.pose_token_id == 1002 and model.config.vision.image_size == 56
    answer = model.answer("what is the pose?", image=image_path, max_new_tokens=4)
    ids = model.encode([], prompt.user_turn("what is the pose?", True))
    assert (ids == 1000).sum() == model.config.vision.num_image_tokens == 16
    out = decoding.generate(
        model.config,
        model.params,
        None,
        jnp.asarray(ids)[None],
        jnp.asarray(model.pixel_values(image_path))[None],
        max_new_tokens=4,
    )
    np.testing.assert_array_equal(np.asarray(out.tokens[0, : len(answer.tokens)]), answer.tokens)
