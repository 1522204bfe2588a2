"""`tpu-vm`: create TPU VMs (a queued resource; several slices for multislice) and drive the job over ssh.

As MaxText's multihost runner: install on every worker, clear a stale TPU lock, start the job on
all workers at once (every host must run the same program), one log file per worker under
`logs/NAME/`, worker 0's shown here, and when one worker fails every worker's job is stopped.
"""

from __future__ import annotations

import shlex

from launch import render
from launch.render import Parallel, Step
from launch.spec import LaunchSpec, SpecError
from launch.targets import queued_resource


def ssh(spec: LaunchSpec, node: str, worker: str, command: str) -> Step:
    argv = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", node, *queued_resource.gcloud_where(spec)]
    return Step((*argv, f"--worker={worker}", "--command", command))


def job_command(spec: LaunchSpec) -> str:
    """What each worker runs: records its pid (so it can be stopped), then becomes the program."""
    return "\n".join(
        [
            f'cd "$HOME/{spec.code_dir}" || exit 1',
            'export PATH="$HOME/.local/bin:$PATH"',
            render.exports(queued_resource.tpu_env(spec)),
            f"echo $$ > {render.JOB_PID_FILE}",
            "exec " + shlex.join(render.program_argv(spec)),
        ]
    )


def log_path(spec: LaunchSpec, node_index: int, worker: int) -> str:
    return f"logs/{spec.name}/slice-{node_index}-worker-{worker}.log"


def plan(spec: LaunchSpec) -> list:
    if spec.code is None:
        raise SpecError("tpu-vm: --commit (with --repo) or --wheel says where workers get the code")
    nodes = queued_resource.node_names(spec)
    setup = "set -e\n" + render.code_setup(spec, "tpu")
    steps: list = [queued_resource.create(spec), queued_resource.wait_active(spec)]
    steps += [ssh(spec, node, "all", setup) for node in nodes]
    steps += [ssh(spec, node, "all", render.clear_tpu_lock()) for node in nodes]
    workers = [(i, node, w) for i, node in enumerate(nodes) for w in range(spec.tpu.vms)]
    steps.append(
        Parallel(
            steps=tuple(ssh(spec, node, str(w), job_command(spec)) for _, node, w in workers),
            logs=tuple(log_path(spec, i, w) for i, _, w in workers),
            show=0,
            on_failure=tuple(ssh(spec, node, "all", render.stop_job()) for node in nodes),
        )
    )
    return steps


def teardown(spec: LaunchSpec) -> list:
    return queued_resource.teardown(spec)
