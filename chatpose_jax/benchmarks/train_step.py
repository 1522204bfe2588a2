"""Tiny-config training step: tokens/s and step time on 1 device, and the cost of an 8-device mesh.

    python -m chatpose_jax.benchmarks.train_step [--steps 20]

Runs the real sharded step (`train.setup.build_trainer`) of configs/tiny.py on random batches
in the pipeline's layout, first on a one-device mesh, then on 8 simulated CPU devices
(data=2, fsdp=2, tensor=2) in the same process, and prints the median step times, tokens/s and
the ratio 8-device / 1-device (on one CPU the 8 "devices" share the same cores, so the ratio is
the overhead of sharding, not a speed-up).
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

from chatpose_jax.config_files import repo_config  # noqa: E402
from chatpose_jax.experiment import load_experiment  # noqa: E402
from chatpose_jax.parallel.mesh import MeshConfig, make_mesh  # noqa: E402
from chatpose_jax.train.random_batches import RandomBatches  # noqa: E402
from chatpose_jax.train.setup import build_trainer  # noqa: E402


def tiny_experiment():
    return load_experiment(repo_config("tiny"))


def time_steps(experiment, mesh_cfg: MeshConfig, devices, steps: int, text_len: int) -> dict:
    mesh = make_mesh(mesh_cfg, devices)
    trainer = build_trainer(experiment, mesh)
    source = RandomBatches(experiment.model, experiment.train.batch_size, text_len, trainer.batch_sharding)
    batches = [next(source) for _ in range(steps + 2)]
    for batch in batches[:2]:  # compile and warm up
        jax.block_until_ready(trainer.step(batch))
    times = []
    for batch in batches[2:]:
        start = time.perf_counter()
        jax.block_until_ready(trainer.step(batch))
        times.append(time.perf_counter() - start)
    tokens = batches[0]["input_ids"].shape[0] * batches[0]["input_ids"].shape[1]
    median = statistics.median(times)
    return {"devices": len(devices), "step_time_s": median, "tokens_per_s": tokens / median, "tokens_per_step": tokens}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--text_len", type=int, default=96, help="text tokens per sequence (image tokens on top)")
    args = parser.parse_args()
    experiment = tiny_experiment()
    one = time_steps(experiment, MeshConfig(data=1), jax.devices()[:1], args.steps, args.text_len)
    eight = time_steps(experiment, MeshConfig(data=2, fsdp=2, tensor=2), jax.devices(), args.steps, args.text_len)
    print(json.dumps({"one_device": one, "eight_devices": eight}, indent=1))
    print(f"{'mesh':<26}{'step time':>12}{'tokens/s':>12}")
    print(f"{'1 device':<26}{1000 * one['step_time_s']:>10.1f}ms{one['tokens_per_s']:>12.0f}")
    print(f"{'8 devices (2x2x2)':<26}{1000 * eight['step_time_s']:>10.1f}ms{eight['tokens_per_s']:>12.0f}")
    print(f"ratio 8-device / 1-device step time: {eight['step_time_s'] / one['step_time_s']:.2f}")


if __name__ == "__main__":
    main()
