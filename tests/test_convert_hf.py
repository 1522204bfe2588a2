"""Import from both public LLaVA layouts; `<POSE>` rows; clear errors on a checkpoint that does not fit."""

import io
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sentencepiece as spm
from llava_tiny import IMAGE_ID, hf_logits, image_prompt, make_hf_llava, pixels, save_hf_llava
from safetensors.numpy import save_file

from chatpose_jax.convert.hf import CheckpointError, load_llava, load_tokenizer
from tests import jit_model


@pytest.fixture(scope="module")
def hf_model():
    return make_hf_llava(seed=5)


@pytest.fixture(scope="module")
def hf_folder(hf_model, tmp_path_factory):
    return save_hf_llava(hf_model, tmp_path_factory.mktemp("single"))


def test_sharded_safetensors_load_like_a_single_file(hf_model, hf_folder, tmp_path):
    sharded = save_hf_llava(hf_model, tmp_path / "sharded", max_shard_size="40KB")
    assert os.path.exists(os.path.join(sharded, "model.safetensors.index.json"))
    assert len([f for f in os.listdir(sharded) if f.endswith(".safetensors")]) > 1
    _, a = load_llava(hf_folder, dtype="float32")
    _, b = load_llava(sharded, dtype="float32")
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def _write_original_layout(hf_model, folder):
    """liuhaotian-style folder: LLaMA keys + model.mm_projector.{0,2}, vocab without <image>, CLIP apart."""
    llm_dir, clip_dir = folder / "llava", folder / "clip"
    hf_model.model.vision_tower.save_pretrained(str(clip_dir))  # vision_model.* keys
    n = IMAGE_ID  # the original vocabulary ends before the llava-hf <image> and <pad>
    tensors = {}
    for name, t in hf_model.state_dict().items():
        t = t.numpy()
        if name.startswith("model.language_model."):
            tensors["model." + name[len("model.language_model.") :]] = t
        elif name.startswith("model.multi_modal_projector.linear_1."):
            tensors["model.mm_projector.0." + name.rsplit(".", 1)[1]] = t
        elif name.startswith("model.multi_modal_projector.linear_2."):
            tensors["model.mm_projector.2." + name.rsplit(".", 1)[1]] = t
        elif name == "lm_head.weight":
            tensors[name] = t
    tensors["model.embed_tokens.weight"] = tensors["model.embed_tokens.weight"][:n]
    tensors["lm_head.weight"] = tensors["lm_head.weight"][:n]
    os.makedirs(llm_dir)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(llm_dir / "model.safetensors"))
    text = hf_model.config.text_config.to_dict()
    text.update(
        model_type="llava_llama",
        vocab_size=n,
        pad_token_id=0,  # LLaVA pads with unk
        mm_vision_tower=str(clip_dir),
        mm_projector_type="mlp2x_gelu",
        mm_hidden_size=hf_model.config.vision_config.hidden_size,
        mm_vision_select_layer=-2,
        mm_vision_select_feature="patch",
        mm_use_im_start_end=False,
        image_aspect_ratio="pad",
    )
    with open(llm_dir / "config.json", "w") as f:
        json.dump(text, f)
    return str(llm_dir)


def test_original_llava_layout_matches_transformers(hf_model, tmp_path):
    folder = _write_original_layout(hf_model, tmp_path)
    config, params = load_llava(folder, dtype="float32")
    # <image> and <POSE> are appended to the 158-token vocabulary.
    assert (config.image_token_id, config.pose_token_id, config.text.vocab_size) == (
        IMAGE_ID,
        IMAGE_ID + 1,
        IMAGE_ID + 2,
    )
    rng = np.random.RandomState(0)
    ids, px = image_prompt(rng, 2), pixels(rng, 2)
    ours = np.asarray(jit_model.apply(config, params, None, jnp.asarray(ids), jnp.asarray(px)).logits)[..., :IMAGE_ID]
    ref = hf_logits(hf_model, ids, px)[..., :IMAGE_ID]
    assert np.abs(ours - ref).max() < 1e-4, np.abs(ours - ref).max()


