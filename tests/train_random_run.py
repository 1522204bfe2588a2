"""Runs `train_and_evaluate` on random batches: `python tests/train_random_run.py WORKDIR STEPS [k=v ...]`.

A subprocess target for the resume tests (it can be SIGKILLed mid-run); `k=v` set tiny-config
fields such as `train.checkpoint_every=2` or `model.text.hidden_size=64`.
"""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from chatpose_jax.config_files import repo_config  # noqa: E402
from chatpose_jax.experiment import load_experiment  # noqa: E402
from chatpose_jax.parallel.mesh import batch_sharding  # noqa: E402
from chatpose_jax.train.chatpose_task import ChatPoseTask  # noqa: E402
from chatpose_jax.train.loop import train_and_evaluate  # noqa: E402
from chatpose_jax.train.random_batches import RandomBatches  # noqa: E402


def small_tiny_config(steps: int, overrides: list[str]):
    c = repo_config("tiny")
    c.model.text.num_layers = 2
    c.model.vision.num_layers = 2
    c.train.num_steps = steps
    c.train.batch_size = 4
    c.train.log_every = 1
    c.train.checkpoint_every = 2
    c.train.eval_batches = 1
    c.train.body_model = ""
    c.train.loss.joints_weight = 0.0  # no body model here
    c.mesh.data = -1
    for item in overrides:
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = c
        for p in parents:
            node = node[p]
        node[leaf] = type(node[leaf])(value) if not isinstance(node[leaf], bool) else value == "True"
    return c


def make_source(experiment, mesh, split):
    seed = 0 if split == "train" else 10_000
    return RandomBatches(experiment.model, experiment.train.batch_size, 24, batch_sharding(mesh), seed=seed)


if __name__ == "__main__":
    workdir, steps, *overrides = sys.argv[1:]
    # Under launch/local.py the processes join one job first; a lone process starts nothing.
    from chatpose_jax import parallel

    parallel.initialize()
    experiment = load_experiment(small_tiny_config(int(steps), overrides))
    import jax
    import numpy as np

    from chatpose_jax.parallel.mesh import make_mesh

    # The loop builds this same mesh from the config: show which process holds each (data, fsdp) cell.
    processes = np.vectorize(lambda d: d.process_index)(make_mesh(experiment.mesh).devices)[:, :, 0]
    print(f"mesh processes {processes.tolist()} (process {jax.process_index()})", flush=True)
    train_and_evaluate(experiment, workdir, ChatPoseTask(), make_source=make_source, progress=False)
    # The packed pipeline's iterator state gathers every host's list of samples a batch took past its
    # position, lists of different lengths: process i offers i + 1 numbers from 10 i.
    from chatpose_jax.train.input import allgather_ragged

    mine = [10 * jax.process_index() + k for k in range(jax.process_index() + 1)]
    print(f"ragged {allgather_ragged(mine)} (process {jax.process_index()})", flush=True)
    print("RUN FINISHED")
