"""Multislice meshes: which device lands where, with fake devices carrying slice, process, id and coords.

`device_grid` is the mesh's layout before it becomes a `jax.sharding.Mesh`, so plain objects with
the attributes `mesh_utils` reads stand in for the chips of several TPU slices or the CPU devices
of several processes.
"""

import dataclasses
import logging

import numpy as np
import pytest

from chatpose_jax.config_types import ConfigError, from_config_dict
from chatpose_jax.parallel.mesh import MeshConfig, device_grid, make_mesh


@dataclasses.dataclass(frozen=True)
class FakeTpu:
    """A TPU v4 chip as `mesh_utils` sees it (one device per chip, a 2x2x1 torus per slice)."""

    id: int
    slice_index: int
    process_index: int
    coords: tuple[int, int, int]
    core_on_chip: int = 0
    platform: str = "tpu"
    device_kind: str = "TPU v4"


@dataclasses.dataclass(frozen=True)
class FakeCpu:
    """A CPU device of one process (no slice_index, as on CPU and single-slice hosts)."""

    id: int
    process_index: int
    platform: str = "cpu"
    device_kind: str = "cpu"


def tpu_slices(num_slices: int, per_slice: int = 4) -> list[FakeTpu]:
    """`num_slices` slices of 2x2x1 chips, one host each, in JAX's order (slice by slice)."""
    coords = [(x, y, 0) for y in range(2) for x in range(2)][:per_slice]
    return [FakeTpu(1000 * s + i, s, s, c) for s in range(num_slices) for i, c in enumerate(coords)]


def slices_of(grid: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda d: d.slice_index)(grid)


def test_dcn_data_lays_the_data_axis_across_slices_and_keeps_fsdp_inside_one():
    devices = tpu_slices(2)
    grid = device_grid(MeshConfig(data=-1, fsdp=2, dcn_data=2), devices)
    assert grid.shape == (4, 2, 1)
    # Data rows 0-1 are slice 0, rows 2-3 slice 1: every fsdp group (a row) lies in one slice.
    np.testing.assert_array_equal(slices_of(grid)[:, :, 0], [[0, 0], [0, 0], [1, 1], [1, 1]])
    for s in (0, 1):
        block = {d.id for d in grid[2 * s : 2 * s + 2].ravel()}
        assert block == {d.id for d in devices if d.slice_index == s}
    # Within a slice the 2x2 torus is laid out by mesh_utils, not in list order: neighbours in a
    # fsdp row differ in one coordinate only.
    for row in grid[:, :, 0]:
        a, b = row
        assert sum(x != y for x, y in zip(a.coords, b.coords, strict=True)) == 1, (a, b)


def test_devices_on_several_slices_with_no_dcn_fields_put_the_data_axis_across_them():
    devices = tpu_slices(2)
    auto = device_grid(MeshConfig(data=-1, fsdp=2), devices)
    explicit = device_grid(MeshConfig(data=-1, fsdp=2, dcn_data=2), devices)
    assert [d.id for d in auto.ravel()] == [d.id for d in explicit.ravel()]


def test_dcn_fsdp_splits_the_fsdp_axis_across_slices_with_a_warning(caplog):
    devices = tpu_slices(2)
    with caplog.at_level(logging.WARNING):
        grid = device_grid(MeshConfig(data=2, fsdp=4, dcn_fsdp=2), devices)
    assert "mesh.dcn_fsdp=2" in caplog.text and "dcn_data" in caplog.text
    np.testing.assert_array_equal(slices_of(grid)[:, :, 0], [[0, 0, 1, 1], [0, 0, 1, 1]])


def test_process_is_granule_puts_each_process_on_its_own_data_rows():
    # Two processes with two CPU devices each, listed interleaved to show the order is not the list's.
    devices = [FakeCpu(0, 0), FakeCpu(2, 1), FakeCpu(1, 0), FakeCpu(3, 1)]
    grid = device_grid(MeshConfig(data=2, fsdp=2, dcn_data=2), devices)
    processes = np.vectorize(lambda d: d.process_index)(grid)[:, :, 0]
    np.testing.assert_array_equal(processes, [[0, 0], [1, 1]])
    # Without dcn fields the same devices form one block in list order (the data axis is not per process).
    flat = device_grid(MeshConfig(data=2, fsdp=2), devices)
    assert np.vectorize(lambda d: d.process_index)(flat)[:, :, 0].tolist() == [[0, 1], [0, 1]]


@pytest.mark.parametrize(
    "mesh, devices, message",
    [
        (
            dict(data=-1, dcn_data=4),
            tpu_slices(2),
            r"config\.mesh: dcn_data=4 x dcn_fsdp=1 x dcn_tensor=1 = 4, but the 8 devices span 2 slices",
        ),
        (
            dict(data=-1, dcn_data=2),
            [FakeCpu(i, 0) for i in range(4)],
            r"dcn_data=2 x dcn_fsdp=1 x dcn_tensor=1 = 2, but the 4 devices span 1 processes",
        ),
        (dict(data=2, fsdp=4, dcn_data=4), tpu_slices(4, 2), r"config\.mesh\.data=2 is not a multiple of .*dcn_data=4"),
        (
            dict(data=-1, dcn_data=2),
            tpu_slices(2)[:6],
            r"the slices hold unequal device counts \[\(0, 4\), \(1, 2\)\]",
        ),
    ],
)
def test_a_dcn_shape_that_does_not_fit_the_slices_names_the_field(mesh, devices, message):
    with pytest.raises(ConfigError, match=message):
        device_grid(MeshConfig(**mesh), devices)


def test_dcn_tensor_is_refused_when_the_config_is_validated():
    with pytest.raises(ConfigError, match=r"config\.mesh: mesh\.dcn_tensor=2: tensor parallelism stays inside a slice"):
        from_config_dict(MeshConfig, {"dcn_tensor": 2}, "config.mesh")
    with pytest.raises(ConfigError, match=r"mesh\.dcn_data=0 must be >= 1"):
        from_config_dict(MeshConfig, {"dcn_data": 0}, "config.mesh")


def test_real_cpu_devices_of_one_process_refuse_a_process_granule():
    import jax

    with pytest.raises(ConfigError, match="span 1 processes"):
        make_mesh(MeshConfig(data=-1, dcn_data=2), jax.devices())
    mesh = make_mesh(MeshConfig(data=-1, fsdp=2), jax.devices())
    assert dict(mesh.shape) == {"data": 4, "fsdp": 2, "tensor": 1}
