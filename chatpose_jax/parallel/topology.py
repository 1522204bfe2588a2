"""TPU slice names as users type them (`v5p-128`, `v5e-256`) -> compile-only devices on this host.

With `libtpu` installed, JAX can describe a TPU topology and compile for it on a CPU-only
machine (`jax.experimental.topologies`); nothing runs, but XLA's memory and cost analyses are
those of the real chips. Naming follows Cloud TPU: the number after the generation counts
TensorCores for v4 and v5p (two per chip) and chips for v5e and v6e.
"""

from __future__ import annotations

import dataclasses
import os
import re

GIB = 1024**3


@dataclasses.dataclass(frozen=True)
class TpuGeneration:
    """One TPU generation's published per-chip figures (the roofline's inputs; `source` names the page)."""

    name: str  # as in slice names: v4, v5e, v5p, v6e
    topology_prefix: str  # libtpu's topology name prefix
    cores_per_chip_in_name: int  # the slice name counts TensorCores (2) or chips (1)
    dims: int  # 3 (torus) or 2
    hbm_bytes: int  # per chip
    peak_bf16_flops: float  # per chip, dense
    hbm_bytes_per_s: float  # per chip
    ici_bytes_per_s: float  # per chip, bidirectional, all links together
    dcn_bytes_per_s: float | None  # per chip, across slices (None: not published per chip)
    source: str


GENERATIONS = {
    # Cloud TPU v4 page: 275 TFLOP/s, 32 GiB at 1200 GB/s. ICI: 6 links of 45 GB/s each way (the JAX
    # scaling book, "How to think about TPUs"), 540 GB/s bidirectional.
    "v4": TpuGeneration(
        "v4", "v4", 2, 3, 32 * GIB, 275e12, 1200e9, 540e9, None,
        "cloud.google.com/tpu/docs/v4; jax-ml.github.io/scaling-book/tpus",
    ),
    # Cloud TPU v5e page: 197 TFLOP/s, 16 GB at 819 GB/s, ICI 400 GB/s bidirectional per chip, two 100 Gbps
    # NICs per host of 8 chips (25 Gbps per chip).
    "v5e": TpuGeneration("v5e", "v5e", 1, 2, 16 * GIB, 197e12, 819e9, 400e9, 25e9 / 8, "cloud.google.com/tpu/docs/v5e"),
    # Cloud TPU v5p page: 459 TFLOP/s, 95 GiB at 2765 GB/s, ICI 1200 GB/s bidirectional, DCN 50 Gbps per chip.
    "v5p": TpuGeneration("v5p", "v5p", 2, 3, 95 * GIB, 459e12, 2765e9, 1200e9, 50e9 / 8, "cloud.google.com/tpu/docs/v5p"),
    # Cloud TPU v6e page: 918 TFLOP/s, 32 GB at 1638 GB/s, ICI 800 GB/s bidirectional per chip.
    "v6e": TpuGeneration("v6e", "v6e", 1, 2, 32 * GIB, 918e12, 1638e9, 800e9, None, "cloud.google.com/tpu/docs/v6e"),
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class TpuSlice:
    generation: TpuGeneration
    num_chips: int
    chip_shape: tuple[int, ...]

    @property
    def topology_name(self) -> str:
        return f"{self.generation.topology_prefix}:{'x'.join(map(str, self.chip_shape))}"


def chip_shape(num_chips: int, dims: int) -> tuple[int, ...]:
    """The usual slice shape for a power-of-two chip count: as even as possible, e.g. 64 -> 4x4x4, 4 -> 2x2x1."""
    if num_chips < 1 or num_chips & (num_chips - 1):
        raise ValueError(f"{num_chips} chips: TPU slices have a power-of-two number of chips")
    exponent = num_chips.bit_length() - 1
    exps = [exponent // dims] * dims
    for i in range(exponent % dims):
        exps[dims - 1 - i] += 1
    shape = sorted(2**e for e in exps)
    ones = [s for s in shape if s == 1]
    return tuple([s for s in shape if s != 1] + ones)


def parse_slice(name: str) -> TpuSlice:
    """`v5p-128` -> TpuSlice(v5p, 64 chips, (4, 4, 4)).

    Raises:
      ValueError: naming the slice when the generation or size is unknown.
    """
    match = re.fullmatch(r"(v\d+[a-z]?)(?:litepod)?-(\d+)", name.strip().lower())
    if not match or match.group(1) not in GENERATIONS:
        raise ValueError(
            f"unknown TPU slice {name!r}: expected e.g. v4-64, v5e-256, v5p-128, v6e-64 ({', '.join(GENERATIONS)})"
        )
    gen = GENERATIONS[match.group(1)]
    size = int(match.group(2))
    if size % gen.cores_per_chip_in_name:
        raise ValueError(f"TPU slice {name!r}: {gen.name} sizes count TensorCores, two per chip")
    chips = size // gen.cores_per_chip_in_name
    return TpuSlice(gen, chips, chip_shape(chips, gen.dims))


def compile_only_devices(slice_name: str, num_slices: int = 1) -> tuple[TpuSlice, list]:
    """(the slice, its compile-only devices across `num_slices` slices); needs `libtpu` installed."""
    # Several processes on one host may compile at once; a real TPU host never shares libtpu.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies

    tpu = parse_slice(slice_name)
    kwargs = {"num_slices": num_slices} if num_slices > 1 else {}
    try:
        topology = topologies.get_topology_desc(platform="tpu", topology_name=tpu.topology_name, **kwargs)
    except Exception as e:  # libtpu missing or refusing the shape
        raise RuntimeError(
            f"cannot describe TPU topology {tpu.topology_name} ({slice_name}): {e}. "
            "Install the [aot] extra (libtpu pinned by jax[tpu])."
        ) from e
    return tpu, list(topology.devices)
