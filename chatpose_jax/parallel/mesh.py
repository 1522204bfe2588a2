"""Device mesh from the config: axes (data, fsdp, tensor), within a slice and across slices.

Modules name their axes logically (`chatpose_jax.parallel.axes`); `logical_axis_rules` in the
config map those names to the mesh axes defined here, so data parallelism, FSDP and tensor
parallelism are chosen by config alone.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from chatpose_jax.config_types import ConfigError

MESH_AXES = ("data", "fsdp", "tensor")
# Batch is split over both data-parallel axes: FSDP shards parameters *and* the batch.
BATCH_AXES = ("data", "fsdp")

DEFAULT_LOGICAL_AXIS_RULES = (
    ("batch", ("data", "fsdp")),
    ("length", ()),
    ("embed", ("fsdp",)),
    ("heads", ("tensor",)),
    ("kv_heads", ("tensor",)),
    ("kv", ()),
    ("mlp", ("tensor",)),
    ("vocab", ("tensor",)),
    ("layers", ()),
    ("lora_rank", ()),
    ("joints", ()),
    ("patches", ()),
    ("channels", ()),
)


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """How the devices are arranged. -1 in one axis means "all remaining devices"."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1
    num_slices: int = 1  # TPU multislice / several GPU nodes: the data axis spans slices
    logical_axis_rules: tuple[tuple[str, tuple[str, ...]], ...] = DEFAULT_LOGICAL_AXIS_RULES

    def __post_init__(self):
        sizes = {"data": self.data, "fsdp": self.fsdp, "tensor": self.tensor}
        for name, size in sizes.items():
            if size == 0 or size < -1:
                raise ValueError(f"mesh.{name}={size}: an axis size is a positive integer or -1 (fill)")
        if sum(size == -1 for size in sizes.values()) > 1:
            raise ValueError("mesh: at most one of data, fsdp, tensor may be -1 (fill)")
        if self.num_slices < 1:
            raise ValueError(f"mesh.num_slices={self.num_slices} must be >= 1")
        for logical, mesh_axes in self.logical_axis_rules:
            for axis in mesh_axes:
                if axis not in MESH_AXES:
                    raise ValueError(
                        f"mesh.logical_axis_rules: {logical!r} maps to unknown mesh axis {axis!r} "
                        f"(mesh axes: {MESH_AXES})"
                    )


def resolve_mesh_shape(cfg: MeshConfig, num_devices: int) -> dict[str, int]:
    """Sizes of (data, fsdp, tensor) for `num_devices` devices, filling the -1 axis.

    Raises:
      ConfigError: naming the mesh field when the sizes do not multiply to `num_devices`.
    """
    sizes = {"data": cfg.data, "fsdp": cfg.fsdp, "tensor": cfg.tensor}
    fixed = math.prod(s for s in sizes.values() if s != -1)
    fill = [name for name, s in sizes.items() if s == -1]
    if num_devices % cfg.num_slices:
        raise ConfigError(f"config.mesh.num_slices={cfg.num_slices} does not divide the {num_devices} devices")
    if fill:
        if num_devices % fixed:
            raise ConfigError(
                f"config.mesh: {', '.join(f'{k}={v}' for k, v in sizes.items())} does not divide the "
                f"{num_devices} devices (the fixed axes multiply to {fixed})"
            )
        sizes[fill[0]] = num_devices // fixed
    elif fixed != num_devices:
        raise ConfigError(
            f"config.mesh: data={cfg.data} x fsdp={cfg.fsdp} x tensor={cfg.tensor} = {fixed} devices, "
            f"but {num_devices} are present"
        )
    if sizes["data"] % cfg.num_slices:
        raise ConfigError(
            f"config.mesh.data={sizes['data']} must be a multiple of config.mesh.num_slices={cfg.num_slices} "
            "(the data axis spans slices)"
        )
    return sizes


def make_mesh(cfg: MeshConfig, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """Builds the (data, fsdp, tensor) mesh over `devices` (default: all devices, all hosts).

    With `num_slices > 1` the data axis is split between slices (DCN) and within each slice (ICI).
    """
    devices = list(jax.devices() if devices is None else devices)
    sizes = resolve_mesh_shape(cfg, len(devices))
    shape = tuple(sizes[a] for a in MESH_AXES)
    if cfg.num_slices > 1 and hasattr(devices[0], "slice_index"):
        from jax.experimental import mesh_utils

        ici = (sizes["data"] // cfg.num_slices, sizes["fsdp"], sizes["tensor"])
        dcn = (cfg.num_slices, 1, 1)
        device_array = mesh_utils.create_hybrid_device_mesh(ici, dcn, devices=devices)
    else:
        try:
            from jax.experimental import mesh_utils

            device_array = mesh_utils.create_device_mesh(shape, devices=devices)
        except (AssertionError, NotImplementedError, ValueError):
            # Device kinds without a known physical topology (e.g. CPU): plain row-major order.
            device_array = np.asarray(devices).reshape(shape)
    return Mesh(device_array, MESH_AXES)


def logical_to_spec(logical_axes: Sequence[str | None], rules) -> PartitionSpec:
    """PartitionSpec for an array whose dimensions carry `logical_axes`, by `rules`.

    A mesh axis is used at most once per array: a later dimension that maps to an axis already
    taken stays unsharded, as in flax's `logical_to_mesh_axes`.
    """
    table = dict(rules)
    used: set[str] = set()
    spec = []
    for name in logical_axes:
        if name is None:
            spec.append(None)
            continue
        if name not in table:
            raise KeyError(f"logical axis {name!r} has no rule in mesh.logical_axis_rules")
        axes = tuple(a for a in table[name] if a not in used)
        used.update(axes)
        spec.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    return PartitionSpec(*spec)


def logical_sharding(mesh: Mesh, logical_axes: Sequence[str | None], rules) -> NamedSharding:
    return NamedSharding(mesh, logical_to_spec(logical_axes, rules))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of a (B, ...) batch: B split over every data-parallel axis."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def data_parallel_size(sizes: dict[str, int]) -> int:
    return math.prod(sizes[a] for a in BATCH_AXES)
