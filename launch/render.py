"""Pieces every target shares: the program's argv, its environment, the code setup, and steps.

A target's plan is a list of steps; `script(steps)` prints them as the bash script that runs them
(what `--dry_run` shows), and `launch/runner.py` executes the same steps.
"""

from __future__ import annotations

import dataclasses
import posixpath
import shlex

from launch.spec import LaunchSpec

HEREDOC = "CHATPOSE_EOF"
JOB_PID_FILE = "/tmp/chatpose-job.pid"  # on each TPU worker: the running job, so it can be stopped

# H100 settings from NVIDIA's JAX-Toolbox and JAX's GPU performance tips.
H100_XLA_FLAGS = (
    "--xla_gpu_enable_latency_hiding_scheduler=true",
    "--xla_gpu_enable_triton_gemm=false",
    "--xla_gpu_enable_highest_priority_async_stream=true",
    "--xla_gpu_all_reduce_combine_threshold_bytes=1073741824",
    "--xla_gpu_all_gather_combine_threshold_bytes=134217728",
    "--xla_gpu_reduce_scatter_combine_threshold_bytes=134217728",
)
H100_ENV = (
    ("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.90"),
    ("CUDA_DEVICE_MAX_CONNECTIONS", "1"),
    ("NCCL_NVLS_ENABLE", "1"),
    ("XLA_FLAGS", " ".join(H100_XLA_FLAGS)),
)


@dataclasses.dataclass(frozen=True)
class Step:
    """One command. `stdin` feeds it (a manifest, a batch script); `until`: rerun until its output equals this."""

    argv: tuple[str, ...]
    stdin: str | None = None
    until: str | None = None
    poll_s: int = 30


@dataclasses.dataclass(frozen=True)
class WriteFile:
    """Writes `text` to `path` (relative to where launch.py runs), e.g. a startup script."""

    path: str
    text: str


@dataclasses.dataclass(frozen=True)
class Parallel:
    """Commands started at once, one log file each; `show` is echoed; when one fails the rest end, then `on_failure` runs."""

    steps: tuple[Step, ...]
    logs: tuple[str, ...]
    show: int = 0
    on_failure: tuple[Step, ...] = ()


def program_argv(spec: LaunchSpec) -> list[str]:
    """The invocation every target ends in: `chatpose-train --config ... --workdir ... --config.x=y ...`."""
    if spec.program == "train":
        return ["chatpose-train", "--config", spec.config, "--workdir", spec.workdir, *spec.overrides, *spec.extra_args]
    if spec.program == "eval":
        return ["chatpose-eval", *spec.extra_args]
    return [spec.python, "-m", "chatpose_jax.parallel.check", *spec.extra_args]


def job_env(spec: LaunchSpec, platform: tuple[tuple[str, str], ...] = ()) -> list[tuple[str, str]]:
    """The program's variables: the platform's, the start timeouts, then the user's `--env`."""
    return [
        *platform,
        ("CHATPOSE_INIT_TIMEOUT_S", str(spec.init_timeout_s)),
        ("CHATPOSE_HEARTBEAT_TIMEOUT_S", str(spec.heartbeat_timeout_s)),
        *spec.env,
    ]


def exports(env) -> str:
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in env)


