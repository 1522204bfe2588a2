"""LoRA as a function of (frozen base, adapters): zero-B is the base model, merging is exact."""

import dataclasses

import jax
import numpy as np
import pytest

from chatpose_jax.model import chatpose
from chatpose_jax.model.config import LoraConfig, ModelConfig, TextConfig, VisionConfig
from chatpose_jax.model.lora import merge_lora


def _config(**lora):
    return ModelConfig(
        vision=VisionConfig(
            image_size=28, patch_size=14, hidden_size=32, intermediate_size=48, num_layers=2, num_heads=4
        ),
        text=TextConfig(vocab_size=96, hidden_size=64, intermediate_size=96, num_layers=2, num_heads=4, num_kv_heads=2),
        image_token_id=90,
        pose_token_id=91,
        pad_token_id=92,
        dtype="float32",
        lora=LoraConfig(**lora),
    )


@pytest.fixture(scope="module")
def setup():
    config = _config()
    params, lora = chatpose.init_params(config, jax.random.key(0))
    ids = jax.random.randint(jax.random.key(1), (2, 10), 3, 89)
    return config, params, lora, ids


# One compiled program per config and LoRA tree, not op-by-op dispatch of the model.
_apply = jax.jit(chatpose.apply, static_argnums=0)


def _logits(config, params, lora, ids, **kw):
    return np.asarray(_apply(config, params, lora, ids, **kw).logits)


def _randomise_b(lora, key):
    leaves, tree = jax.tree.flatten_with_path(lora)
    keys = jax.random.split(key, len(leaves))
    out = [
        0.05 * jax.random.normal(k, x.shape) if path[-1].key == "lora_b" else x
        for k, (path, x) in zip(keys, leaves, strict=True)
    ]
    return jax.tree.unflatten(tree, out)


def test_default_targets_are_q_and_v_of_every_decoder_layer(setup):
    config, _, lora, _ = setup
    assert set(lora) == {"language_model"}, "LoRA must not touch the vision tower, projector or heads"
    for i in range(config.text.num_layers):
        layer = lora["language_model"][f"layers_{i}"]
        assert set(layer["self_attn"]) == {"q_proj", "v_proj"} and "mlp" not in layer
        a, b = layer["self_attn"]["v_proj"]["lora"]["lora_a"], layer["self_attn"]["v_proj"]["lora"]["lora_b"]
        assert a.shape == (64, 8) and b.shape == (8, 32)
        assert not np.asarray(b).any(), "B starts at zero"


def test_zero_b_equals_base_model(setup):
    config, params, lora, ids = setup
    np.testing.assert_array_equal(_logits(config, params, lora, ids), _logits(config, params, None, ids))


def test_merged_equals_unmerged(setup):
    config, params, lora, ids = setup
    lora = _randomise_b(lora, jax.random.key(2))
    unmerged = _logits(config, params, lora, ids)
    base = _logits(config, params, None, ids)
    assert np.abs(unmerged - base).max() > 1e-3, "a non-zero B should change the logits"
    merged = merge_lora(params, lora, config.lora)
    np.testing.assert_allclose(_logits(config, merged, None, ids), unmerged, atol=1e-5)
    # The base stays as it was (merging builds a new tree).
    np.testing.assert_array_equal(_logits(config, params, None, ids), base)


def test_scaling_is_alpha_over_rank(setup):
    config, params, lora, ids = setup
    lora = _randomise_b(lora, jax.random.key(3))
    doubled = dataclasses.replace(config, lora=dataclasses.replace(config.lora, alpha=32.0))
    base = _logits(config, params, None, ids)
    twice_b = jax.tree.map(lambda x: x, lora)
    for layer in twice_b["language_model"].values():
        for proj in layer["self_attn"].values():
            proj["lora"]["lora_b"] = 2 * proj["lora"]["lora_b"]
    np.testing.assert_allclose(
        _logits(doubled, params, lora, ids) - base, _logits(config, params, twice_b, ids) - base, atol=1e-5
    )


def test_dropout_only_with_an_rng(setup):
    config, params, lora, ids = setup
    lora = _randomise_b(lora, jax.random.key(4))
    plain = _logits(config, params, lora, ids)
    a = _logits(config, params, lora, ids, dropout_rng=jax.random.key(5))
    b = _logits(config, params, lora, ids, dropout_rng=jax.random.key(6))
    again = _logits(config, params, lora, ids, dropout_rng=jax.random.key(5))
    assert np.abs(a - plain).max() > 1e-5 and np.abs(a - b).max() > 1e-5
    np.testing.assert_array_equal(a, again)


def test_gradients_reach_the_adapters_not_through_a_copy_of_the_base(setup):
    config, params, lora, ids = setup

    def loss(lora_params):
        return chatpose.apply(config, params, lora_params, ids).logits.mean()

    grads = jax.jit(jax.grad(loss))(lora)
    g_b = grads["language_model"]["layers_0"]["self_attn"]["q_proj"]["lora"]["lora_b"]
    assert np.abs(np.asarray(g_b)).max() > 0
    # With B = 0 the gradient with respect to A is exactly zero.
    g_a = grads["language_model"]["layers_0"]["self_attn"]["q_proj"]["lora"]["lora_a"]
    assert not np.asarray(g_a).any()


def test_target_modules_come_from_the_config():
    config = _config(rank=4, alpha=8.0, target_modules=("q_proj", "k_proj", "gate_proj", "down_proj"))
    shapes, _ = chatpose.abstract_variables(config)
    layer = shapes["lora"]["language_model"]["layers_1"]
    assert set(layer["self_attn"]) == {"q_proj", "k_proj"} and set(layer["mlp"]) == {"gate_proj", "down_proj"}
    assert layer["mlp"]["down_proj"]["lora"]["lora_a"].shape == (96, 4)
    assert "lora" not in chatpose.abstract_variables(_config(rank=0))[0]
