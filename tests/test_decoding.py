"""Greedy decoding with the KV cache against transformers' `generate`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from llava_tiny import PAD_ID, image_prompt, make_hf_llava, pixels, save_hf_llava

from chatpose_jax.convert.hf import load_llava
from chatpose_jax.model import decoding

NEW = 20


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    model = make_hf_llava(seed=11)
    config, params = load_llava(save_hf_llava(model, tmp_path_factory.mktemp("dec")), dtype="float32")
    return model, config, params


def _hf_generate(model, ids, px, mask):
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.from_numpy(ids),
            pixel_values=torch.from_numpy(px),
            attention_mask=torch.from_numpy(mask),
            max_new_tokens=NEW,
            do_sample=False,
            pad_token_id=PAD_ID,
            eos_token_id=-1,  # never stop: compare all 20 tokens
        )
    return out[:, ids.shape[1] :].numpy()


def test_greedy_tokens_equal_transformers_generate(pair):
    model, config, params = pair
    rng = np.random.RandomState(0)
    ids, px = image_prompt(rng, 2), pixels(rng, 2)
    mask = np.ones_like(ids)
    ids[1, 2:], ids[1, :2], mask[1, :2] = ids[1, :-2], PAD_ID, 0  # left padding, as generate expects
    ref = _hf_generate(model, ids, px, mask)
    assert ref.shape == (2, NEW)
    # A stop id that never occurs: all 20 tokens compare, as in the transformers call.
    import dataclasses

    cfg = dataclasses.replace(config, eos_token_id=PAD_ID - 1)
    out = decoding.generate(cfg, params, None, jnp.asarray(ids), jnp.asarray(px), jnp.asarray(mask), max_new_tokens=NEW)
    np.testing.assert_array_equal(np.asarray(out.tokens), ref)


def test_generation_stops_at_eos_and_pads(pair):
    _, config, params = pair
    rng = np.random.RandomState(1)
    ids, px = image_prompt(rng, 1), pixels(rng, 1)
    free = decoding.generate(config, params, None, jnp.asarray(ids), jnp.asarray(px), max_new_tokens=8)
    import dataclasses

    # Make the 3rd generated token the stop token: decoding must stop there and pad after it.
    stop = int(free.tokens[0, 2])
    cfg = dataclasses.replace(config, eos_token_id=stop)
    out = decoding.generate(cfg, params, None, jnp.asarray(ids), jnp.asarray(px), max_new_tokens=8)
    first = int(np.flatnonzero(np.asarray(free.tokens[0]) == stop)[0])
    np.testing.assert_array_equal(out.tokens[0, : first + 1], free.tokens[0, : first + 1])
    assert (np.asarray(out.tokens[0, first + 1 :]) == config.pad_token_id).all()
    assert int(out.lengths[0]) == first + 1


def test_top_p_keeps_only_the_nucleus():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
    draws = jax.vmap(lambda k: decoding.sample_token(logits, k, temperature=1.0, top_p=0.7))(
        jax.random.split(jax.random.key(0), 400)
    )
    assert set(np.unique(np.asarray(draws))) == {0, 1}
    assert (np.asarray(decoding.sample_token(logits, jax.random.key(1))) == 0).all()  # greedy
