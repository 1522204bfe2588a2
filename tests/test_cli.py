"""Console scripts: each is installed, answers --help, and says plainly what it cannot do yet."""

import io
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tests.cli_in_process import CONSOLE_SCRIPTS, run_tool

BIN = Path(sys.executable).parent
SCRIPTS = list(CONSOLE_SCRIPTS)
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}


def run(*args, timeout=120):
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout, env=ENV)


def test_every_console_script_is_installed_and_runs_its_tools_main():
    installed = {e.name: e.value for e in metadata.entry_points(group="console_scripts") if e.name in CONSOLE_SCRIPTS}
    assert installed == {name: f"{module}:run" for name, module in CONSOLE_SCRIPTS.items()}
    for script in SCRIPTS:
        assert os.access(BIN / script, os.X_OK), f"{script} is not installed in {BIN}"
    # One of them as a process, as a user starts it (the others' --help runs in this process below).
    result = run("chatpose-compile", "--helpfull")
    assert result.returncode == 0, result.stderr
    assert "--topology" in result.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    out = io.StringIO()
    assert run_tool([script, "--helpfull"], out) == 0, out.getvalue()[-2000:]
    assert "flags" in out.getvalue().lower()
    assert CONSOLE_SCRIPTS[script] in out.getvalue()  # the tool's own flags are listed under its module


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
