"""chatpose_jax.parallel.initialize(): platform detection, SLURM auto-start, named timeouts."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatpose_jax.parallel import distributed

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_env(**extra) -> dict:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CHATPOSE_", "JAX_", "MEGASCALE_", "TPU_"))
    }
    env.update(
        JAX_PLATFORMS="cpu",
        PYTHONUNBUFFERED="1",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        CHATPOSE_CPU_COLLECTIVES="gloo",
    )
    env.update(extra)
    return env


@pytest.mark.parametrize(
    "node_list, first",
    [
        ("localhost", "localhost"),
        ("node001,host2", "node001"),
        ("node[001-015],host2", "node001"),
        ("gpu[007,009-012]", "gpu007"),
        ("a100-[3]", "a100-3"),
    ],
)
def test_slurm_coordinator_is_the_first_host_of_the_node_list(node_list, first):
    assert distributed.slurm_first_host(node_list) == first


def test_detect_platform_reads_each_platforms_variables():
    slurm = {"SLURM_JOB_ID": "5000", "SLURM_STEP_NODELIST": "gpu[2-5]", "SLURM_NTASKS": "32"}
    slurm.update(SLURM_PROCID="9", SLURM_LOCALID="1")
    p = distributed.detect_platform(slurm)
    assert (p.name, p.coordinator, p.num_processes, p.process_id, p.local_device_ids) == (
        "slurm",
        f"gpu2:{5000 % 4096 + 61440}",
        32,
        9,
        (1,),
    )
    assert distributed.detect_platform({**slurm, "JAX_COORDINATOR_PORT": "1234"}).coordinator == "gpu2:1234"
    gke_gpu = {"JAX_COORDINATOR_ADDRESS": "run-workers-0-0.run", "JAX_COORDINATOR_PORT": "8482"}
    gke_gpu.update(JAX_NUM_PROCESSES="4", JAX_PROCESS_ID="3")
    p = distributed.detect_platform(gke_gpu)
    assert (p.name, p.coordinator, p.num_processes, p.process_id) == ("explicit", "run-workers-0-0.run:8482", 4, 3)
    assert distributed.detect_platform({"MEGASCALE_COORDINATOR_ADDRESS": "h:8080"}).name == "multislice"
    gke_tpu = distributed.detect_platform({"TPU_WORKER_HOSTNAMES": "a,b,c,d", "TPU_WORKER_ID": "2"})
    assert (gke_tpu.name, gke_tpu.num_processes, gke_tpu.process_id) == ("gke-tpu", 4, 2)
    assert distributed.detect_platform({"CHATPOSE_PLATFORM": "tpu"}).name == "tpu"
    assert distributed.detect_platform({}).name == "single"
    assert not distributed.initialize(env={})  # a lone process starts nothing


def test_two_slurm_tasks_find_each_other_without_arguments():
    port = str(free_port())
    base = dict(SLURM_JOB_ID="4242", SLURM_STEP_NODELIST="localhost", SLURM_NTASKS="2", JAX_COORDINATOR_PORT=port)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "chatpose_jax.parallel.check"],
            env=cpu_env(**base, SLURM_PROCID=str(i), SLURM_LOCALID=str(i)),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    for i, (p, out) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 0, out
        assert f"chatpose: process {i}/2 (slurm): 2 local of 4 devices (cpu), slice 0 of 1" in out, out
        assert f"process {i}/2: 2 local of 4 devices (cpu); global sum 6 (expected 6)" in out, out


def test_a_missing_coordinator_fails_within_the_timeout_naming_the_address():
    port = free_port()  # nothing listens here
    env = cpu_env(CHATPOSE_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", CHATPOSE_NUM_PROCESSES="2", CHATPOSE_PROCESS_ID="1")
    code = "from chatpose_jax import parallel; parallel.initialize(init_timeout_s=3)"
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert time.monotonic() - start < 25
    assert "DistributedStartError: process 1 of 2 (local) waited 3 s for the coordinator (process 0)" in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr


def test_a_peer_that_never_starts_ends_the_coordinator_with_the_message():
    port = free_port()
    env = cpu_env(
        CHATPOSE_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
        CHATPOSE_NUM_PROCESSES="2",
        CHATPOSE_PROCESS_ID="0",
        CHATPOSE_INIT_TIMEOUT_S="3",
    )
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", "from chatpose_jax import parallel; parallel.initialize()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 75, result.stderr[-2000:]
    assert time.monotonic() - start < 25
    assert (
        f"process 0 of 2 (local) waited 3 s for the other 1 process(es) to register with this coordinator at "
        f"127.0.0.1:{port}" in result.stderr
    )
