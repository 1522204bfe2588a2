"""Logits of our ChatPose (imported from a transformers checkpoint) against transformers' LLaVA."""

import jax.numpy as jnp
import numpy as np
import pytest
from llava_tiny import IMAGE_ID, PAD_ID, VOCAB, hf_logits, image_prompt, make_hf_llava, pixels, save_hf_llava

from chatpose_jax.convert.hf import load_llava
from tests import jit_model

TOL = 1e-4


@pytest.fixture(scope="module", params=[2, 4], ids=["gqa", "mha"])
def pair(request, tmp_path_factory):
    """(torch model, our config, our params) for grouped-query (2 kv heads of 4) and plain attention."""
    model = make_hf_llava(num_kv_heads=request.param)
    folder = save_hf_llava(model, tmp_path_factory.mktemp(f"llava_kv{request.param}"))
    config, params = load_llava(folder, dtype="float32")
    assert config.text.num_kv_heads == request.param
    return model, config, params


def _ours(config, params, *args, **kw):
    logits = np.asarray(
        jit_model.apply(config, params, None, *(None if a is None else jnp.asarray(a) for a in args), **kw).logits
    )
    assert logits.shape[-1] == VOCAB + 1, "<POSE> should add exactly one row after the checkpoint's vocabulary"
    return logits[..., :VOCAB]  # the original logits keep their indices


def _assert_close(ours, ref, where=""):
    err = np.abs(ours - ref).max()
    assert err < TOL, f"{where}: max |ours - transformers| = {err:.2e} (scale {np.abs(ref).max():.2f})"


def test_text_only_logits_match_transformers(pair):
    model, config, params = pair
    ids = np.random.RandomState(0).randint(3, IMAGE_ID, size=(2, 11))
    _assert_close(_ours(config, params, ids), hf_logits(model, ids), "text only")


def test_image_and_text_logits_match_transformers(pair):
    model, config, params = pair
    rng = np.random.RandomState(1)
    ids, px = image_prompt(rng, 2), pixels(rng, 2)
    ours = _ours(config, params, ids, px)
    _assert_close(ours, hf_logits(model, ids, px), "image + text")
    # The image matters: another image changes the logits after the placeholders.
    other = _ours(config, params, ids, pixels(rng, 2))
    assert np.abs(other - ours)[:, -1].max() > 1e-3


@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_batch_matches_transformers_on_real_tokens(pair, side):
    model, config, params = pair
    rng = np.random.RandomState(2)
    ids, px = image_prompt(rng, 2), pixels(rng, 2)
    mask = np.ones_like(ids)
    pad = 3
    if side == "left":
        ids[1, pad:] = ids[1, :-pad]
        ids[1, :pad], mask[1, :pad] = PAD_ID, 0
    else:
        ids[1, -pad:], mask[1, -pad:] = PAD_ID, 0
    # transformers' forward counts positions from the first column; generate (and we) count real tokens.
    position_ids = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    ref = hf_logits(model, ids, px, mask, position_ids)
    ours = _ours(config, params, ids, px, mask)
    real = mask.astype(bool)
    _assert_close(ours[real], ref[real], f"{side} padding")
    # A padded row agrees with the same row run alone, unpadded.
    alone = _ours(config, params, ids[1:][real[1:]][None], px[1:])
    _assert_close(ours[1][real[1]], alone[0], f"{side}-padded row vs alone")


def test_reference_attention_equals_xla_attention(pair):
    _, config, params = pair
    rng = np.random.RandomState(3)
    ids, px = image_prompt(rng, 2), pixels(rng, 2)
    import dataclasses

    ref_cfg = dataclasses.replace(config, attention_impl="reference")
    _assert_close(_ours(ref_cfg, params, ids, px), _ours(config, params, ids, px), "reference vs xla attention")


def test_scanned_layers_equal_unrolled_layers(pair, tmp_path):
    model, config, params = pair
    folder = save_hf_llava(model, tmp_path / "ckpt")
    scan_cfg, scan_params = load_llava(folder, dtype="float32", scan_layers=True)
    q = scan_params["language_model"]["layers"]["self_attn"]["q_proj"]["kernel"]
    assert q.shape[0] == config.text.num_layers, "scanned params should stack the layers on axis 0"
    fc1 = scan_params["vision_tower"]["layers"]["mlp"]["fc1"]["kernel"]
    assert fc1.shape[0] == config.vision.num_layers, "the tower's layers too"
    rng = np.random.RandomState(4)
    ids, px = image_prompt(rng, 2), pixels(rng, 2)
    _assert_close(_ours(scan_cfg, scan_params, ids, px), _ours(config, params, ids, px), "scan vs unrolled")


def test_tied_embeddings_match_transformers(tmp_path):
    model = make_hf_llava(tie=True)
    config, params = load_llava(save_hf_llava(model, tmp_path / "tied"), dtype="float32")
    assert config.text.tie_word_embeddings and "lm_head" not in params
    ids = np.random.RandomState(5).randint(3, IMAGE_ID, size=(1, 9))
    _assert_close(_ours(config, params, ids), hf_logits(model, ids), "tied embeddings")
