"""Start N local processes of any command as one multi-process JAX job on 127.0.0.1.

    python launch/local.py --num_processes 2 -- chatpose-train --config configs/tiny.py --workdir /tmp/w
    python launch/local.py --num_processes 4 --devices_per_process 2 -- python -m chatpose_jax.parallel.check

Each process gets the coordinator address (a free port on 127.0.0.1), the process count and its
own index through the CHATPOSE_* variables that `chatpose_jax.parallel.distributed` reads, and
gloo CPU collectives. Every output line is prefixed with its process index. When one process
fails, the others are ended and this script exits with the failing status.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time

# Same names as chatpose_jax.parallel.distributed; repeated so this launcher runs without jax.
ENV_COORDINATOR = "CHATPOSE_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "CHATPOSE_NUM_PROCESSES"
ENV_PROCESS_ID = "CHATPOSE_PROCESS_ID"
ENV_CPU_COLLECTIVES = "CHATPOSE_CPU_COLLECTIVES"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(base: dict, index: int, num_processes: int, port: int, devices: int, platform: str) -> dict:
    env = dict(base)
    env[ENV_COORDINATOR] = f"127.0.0.1:{port}"
    env[ENV_NUM_PROCESSES] = str(num_processes)
    env[ENV_PROCESS_ID] = str(index)
    env["PYTHONUNBUFFERED"] = "1"
    if platform == "cpu":
        env[ENV_CPU_COLLECTIVES] = "gloo"
        env["JAX_PLATFORMS"] = "cpu"
        flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
        env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])
    return env


def _pump(index: int, stream, lock: threading.Lock, width: int) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        with lock:
            sys.stdout.write(f"[{index:>{width}}] {line}\n")
            sys.stdout.flush()
    stream.close()


def end_processes(procs: list[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM every running process group, then SIGKILL those still alive after `grace_s`."""
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def launch(
    command: list[str], num_processes: int, devices_per_process: int = 1, platform: str = "cpu", grace_s: float = 10.0
) -> int:
    """Runs `command` in `num_processes` processes; returns 0, or the first failure's status."""
    port = free_port()
    lock = threading.Lock()
    width = len(str(num_processes - 1))
    procs, pumps = [], []
    try:
        for i in range(num_processes):
            env = process_env(os.environ, i, num_processes, port, devices_per_process, platform)
            p = subprocess.Popen(
                command,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            procs.append(p)
            t = threading.Thread(target=_pump, args=(i, p.stdout, lock, width), daemon=True)
            t.start()
            pumps.append(t)
        status = 0
        while None in [p.poll() for p in procs]:  # poll all, so a failure anywhere is seen at once
            failed = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode not in (None, 0)]
            if failed:
                index, status = failed[0]
                with lock:
                    print(f"local.py: process {index} exited with status {status}; ending the others", file=sys.stderr)
                end_processes(procs, grace_s)
                break
            time.sleep(0.05)
        for t in pumps:
            t.join(timeout=5)
        if status == 0:
            failed = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode != 0]
            if failed:
                index, status = failed[0]
                print(f"local.py: process {index} exited with status {status}", file=sys.stderr)
        return status
    except KeyboardInterrupt:
        end_processes(procs, grace_s)
        return 130
    except FileNotFoundError as e:
        end_processes(procs, grace_s)
        print(f"local.py: cannot start {command[0]!r}: {e.strerror}", file=sys.stderr)
        return 127


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print("usage: local.py --num_processes N [--devices_per_process K] -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_processes", type=int, required=True, help="processes to start (>= 1)")
    parser.add_argument("--devices_per_process", type=int, default=1, help="CPU devices each process forces")
    parser.add_argument(
        "--platform",
        default="cpu",
        choices=("cpu", "gpu", "tpu"),
        help="cpu: gloo collectives and forced CPU devices; others: the platform's own",
    )
    parser.add_argument("--grace_s", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    args = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    if not command:
        parser.error("no command after --")
    if args.num_processes < 1:
        parser.error(f"--num_processes={args.num_processes} must be >= 1")
    return launch(command, args.num_processes, args.devices_per_process, args.platform, args.grace_s)


if __name__ == "__main__":
    sys.exit(main())
