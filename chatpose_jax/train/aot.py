"""Compile the real train step (and the decode step) ahead of time for a device set, and report it.

`compile_train_step(experiment, devices, chip)` builds the train state abstractly
(`jax.eval_shape`, nothing allocated), lays the config's mesh over `devices` (compile-only TPU
devices from `parallel.topology`, or real ones), lowers and compiles the step, and reports:
  - XLA's per-device memory (arguments, outputs, temporaries, code);
  - FLOPs: XLA's count next to our own (`utils.flops`, the MaxText convention);
  - the network: per device and step, the bytes of every kind of collective read from the
    partitioned program (`utils.hlo`, loop trip counts applied), over ICI and across slices
    (DCN), and the weights' all-gathers against the FSDP ideal (each sharded weight gathered once
    forward and once more for the backward where gradients flow through it);
  - with a chip's published figures (`parallel.topology`), a roofline step-time estimate and the
    MFU it implies (`utils.roofline`).
The partitioned program's text is kept (`CompileReport.hlo`) for `chatpose-compile --hlo_out`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from chatpose_jax.experiment import Experiment
from chatpose_jax.model import chatpose, decoding
from chatpose_jax.parallel.axes import traced_under
from chatpose_jax.parallel.mesh import batch_sharding, make_mesh
from chatpose_jax.train.setup import build_abstract_trainer
from chatpose_jax.utils import flops as flops_lib
from chatpose_jax.utils import hlo as hlo_lib
from chatpose_jax.utils import roofline as roofline_lib


class DoesNotFitError(RuntimeError):
    """XLA refused to compile: the program needs more device memory than the chip has."""

    def __init__(self, name: str, xla_message: str, largest_arguments: list[tuple[str, int]]):
        self.largest_arguments = largest_arguments
        lines = [
            f"{name} DOES NOT FIT: {xla_message.strip().splitlines()[0]}",
            "  largest per-device buffers among the arguments:",
        ]
        lines += [f"    {path}: {human_bytes(size)}" for path, size in largest_arguments]
        super().__init__("\n".join(lines))


def _compile(lowered, name: str, largest_arguments):
    try:
        return lowered.compile()
    except jax.errors.JaxRuntimeError as e:
        if "RESOURCE_EXHAUSTED" in str(e):
            raise DoesNotFitError(name, str(e), largest_arguments) from e
        raise


@dataclasses.dataclass
class MemoryReport:
    """Per-device bytes of one compiled program."""

    argument: int
    output: int
    temp: int
    code: int
    alias: int

    @property
    def total(self) -> int:
        # Donated outputs alias their arguments and are not allocated twice.
        return self.argument + self.output - self.alias + self.temp + self.code


@dataclasses.dataclass
class CompileReport:
    name: str  # "train_step" or "decode_step"
    num_devices: int
    memory: MemoryReport
    hbm_bytes: int | None
    xla_flops: float  # per device, from XLA's cost analysis
    our_flops: float  # whole step, all devices, by the MaxText convention
    compile_seconds: float
    step_floor_seconds: float | None  # our FLOPs over all devices at peak
    largest_arguments: list[tuple[str, int]]  # (path, per-device bytes), largest first
    network: hlo_lib.CollectiveBytes | None = None  # per device and step
    weight_gather_ideal: float | None = None  # bytes per device and step an ideal FSDP step all-gathers
    memory_traffic: float | None = None  # bytes per device and step read and written in HBM (`utils.hlo`)
    executed_flops: float | None = None  # per device and step: the program's matmuls, recompute included
    roofline: roofline_lib.Roofline | None = None
    hlo: str = ""  # the partitioned program (compiled.as_text())

    @property
    def fits(self) -> bool:
        return self.hbm_bytes is None or self.memory.total <= self.hbm_bytes


def memory_report(compiled) -> MemoryReport:
    stats = compiled.memory_analysis()
    return MemoryReport(
        argument=int(stats.argument_size_in_bytes),
        output=int(stats.output_size_in_bytes),
        temp=int(stats.temp_size_in_bytes),
        code=int(stats.generated_code_size_in_bytes),
        alias=int(stats.alias_size_in_bytes),
    )


def xla_flops(compiled) -> float:
    """FLOPs per device by XLA's cost analysis (which counts a loop body once)."""
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis.get("flops", 0.0)) if analysis else 0.0


