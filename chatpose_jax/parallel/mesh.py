"""Device mesh from the config: axes (data, fsdp, tensor), within a slice and across slices.

Modules name their axes logically (`chatpose_jax.parallel.axes`); `logical_axis_rules` in the
config map those names to the mesh axes defined here, so data parallelism, FSDP and tensor
parallelism are chosen by config alone. `DEFAULT_LOGICAL_AXIS_RULES` is re-exported from `axes`.

Multislice: `data`, `fsdp` and `tensor` are whole-mesh sizes; `dcn_data` (`dcn_fsdp`,
`dcn_tensor`) says over how many slices that axis is laid, across the data-centre network (DCN).
The mesh is then built with `mesh_utils.create_hybrid_device_mesh`: each slice holds an
`data/dcn_data x fsdp/dcn_fsdp x tensor/dcn_tensor` block over its fast interconnect (ICI), and
the slices are tiled along the DCN axes, so with `dcn_data` alone the data axis crosses slices
while fsdp and tensor stay inside one. Devices that report one slice only (CPU processes) use
processes in the part of slices (`process_is_granule`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from chatpose_jax.config_types import ConfigError
from chatpose_jax.parallel.axes import DEFAULT_LOGICAL_AXIS_RULES, complete_rules

MESH_AXES = ("data", "fsdp", "tensor")
DCN_FIELDS = ("dcn_data", "dcn_fsdp", "dcn_tensor")  # the part of each mesh axis across slices
# Batch is split over both data-parallel axes: FSDP shards parameters *and* the batch.
BATCH_AXES = ("data", "fsdp")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """How the devices are arranged. -1 in one axis means "all remaining devices"."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1
    # Slices (or processes) each axis spans over DCN; the sizes above are whole-mesh sizes.
    dcn_data: int = 1
    dcn_fsdp: int = 1
    dcn_tensor: int = 1
    logical_axis_rules: tuple[tuple[str, tuple[str, ...]], ...] = DEFAULT_LOGICAL_AXIS_RULES

    def __post_init__(self):
        sizes = {"data": self.data, "fsdp": self.fsdp, "tensor": self.tensor}
        for name, size in sizes.items():
            if size == 0 or size < -1:
                raise ValueError(f"mesh.{name}={size}: an axis size is a positive integer or -1 (fill)")
        if sum(size == -1 for size in sizes.values()) > 1:
            raise ValueError("mesh: at most one of data, fsdp, tensor may be -1 (fill)")
        for name, size in zip(DCN_FIELDS, self.dcn_shape, strict=True):
            if size < 1:
                raise ValueError(f"mesh.{name}={size} must be >= 1")
        if self.dcn_tensor > 1:
            # Tensor parallelism exchanges activations in every layer: over DCN it would stall each step.
            raise ValueError(
                f"mesh.dcn_tensor={self.dcn_tensor}: tensor parallelism stays inside a slice; "
                "lay slices on mesh.dcn_data (data parallelism across slices)"
            )
        # Names the rules leave out take their defaults, so activation constraints always find a rule.
        object.__setattr__(self, "logical_axis_rules", complete_rules(self.logical_axis_rules))
        for logical, mesh_axes in self.logical_axis_rules:
            for axis in mesh_axes:
                if axis not in MESH_AXES:
                    raise ValueError(
                        f"mesh.logical_axis_rules: {logical!r} maps to unknown mesh axis {axis!r} "
                        f"(mesh axes: {MESH_AXES})"
                    )

    @property
    def dcn_shape(self) -> tuple[int, int, int]:
        """(dcn_data, dcn_fsdp, dcn_tensor), in the order of MESH_AXES."""
        return (self.dcn_data, self.dcn_fsdp, self.dcn_tensor)


def resolve_mesh_shape(cfg: MeshConfig, num_devices: int) -> dict[str, int]:
    """Sizes of (data, fsdp, tensor) for `num_devices` devices, filling the -1 axis.

    Raises:
      ConfigError: naming the mesh field when the sizes do not multiply to `num_devices`, or
        when an axis does not split into its `dcn_*` part across slices.
    """
    sizes = {"data": cfg.data, "fsdp": cfg.fsdp, "tensor": cfg.tensor}
    fixed = math.prod(s for s in sizes.values() if s != -1)
    fill = [name for name, s in sizes.items() if s == -1]
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
    for axis, field, dcn in zip(MESH_AXES, DCN_FIELDS, cfg.dcn_shape, strict=True):
        if sizes[axis] % dcn:
            raise ConfigError(
                f"config.mesh.{axis}={sizes[axis]} is not a multiple of config.mesh.{field}={dcn} "
                f"(the {axis} axis is laid over {dcn} slices, the same number of devices in each)"
            )
    return sizes


