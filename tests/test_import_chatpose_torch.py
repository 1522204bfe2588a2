"""import-chatpose-torch: synthetic state dicts in the released ChatPose (LISA) layout give the pose of
a PyTorch computation of the same model (transformers' LLaVA + an nn.Sequential pose head)."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from llava_tiny import IMAGE_ID, image_prompt, make_hf_llava, pixels
from safetensors.torch import save_file
from torch import nn

from chatpose_jax.convert.chatpose_torch import import_chatpose_torch, load_chatpose_torch
from chatpose_jax.convert.checkpoint_io import load_checkpoint_tokenizer, load_model_checkpoint
from chatpose_jax.convert.hf import CheckpointError
from chatpose_jax.convert.hf_schema import flatten as hf_flatten
from tests import jit_model

SEG_ID = 160  # [SEG]: one row past the 160-token base vocabulary
LORA_RANK, LORA_ALPHA = 4, 8.0


@pytest.fixture(scope="module")
def reference():
    """The released model's maths in PyTorch: a tiny LLaVA grown by the [SEG] row, and LISA's
    text_hidden_fcs[0] = Sequential(Linear(d, d), ReLU, Linear(d, 144), Dropout)."""
    model = make_hf_llava(seed=7)
    model.resize_token_embeddings(SEG_ID + 1, mean_resizing=False)
    torch.manual_seed(1)
    with torch.no_grad():
        model.get_input_embeddings().weight[SEG_ID] = 0.3 * torch.randn(64)
        model.lm_head.weight[SEG_ID] = 0.3 * torch.randn(64)
    head = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 144), nn.Dropout(0.0)).eval()
    with torch.no_grad():
        head[2].weight.mul_(20.0)
    return model.eval(), head


def _released_state(model, head, with_tower: bool) -> dict:
    """LISA names: LLaMA under model.*, mm_projector.{0,2}, the tower under vision_tower.vision_tower.vision_model."""
    sd = {}
    for name, t in model.state_dict().items():
        if name.startswith("model.language_model."):
            sd["model." + name[len("model.language_model.") :]] = t
        elif name.startswith("model.multi_modal_projector.linear_"):
            i = {"1": "0", "2": "2"}[name[len("model.multi_modal_projector.linear_")]]
            sd[f"model.mm_projector.{i}." + name.rsplit(".", 1)[1]] = t
        elif name.startswith("model.vision_tower.") and with_tower:
            sd["model.vision_tower.vision_tower.vision_model." + name[len("model.vision_tower.") :]] = t
        elif name == "lm_head.weight":
            sd[name] = t
    for k, t in head.state_dict().items():
        sd["model.text_hidden_fcs.0." + k] = t
    sd["model.visual_model.image_encoder.patch_embed.proj.weight"] = torch.zeros(8, 3, 4, 4)  # LISA's SAM
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


def _with_peft_lora(sd: dict, seed: int = 0) -> dict:
    """The same model as PEFT saves it before merging: q/v_proj = base_layer + lora_B @ lora_A * alpha / r."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, t in sd.items():
        m = name.endswith(("q_proj.weight", "v_proj.weight"))
        if not m:
            out["base_model.model." + name] = t
            continue
        stem = "base_model.model." + name[: -len(".weight")]
        a = 0.2 * torch.randn(LORA_RANK, t.shape[1], generator=g)
        b = 0.2 * torch.randn(t.shape[0], LORA_RANK, generator=g)
        out[stem + ".base_layer.weight"] = t - b @ a * (LORA_ALPHA / LORA_RANK)
        out[stem + ".lora_A.default.weight"] = a
        out[stem + ".lora_B.default.weight"] = b
    return out


def _config_json(model, folder, mm_vision_tower="openai/clip-vit-large-patch14", mm_use_im_start_end=False):
    cfg = model.config.text_config.to_dict()
    cfg.update(
        model_type="llava_llama",
        vocab_size=SEG_ID,
        pad_token_id=0,
        mm_vision_tower=mm_vision_tower,
        mm_projector_type="mlp2x_gelu",
        mm_hidden_size=32,
        mm_vision_select_layer=-2,
        mm_vision_select_feature="patch",
        mm_use_im_start_end=mm_use_im_start_end,
    )
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f)


def _torch_pose(model, head, ids, px):
    """rot6d float32[B, 24, 6] at the state before the first [SEG], and the logits, by PyTorch."""
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids), pixel_values=torch.from_numpy(px), output_hidden_states=True)
        pos = torch.from_numpy(np.argmax(ids[:, 1:] == SEG_ID, axis=1))
        states = out.hidden_states[-1][torch.arange(len(ids)), pos]
        return head(states).reshape(len(ids), 24, 6).numpy(), out.logits.numpy()


