"""Console scripts: each is installed, answers --help, and says plainly what it cannot do yet."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
SCRIPTS = [
    "chatpose-train",
    "chatpose-eval",
    "chatpose-chat",
    "chatpose-predict",
    "chatpose-convert",
    "chatpose-data",
    "chatpose-compile",
]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}


def run(*args, timeout=120):
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout, env=ENV)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    result = run(script, "--helpfull")
    assert result.returncode == 0, result.stderr
    assert "flags" in result.stdout.lower()


def test_config_override_error_names_the_field(tmp_path):
    result = run("chatpose-train", "--config=configs/tiny.py", f"--workdir={tmp_path}", "--config.optimizer.lrr=1")
    assert result.returncode == 1
    assert "--config.optimizer.lrr=1" in result.stderr and "Traceback" not in result.stderr


def test_missing_required_flag_is_one_line(tmp_path):
    result = run("chatpose-train", f"--workdir={tmp_path}")
    assert result.returncode == 1
    assert "--config" in result.stderr and "Traceback" not in result.stderr


def test_missing_config_file_is_reported(tmp_path):
    result = run("chatpose-train", f"--config={tmp_path}/nope.py", f"--workdir={tmp_path}")
    assert result.returncode != 0
    assert "nope.py" in result.stderr
