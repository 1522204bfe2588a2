"""`load_llava` per backbone family: every key layout of BACKBONES.md, old and new rope fields, named refusals."""

import json
import os
import re
import shutil

import jax
import numpy as np
import pytest
from backbones_tiny import FAMILIES, LLAMA3_ROPE, make_family
from safetensors.numpy import load_file, save_file

from chatpose_jax.convert.hf import CheckpointError, load_llava

# Names transformers 5.24 writes (model.language_model.*, model.vision_tower.* without vision_model,
# model.multi_modal_projector.*, lm_head.weight) -> each older layout.
LAYOUTS = {
    "hub": [
        (r"^model\.language_model\.", "language_model.model."),
        (r"^lm_head\.", "language_model.lm_head."),
        (r"^model\.vision_tower\.", "vision_tower.vision_model."),
        (r"^model\.multi_modal_projector\.", "multi_modal_projector."),
    ],
    "transformers<5.6": [(r"^model\.vision_tower\.", "model.vision_tower.vision_model.")],
    "transformers>=5.6": [],
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """family -> (folder as transformers saves it, the params it loads to)."""
    out = {}
    for family in FAMILIES:
        folder = str(tmp_path_factory.mktemp(family))
        make_family(family, seed=3).save_pretrained(folder)
        out[family] = folder, load_llava(folder, dtype="float32")
    return out


def _copy(folder, dest, rename=(), edit_config=None):
    shutil.copytree(folder, dest)
    if rename:
        path = os.path.join(dest, "model.safetensors")
        tensors = load_file(path)
        renamed = {}
        for name, value in tensors.items():
            for pattern, repl in rename:
                name = re.sub(pattern, repl, name)
            renamed[name] = value
        save_file(renamed, path)
    if edit_config is not None:
        path = os.path.join(dest, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        edit_config(cfg)
        with open(path, "w") as f:
            json.dump(cfg, f)
    return str(dest)


def _assert_same_params(a, b, where):
    flat_a, flat_b = jax.tree_util.tree_flatten_with_path(a)[0], dict(jax.tree_util.tree_flatten_with_path(b)[0])
    assert len(flat_a) == len(flat_b), f"{where}: {len(flat_a)} leaves vs {len(flat_b)}"
    for path, value in flat_a:
        np.testing.assert_array_equal(np.asarray(value), np.asarray(flat_b[path]), err_msg=f"{where}: {path}")


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("family", FAMILIES)
def test_every_key_layout_loads_the_same_params(saved, family, layout, tmp_path):
    folder, (config, params) = saved[family]
    renamed = _copy(folder, tmp_path / "renamed", LAYOUTS[layout])
    config2, params2 = load_llava(renamed, dtype="float32")
    assert config2 == config
    _assert_same_params(params2, params, f"{family} / {layout}")


def test_rope_fields_at_the_top_of_text_config_read_like_rope_parameters(saved, tmp_path):
    """Files written before transformers 5 keep `rope_theta` / `rope_scaling` in text_config itself."""
    folder, (config, _) = saved["llama3_clip"]

    def legacy(cfg):
        text = cfg["text_config"]
        text.pop("rope_parameters", None)
        text["rope_theta"] = LLAMA3_ROPE["rope_theta"]
        text["rope_scaling"] = {k: v for k, v in LLAMA3_ROPE.items() if k not in ("rope_theta", "rope_type")}
        text["rope_scaling"]["type"] = "llama3"

    config2, _ = load_llava(_copy(folder, tmp_path / "legacy", edit_config=legacy), dtype="float32")
    assert config2.text == config.text


def test_image_token_count_comes_from_the_tower(saved, tmp_path):
    """llava-interleave leaves image_seq_length at 576 while SigLIP gives 729: the tower wins."""
    folder, (config, _) = saved["qwen2_siglip"]
    config2, _ = load_llava(_copy(folder, tmp_path / "seq", edit_config=lambda c: c.update(image_seq_length=576)))
    assert config2.vision.num_image_tokens == config.vision.num_image_tokens == 4


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["text_config"].update(model_type="gemma"), r"decoder family 'gemma' is not supported"),
        (
            lambda c: c["text_config"].update(rope_parameters={"rope_type": "yarn", "rope_theta": 1e4, "factor": 2.0}),
            r"rope scaling of type 'yarn' is not supported",
        ),
        (
            lambda c: c["text_config"].update(rope_scaling={"type": "dynamic", "factor": 2.0}),
            r"rope scaling of type 'dynamic' is not supported",
        ),
        (lambda c: c["vision_config"].update(model_type="pixtral"), r"vision tower 'pixtral' is not supported"),
        (lambda c: c.update(vision_feature_select_strategy="default"), r'"default" drops a CLS token'),
        (
            lambda c: c["text_config"].update(use_sliding_window=True, sliding_window=4, max_window_layers=1),
            r"sliding window on only some layers",
        ),
    ],
    ids=["gemma", "yarn", "dynamic", "pixtral", "siglip_default", "qwen2_partial_window"],
)
def test_unsupported_families_fail_at_load_naming_them(saved, tmp_path, edit, message):
    folder, _ = saved["qwen2_siglip"]
    with pytest.raises(CheckpointError, match=message):
        load_llava(_copy(folder, tmp_path / "bad", edit_config=edit))
