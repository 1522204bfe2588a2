"""launch/local.py: N processes form one JAX job on 127.0.0.1; a failure ends them all."""

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCAL = REPO / "launch" / "local.py"


def launch(*args, timeout=180):
    return subprocess.run(
        [sys.executable, str(LOCAL), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def test_two_processes_run_a_global_collective():
    result = launch(
        "--num_processes", "2", "--devices_per_process", "2", "--", sys.executable, "-m", "chatpose_jax.parallel.check"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for index in (0, 1):
        assert any(
            line.startswith(f"[{index}] process {index}/2: 2 local of 4 devices (cpu); global sum 6 (expected 6)")
            for line in lines
        ), result.stdout


def test_a_failing_process_ends_the_others_and_sets_the_status():
    script = "import os, time, sys\nif os.environ['CHATPOSE_PROCESS_ID'] == '2': sys.exit(7)\ntime.sleep(120)"
    start = time.monotonic()
    result = launch("--num_processes", "3", "--grace_s", "2", "--", sys.executable, "-c", script, timeout=60)
    assert result.returncode == 7
    assert "process 2 exited with status 7" in result.stderr
    assert time.monotonic() - start < 30  # the sleepers were ended, not waited for


def test_every_line_is_prefixed_with_its_process_index():
    script = "import os; print('hello from', os.environ['CHATPOSE_PROCESS_ID'], os.environ['CHATPOSE_NUM_PROCESSES'])"
    result = launch("--num_processes", "3", "--", sys.executable, "-c", script)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == [f"[{i}] hello from {i} 3" for i in range(3)]


def test_usage_errors():
    assert launch("--num_processes", "2").returncode == 2
    assert launch("--num_processes", "0", "--", "true").returncode == 2
    missing = launch("--num_processes", "1", "--", "/nonexistent/command")
    assert missing.returncode == 127 and "cannot start" in missing.stderr
