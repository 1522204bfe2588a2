"""chatpose-eval end to end on synthetic benchmarks: outputs, one process = two processes, clear errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests import chat_fixtures, eval_fixtures
from tests.data_synth_cache import synthetic_data

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    data = synthetic_data(tmp_path_factory)
    return {
        "ckpt": chat_fixtures.pose_checkpoint(tmp_path_factory),
        "retrieval": eval_fixtures.retrieval_workdir(tmp_path_factory),
        "data_dir": data["data_dir"],
        "bodies": data["raw"]["body_model_dir"],
    }


def args(setup, out, benchmarks="3dpw,posescript", *extra):
    return [
        f"--checkpoint={setup['ckpt']}", f"--benchmarks={benchmarks}", f"--data_dir={setup['data_dir']}",
        f"--body_model_dir={setup['bodies']}", f"--retrieval={setup['retrieval']}", f"--out={out}",
        "--progress=false", "--batch_size=4", *extra,
    ]  # fmt: skip


def run_eval(*a, launch=0):
    cmd = [str(BIN / "chatpose-eval"), *a]
    if launch:
        cmd = [sys.executable, str(REPO / "launch" / "local.py"), "--num_processes", str(launch), "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=ENV, cwd=REPO)


def test_one_process_writes_everything_and_two_processes_agree(setup, tmp_path):
    one = run_eval(*args(setup, tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-3000:]
    for name in ("metrics.json", "metrics.md", "predictions_3dpw.npz", "predictions_posescript.npz",
                 "gallery_3dpw.png", "gallery_posescript.png"):  # fmt: skip
        assert (tmp_path / "one" / name).exists(), name
    metrics = json.loads((tmp_path / "one" / "metrics.json").read_text())["benchmarks"]
    assert set(metrics["3dpw"]["ours"]) >= {"n", "mpjpe_mm", "pa_mpjpe_mm", "no_pose_rate"}
    assert set(metrics["posescript"]["ours"]) >= {"r_p2t@1", "r_t2p@10", "mrecall", "fid", "no_pose_rate"}
    preds = np.load(tmp_path / "one" / "predictions_3dpw.npz")
    assert preds["global_orient"].shape == (metrics["3dpw"]["ours"]["n"], 3) and preds["body_pose"].shape[1] == 69
    assert "ChatPose-13B (paper)" in one.stdout and "mean pose" in one.stdout

    two = run_eval(*args(setup, tmp_path / "two", "3dpw,posescript", "--gallery_size=0"), launch=2)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]
    again = json.loads((tmp_path / "two" / "metrics.json").read_text())["benchmarks"]
    for name in ("3dpw", "posescript"):
        for key, value in metrics[name]["ours"].items():
            assert again[name]["ours"][key] == pytest.approx(value, abs=1e-3), (name, key)
    np.testing.assert_array_equal(np.load(tmp_path / "two" / "predictions_3dpw.npz")["ids"], preds["ids"])

    # Another method's poses (ours, re-read) score the same through --predictions, no model needed.
    other = run_eval(*[a for a in args(setup, tmp_path / "other", "3dpw") if not a.startswith("--checkpoint")],
                     f"--predictions={tmp_path / 'one' / 'predictions_3dpw.npz'}", "--gallery_size=0")  # fmt: skip
    assert other.returncode == 0, other.stderr[-3000:]
    scored = json.loads((tmp_path / "other" / "metrics.json").read_text())["benchmarks"]["3dpw"]["ours"]
    assert scored["mpjpe_mm"] == pytest.approx(metrics["3dpw"]["ours"]["mpjpe_mm"], abs=1e-3)


def test_missing_benchmark_folder_and_bad_predictions_are_named(setup, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_eval(*[a if not a.startswith("--data_dir") else f"--data_dir={empty}" for a in args(setup, tmp_path)])
    assert result.returncode == 1 and str(empty) in result.stderr and "3dpw" in result.stderr, result.stderr

    from chatpose_jax.eval.benchmarks import read_benchmark
    from chatpose_jax.eval.predictions import PredictionsFileError, load_predictions

    ids = read_benchmark("3dpw", setup["data_dir"], with_images=False).ids
    path = tmp_path / "p.npz"
    kept = list(ids[2:]) + ["ghost/1.jpg"]
    np.savez(path, ids=np.array(kept), global_orient=np.zeros((len(kept), 3)), body_pose=np.zeros((len(kept), 69)))
    with pytest.raises(PredictionsFileError, match=r"2 of the benchmark's \d+ ids are missing: .*1 ids are not in"):
        load_predictions(str(path), ids)