def per_device_bytes(abstract) -> int:
    """Bytes one device holds of a ShapeDtypeStruct with a NamedSharding."""
    size = math.prod(abstract.shape) * np.dtype(abstract.dtype).itemsize
    sharding = abstract.sharding
    if sharding is None:
        return size
    shard_shape = sharding.shard_shape(abstract.shape)
    return math.prod(shard_shape) * np.dtype(abstract.dtype).itemsize


def largest(tree, prefix: str, count: int = 5) -> list[tuple[str, int]]:
    leaves = [
        (prefix + jax.tree_util.keystr(path), per_device_bytes(leaf))
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    ]
    return sorted(leaves, key=lambda x: -x[1])[:count]


def network_report(module: hlo_lib.HloModule, mesh) -> hlo_lib.CollectiveBytes:
    """Collective bytes per device and step of a partitioned program on `mesh` (slices from `slice_index`)."""
    devices = list(mesh.devices.flat)
    slices = [getattr(d, "slice_index", 0) for d in devices]
    found, unknown = hlo_lib.collectives(module, len(devices), len(set(slices)))
    return hlo_lib.collective_bytes(found, slices if len(set(slices)) > 1 else None, unknown)


def _report(name, compiled, mesh, chip, our_flops, seconds, biggest, gather_ideal=None) -> CompileReport:
    """The report of one compiled program. Executed FLOPs are read for the train step only: a decode step's
    matrix-vector products compile to multiply-and-reduce fusions, not matmuls."""
    num_devices = mesh.devices.size
    peak = chip.peak_bf16_flops if chip else None
    floor = our_flops / (num_devices * peak) if peak else None
    text = compiled.as_text()
    module = hlo_lib.parse_module(text)
    network = network_report(module, mesh)
    traffic = hlo_lib.memory_traffic(module)
    executed = hlo_lib.matmul_flops(module) if name == "train_step" else None
    roof = None
    if chip is not None:
        roof = roofline_lib.estimate(
            our_flops, executed or 0.0, num_devices, traffic, network, chip.peak_bf16_flops, chip.hbm_bytes_per_s,
            chip.ici_bytes_per_s, chip.dcn_bytes_per_s,
        )  # fmt: skip
    return CompileReport(
        name, num_devices, memory_report(compiled), chip.hbm_bytes if chip else None, xla_flops(compiled),
        our_flops, seconds, floor, biggest, network, gather_ideal, traffic, executed, roof, text,
    )  # fmt: skip


def weight_gather_ideal(experiment: Experiment, mesh) -> float:
    """Bytes per device an ideal FSDP step all-gathers: each fsdp-sharded weight once, whole, in the compute
    dtype, and the decoder layers' once more when remat recomputes their forward in the backward pass (a
    weight outside remat stays gathered from its forward to its backward)."""
    shapes, _ = chatpose.abstract_variables(experiment.model)
    shardings = chatpose.variable_shardings(experiment.model, mesh, experiment.mesh.logical_axis_rules)
    itemsize = np.dtype(chatpose.DTYPES[experiment.model.dtype]).itemsize
    rematerialised = experiment.model.remat_policy != "none"
    total = 0.0
    for (path, leaf), sharding in zip(
        jax.tree_util.tree_leaves_with_path(shapes["params"]), jax.tree.leaves(shardings["params"]), strict=True
    ):
        axes = [a for entry in sharding.spec if entry for a in ((entry,) if isinstance(entry, str) else entry)]
        if "fsdp" not in axes or mesh.shape["fsdp"] == 1:
            continue
        in_layers = "language_model" in jax.tree_util.keystr(path) and "layers" in jax.tree_util.keystr(path)
        total += (1 + (rematerialised and in_layers)) * math.prod(leaf.shape) * itemsize
    return total


