"""Remat policies change what the backward pass keeps, never the gradient; host offload is refused on CPU."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chatpose_jax.experiment import load_experiment
from chatpose_jax.model import chatpose
from chatpose_jax.model.llama import OFFLOAD_POLICIES
from chatpose_jax.parallel import axes
from chatpose_jax.parallel.mesh import MeshConfig, make_mesh
from tests.test_train_step import tiny_config

POLICIES = ("full", "minimal", "dots", "save_qkv_proj", "save_dot_except_mlp")


def loss_and_grads(policy: str):
    config = tiny_config(model__remat_policy=policy, model__scan_layers=True)
    model = load_experiment(config).model
    params, lora = chatpose.init_params(model, jax.random.key(0))
    ids = jax.random.randint(jax.random.key(1), (2, 24), 3, 1000)

    def loss(lora):
        out = chatpose.apply(model, params, lora, ids)
        return jnp.mean(jax.nn.log_softmax(out.logits) ** 2)

    lora = jax.tree.map(lambda x: x + 0.01, lora)  # LoRA B starts at zero: give the adapters a gradient path
    value, grads = jax.jit(jax.value_and_grad(loss))(lora)
    return float(value), grads


@pytest.fixture(scope="module")
def without_remat():
    return loss_and_grads("none")


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_gives_the_gradient_of_no_remat(policy, without_remat):
    value, grads = loss_and_grads(policy)
    base_value, base_grads = without_remat
    assert value == pytest.approx(base_value, rel=1e-6)
    for (path, g), b in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(base_grads), strict=True):
        np.testing.assert_allclose(g, b, rtol=1e-5, atol=1e-7, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("policy", OFFLOAD_POLICIES)
def test_host_offload_is_refused_for_cpu_programs_naming_the_field(policy):
    config = tiny_config(model__remat_policy=policy, model__scan_layers=True)
    model = load_experiment(config).model
    mesh = make_mesh(MeshConfig(data=1), jax.devices()[:1])
    with pytest.raises(ValueError, match=f"model.remat_policy='{policy}'.*pinned memory"):
        with axes.sharding_context(mesh, axes.DEFAULT_LOGICAL_AXIS_RULES):
            jax.eval_shape(lambda: chatpose.init_params(model, jax.random.key(0)))
