"""`python -m chatpose_jax.parallel.check`: is every process and device of this job reachable?

Run it under `launch/local.py`, on every TPU worker or in a SLURM step before a long job: each
process contributes `process_index + 1` from each of its devices to a sum over the global mesh,
and every process checks the total against the closed form.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from jax.sharding import NamedSharding, PartitionSpec

from chatpose_jax.parallel import distributed


def global_device_sum() -> tuple[float, float]:
    """Sums process_index+1 over every device of every process. Returns (got, expected)."""
    devices = jax.devices()
    mesh = jax.sharding.Mesh(np.asarray(devices), ("d",))
    sharding = NamedSharding(mesh, PartitionSpec("d"))
    local = [jax.device_put(np.full((1,), jax.process_index() + 1, np.float32), d) for d in jax.local_devices()]
    values = jax.make_array_from_single_device_arrays((len(devices),), sharding, local)
    got = float(jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, PartitionSpec()))(values))
    expected = float(sum(d.process_index + 1 for d in devices))
    return got, expected


def main(argv):
    del argv
    distributed.initialize_distributed()
    got, expected = global_device_sum()
    print(
        f"process {jax.process_index()}/{jax.process_count()}: {jax.local_device_count()} local of "
        f"{jax.device_count()} devices ({jax.devices()[0].platform}); global sum {got:g} (expected {expected:g})",
        flush=True,
    )
    if got != expected:
        print("collective check FAILED", file=sys.stderr)
        return 1
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