def code_setup(spec: LaunchSpec, extra: str, sudo: bool = False) -> str:
    """Shell lines that put the code at $HOME/<code_dir> (or /opt for root startup scripts) and install it.

    Idempotent: a restarted or requeued job runs them again and gets the same commit.
    """
    code = spec.code
    assert code is not None
    home = "/opt" if sudo else "$HOME"
    where = f'"{home}/{spec.code_dir}"'
    pip = "python3 -m pip install --quiet --upgrade pip && python3 -m pip install --quiet"
    if code.kind == "git":
        return "\n".join(
            [
                f"if [ ! -d {where}/.git ]; then git clone --quiet {shlex.quote(code.location)} {where}; fi",
                f"cd {where} || exit 1",
                "git fetch --quiet origin",
                f"git checkout --quiet --detach {code.commit}",
                f"{pip} -e {shlex.quote('.[' + extra + ']')}",
            ]
        )
    wheel = posixpath.basename(code.location)
    lines = [f"mkdir -p {where}/{shlex.quote(posixpath.dirname(spec.config_file) or '.')}", f"cd {where} || exit 1"]
    if code.location.startswith("gs://"):
        lines.append(f"gcloud storage cp {shlex.quote(code.location)} ./{shlex.quote(wheel)}")
    else:
        lines.append(f"cp {shlex.quote(code.location)} ./{shlex.quote(wheel)}")
    lines.append(f"{pip} {shlex.quote('./' + wheel + '[' + extra + ']')}")
    if spec.config and code.config_text:
        text = code.config_text if code.config_text.endswith("\n") else code.config_text + "\n"
        lines.append(f"cat > {shlex.quote(spec.config_file)} <<'{HEREDOC}'\n{text}{HEREDOC}")
    return "\n".join(lines)


def clear_tpu_lock(sudo: str = "sudo ") -> str:
    """Ends whatever holds the chips from an earlier run and removes libtpu's lock file."""
    return f"{sudo}fuser -k /dev/accel* /dev/vfio/* 2>/dev/null || true\n{sudo}rm -f /tmp/libtpu_lockfile"


def stop_job() -> str:
    """Sends SIGTERM (the trainer saves a checkpoint) to the job a worker runs."""
    return f'if [ -f {JOB_PID_FILE} ]; then kill -TERM "$(cat {JOB_PID_FILE})" 2>/dev/null || true; fi'


def _heredoc(text: str) -> str:
    body = text if text.endswith("\n") else text + "\n"
    if f"\n{HEREDOC}\n" in "\n" + body:
        raise ValueError(f"text contains the heredoc marker {HEREDOC}")
    return f"<<'{HEREDOC}'\n{body}{HEREDOC}"


def step_line(step: Step) -> str:
    cmd = shlex.join(step.argv)
    if step.until is not None:
        return f'until [ "$({cmd})" = {shlex.quote(step.until)} ]; do sleep {step.poll_s}; done'
    return f"{cmd} {_heredoc(step.stdin)}" if step.stdin is not None else cmd


def script(steps) -> str:
    """The plan as a bash script: exactly what the runner executes, in order."""
    # SC2016: the $VARIABLES inside ssh commands are meant for the workers' shells.
    out = ["#!/usr/bin/env bash", "# shellcheck disable=SC2016", "set -euo pipefail"]
    for step in steps:
        if isinstance(step, WriteFile):
            folder = posixpath.dirname(step.path)
            if folder:
                out.append(f"mkdir -p {shlex.quote(folder)}")
            out.append(f"cat > {shlex.quote(step.path)} {_heredoc(step.text)}")
        elif isinstance(step, Parallel):
            folders = sorted({posixpath.dirname(log) for log in step.logs} - {""})
            out.extend(f"mkdir -p {shlex.quote(f)}" for f in folders)
            out.append("pids=()")
            for sub, log in zip(step.steps, step.logs, strict=True):
                out.append(f"{step_line(sub)} > {shlex.quote(log)} 2>&1 &")
                out.append('pids+=("$!")')
            out.append(f"tail -f {shlex.quote(step.logs[step.show])} &")
            out.append("tail_pid=$!")
            out.append("status=0")
            out.append(f"for _ in $(seq {len(step.steps)}); do wait -n || {{ status=$?; break; }}; done")
            out.append('if [ "$status" -ne 0 ]; then')
            out.append('  kill "${pids[@]}" 2>/dev/null || true')
            out.extend(f"  {step_line(s)} || true" for s in step.on_failure)
            out.append("fi")
            out.append('kill "$tail_pid" 2>/dev/null || true')
            out.append('exit "$status"')
        else:
            out.append(step_line(step))
    return "\n".join(out) + "\n"