def abstract_batch(experiment: Experiment, mesh, text_length: int | None = None) -> dict:
    """The batch layout's shapes for one optimizer step (image + text tokens per sequence).

    With `data.pack` rows are `data.pack_length` long (when set) and the batch adds the packed
    rows' segment_ids and positions int32[B, T] (data_pipelines/batch.py).
    """
    m, t = experiment.model, experiment.train
    b = t.batch_size
    seq = m.vision.num_image_tokens + (text_length or t.max_text_length)
    if experiment.data.pack and experiment.data.pack_length and not text_length:
        seq = experiment.data.pack_length
    p = m.pose_head.max_poses
    sh = batch_sharding(mesh)
    side = m.vision.image_size

    def spec(shape, dtype):
        return jax.ShapeDtypeStruct(shape, dtype, sharding=sh)

    batch = {
        "input_ids": spec((b, seq), jnp.int32),
        "attention_mask": spec((b, seq), jnp.int32),
        "labels": spec((b, seq), jnp.int32),
        "pixel_values": spec((b, m.vision.num_channels, side, side), jnp.float32),
        "pose_global_orient": spec((b, p, 3), jnp.float32),
        "pose_body_pose": spec((b, p, 69), jnp.float32),
        "pose_betas": spec((b, p, 10), jnp.float32),
        "pose_mask": spec((b, p), jnp.bool_),
    }
    if experiment.data.pack:
        batch["segment_ids"] = spec((b, seq), jnp.int32)
        batch["positions"] = spec((b, seq), jnp.int32)
    return batch


def compile_train_step(experiment: Experiment, devices, chip=None, text_length: int | None = None) -> CompileReport:
    """Lowers and compiles the train step of `experiment` for `devices`; nothing is allocated."""
    mesh = make_mesh(experiment.mesh, devices)
    trainer = build_abstract_trainer(experiment, mesh)
    batch = abstract_batch(experiment, mesh, text_length)
    biggest = sorted(
        largest(trainer.frozen, "frozen") + largest(trainer.state, "state") + largest(batch, "batch"),
        key=lambda x: -x[1],
    )[:5]
    start = time.perf_counter()
    compiled = _compile(trainer.step_fn.lower(trainer.state, trainer.frozen, batch), "train_step", biggest)
    seconds = time.perf_counter() - start
    seq = batch["input_ids"].shape[1]
    b = experiment.train.batch_size
    ours = flops_lib.train_step_flops(experiment.model, b, seq, b).total
    ideal = weight_gather_ideal(experiment, mesh)
    return _report("train_step", compiled, mesh, chip, ours, seconds, biggest, ideal)


def compile_decode_step(
    experiment: Experiment,
    devices,
    batch_size: int,
    max_length: int,
    chip=None,
) -> CompileReport:
    """Compiles one decoding step (merged weights, a KV cache of `max_length` slots) for `devices`."""
    mesh = make_mesh(experiment.mesh, devices)
    rules = experiment.mesh.logical_axis_rules
    shapes, _ = chatpose.abstract_variables(experiment.model)
    shardings = chatpose.variable_shardings(experiment.model, mesh, rules)
    params = jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes["params"], shardings["params"]
    )
    data = ("data", "fsdp")
    t = experiment.model.text
    cache_spec = PartitionSpec(None, data, None, "tensor" if t.num_kv_heads % mesh.shape["tensor"] == 0 else None)
    cache_shape = (t.num_layers, batch_size, max_length, t.num_kv_heads, t.resolved_head_dim)
    dtype = chatpose.DTYPES[experiment.model.dtype]
    cache = {k: jax.ShapeDtypeStruct(cache_shape, dtype, sharding=NamedSharding(mesh, cache_spec)) for k in ("k", "v")}
    rows = NamedSharding(mesh, PartitionSpec(data))
    replicated = NamedSharding(mesh, PartitionSpec())
    state = decoding.DecodeState(
        kv_cache=cache,
        cache_mask=jax.ShapeDtypeStruct((batch_size, max_length), jnp.bool_, sharding=rows),
        index=jax.ShapeDtypeStruct((), jnp.int32, sharding=replicated),
        positions=jax.ShapeDtypeStruct((batch_size,), jnp.int32, sharding=rows),
    )
    token = jax.ShapeDtypeStruct((batch_size,), jnp.int32, sharding=rows)
    step = jax.jit(
        traced_under(functools.partial(decoding.decode_step, experiment.model), mesh, rules), donate_argnums=(3,)
    )
    biggest = sorted(largest(params, "params") + largest(cache, "kv_cache"), key=lambda x: -x[1])[:5]
    start = time.perf_counter()
    compiled = _compile(step.lower(params, {}, token, state), "decode_step", biggest)
    seconds = time.perf_counter() - start
    ours = flops_lib.forward_flops(experiment.model, batch_size, 1, 0)
    return _report("decode_step", compiled, mesh, chip, ours, seconds, biggest)


