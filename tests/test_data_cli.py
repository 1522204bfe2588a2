"""`chatpose-data synth` and `chatpose-data prepare`, run as the console script."""

import os
import subprocess
import sys

import tensorflow_datasets as tfds

import data_pipelines  # noqa: F401

CLI = [sys.executable, "-m", "data_pipelines.cli"]


def _run(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=240)


def test_synth_then_prepare_then_read(tmp_path):
    out = tmp_path / "raw"
    sizes = ["--num_poses=20", "--num_hmr_images=6", "--num_vqa_images=4", "--num_spg=5", "--num_rpe=3"]
    result = _run("synth", f"--out={out}", *sizes)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("posescript", "hmr_images", "llava_instruct", "spg", "rpe", "tokenizer"):
        assert os.path.isdir(out / name), f"synth wrote no {name}"
    result = _run("prepare", "spg", f"--manual_dir={out / 'spg'}", f"--data_dir={tmp_path / 'tfds'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test: 5" in result.stdout
    assert tfds.builder("spg", data_dir=str(tmp_path / "tfds")).info.splits["test"].num_examples == 5


def test_prepare_errors_are_one_line(tmp_path):
    result = _run("prepare", "posescript", f"--manual_dir={tmp_path / 'nowhere'}", f"--data_dir={tmp_path}")
    assert result.returncode == 1 and "does not exist" in result.stderr and "Traceback" not in result.stderr
    result = _run("prepare", "imagenet", f"--manual_dir={tmp_path}", f"--data_dir={tmp_path}")
    assert result.returncode == 1 and "usage" in result.stderr
