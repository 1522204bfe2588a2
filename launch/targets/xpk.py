"""`xpk`: `xpk workload create` on a GKE cluster; the Docker image holds the code, xpk restarts on failure."""

from __future__ import annotations

import shlex

from launch import render
from launch.render import Step
from launch.spec import LaunchSpec, SpecError, is_tpu, parse_gpu


def workload_command(spec: LaunchSpec) -> str:
    env = render.job_env(spec, () if is_tpu(spec.accelerator) else render.H100_ENV)
    return " ".join(f"{k}={shlex.quote(v)}" for k, v in env) + " " + shlex.join(render.program_argv(spec))


def plan(spec: LaunchSpec) -> list:
    if not (spec.cluster and spec.docker_image):
        raise SpecError("xpk: --cluster and --docker_image are required")
    argv = ["xpk", "workload", "create", "--cluster", spec.cluster, "--workload", spec.name]
    argv += ["--docker-image", spec.docker_image]
    argv += ["--project", spec.project] if spec.project else []
    argv += ["--zone", spec.zone] if spec.zone else []
    if is_tpu(spec.accelerator):
        argv += ["--tpu-type", spec.tpu.gcloud_type, "--num-slices", str(spec.num_slices)]
    else:
        parse_gpu(spec.accelerator)
        argv += ["--device-type", spec.accelerator, "--num-nodes", str(spec.num_nodes)]
    argv += ["--max-restarts", str(spec.max_restarts), "--command", workload_command(spec)]
    return [Step(tuple(argv))]


def teardown(spec: LaunchSpec) -> list:
    return [Step(("xpk", "workload", "delete", "--cluster", spec.cluster, "--workload", spec.name))]
