"""`chatpose-data synth` and `chatpose-data prepare`, run through the console script's `main` in this
process (tests/cli_in_process.py; test_cli.py runs the installed scripts themselves)."""

import io
import os

import pytest
import tensorflow_datasets as tfds

import data_pipelines  # noqa: F401
from tests.cli_in_process import run_tool

pytestmark = pytest.mark.slow  # make test-fast leaves this file out (make test runs it)


def _run(*args):
    """(exit status, stdout, stderr) of `chatpose-data ARGS`."""
    out, err = io.StringIO(), io.StringIO()
    code = run_tool(["chatpose-data", *args], out, err)
    return code, out.getvalue(), err.getvalue()


def test_synth_then_prepare_then_read(tmp_path):
    out = tmp_path / "raw"
    sizes = ["--num_poses=20", "--num_hmr_images=6", "--num_vqa_images=4", "--num_spg=5", "--num_rpe=3"]
    code, _, err = _run("synth", f"--out={out}", *sizes)
    assert code == 0, err[-2000:]
    for name in ("posescript", "hmr_images", "llava_instruct", "spg", "rpe", "tokenizer"):
        assert os.path.isdir(out / name), f"synth wrote no {name}"
    code, stdout, err = _run("prepare", "spg", f"--manual_dir={out / 'spg'}", f"--data_dir={tmp_path / 'tfds'}")
    assert code == 0, err[-2000:]
    assert "test: 5" in stdout
    assert tfds.builder("spg", data_dir=str(tmp_path / "tfds")).info.splits["test"].num_examples == 5


def test_prepare_errors_are_one_line(tmp_path):
    # An exception other than the tool's one-line exit would propagate here (a traceback in the script).
    code, _, err = _run("prepare", "posescript", f"--manual_dir={tmp_path / 'nowhere'}", f"--data_dir={tmp_path}")
    assert code == 1 and "does not exist" in err and "Traceback" not in err
    code, _, err = _run("prepare", "imagenet", f"--manual_dir={tmp_path}", f"--data_dir={tmp_path}")
    assert code == 1 and "usage" in err
