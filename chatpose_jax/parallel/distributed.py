"""Multi-host start: `jax.distributed.initialize` on pods and clusters, or from `launch/local.py`.

`launch/local.py` starts N local processes and tells each where its peers are through the
variables below; on TPU pods, GKE and SLURM, JAX finds its peers from the platform's own
variables and `initialize()` needs no arguments.
"""

from __future__ import annotations

import os

import jax

ENV_COORDINATOR = "CHATPOSE_COORDINATOR_ADDRESS"  # host:port of process 0
ENV_NUM_PROCESSES = "CHATPOSE_NUM_PROCESSES"
ENV_PROCESS_ID = "CHATPOSE_PROCESS_ID"
ENV_CPU_COLLECTIVES = "CHATPOSE_CPU_COLLECTIVES"  # "gloo" for CPU-only multi-process runs

_CLUSTER_MARKERS = ("SLURM_JOB_ID", "TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS", "JAX_COORDINATOR_ADDRESS")


def initialize_distributed() -> bool:
    """Joins the job's other processes, if there are any. Call before any other JAX work.

    Returns:
      True when several processes take part (after initialisation), False for a lone process.
    """
    if os.environ.get(ENV_COORDINATOR):
        if os.environ.get(ENV_CPU_COLLECTIVES):
            jax.config.update("jax_cpu_collectives_implementation", os.environ[ENV_CPU_COLLECTIVES])
        jax.distributed.initialize(
            coordinator_address=os.environ[ENV_COORDINATOR],
            num_processes=int(os.environ[ENV_NUM_PROCESSES]),
            process_id=int(os.environ[ENV_PROCESS_ID]),
        )
        return True
    if any(os.environ.get(k) for k in _CLUSTER_MARKERS):
        # TPU pods, multislice, SLURM: JAX reads the platform's own variables.
        jax.distributed.initialize()
        return jax.process_count() > 1
    return False
