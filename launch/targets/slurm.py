"""`slurm`: an sbatch script, one task per GPU; JAX finds its peers from SLURM's variables.

No coordinator arguments: `chatpose_jax.parallel.initialize()` reads the step's node list, task
count and rank, and each task takes GPU `SLURM_LOCALID`. Every task sees all GPUs of its node (no
`--gpus-per-task`, whole nodes), which is what that mapping needs. `--requeue` and a SIGTERM
before the time limit let the trainer save and resume after preemption.
"""

from __future__ import annotations

import shlex

from launch import render
from launch.render import Step
from launch.spec import LaunchSpec, SpecError


def batch_script(spec: LaunchSpec) -> str:
    if spec.code is None:
        raise SpecError("slurm: --commit (with --repo) or --wheel says where the nodes get the code")
    sbatch = [
        f"--job-name={spec.name}",
        f"--nodes={spec.num_nodes}",
        f"--ntasks-per-node={spec.gpus_per_node}",
        f"--gpus-per-node={spec.gpus_per_node}",
        "--exclusive",
        "--requeue",
        "--signal=TERM@300",
        f"--output={spec.name}-%j.out",  # in the submission directory, which exists
    ]
    sbatch += [f"--partition={spec.partition}"] if spec.partition else []
    sbatch += [f"--time={spec.time_limit}"] if spec.time_limit else []
    srun = ["srun", "--kill-on-bad-exit=1", f"--ntasks-per-node={spec.gpus_per_node}"]
    srun += ["-o", f"logs/{spec.name}-%j-%t.txt", *render.program_argv(spec)]
    return (
        "\n".join(
            [
                "#!/bin/bash",
                *(f"#SBATCH {line}" for line in sbatch),
                "set -euo pipefail",
                "# The code, once per job on the batch host (a shared file system serves the other nodes).",
                render.code_setup(spec, "gpu"),
                'export PATH="$HOME/.local/bin:$PATH"',
                "mkdir -p logs",
                render.exports(render.job_env(spec, render.H100_ENV)),
                shlex.join(srun),
            ]
        )
        + "\n"
    )


def plan(spec: LaunchSpec) -> list:
    return [Step(("sbatch",), stdin=batch_script(spec))]


def teardown(spec: LaunchSpec) -> list:
    return [Step(("scancel", "--name", spec.name))]
