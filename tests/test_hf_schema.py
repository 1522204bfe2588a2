"""convert/hf_schema.py: the one Hugging Face schema that import and export both read, read both ways."""

import dataclasses

import pytest

from chatpose_jax.convert import hf_schema as schema
from chatpose_jax.model import chatpose
from chatpose_jax.model.config import ModelConfig, TextConfig, VisionConfig


def _config(**text):
    return ModelConfig(
        vision=VisionConfig(
            image_size=28, patch_size=14, hidden_size=32, intermediate_size=48, num_layers=2, num_heads=4
        ),
        text=TextConfig(
            vocab_size=96, hidden_size=64, intermediate_size=96, num_layers=2, num_heads=4, num_kv_heads=2, **text
        ),
        image_token_id=90,
        pose_token_id=91,
        pad_token_id=92,
    )


@pytest.mark.parametrize("layout", [schema.HF_LLAVA, schema.ORIGINAL_LLAVA])
def test_every_leaf_is_stored_under_a_name_the_importer_reads_back(layout):
    config = _config(qkv_bias=True)
    shapes, _ = chatpose.abstract_variables(config)
    names = {}
    for path in schema.flatten(shapes["params"]):
        if path[0] == "pose_head":
            continue
        canonical, kind = schema.hf_name(path)
        stored = schema.stored_name(canonical)
        assert schema.canonical_name(stored, layout) == canonical, (path, stored)
        assert kind in ("linear", "conv", "copy", "vocab"), (path, kind)
        names[canonical] = path
    assert len(names) == len([p for p in schema.flatten(shapes["params"]) if p[0] != "pose_head"]), (
        "two leaves, one name"
    )
    assert "language_model.layers.1.self_attn.q_proj.bias" in names
    assert "vision_tower.encoder.layers.0.mlp.fc1.weight" in names
    assert schema.stored_name("lm_head.weight") == "language_model.lm_head.weight"


def test_torch_shapes_are_those_of_the_torch_layout():
    import numpy as np

    config = _config()
    shapes, _ = chatpose.abstract_variables(config)
    for path, leaf in schema.flatten(shapes["params"]).items():
        if path[0] == "pose_head":
            continue
        _, kind = schema.hf_name(path)
        value = np.zeros(leaf.shape, np.float32)
        assert schema.to_torch_layout(value, kind, path, config).shape == schema.torch_shape(
            leaf.shape, kind, path, config
        ), path


def test_activations_and_rope_read_back():
    assert {schema.OUR_ACT[schema.HF_ACT[a]] for a in schema.TEXT_ACTS + schema.VISION_ACTS} == set(
        schema.TEXT_ACTS + schema.VISION_ACTS
    )
    llama3 = _config(
        rope_type="llama3", rope_theta=500000.0, rope_factor=8.0, rope_low_freq_factor=1.0, rope_high_freq_factor=4.0
    ).text
    for text in (_config().text, llama3):
        fields = schema.rope_fields(schema.rope_parameters(text), text.rope_theta)
        assert dataclasses.replace(text, **fields) == text, fields


def test_each_vision_family_is_named_by_its_fields():
    clip = _config().vision
    siglip = dataclasses.replace(clip, class_token=False, pre_layernorm=False, patch_bias=True, feature_select="full")
    assert (schema.vision_family(clip), schema.vision_family(siglip)) == ("clip_vision_model", "siglip_vision_model")
    assert schema.vision_family(dataclasses.replace(clip, patch_bias=True)) is None
