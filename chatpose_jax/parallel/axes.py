"""Logical axis names, their default mapping to mesh axes, and activation constraints that take effect.

Parameters and activations carry different logical names where their layouts must differ (as
MaxText's `common_types.py` does): a weight's hidden dimension `embed` is sharded over `fsdp`
(each device stores a slice of every weight), while an activation's hidden dimension
`activation_embed` stays whole and its batch `activation_batch` is split over `data` x `fsdp`
(each device computes on its own sequences). A matmul between the two then has only one cheap
layout: all-gather the layer's weight over `fsdp`, multiply the local rows, and reduce-scatter
the weight's gradient. Tensor parallelism splits `heads` / `mlp` / `vocab` of both kinds over
`tensor`.

Constraints on activations only bind when the mesh and the rules are known while a step is
traced: `sharding_context(mesh, rules)` sets them for the code traced inside it, and
`traced_under(fn, mesh, rules)` makes a function that enters the context itself, so a jitted step
carries its layout wherever it is lowered (training, evaluation, decoding, ahead-of-time compiles).
Outside a context `constrain` returns its input unchanged (single-device use, tests of the maths).
The context also tells the kernels which platform the program is for (`target_platform`): a
program compiled on this CPU host for TPU devices must not take the CPU kernels.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
from collections.abc import Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

# Parameter dimensions.
EMBED = "embed"
HEADS = "heads"
KV_HEADS = "kv_heads"
KV = "kv"
MLP = "mlp"
VOCAB = "vocab"
LAYERS = "layers"
LORA_RANK = "lora_rank"
JOINTS = "joints"
PATCHES = "patches"
CHANNELS = "channels"

# Activation dimensions.
ACT_BATCH = "activation_batch"
ACT_LENGTH = "activation_length"
ACT_EMBED = "activation_embed"
ACT_HEADS = "activation_heads"
ACT_KV_HEADS = "activation_kv_heads"
ACT_KV = "activation_kv"
ACT_MLP = "activation_mlp"
ACT_VOCAB = "activation_vocab"

# Common activation layouts.
BTD = (ACT_BATCH, ACT_LENGTH, ACT_EMBED)  # hidden states [B, T, d]
BTF = (ACT_BATCH, ACT_LENGTH, ACT_MLP)  # MLP activations [B, T, F]
BTHD = (ACT_BATCH, ACT_LENGTH, ACT_HEADS, ACT_KV)  # queries / attention outputs [B, T, H, Dh]
BTKD = (ACT_BATCH, ACT_LENGTH, ACT_KV_HEADS, ACT_KV)  # keys / values [B, T, K, Dh]
BTV = (ACT_BATCH, ACT_LENGTH, ACT_VOCAB)  # logits [B, T, V]

DEFAULT_LOGICAL_AXIS_RULES = (
    (ACT_BATCH, ("data", "fsdp")),
    (ACT_LENGTH, ()),
    (ACT_EMBED, ()),
    (ACT_HEADS, ("tensor",)),
    (ACT_KV_HEADS, ("tensor",)),
    (ACT_KV, ()),
    (ACT_MLP, ("tensor",)),
    (ACT_VOCAB, ("tensor",)),
    (EMBED, ("fsdp",)),
    (HEADS, ("tensor",)),
    (KV_HEADS, ("tensor",)),
    (KV, ()),
    (MLP, ("tensor",)),
    (VOCAB, ("tensor",)),
    (LAYERS, ()),
    (LORA_RANK, ()),
    (JOINTS, ()),
    (PATCHES, ()),
    (CHANNELS, ()),
)

# Names of earlier builds' rules, read from old configs: "batch" and "length" meant the activations'.
_RENAMED = {"batch": ACT_BATCH, "length": ACT_LENGTH}


def complete_rules(rules: Sequence[tuple[str, Sequence[str]]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`rules` with every logical name it does not give taken from the defaults (old names renamed)."""
    given = {_RENAMED.get(name, name): tuple(axes) for name, axes in rules}
    merged = dict(DEFAULT_LOGICAL_AXIS_RULES)
    merged.update(given)
    return tuple((name, tuple(axes)) for name, axes in merged.items())


def logical_to_spec(logical_axes: Sequence[str | None], rules, shape=None, mesh_shape=None) -> PartitionSpec:
    """PartitionSpec for an array whose dimensions carry `logical_axes`, by `rules`.

    A mesh axis is used at most once per array: a later dimension that maps to an axis already
    taken stays unsharded (as flax's `logical_to_mesh_axes`). With `shape` and `mesh_shape`, mesh
    axes that do not divide their dimension are dropped (a batch of 1 while decoding, a
    vocabulary of 32002 rows over 4 devices).

    Raises:
      KeyError: naming a logical axis that has no rule.
    """
    table = dict(rules)
    used: set[str] = set()
    spec: list = []
    for i, name in enumerate(logical_axes):
        if name is None:
            spec.append(None)
            continue
        if name not in table:
            raise KeyError(f"logical axis {name!r} has no rule in mesh.logical_axis_rules")
        axes = tuple(a for a in table[name] if a not in used)
        if shape is not None and mesh_shape is not None:
            kept: list[str] = []
            for a in axes:
                if shape[i] % (math.prod(mesh_shape[k] for k in kept) * mesh_shape[a]) == 0:
                    kept.append(a)
            axes = tuple(kept)
        used.update(axes)
        spec.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    return PartitionSpec(*spec)


@dataclasses.dataclass(frozen=True)
class ShardingContext:
    mesh: Mesh
    rules: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def platform(self) -> str:
        return self.mesh.devices.flat[0].platform


_CONTEXT: contextvars.ContextVar[ShardingContext | None] = contextvars.ContextVar("chatpose_sharding", default=None)


@contextlib.contextmanager
def sharding_context(mesh: Mesh, rules):
    """Activation constraints in the code traced inside bind to `mesh` by `rules` (completed with the defaults)."""
    token = _CONTEXT.set(ShardingContext(mesh, complete_rules(rules)))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_context() -> ShardingContext | None:
    return _CONTEXT.get()


def traced_under(fn, mesh: Mesh, rules):
    """`fn` that traces inside `sharding_context(mesh, rules)`: jit it, and its constraints bind."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with sharding_context(mesh, rules):
            return fn(*args, **kwargs)

    return wrapped


def constrain(x: jax.Array, logical_axes: Sequence[str | None]) -> jax.Array:
    """`x` constrained to the layout its `logical_axes` name on the mesh in context; `x` itself outside one."""
    ctx = _CONTEXT.get()
    if ctx is None:
        return x
    if len(logical_axes) != x.ndim:
        raise ValueError(f"logical axes {tuple(logical_axes)} for an array of shape {x.shape}")
    spec = logical_to_spec(logical_axes, ctx.rules, x.shape, dict(ctx.mesh.shape))
    return jax.lax.with_sharding_constraint(x, NamedSharding(ctx.mesh, spec))


def target_platform() -> str:
    """The platform the program being traced is for: the context mesh's devices', else JAX's default backend."""
    ctx = _CONTEXT.get()
    return ctx.platform if ctx is not None else jax.default_backend()
