"""`local`: `launch/local.py`, N processes on this machine with gloo CPU collectives."""

from __future__ import annotations

from launch import render
from launch.render import Step
from launch.spec import LaunchSpec


def plan(spec: LaunchSpec) -> list:
    argv = [spec.python, "launch/local.py", "--num_processes", str(spec.num_processes)]
    argv += ["--devices_per_process", str(spec.devices_per_process), "--"]
    argv += ["env", *(f"{k}={v}" for k, v in spec.env)] if spec.env else []
    return [Step((*argv, *render.program_argv(spec)))]


def teardown(spec: LaunchSpec) -> list:
    return []
