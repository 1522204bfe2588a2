"""The layout of the sharded steps, read from their partitioned programs on the 8-device CPU mesh.

A sharded run that equals the one-device run proves the numbers, not the layout: a step that
gathers the whole batch on every device computes the same losses. These tests compile the train,
eval and decode steps of a small LoRA ChatPose (scanned, rematerialised decoder: the layout of the
full recipes) and read the per-device HLO: no instruction carries the global batch, weights are
all-gathered one layer at a time inside the scanned loop, tensor parallelism splits the MLP.
"""

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from chatpose_jax.experiment import load_experiment
from chatpose_jax.parallel import axes
from chatpose_jax.parallel.mesh import MeshConfig, make_mesh
from chatpose_jax.train import aot
from chatpose_jax.train.setup import build_abstract_trainer
from chatpose_jax.utils import hlo
from tests.test_train_step import tiny_config

# 7 rows per device on 8 devices: no dimension of the tiny model is 56, or 56 times a sequence length.
GLOBAL_BATCH = 56
TEXT_LENGTH = 40


def lora_config(**mesh):
    config = tiny_config(
        model__scan_layers=True,
        model__remat_policy="full",
        train__trainable="lora_and_full_embeddings",
        train__batch_size=GLOBAL_BATCH,
        train__max_text_length=TEXT_LENGTH,
    )
    for name, size in mesh.items():
        config.mesh[name] = size
    return config


def compile_train(config, evaluate=False):
    experiment = load_experiment(config, len(jax.devices()))
    mesh = make_mesh(experiment.mesh)
    trainer = build_abstract_trainer(experiment, mesh)
    batch = aot.abstract_batch(experiment, mesh, TEXT_LENGTH)
    if evaluate:
        compiled = trainer.eval_fn.lower(trainer.frozen, trainer.state.trainable, batch).compile()
    else:
        compiled = trainer.step_fn.lower(trainer.state, trainer.frozen, batch).compile()
    return experiment, hlo.parse_module(compiled.as_text())


def global_batch_shapes(experiment, module) -> list[tuple[str, str]]:
    """Instructions with a dimension of the global batch, alone or flattened with a sequence length."""
    m = experiment.model
    lengths = {1, m.vision.num_image_tokens, m.vision.num_image_tokens + 1, TEXT_LENGTH}
    lengths |= {m.vision.num_image_tokens + TEXT_LENGTH + k for k in (-1, 0)}
    found = []
    for length in lengths:
        found += hlo.shapes_with_dim(module, GLOBAL_BATCH * length)
    return found


@pytest.fixture(scope="module")
def fsdp_train():
    return compile_train(lora_config(data=1, fsdp=8, tensor=1))


