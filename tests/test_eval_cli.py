"""chatpose-eval end to end on synthetic benchmarks: outputs, two processes = one sharded process, clear errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests import eval_fixtures
from tests.cli_in_process import run_console
from tests.data_synth_cache import synthetic_data

pytestmark = pytest.mark.slow  # make test-fast leaves this file out (make test runs it)

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    data = synthetic_data(tmp_path_factory)  # with 4D-Humans' evaluation files (hmr_images/hmr2)
    return {
        "ckpt": eval_fixtures.random_pose_checkpoint(tmp_path_factory),
        "retrieval": eval_fixtures.retrieval_workdir(tmp_path_factory),
        "data_dir": data["data_dir"],
        "bodies": data["raw"]["body_model_dir"],
    }


def args(setup, out, benchmarks="3dpw,posescript", *extra, checkpoint=True):
    return [
        *([f"--checkpoint={setup['ckpt']}"] if checkpoint else []), f"--benchmarks={benchmarks}",
        f"--data_dir={setup['data_dir']}", f"--body_model_dir={setup['bodies']}", f"--retrieval={setup['retrieval']}",
        f"--out={out}", "--progress=false", "--batch_size=4", *extra,
    ]  # fmt: skip


def run_eval(*a, launch=0):
    """chatpose-eval ARGS: in this process, or as `launch` processes of one job through launch/local.py."""
    if not launch:
        return run_console("chatpose-eval", *a)
    cmd = [
        sys.executable,
        str(REPO / "launch" / "local.py"),
        "--num_processes",
        str(launch),
        "--",
        str(BIN / "chatpose-eval"),
        *a,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=ENV, cwd=REPO)


def test_two_processes_write_everything_and_equal_one_sharded_process(setup, tmp_path):
    from chatpose_jax.eval import loop
    from chatpose_jax.inference.session import ChatModel

    two = run_eval(*args(setup, tmp_path / "two"), launch=2)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]
    for name in ("metrics.json", "metrics.md", "predictions_3dpw.npz", "predictions_posescript.npz",
                 "gallery_3dpw.png", "gallery_posescript.png"):  # fmt: skip
        assert (tmp_path / "two" / name).exists(), name
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["protocol"] == "spin"
    metrics = metrics["benchmarks"]
    assert set(metrics["3dpw"]["ours"]) >= {"n", "mpjpe_mm", "pa_mpjpe_mm", "no_pose_rate"}
    assert set(metrics["posescript"]["ours"]) >= {"r_p2t@1", "r_t2p@10", "mrecall", "fid", "no_pose_rate"}
    preds = np.load(tmp_path / "two" / "predictions_3dpw.npz")
    assert preds["global_orient"].shape == (metrics["3dpw"]["ours"]["n"], 3) and preds["body_pose"].shape[1] == 69
    assert preds["has_pose"].any(), "the checkpoint's answers hold <POSE>, so the pose head is scored"
    assert "ChatPose-13B (paper)" in two.stdout and "mean pose" in two.stdout

    # One process here, its batch sharded over the 8 test devices: the same metrics.
    options = loop.EvalOptions(batch_size=4, gallery_size=0, progress=False)
    one = loop.evaluate(
        str(tmp_path / "one"), ["3dpw", "posescript"], setup["data_dir"], model=ChatModel.load(setup["ckpt"]),
        body_model_dir=setup["bodies"], retrieval_dir=setup["retrieval"], options=options,
    )["benchmarks"]  # fmt: skip
    for name in ("3dpw", "posescript"):
        for key, value in metrics[name]["ours"].items():
            assert one[name]["ours"][key] == pytest.approx(value, abs=1e-3), (name, key)
    np.testing.assert_array_equal(np.load(tmp_path / "one" / "predictions_3dpw.npz")["ids"], preds["ids"])

    # Another method's poses (ours, re-read) score the same through predictions, no model needed.
    other = loop.evaluate(
        str(tmp_path / "other"), ["3dpw"], setup["data_dir"], body_model_dir=setup["bodies"], options=options,
        predictions={"3dpw": str(tmp_path / "two" / "predictions_3dpw.npz")},
    )["benchmarks"]["3dpw"]["ours"]  # fmt: skip
    assert other["mpjpe_mm"] == pytest.approx(metrics["3dpw"]["ours"]["mpjpe_mm"], abs=1e-3)


def test_hmr2_protocol_is_selected_by_flag(setup, tmp_path):
    from chatpose_jax.eval import image_protocol
    from chatpose_jax.eval.benchmarks import read_benchmark

    data = read_benchmark("3dpw", setup["data_dir"], with_images=False, protocol="hmr2")
    rng = np.random.default_rng(0)
    go = data.global_orient + 0.1 * rng.normal(size=data.global_orient.shape).astype(np.float32)
    bp = data.body_pose + 0.2 * rng.normal(size=data.body_pose.shape).astype(np.float32)
    path = tmp_path / "p.npz"
    np.savez(path, ids=data.ids, global_orient=go, body_pose=bp, pose_frame="opencv_camera")
    extra = ("--protocol=hmr2", f"--predictions={path}", "--gallery_size=0")
    result = run_eval(*args(setup, tmp_path / "hmr2", "3dpw", *extra, checkpoint=False))
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads((tmp_path / "hmr2" / "metrics.json").read_text())
    assert written["protocol"] == "hmr2" and "4D-Humans" in (tmp_path / "hmr2" / "metrics.md").read_text()
    bodies = image_protocol.load_body_models(setup["bodies"])
    want = image_protocol.score(go, bp, data, bodies, "hmr2")["summary"]
    got = written["benchmarks"]["3dpw"]["ours"]
    assert got["n"] == len(data) and got["mpjpe_mm"] == pytest.approx(want["mpjpe_mm"], abs=1e-3)
    assert got["pa_mpjpe_mm"] == pytest.approx(want["pa_mpjpe_mm"], abs=1e-3)
    spin = image_protocol.score(go, bp, read_benchmark("3dpw", setup["data_dir"], with_images=False), bodies, "spin")
    assert abs(spin["summary"]["mpjpe_mm"] - got["mpjpe_mm"]) > 0.5, "the two protocols use different joints"


def test_missing_benchmark_folder_and_bad_predictions_are_named(setup, tmp_path):
    from chatpose_jax.eval.benchmarks import read_benchmark
    from chatpose_jax.eval.predictions import PredictionsFileError, load_predictions

    empty = tmp_path / "empty"
    empty.mkdir()
    no_data = [a if not a.startswith("--data_dir") else f"--data_dir={empty}" for a in args(setup, tmp_path, "3dpw")]
    result = run_eval(*no_data)
    assert result.returncode == 1 and str(empty) in result.stderr and "3dpw" in result.stderr, result.stderr

    ids = read_benchmark("3dpw", setup["data_dir"], with_images=False).ids
    path = tmp_path / "p.npz"
    kept = list(ids[2:]) + ["ghost/1.jpg"]
    np.savez(path, ids=np.array(kept), global_orient=np.zeros((len(kept), 3)), body_pose=np.zeros((len(kept), 69)))
    with pytest.raises(PredictionsFileError, match=r"p\.npz \(key 'pose_frame'\) has no pose frame.*OpenCV camera"):
        load_predictions(str(path), ids)  # a file from before the camera frame (or another method's, unlabelled)
    np.savez(path, ids=np.array(kept), global_orient=np.zeros((len(kept), 3)), body_pose=np.zeros((len(kept), 69)),
             pose_frame="opencv_camera")  # fmt: skip
    with pytest.raises(PredictionsFileError, match=r"2 of the benchmark's \d+ ids are missing: .*1 ids are not in"):
        load_predictions(str(path), ids)
