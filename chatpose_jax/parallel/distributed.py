"""Multi-host start: one `initialize()` for TPU pods, multislice, GKE, SLURM and `launch/local.py`.

Every entry point calls `initialize()` with no arguments before any other JAX work. It finds out
where it runs from the environment (`detect_platform`, a pure function of the variables):

- `local`: `launch/local.py`'s CHATPOSE_COORDINATOR_ADDRESS / _NUM_PROCESSES / _PROCESS_ID;
- `explicit`: JAX_COORDINATOR_ADDRESS with JAX_NUM_PROCESSES and JAX_PROCESS_ID (GKE GPU JobSets);
- `slurm`: the variables srun sets; coordinator = first host of the step's node list, port
  JAX_COORDINATOR_PORT or `SLURM_JOB_ID % 4096 + 61440`, one GPU per task (`SLURM_LOCALID`);
- `multislice`, `tpu`, `gke-tpu`, `jax`: MEGASCALE_* / TPU_* variables, CHATPOSE_PLATFORM=tpu (the
  TPU VM launchers) or a lone JAX_COORDINATOR_ADDRESS: JAX finds the rest itself;
- `single`: none of these, a lone process.

Cold starts after preemption and long compiles need more than JAX's default timeouts:
CHATPOSE_INIT_TIMEOUT_S (default 300) bounds the wait for the other processes and
CHATPOSE_HEARTBEAT_TIMEOUT_S (default 100) the silence before a peer is declared dead. When the
wait runs out, the error names the process, the platform and the coordinator address it awaited.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping

import jax

ENV_COORDINATOR = "CHATPOSE_COORDINATOR_ADDRESS"  # host:port of process 0
ENV_NUM_PROCESSES = "CHATPOSE_NUM_PROCESSES"
ENV_PROCESS_ID = "CHATPOSE_PROCESS_ID"
ENV_CPU_COLLECTIVES = "CHATPOSE_CPU_COLLECTIVES"  # "gloo" for CPU-only multi-process runs
ENV_PLATFORM = "CHATPOSE_PLATFORM"  # "tpu": set by the TPU VM launchers, where JAX reads the VM's metadata
ENV_INIT_TIMEOUT = "CHATPOSE_INIT_TIMEOUT_S"
ENV_HEARTBEAT_TIMEOUT = "CHATPOSE_HEARTBEAT_TIMEOUT_S"

DEFAULT_INIT_TIMEOUT_S = 300
DEFAULT_HEARTBEAT_TIMEOUT_S = 100
# JAX's own deadline is set this much later than ours, so that our message, not an abort, ends the wait.
_JAX_DEADLINE_MARGIN_S = 30

_SLURM_VARS = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")


class DistributedStartError(RuntimeError):
    """The processes of a job did not find each other in time."""


@dataclasses.dataclass(frozen=True)
class Platform:
    """Where this process runs, as far as the environment tells. None: JAX finds it out itself."""

    name: str  # local, explicit, slurm, jax, multislice, gke-tpu, tpu, single
    coordinator: str | None = None  # host:port
    num_processes: int | None = None
    process_id: int | None = None
    local_device_ids: tuple[int, ...] | None = None

    @property
    def explicit(self) -> bool:
        """Whether coordinator, count and index are all known here (passed to JAX as arguments)."""
        return None not in (self.coordinator, self.num_processes, self.process_id)


def slurm_first_host(node_list: str) -> str:
    """The first host of a SLURM node list: 'gpu[003-010,12],cpu1' -> 'gpu003', 'a,b' -> 'a'."""
    cut = next((i for i, ch in enumerate(node_list) if ch in ",["), len(node_list))
    if cut == len(node_list) or node_list[cut] == ",":
        return node_list[:cut]
    ranges = node_list[cut + 1 :]
    end = next((i for i, ch in enumerate(ranges) if ch in ",-]"), len(ranges))
    return node_list[:cut] + ranges[:end]


def slurm_port(env: Mapping[str, str]) -> int:
    """JAX's SLURM coordinator port: JAX_COORDINATOR_PORT, else one of 4096 derived from the job id."""
    if env.get("JAX_COORDINATOR_PORT"):
        return int(env["JAX_COORDINATOR_PORT"])
    return int(env["SLURM_JOB_ID"]) % 4096 + 61440


def detect_platform(env: Mapping[str, str]) -> Platform:
    """Which kind of job this process belongs to, from its environment variables alone."""
    if env.get(ENV_COORDINATOR):
        return Platform("local", env[ENV_COORDINATOR], int(env[ENV_NUM_PROCESSES]), int(env[ENV_PROCESS_ID]))
    if env.get("JAX_COORDINATOR_ADDRESS") and env.get("JAX_NUM_PROCESSES") and env.get("JAX_PROCESS_ID"):
        address = env["JAX_COORDINATOR_ADDRESS"]
        if ":" not in address and env.get("JAX_COORDINATOR_PORT"):
            address = f"{address}:{env['JAX_COORDINATOR_PORT']}"
        return Platform("explicit", address, int(env["JAX_NUM_PROCESSES"]), int(env["JAX_PROCESS_ID"]))
    if all(k in env for k in _SLURM_VARS):
        return Platform(
            "slurm",
            f"{slurm_first_host(env['SLURM_STEP_NODELIST'])}:{slurm_port(env)}",
            int(env["SLURM_NTASKS"]),
            int(env["SLURM_PROCID"]),
            (int(env["SLURM_LOCALID"]),),
        )
    if env.get("JAX_COORDINATOR_ADDRESS"):
        return Platform("jax", env["JAX_COORDINATOR_ADDRESS"])
    if env.get("MEGASCALE_COORDINATOR_ADDRESS"):
        return Platform("multislice", env["MEGASCALE_COORDINATOR_ADDRESS"])
    if env.get("TPU_WORKER_HOSTNAMES") and env.get("TPU_WORKER_ID"):
        hosts = env["TPU_WORKER_HOSTNAMES"].split(",")
        if len(hosts) > 1:
            return Platform("gke-tpu", hosts[0], len(hosts), int(env["TPU_WORKER_ID"]))
    if env.get("TPU_WORKER_HOSTNAMES") or env.get(ENV_PLATFORM) == "tpu":
        return Platform("tpu")
    return Platform("single")


