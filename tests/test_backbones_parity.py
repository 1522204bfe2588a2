"""Each backbone family against transformers: logits (text, image + text, padded) and greedy decoding.

Pairings (tests/backbones_tiny.py): llama + CLIP, mistral + CLIP with a window shorter than the
input, qwen2 + SigLIP with a tied head, llama3-scaled rope + CLIP.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from backbones_tiny import FAMILIES, WINDOW, family_pixels, make_family
from llava_tiny import IMAGE_ID, PAD_ID, VOCAB, hf_logits, image_prompt

from chatpose_jax.convert.hf import load_llava
from chatpose_jax.model import decoding
from tests import jit_model

TOL = 1e-4
NEW = 20  # new tokens in the decoding test: prompt (14) + 20 runs far past Mistral's window of 5


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request, tmp_path_factory):
    """(family, torch model, our config, our params) imported from the saved folder."""
    model = make_family(request.param)
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(str(folder))
    config, params = load_llava(str(folder), dtype="float32")
    return request.param, model, config, params


def _ours(config, params, ids, px=None, mask=None):
    args = [jnp.asarray(a) if a is not None else None for a in (ids, px, mask)]
    return np.asarray(jit_model.apply(config, params, None, *args).logits)[..., :VOCAB]


def _assert_close(ours, ref, where):
    err = np.abs(ours - ref).max()
    assert err < TOL, f"{where}: max |ours - transformers| = {err:.2e} (scale {np.abs(ref).max():.2f})"


def _left_padded(family, rng, pad=3):
    ids, px = image_prompt(rng, 2), family_pixels(family, rng, 2)
    mask = np.ones_like(ids)
    ids[1, pad:], ids[1, :pad], mask[1, :pad] = ids[1, :-pad], PAD_ID, 0
    return ids, px, mask


def test_config_carries_the_family(pair):
    family, _, config, _ = pair
    t, v = config.text, config.vision
    expected = {
        "llama_clip": (False, 0, False, "default", True),
        "mistral_clip": (False, WINDOW, False, "default", True),
        "qwen2_siglip": (True, 0, True, "default", False),
        "llama3_clip": (False, 0, False, "llama3", True),
    }[family]
    assert (t.qkv_bias, t.sliding_window, t.tie_word_embeddings, t.rope_type, v.class_token) == expected
    assert v.num_image_tokens == 4


def test_text_only_logits_match_transformers(pair):
    family, model, config, params = pair
    ids = np.random.RandomState(0).randint(3, IMAGE_ID, size=(2, 13))
    _assert_close(_ours(config, params, ids), hf_logits(model, ids), f"{family} text only")


def test_image_and_text_logits_match_transformers(pair):
    family, model, config, params = pair
    rng = np.random.RandomState(1)
    ids, px = image_prompt(rng, 2), family_pixels(family, rng, 2)
    ours = _ours(config, params, ids, px)
    _assert_close(ours, hf_logits(model, ids, px), f"{family} image + text")
    assert np.abs(_ours(config, params, ids, family_pixels(family, rng, 2)) - ours)[:, -1].max() > 1e-3, (
        "the image is ignored"
    )


def test_left_padded_batch_matches_transformers(pair):
    family, model, config, params = pair
    ids, px, mask = _left_padded(family, np.random.RandomState(2))
    position_ids = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    ref = hf_logits(model, ids, px, mask, position_ids)
    real = mask.astype(bool)
    _assert_close(_ours(config, params, ids, px, mask)[real], ref[real], f"{family} left padding")


def test_family_fields_change_the_logits(pair):
    """The parity above would not hold without the family's field: the tests can fail."""
    family, model, config, params = pair
    rng = np.random.RandomState(3)
    ids, px = image_prompt(rng, 1), family_pixels(family, rng, 1)
    text = config.text
    plain = {
        "llama_clip": dataclasses.replace(text, rope_theta=10000.0),
        "mistral_clip": dataclasses.replace(text, sliding_window=0),
        "qwen2_siglip": dataclasses.replace(text, rope_theta=10000.0),
        "llama3_clip": dataclasses.replace(text, rope_type="default"),
    }[family]
    other = _ours(dataclasses.replace(config, text=plain), params, ids, px)
    assert np.abs(other - hf_logits(model, ids, px)).max() > 1e-3


def test_greedy_decoding_equals_transformers_generate(pair):
    family, model, config, params = pair
    ids, px, mask = _left_padded(family, np.random.RandomState(4), pad=2)
    with torch.no_grad():
        ref = model.generate(
            input_ids=torch.from_numpy(ids),
            pixel_values=torch.from_numpy(px),
            attention_mask=torch.from_numpy(mask),
            max_new_tokens=NEW,
            do_sample=False,
            pad_token_id=PAD_ID,
            eos_token_id=-1,  # never stop: compare every token
        )[:, ids.shape[1] :].numpy()
    never = next(i for i in range(3, VOCAB) if i not in ref)  # as eos: every one of the NEW tokens counts
    cfg = dataclasses.replace(config, eos_token_id=never)
    out = decoding.generate(cfg, params, None, jnp.asarray(ids), jnp.asarray(px), jnp.asarray(mask), max_new_tokens=NEW)
    np.testing.assert_array_equal(np.asarray(out.tokens), ref, err_msg=f"{family}: greedy tokens differ")
