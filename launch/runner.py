"""Executes a target's plan: the same steps `render.script` prints for `--dry_run`."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from launch.local import end_processes
from launch.render import Parallel, Step, WriteFile, step_line


def run_step(step: Step, poll_s: float | None = None) -> int:
    """Runs one command (polling it when it has `until`); returns its status, 127 when it is missing."""
    try:
        while True:
            if step.until is None:
                return subprocess.run(step.argv, input=step.stdin, text=True).returncode
            result = subprocess.run(step.argv, input=step.stdin, text=True, capture_output=True)
            if result.returncode != 0:
                sys.stderr.write(result.stderr)
                return result.returncode
            if result.stdout.strip() == step.until:
                return 0
            print(f"launch: waiting for {step.until} (now {result.stdout.strip() or 'nothing'})", flush=True)
            time.sleep(step.poll_s if poll_s is None else poll_s)
    except FileNotFoundError:
        print(f"launch: cannot start {step.argv[0]!r}: not found on PATH", file=sys.stderr)
        return 127


def _follow(path: Path, stop: threading.Event) -> None:
    """Echoes the lines appended to `path` until `stop` is set and the file is drained."""
    with open(path, encoding="utf-8", errors="replace") as f:
        while True:
            line = f.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            elif stop.is_set():
                return
            else:
                time.sleep(0.1)


def run_parallel(group: Parallel, poll_s: float | None = None) -> int:
    """Starts every command, each into its log; returns 0, or the first failure's status after stopping all."""
    procs: list[subprocess.Popen] = []
    files = []
    for log in group.logs:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        files.append(open(log, "w", encoding="utf-8"))
    stop = threading.Event()
    follower = threading.Thread(target=_follow, args=(Path(group.logs[group.show]), stop), daemon=True)
    follower.start()
    status = 0
    try:
        for step, f in zip(group.steps, files, strict=True):
            procs.append(
                subprocess.Popen(
                    step.argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
                )
            )
        while None in [p.poll() for p in procs]:
            failed = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode not in (None, 0)]
            if failed:
                break
            time.sleep(0.2)
        failed = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode not in (None, 0)]
        if failed:
            index, status = failed[0]
            print(
                f"launch: worker {index} exited with status {status} (log {group.logs[index]}); stopping all",
                file=sys.stderr,
            )
            end_processes(procs, 10.0)
            for step in group.on_failure:
                run_step(step, poll_s)
    except KeyboardInterrupt:
        end_processes(procs, 10.0)
        for step in group.on_failure:
            run_step(step, poll_s)
        status = 130
    except FileNotFoundError:
        end_processes(procs, 10.0)
        print(f"launch: cannot start {group.steps[0].argv[0]!r}: not found on PATH", file=sys.stderr)
        status = 127
    finally:
        stop.set()
        follower.join(timeout=5)
        for f in files:
            f.close()
    return status


def run(steps, poll_s: float | None = None) -> int:
    """Runs the plan in order; stops at the first failure and returns its status."""
    for step in steps:
        if isinstance(step, WriteFile):
            Path(step.path).parent.mkdir(parents=True, exist_ok=True)
            Path(step.path).write_text(step.text, encoding="utf-8")
            continue
        if isinstance(step, Parallel):
            status = run_parallel(step, poll_s)
        else:
            print(f"launch: {step_line(Step(step.argv))}", flush=True)
            status = run_step(step, poll_s)
        if status != 0:
            return status
    return 0