def _timeout(value: float | None, name: str, default: int, env: Mapping[str, str]) -> int:
    if value is not None:
        return int(value)
    return int(float(env.get(name) or default))


def _wait_for_port(address: str, timeout_s: float) -> bool:
    """Whether host:port accepts TCP connections within `timeout_s`."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)


def _awaited(platform: Platform) -> str:
    if platform.process_id == 0 and platform.num_processes:
        return f"the other {platform.num_processes - 1} process(es) to register with this coordinator at {platform.coordinator}"
    return f"the coordinator (process 0) at {platform.coordinator or 'the address JAX derives from the platform'}"


def _start_message(platform: Platform, init_timeout_s: int) -> str:
    who = f"process {platform.process_id} of {platform.num_processes}" if platform.explicit else "this process"
    return f"{who} ({platform.name}) waited {init_timeout_s} s for {_awaited(platform)}"


def _watchdog(message: str, timeout_s: int) -> threading.Event:
    """Ends the process with `message` unless the returned event is set within `timeout_s`.

    JAX aborts in C++ when its own deadline passes, with a message that names neither the peer nor
    the address; this thread speaks first.
    """
    done = threading.Event()

    def watch():
        if not done.wait(timeout_s):
            sys.stderr.write(f"DistributedStartError: {message}; raise {ENV_INIT_TIMEOUT} for slow cold starts\n")
            sys.stderr.flush()
            os._exit(75)  # EX_TEMPFAIL: a restart may succeed

    threading.Thread(target=watch, name="chatpose-init-watchdog", daemon=True).start()
    return done


def initialize(
    init_timeout_s: float | None = None, heartbeat_timeout_s: float | None = None, env: Mapping[str, str] | None = None
) -> bool:
    """Joins the job's other processes, if there are any. Call before any other JAX work.

    Args:
      init_timeout_s: seconds to wait for the other processes (default: CHATPOSE_INIT_TIMEOUT_S or 300).
      heartbeat_timeout_s: seconds of silence before a peer counts as dead (CHATPOSE_HEARTBEAT_TIMEOUT_S or 100).
      env: the environment to read (default: os.environ).

    Returns:
      True when several processes take part (after initialisation), False for a lone process.

    Raises:
      DistributedStartError: the coordinator did not open within `init_timeout_s` (other processes
        than 0 check this first; process 0 waiting for missing peers is ended by a watchdog with
        the same message and status 75).
    """
    env = os.environ if env is None else env
    platform = detect_platform(env)
    if platform.name == "single":
        return False
    if env.get(ENV_CPU_COLLECTIVES):
        jax.config.update("jax_cpu_collectives_implementation", env[ENV_CPU_COLLECTIVES])
    init_timeout = _timeout(init_timeout_s, ENV_INIT_TIMEOUT, DEFAULT_INIT_TIMEOUT_S, env)
    heartbeat = _timeout(heartbeat_timeout_s, ENV_HEARTBEAT_TIMEOUT, DEFAULT_HEARTBEAT_TIMEOUT_S, env)
    message = _start_message(platform, init_timeout)
    start = time.monotonic()
    if platform.explicit and platform.process_id != 0 and not _wait_for_port(platform.coordinator, init_timeout):
        raise DistributedStartError(f"{message}: nothing listens there")
    kwargs = {
        "initialization_timeout": init_timeout + _JAX_DEADLINE_MARGIN_S,
        "heartbeat_timeout_seconds": heartbeat,
    }
    if platform.name in ("local", "explicit", "slurm"):
        kwargs.update(
            coordinator_address=platform.coordinator,
            num_processes=platform.num_processes,
            process_id=platform.process_id,
        )
        if platform.local_device_ids is not None and not env.get("JAX_PLATFORMS", "").startswith("cpu"):
            kwargs["local_device_ids"] = list(platform.local_device_ids)
    done = _watchdog(message, max(1, int(init_timeout - (time.monotonic() - start))))
    try:
        jax.distributed.initialize(**kwargs)
    finally:
        done.set()
    log_start(platform.name)
    return jax.process_count() > 1


def start_line(platform_name: str) -> str:
    """One line naming this process's place in the job: index, count, devices and slice."""
    local = jax.local_devices()
    slices = sorted({getattr(d, "slice_index", 0) for d in jax.devices()})
    return (
        f"chatpose: process {jax.process_index()}/{jax.process_count()} ({platform_name}): "
        f"{len(local)} local of {jax.device_count()} devices ({local[0].platform}), "
        f"slice {getattr(local[0], 'slice_index', 0)} of {len(slices)}"
    )


def log_start(platform_name: str) -> None:
    print(start_line(platform_name), file=sys.stderr, flush=True)


# The name the entry points used before the platforms were told apart.
initialize_distributed = initialize