def _hmr2_rot6d_to_rotmat(rot6d):
    """HMR2.0's 6D layout: reshape (2, 3), row 0 the first column a1, row 1 the second a2;
    b1 = a1/|a1|, b2 = normalise(a2 - (b1.a2) b1), b3 = b1 x b2, R = [b1 b2 b3] as columns."""
    pair = rot6d.reshape(*rot6d.shape[:-1], 2, 3)
    a1, a2 = pair[..., 0, :], pair[..., 1, :]
    b1 = a1 / np.linalg.norm(a1, axis=-1, keepdims=True)
    b2 = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = b2 / np.linalg.norm(b2, axis=-1, keepdims=True)
    return np.stack([b1, b2, np.cross(b1, b2)], axis=-1)


def _check_against_torch(config, params, reference):
    model, head = reference
    rng = np.random.RandomState(3)
    ids, px = image_prompt(rng, 2), pixels(rng, 2)
    ids[:, -3] = SEG_ID
    ref_rot6d, ref_logits = _torch_pose(model, head, ids, px)
    ours_ids = np.where(ids == IMAGE_ID, config.image_token_id, ids)  # LISA splices images; we use a placeholder
    out = jit_model.apply(config, params, None, jnp.asarray(ours_ids), jnp.asarray(px))
    assert np.asarray(out.pose.valid).all()
    err = np.abs(np.asarray(out.pose.rot6d)[:, 0] - ref_rot6d).max()
    assert err < 1e-4, f"pose head output differs by {err}"
    assert np.abs(ref_rot6d).max() > 0.5
    err = np.abs(np.asarray(out.logits)[..., : SEG_ID + 1] - ref_logits).max()
    assert err < 1e-4, f"logits differ by {err}"
    # The pose, root included, is the released formula's with no change of frame: both are in the
    # OpenCV camera frame the released model was trained in.
    released = _hmr2_rot6d_to_rotmat(ref_rot6d.astype(np.float64))
    err = np.abs(np.asarray(out.pose.rotmat)[:, 0] - released).max()
    assert err < 1e-5, f"rotation matrices differ from the released formula's by {err}"
    root_err = np.abs(np.asarray(out.pose.rotmat)[:, 0, 0] - released[:, 0]).max()
    assert root_err < 1e-5, f"the root differs by {root_err} (a frame change?)"


def test_merged_release_with_tower_in_one_file(reference, tmp_path):
    model, head = reference
    save_file(_released_state(model, head, with_tower=True), str(tmp_path / "chatpose-13b.safetensors"))
    _config_json(model, tmp_path, mm_use_im_start_end=True)  # mm_vision_tower names a hub id: tower from the file
    # Its shapes come from the tensors; only the head count (ViT-L: 1024 / 64) must be said for a 32-wide tower.
    config, params = load_chatpose_torch(
        str(tmp_path / "chatpose-13b.safetensors"), vision_num_heads=4, dtype="float32"
    )
    # [SEG] defaults to the last row; <image> is appended after it.
    assert (config.pose_token_id, config.image_token_id, config.text.vocab_size) == (SEG_ID, SEG_ID + 1, SEG_ID + 2)
    assert config.pose_head.num_joints == 24
    assert config.mm_use_im_start_end, "the checkpoint's mm_use_im_start_end is honoured"
    _check_against_torch(config, params, reference)


