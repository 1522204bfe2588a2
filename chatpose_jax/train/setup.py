"""Put a run on a mesh: sharded frozen base, sharded train state, the jitted step.

`build_trainer` is shared by the training loop, the tests, the benchmarks and ahead-of-time
compilation: the frozen base and the state are created directly in their shardings (with
`jax.jit(..., out_shardings=...)`), and the step is jitted with explicit in/out shardings and
the state donated.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from chatpose_jax.experiment import Experiment
from chatpose_jax.model import chatpose
from chatpose_jax.parallel.axes import traced_under
from chatpose_jax.parallel.mesh import batch_sharding
from chatpose_jax.train import state as state_lib
from chatpose_jax.train.optimizer import make_optimizer
from chatpose_jax.train.step import StepSettings, eval_step, train_step


@dataclasses.dataclass
class Trainer:
    """A run placed on a mesh."""

    mesh: Mesh
    settings: StepSettings
    optimizer: optax.GradientTransformation
    frozen: Any  # sharded frozen base params
    state: state_lib.TrainState  # sharded train state
    frozen_shardings: Any
    state_shardings: Any
    step_fn: Any  # jitted (state, frozen, batch[, body_model]) -> (state, metrics)
    eval_fn: Any  # jitted (frozen, trainable, batch[, body_model]) -> sums
    body_model: Any = None

    @property
    def batch_sharding(self) -> NamedSharding:
        return batch_sharding(self.mesh)

    def step(self, batch: dict):
        args = (self.state, self.frozen, batch) + ((self.body_model,) if self.body_model is not None else ())
        self.state, metrics = self.step_fn(*args)
        return metrics

    def evaluate(self, batch: dict) -> dict:
        args = (self.frozen, self.state.trainable, batch) + ((self.body_model,) if self.body_model is not None else ())
        return self.eval_fn(*args)


def new_token_ids(experiment: Experiment) -> tuple[int, ...]:
    """Rows trained in "lora_and_new_rows" mode: the `<POSE>` token's."""
    return (experiment.model.pose_token_id,)


def place_params(experiment: Experiment, mesh: Mesh, params=None, lora=None, seed: int = 0):
    """(params, lora) on the mesh: random init in place, or given host/device trees resharded."""
    rules = experiment.mesh.logical_axis_rules
    if params is None:
        return chatpose.init_params(experiment.model, jax.random.key(seed), mesh, rules)
    shardings = chatpose.variable_shardings(experiment.model, mesh, rules)
    params = jax.device_put(params, shardings["params"])
    if lora is None or not lora:
        _, lora = chatpose.init_params(experiment.model, jax.random.key(seed), mesh, rules)
    else:
        lora = jax.device_put(lora, shardings["lora"])
    return params, lora


def split_shardings(experiment: Experiment, mesh: Mesh) -> tuple[Any, Any]:
    """(frozen, trainable) shardings, mirroring `state.split_params` (new rows are replicated)."""
    model_shardings = chatpose.variable_shardings(experiment.model, mesh, experiment.mesh.logical_axis_rules)
    params_sh, lora_sh = model_shardings["params"], model_shardings.get("lora", {})
    frozen, trained = params_sh, {}
    mode = experiment.train.trainable
    if mode == "all":
        return {}, {"lora": lora_sh, "params": params_sh}
    paths = [state_lib.POSE_HEAD_PATH] if mode == "lora_and_new_rows" else state_lib.trained_paths(params_sh)
    for path in paths:
        trained = state_lib.set_path(trained, path, state_lib.get_path(params_sh, path))
        frozen = state_lib.pop_path(frozen, path)
    if mode == "lora_and_new_rows":
        replicated = NamedSharding(mesh, PartitionSpec())
        trained["new_rows"] = {"embedding": replicated}
        if state_lib.has_path(params_sh, state_lib.LM_HEAD_PATH):
            trained["new_rows"]["lm_head"] = replicated
    return frozen, {"lora": lora_sh, "params": trained}


def _jit_steps(
    experiment, mesh, optimizer, settings, state_shardings, frozen_shardings, trainable_shardings, body_model, donate
):
    replicated = NamedSharding(mesh, PartitionSpec())
    data_sharding = batch_sharding(mesh)
    body_shardings = () if body_model is None else (jax.tree.map(lambda _: replicated, body_model),)
    rules = experiment.mesh.logical_axis_rules
    # Traced under the mesh and the rules, so the model's activation constraints bind (parallel.axes).
    step = traced_under(functools.partial(train_step, settings=settings, optimizer=optimizer), mesh, rules)
    step_fn = jax.jit(
        step,
        in_shardings=(state_shardings, frozen_shardings, data_sharding, *body_shardings),
        out_shardings=(state_shardings, replicated),
        donate_argnums=(0,) if donate else (),
    )
    evaluate = traced_under(functools.partial(eval_step, settings=settings), mesh, rules)
    eval_fn = jax.jit(
        evaluate,
        in_shardings=(frozen_shardings, trainable_shardings, data_sharding, *body_shardings),
        out_shardings=replicated,
    )
    return step_fn, eval_fn


