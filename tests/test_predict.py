"""chatpose-predict: batched answers equal one-at-a-time chat answers; inputs and errors."""

import json

import numpy as np
import pytest
from PIL import Image

from chatpose_jax.inference import predict
from chatpose_jax.inference.images import ImageError
from chatpose_jax.inference.session import ChatModel
from tests import chat_fixtures
from tests.cli_in_process import run_console


def run_cli(*args):
    """chatpose-predict ARGS through its `main` in this process (its output and exit status are under test)."""
    return run_console("chatpose-predict", *args)


@pytest.fixture(scope="module")
def pose_ckpt(tmp_path_factory):
    return chat_fixtures.pose_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def model(pose_ckpt):
    return ChatModel.load(pose_ckpt)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict_inputs")
    rng = np.random.default_rng(2)
    for name, shape in (("a.png", (80, 60)), ("b.jpg", (50, 90))):
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(folder / name)
    lines = [
        {"id": "pose", "prompt": chat_fixtures.POSE_PROMPT},
        {"prompt": "hello there"},
        {"id": "img-a", "image": "a.png"},
        {"id": "img-b", "image": str(folder / "b.jpg"), "prompt": "what is the pose?"},
        {"id": "three", "prompt": "and now? describe a person sitting."},
    ]
    path = folder / "prompts.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


@pytest.mark.slow
def test_predict_results_equal_per_sample_chat_results(model, pose_ckpt, inputs, tmp_path):
    # batch_size 2: two image rows in one batch, three text rows in a full and a filled-up batch.
    result = run_cli(
        f"--checkpoint={pose_ckpt}",
        f"--inputs={inputs}",
        f"--out={tmp_path}",
        "--batch_size=2",
        "--max_new_tokens=6",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    path = tmp_path / "predictions.jsonl"
    assert "5 answers" in result.stdout and str(path) in result.stdout
    results = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["id"] for r in results] == ["pose", "prompts:2", "img-a", "img-b", "three"]
    assert results[2]["prompt"] == predict.DEFAULT_IMAGE_PROMPT
    assert any(r["poses"] for r in results), "no answer holds <POSE>: the test would compare no pose"
    for r in results:
        chat = model.answer(r["prompt"], image=r["image"], max_new_tokens=6)
        assert r["tokens"] == chat.tokens.tolist(), r["id"]
        assert r["answer"] == chat.text, r["id"]
        assert r["stop_reason"] == chat.stop_reason, r["id"]
        assert len(r["poses"]) == len(chat.poses), r["id"]
        for got, want in zip(r["poses"], chat.poses, strict=True):
            assert got["position"] == want.position, r["id"]
            np.testing.assert_allclose(np.asarray(got["rotmat"]), want.rotmat, atol=1e-5, err_msg=r["id"])
            np.testing.assert_allclose(np.asarray(got["rot6d"]), want.rot6d, atol=1e-5, err_msg=r["id"])
            assert np.asarray(got["body_pose"]).shape == (69,) and np.asarray(got["global_orient"]).shape == (3,)


def test_folder_inputs_take_images_and_jsonl(inputs):
    records = predict.read_inputs(str(inputs.parent), default_prompt="pose please")
    assert [r.id for r in records] == ["a.png", "b.jpg", "pose", "prompts:2", "img-a", "img-b", "three"]
    assert records[0].prompt == "pose please" and records[0].image == str(inputs.parent / "a.png")


def test_bad_inputs_name_the_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"prompt": "ok"}\n{"image": "gone.png"}\n')
    with pytest.raises(ImageError, match=r"in.jsonl:2: image .*gone.png does not exist"):
        predict.read_inputs(str(path))
    path.write_text('{"prompt": "ok"}\nnot json\n')
    with pytest.raises(predict.InputError, match="in.jsonl:2: not JSON"):
        predict.read_inputs(str(path))
    with pytest.raises(predict.InputError, match="does not exist"):
        predict.read_inputs(str(tmp_path / "none"))


def test_cli_missing_image_is_one_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"image": "gone.png"}\n')
    result = run_cli(f"--checkpoint={tmp_path}", f"--inputs={path}", f"--out={tmp_path}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("chatpose-predict: ")
    assert "gone.png does not exist" in result.stderr
