"""configs/backbones/*: each validates, and its parameter count equals the published checkpoint's in transformers.

The published side is the hub config.json of each checkpoint (its shape fields, typed below), built
as a transformers LlavaForConditionalGeneration on the meta device; ours is `jax.eval_shape`.
"""

from pathlib import Path

import jax
import numpy as np
import pytest

from chatpose_jax.config_files import repo_config
from chatpose_jax.experiment import load_experiment
from chatpose_jax.model import chatpose

REPO = Path(__file__).resolve().parent.parent
BACKBONES = sorted(p.stem for p in (REPO / "configs" / "backbones").glob("*.py") if p.stem != "__init__")

_CLIP = dict(
    model_type="clip_vision_model",
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    image_size=336,
    patch_size=14,
    projection_dim=768,
    hidden_act="quick_gelu",
)
_SIGLIP = dict(
    model_type="siglip_vision_model",
    hidden_size=1152,
    intermediate_size=4304,
    num_hidden_layers=26,
    num_attention_heads=16,
    image_size=384,
    patch_size=14,
    layer_norm_eps=1e-6,
    hidden_act="gelu_pytorch_tanh",
    vision_use_head=False,
)


def _llama(d, layers, heads, ffn, vocab):
    return dict(
        model_type="llama",
        hidden_size=d,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        intermediate_size=ffn,
        vocab_size=vocab,
    )


# checkpoint config -> (hub text_config, hub vision_config, feature layer, strategy, image tokens, extra rows)
PUBLISHED = {
    "llava15_7b_hf": (_llama(4096, 32, 32, 11008, 32064), _CLIP, -2, "default", 576, 0),
    "llava15_13b_hf": (_llama(5120, 40, 40, 13824, 32064), _CLIP, -2, "default", 576, 0),
    "llava_v15_7b": (_llama(4096, 32, 32, 11008, 32000), _CLIP, -2, "default", 576, 2),  # + <image>, <POSE>
    "llava_v15_13b": (_llama(5120, 40, 40, 13824, 32000), _CLIP, -2, "default", 576, 2),
    "bakllava_v1_hf": (
        dict(
            model_type="mistral",
            hidden_size=4096,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            intermediate_size=14336,
            vocab_size=32064,
            sliding_window=4096,
        ),
        _CLIP,
        -2,
        "default",
        576,
        0,
    ),
    "llava_interleave_qwen_0_5b_hf": (
        dict(
            model_type="qwen2",
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            num_key_value_heads=16,
            intermediate_size=2816,
            vocab_size=152000,
            tie_word_embeddings=True,
            rope_theta=1e6,
        ),
        _SIGLIP,
        -1,
        "full",
        729,
        0,
    ),
    "llava_interleave_qwen_7b_hf": (
        dict(
            model_type="qwen2",
            hidden_size=4096,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            intermediate_size=11008,
            vocab_size=152000,
            tie_word_embeddings=False,
            rope_theta=1e6,
        ),
        _SIGLIP,
        -1,
        "full",
        729,
        0,
    ),
}


def _load(name):
    return load_experiment(repo_config(f"backbones/{name}"))


def _published_count(text: dict, vision: dict) -> int:
    import torch
    from transformers import AutoConfig, LlavaConfig, LlavaForConditionalGeneration

    text, vision = dict(text), dict(vision)
    text_cfg = AutoConfig.for_model(text.pop("model_type"), **text)
    vision_cfg = AutoConfig.for_model(vision.pop("model_type"), **vision)
    cfg = LlavaConfig(text_config=text_cfg, vision_config=vision_cfg, tie_word_embeddings=text_cfg.tie_word_embeddings)
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(cfg)
    return sum(p.numel() for p in model.parameters())  # tied weights are one parameter


def test_every_backbone_config_is_checked():
    assert set(BACKBONES) == set(PUBLISHED), "a configs/backbones file without a published shape (or the reverse)"


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_config_has_the_published_shapes(name):
    text, vision, layer, select, tokens, extra_rows = PUBLISHED[name]
    model = _load(name).model
    assert (model.vision.feature_layer, model.vision.feature_select) == (layer, select)
    assert model.vision.num_image_tokens == tokens
    assert model.text.vocab_size == text["vocab_size"] + extra_rows
    shapes, _ = chatpose.abstract_variables(model)
    params = {k: v for k, v in shapes["params"].items() if k != "pose_head"}
    ours = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    tables = 1 if model.text.tie_word_embeddings else 2  # embedding (and LM head) rows we add
    published = _published_count(text, vision) + extra_rows * model.text.hidden_size * tables
    assert ours == published, f"{name}: {ours:,} parameters, the published checkpoint has {published:,}"