def test_fsdp_train_step_keeps_every_activation_at_the_per_device_batch(fsdp_train):
    experiment, module = fsdp_train
    assert "_spmd" in module.entry
    # The input rows are this device's 7; nothing inside gathers the 56.
    assert hlo.shapes_with_dim(module, GLOBAL_BATCH // 8)
    assert global_batch_shapes(experiment, module) == []


def test_fsdp_gathers_decoder_weights_one_layer_at_a_time_inside_the_scanned_loop(fsdp_train):
    experiment, module = fsdp_train
    t = experiment.model.text
    d, f, layers = t.hidden_size, t.intermediate_size, t.num_layers
    found, unknown = hlo.collectives(module, 8)
    assert unknown == []
    in_loop = {
        tuple(hlo.array_shapes(module.instruction(c.name).shape)[-1][1])
        for c in found
        if c.kind == "all-gather" and c.computation != module.entry and c.count % layers == 0
    }
    # q/o [d, H*Dh], gate/up [d, F], down [F, d]: whole for this layer only.
    assert {(d, d), (d, f), (f, d)} <= in_loop, in_loop
    gathered_stacks = [
        c
        for c in found
        if c.kind == "all-gather" and hlo.array_shapes(module.instruction(c.name).shape)[-1][1][:1] == (layers,)
    ]
    assert gathered_stacks == [], "a whole stack of layer weights was gathered at once"
    # The weights are gathered over fsdp's 8 devices.
    assert all(c.group_size == 8 for c in found if c.kind == "all-gather" and c.computation != module.entry)


def test_tensor_parallel_mesh_splits_the_mlp_and_keeps_the_batch_per_device():
    experiment, module = compile_train(lora_config(data=2, fsdp=2, tensor=2))
    assert global_batch_shapes(experiment, module) == []
    t = experiment.model.text
    rows = GLOBAL_BATCH // 4
    # The MLP's activations per device: its rows, the sequence, half of F.
    halves = [s for _, s in hlo.shapes_with_dim(module, t.intermediate_size // 2) if f"{rows}," in s]
    assert halves, "no MLP activation split over the tensor axis"


def test_fsdp_eval_step_keeps_every_activation_at_the_per_device_batch():
    experiment, module = compile_train(lora_config(data=1, fsdp=8, tensor=1), evaluate=True)
    assert global_batch_shapes(experiment, module) == []


def test_fsdp_decode_step_keeps_the_cache_and_activations_at_the_per_device_batch():
    config = lora_config(data=1, fsdp=8, tensor=1)
    experiment = load_experiment(config, len(jax.devices()))
    report = aot.compile_decode_step(experiment, jax.devices(), GLOBAL_BATCH, 128)
    module = hlo.parse_module(report.hlo)
    assert hlo.shapes_with_dim(module, GLOBAL_BATCH) == []
    assert hlo.shapes_with_dim(module, GLOBAL_BATCH // 8)


def test_constraints_bind_only_inside_a_sharding_context():
    mesh = make_mesh(MeshConfig(data=2, fsdp=4), jax.devices())

    def f(x):
        return axes.constrain(x * 2, axes.BTD)

    x = jax.ShapeDtypeStruct((8, 4, 16), np.float32)
    assert "sharding_constraint" not in jax.jit(f).lower(x).as_text()
    bound = jax.jit(axes.traced_under(f, mesh, axes.DEFAULT_LOGICAL_AXIS_RULES)).lower(x).as_text()
    assert "sharding_constraint" in bound
    # A dimension its mesh axes do not divide stays whole rather than failing (a batch of 1 in decoding).
    spec = axes.logical_to_spec(axes.BTD, axes.DEFAULT_LOGICAL_AXIS_RULES, (1, 4, 16), dict(mesh.shape))
    assert spec == PartitionSpec(None, None, None)
    spec = axes.logical_to_spec(axes.BTD, axes.DEFAULT_LOGICAL_AXIS_RULES, (2, 4, 16), dict(mesh.shape))
    assert spec == PartitionSpec("data", None, None)


def test_old_rule_names_are_read_as_the_activation_names_and_missing_ones_take_defaults():
    rules = dict(MeshConfig(logical_axis_rules=(("batch", ("data",)), ("embed", ("fsdp",)))).logical_axis_rules)
    assert rules[axes.ACT_BATCH] == ("data",)
    assert rules[axes.ACT_EMBED] == ()
    assert rules[axes.EMBED] == ("fsdp",)
    assert "batch" not in rules


def test_collective_bytes_multiply_by_the_loop_trip_count():
    """An all-gather of a row-sharded weight inside a 5-step loop counts 5 times its gathered bytes."""
    mesh = make_mesh(MeshConfig(data=1, fsdp=8), jax.devices())
    w_sharding = NamedSharding(mesh, PartitionSpec("fsdp", None))
    x_sharding = NamedSharding(mesh, PartitionSpec("fsdp", None))

    def f(x, w):
        def body(_, carry):
            x, w = carry  # w changes every step, so its gather cannot leave the loop
            y = jax.lax.with_sharding_constraint(jax.nn.tanh(x @ w), x_sharding)
            return y, jax.lax.with_sharding_constraint(w * 1.5, w_sharding)

        return jax.lax.fori_loop(0, 5, body, (x, w))

    x = jax.ShapeDtypeStruct((64, 32), np.float32, sharding=x_sharding)
    w = jax.ShapeDtypeStruct((32, 32), np.float32, sharding=w_sharding)
    compiled = jax.jit(f).lower(x, w).compile()
    found, unknown = hlo.collectives(hlo.parse_module(compiled.as_text()), 8)
    assert unknown == []
    totals = hlo.collective_bytes(found)
    assert totals.ici["all-gather"] == 5 * 32 * 32 * 4, totals
    assert totals.ops["all-gather"] == 5
    assert all(c.group_size == 8 for c in found)


@pytest.mark.parametrize(
    "attributes, groups",
    [
        (
            "replica_groups=mesh['a'=4,'b'=2], device_ids=([2,4]T(1,0)) {'a'}, dimensions={0}",
            [[0, 1, 2, 3], [4, 5, 6, 7]],
        ),
        ("replica_groups=mesh['a'=4,'b'=2] {'b'}, x", [[0, 1], [2, 3], [4, 5], [6, 7]]),
        ("replica_groups=[2,4]<=[4,2]T(1,0), x", [[0, 2, 4, 6], [1, 3, 5, 7]]),
        ("replica_groups={{0,1},{2,3}}, x", [[0, 1], [2, 3]]),
        ("replica_groups={}, x", [[0, 1, 2, 3]]),
    ],
)
def test_replica_groups_in_each_printed_form(attributes, groups):
    assert hlo._groups(attributes, 4 if "{}" in attributes else 8) == groups


def test_groups_that_join_slices_count_over_dcn():
    found = [
        hlo.Collective("all-gather", "a", "main", 1000, ((0, 1), (2, 3)), 2, "all-gather"),
        hlo.Collective("all-reduce", "b", "main", 400, ((0, 2), (1, 3)), 1, "all-reduce"),
    ]
    totals = hlo.collective_bytes(found, slice_of_device=[0, 0, 1, 1])
    assert totals.ici["all-gather"] == 2000 and totals.dcn["all-gather"] == 0
    assert totals.dcn["all-reduce"] == 400 and totals.ici["all-reduce"] == 0
    # Ring traffic: (n-1)/n of the buffer for a gather, twice that for an all-reduce.
    assert totals.ici_traffic == 2 * 0.5 * 1000 and totals.dcn_traffic == 2 * 0.5 * 400