def step_settings(experiment: Experiment) -> StepSettings:
    return StepSettings(
        experiment.model,
        experiment.train.loss,
        experiment.train.grad_accum_steps,
        new_token_ids(experiment),
        # A packed row holds many conversations' text: its learned tokens have no bound below T.
        0 if experiment.data.pack else experiment.train.max_text_length,
    )


def build_trainer(
    experiment: Experiment,
    mesh: Mesh,
    params=None,
    lora=None,
    body_model=None,
    donate: bool = True,
) -> Trainer:
    """The frozen base and a fresh train state on `mesh`, and the jitted train/eval steps."""
    params, lora = place_params(experiment, mesh, params, lora, experiment.train.seed)
    ids = new_token_ids(experiment)
    frozen, trainable = state_lib.split_params(params, lora, experiment.train.trainable, ids)
    optimizer = make_optimizer(experiment.optimizer, experiment.train.num_steps)
    frozen_shardings, trainable_shardings = split_shardings(experiment, mesh)
    trainable = jax.device_put(trainable, trainable_shardings)
    replicated = NamedSharding(mesh, PartitionSpec())

    def init_state(trainable):
        return state_lib.init_train_state(trainable, optimizer, experiment.train.seed)

    abstract = jax.eval_shape(init_state, trainable)
    # Optimizer moments take their parameter's sharding; counters and keys are replicated.
    state_shardings = _shardings_like(abstract, trainable, trainable_shardings, replicated)
    state = jax.jit(init_state, out_shardings=state_shardings)(trainable)
    settings = step_settings(experiment)
    if body_model is not None:
        body_model = jax.device_put(body_model, jax.tree.map(lambda _: replicated, body_model))
    step_fn, eval_fn = _jit_steps(
        experiment,
        mesh,
        optimizer,
        settings,
        state_shardings,
        frozen_shardings,
        trainable_shardings,
        body_model,
        donate,
    )
    return Trainer(
        mesh, settings, optimizer, frozen, state, frozen_shardings, state_shardings, step_fn, eval_fn, body_model
    )


@dataclasses.dataclass
class AbstractTrainer:
    """Shapes and shardings of a run's step inputs, with nothing allocated (for ahead-of-time compiles)."""

    state: Any  # ShapeDtypeStructs with shardings
    frozen: Any
    step_fn: Any  # the jitted step, ready for .lower(state, frozen, batch)
    optimizer: optax.GradientTransformation
    eval_fn: Any = None  # the jitted eval step, ready for .lower(frozen, state.trainable, batch)


def build_abstract_trainer(experiment: Experiment, mesh: Mesh, donate: bool = True) -> AbstractTrainer:
    """The same step as `build_trainer`, over `jax.eval_shape` of the state: nothing is allocated."""
    shapes, _ = chatpose.abstract_variables(experiment.model)
    ids = new_token_ids(experiment)
    frozen_abs, trainable_abs = jax.eval_shape(
        lambda p, lo: state_lib.split_params(p, lo, experiment.train.trainable, ids),
        shapes["params"],
        shapes.get("lora", {}),
    )
    optimizer = make_optimizer(experiment.optimizer, experiment.train.num_steps)
    frozen_shardings, trainable_shardings = split_shardings(experiment, mesh)
    replicated = NamedSharding(mesh, PartitionSpec())
    state_abs = jax.eval_shape(lambda t: state_lib.init_train_state(t, optimizer, experiment.train.seed), trainable_abs)
    state_shardings = _shardings_like(state_abs, trainable_abs, trainable_shardings, replicated)

    def with_sharding(shape_tree, sharding_tree):
        return jax.tree.map(
            lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shape_tree, sharding_tree
        )

    step_fn, eval_fn = _jit_steps(
        experiment,
        mesh,
        optimizer,
        step_settings(experiment),
        state_shardings,
        frozen_shardings,
        trainable_shardings,
        None,
        donate,
    )
    return AbstractTrainer(
        with_sharding(state_abs, state_shardings),
        with_sharding(frozen_abs, frozen_shardings),
        step_fn,
        optimizer,
        eval_fn,
    )


def _shardings_like(abstract_state, trainable, trainable_shardings, replicated):
    """Shardings for the state: any subtree shaped like `trainable` (the moments) shares its shardings."""
    trainable_struct = jax.tree.structure(trainable)
    trainable_shapes = [x.shape for x in jax.tree.leaves(trainable)]

    def is_param_like(node) -> bool:
        try:
            return (
                jax.tree.structure(node) == trainable_struct
                and [x.shape for x in jax.tree.leaves(node)] == trainable_shapes
            )
        except Exception:  # noqa: BLE001 - optax nodes that are not trees of arrays
            return False

    def assign(node):
        if is_param_like(node):
            return trainable_shardings
        return jax.tree.map(lambda _: replicated, node)

    return jax.tree.map(assign, abstract_state, is_leaf=is_param_like)


def global_batch(batch: dict, sharding: NamedSharding) -> dict:
    """Host numpy arrays of the whole global batch (single-process) -> sharded jax.Arrays."""
    return {k: jax.device_put(jnp.asarray(v), sharding) for k, v in batch.items()}