def _granule_key(device, process_is_granule: bool) -> int:
    return device.process_index if process_is_granule else getattr(device, "slice_index", 0)


def hybrid_layout(cfg: MeshConfig, devices: Sequence, process_is_granule: bool | None = None):
    """(ici_shape, dcn_shape, process_is_granule) of the mesh over `devices`; dcn_shape None: one slice.

    Devices from several slices (`slice_index`) make slices the DCN units; with one slice and
    `dcn_*` > 1 the processes are (`process_is_granule`, e.g. CPU processes or GPU hosts with one
    process each). Several slices with every `dcn_*` left at 1 lay the data axis across them.

    Raises:
      ConfigError: naming the dcn fields when their product is not the number of slices (or
        processes), or when those do not hold the same number of devices each.
    """
    sizes = resolve_mesh_shape(cfg, len(devices))
    dcn = cfg.dcn_shape
    num_slices = len({getattr(d, "slice_index", 0) for d in devices})
    if num_slices > 1 and math.prod(dcn) == 1:
        cfg = dataclasses.replace(cfg, dcn_data=num_slices)
        dcn = cfg.dcn_shape
        logging.info("mesh: the devices span %d slices; laying the data axis across them (dcn_data)", num_slices)
        sizes = resolve_mesh_shape(cfg, len(devices))
    if math.prod(dcn) == 1:
        return tuple(sizes[a] for a in MESH_AXES), None, False
    if process_is_granule is None:
        process_is_granule = num_slices == 1
    if cfg.dcn_fsdp > 1:
        logging.warning(
            "mesh.dcn_fsdp=%d: parameters are gathered across slices in every layer; only data "
            "parallelism belongs on DCN (mesh.dcn_data)",
            cfg.dcn_fsdp,
        )
    counts: dict[int, int] = {}
    for d in devices:
        key = _granule_key(d, process_is_granule)
        counts[key] = counts.get(key, 0) + 1
    unit = "processes" if process_is_granule else "slices"
    product = " x ".join(f"{f}={n}" for f, n in zip(DCN_FIELDS, dcn, strict=True))
    if math.prod(dcn) != len(counts):
        raise ConfigError(
            f"config.mesh: {product} = {math.prod(dcn)}, but the {len(devices)} devices span {len(counts)} {unit}"
        )
    if len(set(counts.values())) != 1:
        raise ConfigError(f"config.mesh: {product}, but the {unit} hold unequal device counts {sorted(counts.items())}")
    ici = tuple(sizes[a] // n for a, n in zip(MESH_AXES, dcn, strict=True))
    return ici, dcn, process_is_granule


def device_grid(cfg: MeshConfig, devices: Sequence, process_is_granule: bool | None = None) -> np.ndarray:
    """The devices as a [data, fsdp, tensor] array: the mesh's layout, before it becomes a `Mesh`.

    Within one slice the devices follow the physical topology (`create_device_mesh`); across
    slices (or processes, see `hybrid_layout`) `create_hybrid_device_mesh` tiles one block per
    slice along the `dcn_*` axes.
    """
    from jax.experimental import mesh_utils

    devices = list(devices)
    ici, dcn, by_process = hybrid_layout(cfg, devices, process_is_granule)
    if dcn is not None:
        try:
            return mesh_utils.create_hybrid_device_mesh(ici, dcn, devices, process_is_granule=by_process)
        except (AssertionError, NotImplementedError, ValueError):
            # A per-slice block that does not follow the torus's axes: let it split physical axes.
            return mesh_utils.create_hybrid_device_mesh(
                ici, dcn, devices, process_is_granule=by_process, allow_split_physical_axes=True
            )
    try:
        return mesh_utils.create_device_mesh(ici, devices=devices)
    except (AssertionError, NotImplementedError, ValueError):
        # Device kinds without a known physical topology (e.g. CPU): plain row-major order.
        return np.asarray(devices).reshape(ici)


def make_mesh(
    cfg: MeshConfig, devices: Sequence[jax.Device] | None = None, process_is_granule: bool | None = None
) -> Mesh:
    """Builds the (data, fsdp, tensor) mesh over `devices` (default: all devices, all hosts); see `device_grid`."""
    return Mesh(device_grid(cfg, jax.devices() if devices is None else devices, process_is_granule), MESH_AXES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of a (B, ...) batch: B split over every data-parallel axis."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def data_parallel_size(sizes: dict[str, int]) -> int:
    return math.prod(sizes[a] for a in BATCH_AXES)
