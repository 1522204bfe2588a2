"""Read a compiled, SPMD-partitioned HLO module (`compiled.as_text()`): shapes, loops and collectives.

The text of a compiled jitted step is the program one device runs. This module parses it into
computations of instructions and answers what a layout review asks:
  - `array_shapes(module)`: every array shape an instruction produces (to find activations that
    carry more than their device's share of the batch);
  - `collectives(module)`: each all-gather / reduce-scatter / all-reduce / all-to-all /
    collective-permute with its bytes and replica groups, and how many times it runs per step
    (`while` loops' trip counts multiplied through nested calls, so a scanned layer's all-gather
    counts once per layer);
  - `collective_bytes(...)`: those summed per kind, over the fast interconnect (ICI) or across
    slices (DCN) by which devices each replica group joins.

Bytes of one collective are those of its whole (unsharded) buffer on one device: the gathered
result of an all-gather, the reduced operand of a reduce-scatter or all-reduce, the operand of an
all-to-all or permute. XLA:TPU runs many all-gathers as an all-reduce of a zero buffer into which
each device wrote its shard (`dynamic-update-slice`); those count as all-gathers (`is_padded_gather`),
with the traffic of the all-reduce that runs them. `traffic` is what one device sends in a ring algorithm over its group of
n: (n-1)/n of that for all-gather, reduce-scatter and all-to-all, 2(n-1)/n for all-reduce, all of
it for a permute.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence

import numpy as np

DTYPE_BYTES = {
    "pred": 1, "s4": 1, "u4": 1, "s8": 1, "u8": 1, "f8e4m3fn": 1, "f8e5m2": 1, "f8e4m3": 1, "f8e4m3b11fnuz": 1,
    "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8,
    "c64": 8, "c128": 16,
}  # fmt: skip

COLLECTIVE_KINDS = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")
_ARRAY = re.compile(r"\b([a-z]+[0-9]*[a-z0-9]*)\[([0-9,]*)\]")
_COMPUTATION = re.compile(r"^\s*(ENTRY\s+)?%?([\w.\-]+)\s*\(.*\)\s*->\s*.*\{\s*$")
_INSTRUCTION = re.compile(r"^\s*(ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
_CALLEES = re.compile(
    r"\b(?:calls|to_apply|body|condition|branch_computations|called_computations)=\{?([^}\s]+(?:,\s*%?[\w.\-]+)*)\}?"
)


@dataclasses.dataclass(frozen=True)
class Instruction:
    name: str
    opcode: str
    shape: str  # the result type as printed, e.g. "bf16[4,1024,4096]{2,1,0}" or a tuple
    operands: tuple[str, ...]  # operand names
    attributes: str  # everything after the operand list


@dataclasses.dataclass
class HloModule:
    computations: dict[str, list[Instruction]]
    entry: str

    def instruction(self, name: str) -> Instruction | None:
        return self._by_name.get(name)

    def __post_init__(self):
        self._by_name = {i.name: i for body in self.computations.values() for i in body}


def _split_type_and_rest(text: str) -> tuple[str, str]:
    """'f32[2]{0} add(...)' -> ('f32[2]{0}', 'add(...)'); tuple types '(f32[2], s32[])' kept whole."""
    text = text.strip()
    if text.startswith("("):
        depth = 0
        for i, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                return text[: i + 1], text[i + 1 :].strip()
    head, _, rest = text.partition(" ")
    return head, rest.strip()


def _matching_paren(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        depth += text[i] == "("
        depth -= text[i] == ")"
        if depth == 0:
            return i
    return len(text) - 1


def parse_module(text: str) -> HloModule:
    """Computations and their instructions from HLO text (`compiled.as_text()` or `lowered.as_text('hlo')`)."""
    computations: dict[str, list[Instruction]] = {}
    entry = ""
    current: list[Instruction] | None = None
    for line in text.splitlines():
        if current is None:
            match = _COMPUTATION.match(line)
            if match:
                current = computations.setdefault(match.group(2), [])
                if match.group(1):
                    entry = match.group(2)
            continue
        if line.strip() == "}":
            current = None
            continue
        match = _INSTRUCTION.match(line)
        if not match:
            continue
        shape, rest = _split_type_and_rest(match.group(3))
        paren = rest.find("(")
        if paren < 0:
            continue
        opcode = rest[:paren].strip()
        close = _matching_paren(rest, paren)
        operand_text = rest[paren + 1 : close]
        operands = tuple(re.findall(r"%?([\w.\-]+)(?=\s*(?:,|$))", operand_text))
        current.append(Instruction(match.group(2), opcode, shape, operands, rest[close + 1 :]))
    if not entry and computations:
        entry = next(reversed(computations))
    return HloModule(computations, entry)


def array_shapes(type_text: str) -> list[tuple[str, tuple[int, ...]]]:
    """[(dtype, dims)] of every array in a printed type (one, or several for a tuple)."""
    out = []
    for dtype, dims in _ARRAY.findall(type_text):
        if dtype in DTYPE_BYTES:
            out.append((dtype, tuple(int(d) for d in dims.split(",") if d)))
    return out


def type_bytes(type_text: str) -> int:
    return sum(math.prod(dims) * DTYPE_BYTES[dtype] for dtype, dims in array_shapes(type_text))


def _trip_count(module: HloModule, instr: Instruction) -> int | None:
    match = re.search(r'"known_trip_count"\s*:\s*\{\s*"n"\s*:\s*"(\d+)"', instr.attributes)
    if match:
        return int(match.group(1))
    # Without XLA's annotation: a condition `i < N` against a constant.
    cond = re.search(r"condition=%?([\w.\-]+)", instr.attributes)
    body = module.computations.get(cond.group(1), []) if cond else []
    constants = [
        int(i.operands[0])
        for i in body
        if i.opcode == "constant" and i.operands and i.operands[0].lstrip("-").isdigit()
    ]
    compares = [i for i in body if i.opcode == "compare" and "direction=LT" in i.attributes]
    return constants[0] if compares and len(constants) == 1 else None


def _callees(instr: Instruction) -> list[str]:
    names = []
    for group in _CALLEES.findall(instr.attributes):
        names += [n.strip().lstrip("%") for n in group.split(",") if n.strip()]
    return names


def multiplicities(module: HloModule) -> tuple[dict[str, int], list[str]]:
    """How many times each computation runs per execution of the entry, and the loops of unknown count.

    A `while` multiplies its body (and condition) by its trip count; fusions, calls, async
    wrappers and conditionals pass their caller's count on (a conditional's branches are counted
    as if each ran, an upper bound).
    """
    edges: dict[str, list[tuple[str, int]]] = {}
    unknown: list[str] = []
    reached = {module.entry}
    pending = [module.entry]
    while pending:
        name = pending.pop()
        out = edges.setdefault(name, [])
        for instr in module.computations.get(name, []):
            callees = [c for c in _callees(instr) if c in module.computations]
            if not callees:
                continue
            factor = 1
            if instr.opcode == "while":
                trips = _trip_count(module, instr)
                if trips is None:
                    unknown.append(instr.name)
                    trips = 1
                factor = trips
            for callee in callees:
                out.append((callee, factor))
                if callee not in reached:
                    reached.add(callee)
                    pending.append(callee)
    # Calls form a DAG: pass counts on in topological order, so a computation reached by several
    # callers sums all of them before handing its count to its own callees.
    indegree = {name: 0 for name in reached}
    for targets in edges.values():
        for callee, _ in targets:
            indegree[callee] += 1
    counts = {name: 0 for name in reached}
    counts[module.entry] = 1
    ready = [name for name, n in indegree.items() if n == 0]
    while ready:
        name = ready.pop()
        for callee, factor in edges.get(name, []):
            counts[callee] += counts[name] * factor
            indegree[callee] -= 1
            if indegree[callee] == 0:
                ready.append(callee)
    return counts, unknown


def _iota(dims_text: str, perm_text: str | None) -> np.ndarray:
    dims = [int(d) for d in dims_text.split(",")]
    ids = np.arange(math.prod(dims)).reshape(dims)
    return ids.transpose([int(p) for p in perm_text.split(",")]) if perm_text else ids


def _mesh_groups(attributes: str) -> list[list[int]] | None:
    """Groups printed over a device mesh: `replica_groups=mesh['a'=4,'b'=2], device_ids=([2,4]T(1,0)) {'a'}`."""
    match = re.search(r"replica_groups=mesh\[([^\]]*)\]", attributes)
    if not match:
        return None
    axes = [(name, int(size)) for name, size in re.findall(r"'([^']+)'=(\d+)", match.group(1))]
    rest = attributes[match.end() :]
    ids_match = re.match(r"\s*,\s*device_ids=\(\[([\d,]+)\](?:T\(([\d,]+)\))?\)", rest)
    sizes = [size for _, size in axes]
    if ids_match:
        devices = _iota(ids_match.group(1), ids_match.group(2)).reshape(sizes)
        rest = rest[ids_match.end() :]
    else:
        devices = np.arange(math.prod(sizes)).reshape(sizes)
    over = re.match(r"\s*\{([^}]*)\}", rest)
    names = [name for name, _ in axes]
    chosen = re.findall(r"'([^']+)'", over.group(1)) if over else names
    group_axes = [names.index(n) for n in chosen]
    other_axes = [i for i in range(len(names)) if i not in group_axes]
    moved = devices.transpose(other_axes + group_axes)
    group_size = math.prod(sizes[i] for i in group_axes)
    return moved.reshape(-1, group_size).tolist()


def _groups(attributes: str, num_devices: int) -> list[list[int]]:
    """Replica groups as lists of device ids: over a mesh, explicit {{0,1},{2,3}}, iota [G,S]<=[dims]T(perm), or all."""
    over_mesh = _mesh_groups(attributes)
    if over_mesh is not None:
        return over_mesh
    iota = re.search(r"replica_groups=\[(\d+),(\d+)\]<=\[([\d,]+)\](?:T\(([\d,]+)\))?", attributes)
    if iota:
        groups, size = int(iota.group(1)), int(iota.group(2))
        return _iota(iota.group(3), iota.group(4)).reshape(groups, size).tolist()
    explicit = re.search(r"replica_groups=\{((?:\{[\d,]*\},?)*)\}", attributes)
    if explicit and explicit.group(1):
        return [[int(x) for x in g.split(",") if x] for g in re.findall(r"\{([\d,]*)\}", explicit.group(1))]
    pairs = re.search(r"source_target_pairs=\{((?:\{\d+,\d+\},?)*)\}", attributes)
    if pairs:
        return [[int(a), int(b)] for a, b in re.findall(r"\{(\d+),(\d+)\}", pairs.group(1))]
    return [list(range(num_devices))]


@dataclasses.dataclass(frozen=True)
class Collective:
    kind: str  # what it does, one of COLLECTIVE_KINDS (an all-gather that runs as an all-reduce is an all-gather)
    name: str
    computation: str
    bytes: int  # the whole buffer on one device (see the module docstring)
    groups: tuple[tuple[int, ...], ...]
    count: int  # executions per step
    op: str = ""  # the HLO operation that runs it (default: `kind`)
    across_slices: bool = False  # run by the multislice runtime over DCN (a host-transfer `send`)

    @property
    def group_size(self) -> int:
        return max((len(g) for g in self.groups), default=1)

    @property
    def traffic(self) -> float:
        """Bytes one device sends per execution, by a ring over its group (for the operation that runs)."""
        n = self.group_size
        op = self.op or self.kind
        if op == "collective-permute":
            return float(self.bytes)
        share = (n - 1) / n if n > 1 else 0.0
        return (2.0 if op == "all-reduce" else 1.0) * share * self.bytes


_PASS_THROUGH = ("copy-start", "copy-done", "copy", "bitcast", "get-tuple-element", "reshape")


def is_padded_gather(module: HloModule, name: str) -> bool:
    """Whether `name` is a zero buffer with this device's shard written in (`dynamic-update-slice`): an
    all-reduce of it is an all-gather, as XLA:TPU runs many (the other devices' slots are zeros)."""
    instr = module.instruction(name)
    for _ in range(16):
        if instr is None:
            return False
        if instr.opcode in _PASS_THROUGH and instr.operands:
            instr = module.instruction(instr.operands[0])
            continue
        break
    if instr is None:
        return False
    if instr.opcode == "fusion":
        callees = _callees(instr)
        body = module.computations.get(callees[0], []) if callees else []
        return bool(body) and body[-1].opcode == "dynamic-update-slice"
    return instr.opcode == "dynamic-update-slice"


def _kind(opcode: str) -> str | None:
    for kind in COLLECTIVE_KINDS:
        if opcode in (kind, f"{kind}-start"):
            return kind
    return None


def collectives(module: HloModule, num_devices: int, num_slices: int = 1) -> tuple[list[Collective], list[str]]:
    """Every collective of the module with its per-step count; the `while` loops whose count is unknown.

    A program compiled for several slices holds one slice's partitions: its in-slice collectives are
    HLO collectives over those, its cross-slice ones host-transfer sends (`_megascale_transfers`)."""
    counts, unknown = multiplicities(module)
    found = []
    for comp, body in module.computations.items():
        if comp not in counts:
            continue
        for instr in body:
            kind = _kind(instr.opcode)
            if kind is None:
                continue
            groups = tuple(tuple(g) for g in _groups(instr.attributes, num_devices))
            operands = [module.instruction(o) for o in instr.operands]
            if kind == "all-reduce":
                # A combined all-reduce may hold both: weights gathered as padded buffers, gradients reduced.
                split = {"all-gather": 0, "all-reduce": 0}
                for name, op in zip(instr.operands, operands, strict=True):
                    if op is not None:
                        split["all-gather" if is_padded_gather(module, name) else "all-reduce"] += type_bytes(op.shape)
                if not any(split.values()):
                    split["all-reduce"] = type_bytes(instr.shape)
                for part, size in split.items():
                    if size:
                        found.append(Collective(part, instr.name, comp, size, groups, counts[comp], "all-reduce"))
                continue
            operand_bytes = sum(type_bytes(op.shape) for op in operands if op is not None)
            result = array_shapes(instr.shape)
            result_bytes = (
                math.prod(result[-1][1]) * DTYPE_BYTES[result[-1][0]] if instr.opcode.endswith("-start") and result
                else type_bytes(instr.shape)
            )  # fmt: skip
            size = result_bytes if kind == "all-gather" else (operand_bytes or result_bytes)
            found.append(Collective(kind, instr.name, comp, size, groups, counts[comp], kind))
    found = _one_per_channel(module, found)
    found += _megascale_transfers(module, counts, num_slices)
    return found, unknown


_MEGASCALE_KINDS = {
    "ALL_REDUCE": "all-reduce", "ALL_GATHER": "all-gather", "REDUCE_SCATTER": "reduce-scatter",
    "ALL_TO_ALL": "all-to-all",
}  # fmt: skip


def _megascale_transfers(module: HloModule, counts: dict[str, int], num_slices: int) -> list[Collective]:
    """Collectives across slices: a multislice program runs them over DCN as host-transfer `send`s to the
    multislice runtime (`_xla_megascale_transfer_type`), each device sending its buffer once."""
    found = []
    for comp, body in module.computations.items():
        for instr in body:
            if instr.opcode != "send" or "_xla_megascale_transfer_type" not in instr.attributes:
                continue
            kind = re.search(r'_xla_megascale_transfer_type="(\w+)"', instr.attributes).group(1)
            shapes = array_shapes(instr.shape)
            size = math.prod(shapes[0][1]) * DTYPE_BYTES[shapes[0][0]] if shapes else 0
            group = (tuple(range(num_slices)),)
            name = _MEGASCALE_KINDS.get(kind, kind.lower().replace("_", "-"))
            found.append(Collective(name, instr.name, comp, size, group, counts.get(comp, 0), name, True))
    return found


def _one_per_channel(module: HloModule, found: list[Collective]) -> list[Collective]:
    """One entry per logical collective: XLA:TPU's async collective fusions print the same collective
    (one `channel_id`) in several computations; those copies run once."""
    kept: dict[tuple, Collective] = {}
    for c in found:
        channel = re.search(r"channel_id=(\d+)", module.instruction(c.name).attributes)
        key = (channel.group(1), c.kind) if channel else (c.name, c.kind)
        if key not in kept or c.count > kept[key].count:
            kept[key] = c
    return list(kept.values())


@dataclasses.dataclass
class CollectiveBytes:
    """Per device and step: bytes (whole buffers) and ring traffic of each kind, over ICI and DCN."""

    ici: dict[str, float]
    dcn: dict[str, float]
    ici_traffic: float
    dcn_traffic: float
    ops: dict[str, int]  # executions per step of each kind
    unknown_loops: list[str]


def collective_bytes(
    found: Sequence[Collective], slice_of_device: Sequence[int] | None = None, unknown=()
) -> CollectiveBytes:
    """Sums `found` per kind; a group joining devices of several slices (`slice_of_device[i]`) is DCN."""
    ici = {k: 0.0 for k in COLLECTIVE_KINDS}
    dcn = {k: 0.0 for k in COLLECTIVE_KINDS}
    ops = {k: 0 for k in COLLECTIVE_KINDS}
    ici_traffic = dcn_traffic = 0.0
    for c in found:
        crosses = c.across_slices or (
            slice_of_device is not None
            and any(len({slice_of_device[d] for d in g if d < len(slice_of_device)}) > 1 for g in c.groups)
        )
        table = dcn if crosses else ici
        table[c.kind] += c.bytes * c.count
        ops[c.kind] += c.count
        if crosses:
            dcn_traffic += c.traffic * c.count
        else:
            ici_traffic += c.traffic * c.count
    return CollectiveBytes(ici, dcn, ici_traffic, dcn_traffic, ops, list(unknown))


_NO_TRAFFIC = {
    "parameter", "constant", "get-tuple-element", "tuple", "bitcast", "while", "call", "conditional",
    "copy-start", "copy-done", "after-all", "partition-id", "replica-id", "iota",
}  # fmt: skip


def control_computations(module: HloModule) -> set[str]:
    """The entry and the computations it runs through `while`, `call` and `conditional` (not fused ones)."""
    control = {module.entry}
    pending = [module.entry]
    while pending:
        for instr in module.computations.get(pending.pop(), []):
            if instr.opcode in ("while", "call", "conditional"):
                for callee in _callees(instr):
                    if callee in module.computations and callee not in control:
                        control.add(callee)
                        pending.append(callee)
    return control


def _fused_operand_bytes(module: HloModule, fusion: Instruction) -> tuple[float, float]:
    """(bytes read, bytes written) of one fusion: a parameter read only through `dynamic-slice` costs its
    slices, and a root `dynamic-update-slice` writes its update in place into the buffer it was given."""
    callees = _callees(fusion)
    body = module.computations.get(callees[0], []) if callees else []
    params = {
        i.name: int(i.operands[0]) for i in body if i.opcode == "parameter" and i.operands and i.operands[0].isdigit()
    }
    users: dict[str, list[Instruction]] = {}
    for instr in body:
        for o in instr.operands:
            users.setdefault(o, []).append(instr)
    root = body[-1] if body else None
    in_place = root is not None and root.opcode == "dynamic-update-slice"
    operands = [module.instruction(o) for o in fusion.operands]
    read = 0.0
    for name, index in params.items():
        op = operands[index] if index < len(operands) else None
        if op is None:
            continue
        uses = users.get(name, [])
        if in_place and uses and all(u is root and root.operands[0] == name for u in uses):
            continue  # the buffer updated in place
        if uses and all(u.opcode == "dynamic-slice" for u in uses):
            read += sum(type_bytes(u.shape) for u in uses)
        else:
            read += type_bytes(op.shape)
    if in_place:
        update = next((i for i in body if i.name == root.operands[1]), None)
        written = type_bytes(update.shape) if update is not None else type_bytes(fusion.shape)
    else:
        written = type_bytes(fusion.shape)
    return read, written


def memory_traffic(module: HloModule) -> float:
    """Bytes a device reads and writes in memory per step: each top-level instruction's operands and
    result (a fusion's insides stay on chip; slices and in-place updates cost what they touch), loop
    trip counts applied; collectives are left to the network. XLA's own `bytes accessed` counts a
    loop body once."""
    counts, _ = multiplicities(module)
    total = 0.0
    for comp in control_computations(module):
        for instr in module.computations.get(comp, []):
            if instr.opcode in _NO_TRAFFIC or _kind(instr.opcode) or instr.opcode.endswith("-done"):
                continue
            if instr.opcode == "fusion":
                read, written = _fused_operand_bytes(module, instr)
                moved = read + written
            elif instr.opcode == "dynamic-slice":
                moved = 2 * type_bytes(instr.shape)
            elif instr.opcode == "dynamic-update-slice":
                update = module.instruction(instr.operands[1]) if len(instr.operands) > 1 else None
                moved = 2 * type_bytes(update.shape) if update is not None else type_bytes(instr.shape)
            else:
                operands = (module.instruction(o) for o in instr.operands)
                moved = type_bytes(instr.shape) + sum(type_bytes(op.shape) for op in operands if op is not None)
            total += moved * counts.get(comp, 1)
    return total


def _dims(attributes: str, key: str) -> list[int]:
    match = re.search(rf"{key}=\{{([\d,]*)\}}", attributes)
    return [int(d) for d in match.group(1).split(",") if d] if match else []


def instruction_flops(module: HloModule, instr: Instruction) -> float:
    """2 x multiply-adds of one `dot` or `convolution` (XLA:TPU writes most matmuls as convolutions)."""
    result = array_shapes(instr.shape)
    lhs = module.instruction(instr.operands[0]) if instr.operands else None
    if not result or lhs is None or not array_shapes(lhs.shape):
        return 0.0
    out = math.prod(result[0][1])
    lhs_dims = array_shapes(lhs.shape)[0][1]
    if instr.opcode == "dot":
        return 2.0 * out * math.prod(lhs_dims[d] for d in _dims(instr.attributes, "lhs_contracting_dims"))
    # The model has no spatial convolution (the patch embedding is a matmul): XLA:TPU's convolutions
    # are matmuls whose window dimensions carry batch-like dimensions (dilated or padded to one tap
    # per output), so each output element costs one multiply-add per contracted input feature.
    labels = re.search(r"dim_labels=([^_]+)_", instr.attributes)
    groups = re.search(r"feature_group_count=(\d+)", instr.attributes)
    if not labels or "f" not in labels.group(1):
        return 0.0
    features = lhs_dims[labels.group(1).index("f")]
    return 2.0 * out * features / (int(groups.group(1)) if groups else 1)


def matmul_flops(module: HloModule) -> float:
    """FLOPs of every dot and convolution a device runs per step, loop trip counts applied: what the
    hardware executes, rematerialised forward passes included (MaxText's model FLOPs count them once)."""
    counts, _ = multiplicities(module)
    total = 0.0
    for comp, body in module.computations.items():
        for instr in body:
            if instr.opcode in ("dot", "convolution"):
                total += instruction_flops(module, instr) * counts.get(comp, 0)
    return total


def shapes_with_dim(module: HloModule, size: int, computations: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(instruction, type) of every instruction whose result has a dimension of `size` (tuples looked into)."""
    out = []
    for comp, body in module.computations.items():
        if computations is not None and comp not in computations:
            continue
        for instr in body:
            if any(size in dims for _, dims in array_shapes(instr.shape)):
                out.append((instr.name, instr.shape))
    return out