def _sentencepiece_folder(folder, vocab_size=100):
    corpus = [
        f"the person raises the {w} arm and bends the {v} knee" for w in ("left", "right") for v in ("left", "right")
    ]
    corpus += ["a chat between a curious human and an artificial intelligence assistant"] * 4
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus * 20),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        hard_vocab_limit=False,
        bos_id=1,
        eos_id=2,
        unk_id=0,
        pad_id=-1,
    )
    with open(folder / "tokenizer.model", "wb") as f:
        f.write(model.getvalue())
    with open(folder / "tokenizer_config.json", "w") as f:
        json.dump({"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False}, f)
    return spm.SentencePieceProcessor(model_proto=model.getvalue()).get_piece_size()


def test_pose_token_gets_the_next_id_and_mean_rows(hf_model, tmp_path):
    folder = save_hf_llava(hf_model, tmp_path / "with_tok")
    pieces = _sentencepiece_folder(tmp_path / "with_tok")
    tokenizer = load_tokenizer(folder)
    assert tokenizer.convert_tokens_to_ids("<POSE>") == pieces == len(tokenizer) - 1
    ids = tokenizer("raise the arm <POSE>")["input_ids"]
    assert ids[0] == 1 and ids[-1] == pieces, ids
    config, params = load_llava(folder, dtype="float32")
    assert config.pose_token_id == pieces
    # The checkpoint already has spare rows (as llava-hf's 32064): no growth, <POSE> takes row `pieces`.
    emb = np.asarray(params["language_model"]["embed_tokens"]["embedding"])
    head = np.asarray(params["lm_head"]["kernel"])
    ref_emb = hf_model.model.language_model.embed_tokens.weight.detach().numpy()
    ref_head = hf_model.lm_head.weight.detach().numpy()
    assert emb.shape == ref_emb.shape
    np.testing.assert_allclose(emb[pieces], ref_emb[:pieces].mean(0), atol=1e-6)
    np.testing.assert_allclose(head[:, pieces], ref_head[:pieces].mean(0), atol=1e-6)
    others = np.arange(len(ref_emb)) != pieces
    np.testing.assert_array_equal(emb[others], ref_emb[others])
    np.testing.assert_array_equal(head[:, others], ref_head[others].T)


def _key(tensors, suffix):
    """The stored name (whichever naming transformers used for the save) ending in `suffix`."""
    (name,) = [k for k in tensors if k.endswith(suffix) and "vision" not in k]
    return name


def _rewrite(folder, edit):
    path = os.path.join(folder, "model.safetensors")
    from safetensors.numpy import load_file

    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


def test_wrong_shape_names_tensor_and_both_shapes(hf_model, tmp_path):
    folder = save_hf_llava(hf_model, tmp_path / "bad")
    _rewrite(
        folder, lambda t: t.__setitem__(_key(t, "layers.1.self_attn.k_proj.weight"), np.zeros((48, 64), np.float32))
    )
    with pytest.raises(CheckpointError, match=r"k_proj\.weight has shape \(48, 64\), expected \(32, 64\)"):
        load_llava(folder)


def test_missing_tensor_is_named(hf_model, tmp_path):
    folder = save_hf_llava(hf_model, tmp_path / "partial")
    _rewrite(folder, lambda t: t.pop(_key(t, "multi_modal_projector.linear_2.weight")))
    with pytest.raises(CheckpointError, match=r"missing tensor multi_modal_projector\.linear_2\.weight.*\(64, 64\)"):
        load_llava(folder)


def test_unknown_layout_is_refused(hf_model, tmp_path):
    folder = save_hf_llava(hf_model, tmp_path / "bert")
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    cfg["model_type"] = "bert"
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f)
    with pytest.raises(CheckpointError, match="unknown layout"):
        load_llava(folder)
