"""`queued-resource`: a TPU queued resource whose startup script installs the code and runs the job.

The startup script runs on every worker at every boot, so a slice that comes back after a
preemption starts the same command again, and `chatpose-train` resumes from the workdir's last
checkpoint. Its output goes to the VM's log (Cloud Logging); at the end it is copied to the workdir.
"""

from __future__ import annotations

import shlex

from launch import render
from launch.render import Step, WriteFile
from launch.spec import LaunchSpec, SpecError

STARTUP_LOG = "/var/log/chatpose-job.log"


def gcloud_where(spec: LaunchSpec) -> list[str]:
    if not spec.zone:
        raise SpecError(f"{spec.target}: --zone is required")
    return ["--zone", spec.zone, *(["--project", spec.project] if spec.project else [])]


def node_names(spec: LaunchSpec) -> list[str]:
    """The TPU VMs a queued resource creates: NAME, or NAME-0 .. NAME-(N-1) for multislice."""
    return [spec.name] if spec.num_slices == 1 else [f"{spec.name}-{i}" for i in range(spec.num_slices)]


def create(spec: LaunchSpec, startup_script: str | None = None) -> Step:
    tpu = spec.tpu
    argv = ["gcloud", "compute", "tpus", "queued-resources", "create", spec.name, *gcloud_where(spec)]
    argv += ["--accelerator-type", tpu.gcloud_type, "--runtime-version", tpu.runtime_version]
    if spec.num_slices == 1:
        argv += ["--node-id", spec.name]
    else:
        argv += ["--node-count", str(spec.num_slices), "--node-prefix", spec.name]
    argv += ["--spot"] if spec.spot else ["--reserved"] if spec.reserved else []
    if startup_script:
        argv += ["--metadata-from-file", f"startup-script={startup_script}"]
    return Step(tuple(argv))


def wait_active(spec: LaunchSpec) -> Step:
    """Polls until the queued resource's slices are up."""
    argv = ["gcloud", "compute", "tpus", "queued-resources", "describe", spec.name, *gcloud_where(spec)]
    return Step((*argv, "--format", "value(state.state)"), until="ACTIVE")


def tpu_env(spec: LaunchSpec) -> list[tuple[str, str]]:
    return render.job_env(spec, (("CHATPOSE_PLATFORM", "tpu"),))


def startup_script(spec: LaunchSpec) -> str:
    """Runs as root on every worker at every boot: install, clear the chips, run, keep the log."""
    job = shlex.join(render.program_argv(spec))
    lines = [
        "#!/bin/bash",
        "# chatpose-jax job: runs on every worker at every boot; training resumes from the workdir.",
        "set -uo pipefail",
        f"exec >> {STARTUP_LOG} 2>&1",
        "(",
        "set -e",
        render.code_setup(spec, "tpu", sudo=True),
        ")",
        render.clear_tpu_lock(sudo=""),
        f'cd "/opt/{spec.code_dir}" || exit 1',
        render.exports(tpu_env(spec)),
        "status=0",
        f"{job} || status=$?",
    ]
    if spec.workdir.startswith("gs://"):
        log = f"{spec.workdir.rstrip('/')}/logs/"
        lines.append(f'gcloud storage cp {STARTUP_LOG} {shlex.quote(log)}"$(hostname).log" || true')
    lines.append('exit "$status"')
    return "\n".join(lines) + "\n"


def script_path(spec: LaunchSpec) -> str:
    return f".launch/{spec.name}/startup.sh"


def plan(spec: LaunchSpec) -> list:
    if spec.code is None:
        raise SpecError("queued-resource: --commit (with --repo) or --wheel says where workers get the code")
    return [WriteFile(script_path(spec), startup_script(spec)), create(spec, script_path(spec)), wait_active(spec)]


def teardown(spec: LaunchSpec) -> list:
    argv = ["gcloud", "compute", "tpus", "queued-resources", "delete", spec.name, *gcloud_where(spec)]
    return [Step((*argv, "--force", "--quiet"))]