def _tokenizer_with_seg(folder):
    """A sentencepiece LLaMA tokenizer padded with extra tokens to 160, then [SEG] at 160 (as LISA adds it)."""
    from test_convert_hf import _sentencepiece_folder
    from transformers import AutoTokenizer

    os.makedirs(folder, exist_ok=True)
    _sentencepiece_folder(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.add_tokens([f"<extra_{i}>" for i in range(SEG_ID - len(tokenizer))])
    tokenizer.add_tokens(["[SEG]"])
    assert tokenizer.convert_tokens_to_ids("[SEG]") == SEG_ID
    tokenizer.save_pretrained(str(folder))
    return str(folder)


def test_peft_lora_release_with_clip_folder_and_tokenizer(reference, tmp_path):
    model, head = reference
    ckpt, clip = tmp_path / "ChatPose-7b", tmp_path / "clip"
    model.model.vision_tower.save_pretrained(str(clip))
    os.makedirs(ckpt)
    torch.save(_with_peft_lora(_released_state(model, head, with_tower=False)), str(ckpt / "pytorch_model.bin"))
    with open(ckpt / "adapter_config.json", "w") as f:
        json.dump({"r": LORA_RANK, "lora_alpha": LORA_ALPHA, "target_modules": ["q_proj", "v_proj"]}, f)
    _config_json(model, ckpt, mm_vision_tower=str(clip))
    tokenizer_dir = _tokenizer_with_seg(tmp_path / "tok")
    out = tmp_path / "imported"
    import_chatpose_torch(str(ckpt), str(out), tokenizer_dir=tokenizer_dir, dtype="float32")
    config, params = load_model_checkpoint(str(out))
    assert (config.pose_token_id, config.image_token_id) == (SEG_ID, SEG_ID + 1)
    assert not config.mm_use_im_start_end
    tokenizer = load_checkpoint_tokenizer(str(out))
    assert (
        tokenizer.convert_tokens_to_ids("<POSE>") == SEG_ID and tokenizer.convert_tokens_to_ids("<image>") == SEG_ID + 1
    )
    assert "[SEG]" not in tokenizer.get_vocab()
    _check_against_torch(config, params, reference)
    with pytest.raises(FileExistsError, match="overwrite"):
        import_chatpose_torch(str(ckpt), str(out), tokenizer_dir=tokenizer_dir)


def test_errors_name_the_tensor_and_what_is_missing(reference, tmp_path):
    model, head = reference
    sd = _with_peft_lora(_released_state(model, head, with_tower=True))
    save_file(sd, str(tmp_path / "lora.safetensors"))
    _config_json(model, tmp_path)
    with pytest.raises(CheckpointError, match="unmerged LoRA.*alpha is unknown.*--lora_alpha"):
        load_chatpose_torch(str(tmp_path / "lora.safetensors"), vision_num_heads=4)

    bad = _released_state(model, head, with_tower=True)
    bad["model.text_hidden_fcs.0.0.weight"] = torch.zeros(64, 32)
    save_file(bad, str(tmp_path / "bad_head.safetensors"))
    with pytest.raises(
        CheckpointError, match=r"text_hidden_fcs\.0\.0\.weight has shape \(64, 32\), expected \(64, 64\)"
    ):
        load_chatpose_torch(str(tmp_path / "bad_head.safetensors"), vision_num_heads=4)

    bad = _released_state(model, head, with_tower=True)
    bad["model.layers.1.self_attn.k_proj.weight"] = torch.zeros(48, 64)
    save_file(bad, str(tmp_path / "bad_k.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.layers\.1\.self_attn\.k_proj\.weight has shape \(48, 64\)"):
        load_chatpose_torch(str(tmp_path / "bad_k.safetensors"), vision_num_heads=4)


def test_export_reproduces_the_released_checkpoint(reference, tmp_path):
    """import-chatpose-torch then the ChatPose-layout export gives back the released tensors, pose head
    included and unconverted (both hold roots in the OpenCV camera frame); the export imports again."""
    from chatpose_jax.export.chatpose_layout import chatpose_state_dict, export_chatpose_torch

    model, head = reference
    released = _released_state(model, head, with_tower=True)
    save_file(released, str(tmp_path / "chatpose-13b.safetensors"))
    _config_json(model, tmp_path, mm_use_im_start_end=True)
    config, params = load_chatpose_torch(
        str(tmp_path / "chatpose-13b.safetensors"), vision_num_heads=4, dtype="float32"
    )
    exported = chatpose_state_dict(config, params)
    expected = {k: v.numpy() for k, v in released.items() if not k.startswith("model.visual_model.")}  # LISA's SAM
    unread = sorted(set(expected) - set(exported))
    assert all(".post_layernorm." in k for k in unread), f"tensors the export lacks: {unread}"
    assert not set(exported) - set(expected), sorted(set(exported) - set(expected))
    for name in sorted(set(exported) & set(expected)):
        np.testing.assert_array_equal(exported[name], expected[name], err_msg=name)
    out = tmp_path / "exported"
    export_chatpose_torch(config, params, str(out))
    again, again_params = load_chatpose_torch(str(out / "chatpose.safetensors"), vision_num_heads=4, dtype="float32")
    assert again == config
    flat = lambda tree: {k: np.asarray(v) for k, v in hf_flatten(tree).items()}  # noqa: E731
    for key, value in flat(params).items():
        np.testing.assert_array_equal(flat(again_params)[key], value, err_msg=str(key))