def human_bytes(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def format_report(report: CompileReport) -> str:
    gib = 1024**3
    m = report.memory
    lines = [
        f"{report.name}: compiled in {report.compile_seconds:.1f}s for {report.num_devices} devices",
        f"  per device: arguments {human_bytes(m.argument)}, outputs {human_bytes(m.output)} "
        f"(aliased {human_bytes(m.alias)}), temporaries {human_bytes(m.temp)}, code {human_bytes(m.code)}",
    ]
    if report.hbm_bytes:
        verdict = "fits" if report.fits else "DOES NOT FIT"
        lines.append(
            f"  total {human_bytes(m.total)} of {report.hbm_bytes / gib:.0f} GiB HBM "
            f"({100 * m.total / report.hbm_bytes:.1f}%): {verdict}"
        )
    else:
        lines.append(f"  total {human_bytes(m.total)}")
    lines.append(
        f"  FLOPs per device: XLA {report.xla_flops:.3e}, ours {report.our_flops / report.num_devices:.3e} "
        f"(ratio {report.xla_flops * report.num_devices / max(report.our_flops, 1):.2f}; XLA counts a loop body once)"
    )
    if report.executed_flops:
        lines.append(
            f"  FLOPs executed per device (the program's matmuls, loops and recompute included): "
            f"{report.executed_flops:.3e} ({report.executed_flops * report.num_devices / max(report.our_flops, 1):.2f}x ours)"
        )
    if report.network is not None:
        lines += format_network(report)
    if report.roofline is not None:
        r = report.roofline
        floors = ", ".join(f"{k} {1000 * v:.2f} ms" for k, v in r.floors.items())
        lines.append(f"  memory traffic per device and step: {human_bytes(int(report.memory_traffic))} (from the HLO)")
        lines.append(f"  roofline per step: {floors}")
        lines.append(
            f"  estimate {1000 * r.step_s:.2f} ms ({r.bound}-bound), MFU {100 * r.mfu:.1f}%; "
            f"with no overlap {1000 * r.serial_step_s:.2f} ms, MFU {100 * r.serial_mfu:.1f}%"
        )
    elif report.step_floor_seconds is not None:
        lines.append(f"  step-time floor at peak: {1000 * report.step_floor_seconds:.3f} ms")
    if not report.fits:
        lines.append("  largest per-device buffers among the arguments:")
        lines += [f"    {name}: {human_bytes(size)}" for name, size in report.largest_arguments]
    return "\n".join(lines)


def format_network(report: CompileReport) -> list[str]:
    """Lines of collective bytes per device and step, per kind, ICI and DCN."""
    net = report.network
    lines = ["  collectives per device and step (whole buffers; ring traffic after the arrow):"]
    for where, table in (("ICI", net.ici), ("DCN", net.dcn)):
        used = {k: v for k, v in table.items() if v}
        if used or where == "ICI":
            kinds = ", ".join(f"{k} {human_bytes(int(v))} ({net.ops[k]} ops)" for k, v in used.items()) or "none"
            traffic = net.ici_traffic if where == "ICI" else net.dcn_traffic
            lines.append(f"    {where}: {kinds} -> {human_bytes(int(traffic))}")
    if net.unknown_loops:
        lines.append(f"    (loops of unknown trip count counted once: {', '.join(net.unknown_loops[:5])})")
    if report.weight_gather_ideal:
        gathered = net.ici["all-gather"] + net.dcn["all-gather"]
        lines.append(
            f"    all-gathered {human_bytes(int(gathered))} against {human_bytes(int(report.weight_gather_ideal))} "
            f"for the FSDP ideal ({gathered / report.weight_gather_ideal:.2f}x)"
        )
    return lines
