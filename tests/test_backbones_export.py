"""export-hf per backbone family: transformers loads the folder with our logits, and it imports back exactly."""

import dataclasses
import json
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from backbones_tiny import FAMILIES, family_pixels, make_family
from llava_tiny import hf_logits, image_prompt

from chatpose_jax.convert.hf import load_llava
from chatpose_jax.export.hf_export import ExportError, export_hf, llava_config
from tests import jit_model

EXPECTED_TYPES = {
    "llama_clip": ("llama", "clip_vision_model"),
    "mistral_clip": ("mistral", "clip_vision_model"),
    "qwen2_siglip": ("qwen2", "siglip_vision_model"),
    "llama3_clip": ("llama", "clip_vision_model"),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_export_runs_in_transformers_and_imports_back_exactly(family, tmp_path):
    from transformers import LlavaForConditionalGeneration

    source = str(tmp_path / "source")
    make_family(family, seed=7).save_pretrained(source)
    config, params = load_llava(source, dtype="float32")
    # Move the <POSE> row off the mean so the round trip has something of ours to keep.
    emb = params["language_model"]["embed_tokens"]["embedding"]
    params["language_model"]["embed_tokens"]["embedding"] = emb.at[config.pose_token_id].add(0.5)
    out = str(tmp_path / "export")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_hf(config, params, out)

    with open(os.path.join(out, "config.json")) as f:
        written = json.load(f)
    types = (written["text_config"]["model_type"], written["vision_config"]["model_type"])
    assert types == EXPECTED_TYPES[family]

    model = LlavaForConditionalGeneration.from_pretrained(out, dtype="float32").eval()
    rng = np.random.RandomState(0)
    ids, px = image_prompt(rng, 2), family_pixels(family, rng, 2)
    ids[0, -1] = config.pose_token_id
    ours = np.asarray(jit_model.apply(config, params, None, jnp.asarray(ids), jnp.asarray(px)).logits)
    err = np.abs(ours - hf_logits(model, ids, px)).max()
    assert err < 1e-4, f"{family}: exported folder in transformers differs from ours by {err:.2e}"

    config2, params2 = load_llava(out, dtype="float32")
    assert config2.text == config.text and config2.vision == config.vision
    for (path, a), b in zip(
        jax.tree_util.tree_flatten_with_path(params)[0], jax.tree_util.tree_leaves(params2), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"{family}: {path}")


def test_a_tower_that_is_neither_clip_nor_siglip_is_refused():
    from chatpose_jax.experiment import load_experiment
    from configs.tiny import get_config

    config = load_experiment(get_config()).model
    mixed = dataclasses.replace(config, vision=dataclasses.replace(config.vision, patch_bias=True))
    with pytest.raises(ExportError, match="neither CLIP .* nor SigLIP"):
        llava_config(mixed)
