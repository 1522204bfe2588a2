"""Export to the released ChatPose (LISA) PyTorch layout: the inverse of `convert.chatpose_torch`.

The folder `export_chatpose_torch` writes:
  chatpose.safetensors   the state dict under the release's names (LoRA merged):
                         model.embed_tokens / model.layers.N.* / model.norm / lm_head.weight,
                         model.mm_projector.{0,2}.* (or model.mm_projector.* for a linear one),
                         model.vision_tower.vision_tower.vision_model.*,
                         model.text_hidden_fcs.0.{0,2}.{weight,bias} (the pose head)
  config.json            LlavaLlamaForCausalLM-style: the LLaMA fields plus mm_* (projector type,
                         vision select layer / feature, mm_use_im_start_end, hidden sizes)
Rows: the release splices images at the sentinel -200 and has no `<image>` row; ours, appended last
by the import, is dropped when it is the last row. The weights are written as they are: the pose
head's root is in the OpenCV camera frame in both (chatpose_jax.body.frames), no conversion.
SAM (`model.visual_model.*`, LISA's) is not part of ChatPose and is not written.
"""

from __future__ import annotations

import json
import os

import numpy as np

from chatpose_jax.convert import hf_schema as schema
from chatpose_jax.export.hf_export import (
    SafetensorsWriter,
    _Tensor,
    merged_leaf,
    plan_tensors,
    to_host,
)
from chatpose_jax.export.hf_export import _get as get_leaf
from chatpose_jax.export.hf_export import _lora_node as lora_node
from chatpose_jax.model.config import ModelConfig

WEIGHTS_FILE = "chatpose.safetensors"
_RENAMES = (  # our HF export's names -> the release's
    ("language_model.model.", "model."),
    ("language_model.lm_head.", "lm_head."),
    ("vision_tower.vision_model.", "model.vision_tower.vision_tower.vision_model."),
)


def released_name(stored: str, config: ModelConfig) -> str:
    """A tensor name of our Hugging Face export -> its name in the released ChatPose state dict."""
    for ours, theirs in _RENAMES:
        if stored.startswith(ours):
            return theirs + stored[len(ours) :]
    if stored.startswith("multi_modal_projector."):
        rest = stored[len("multi_modal_projector.") :]
        if config.projector.type == "linear":
            return "model.mm_projector." + rest.split(".", 1)[1]
        index = {"linear_1": "0", "linear_2": "2"}[rest.split(".", 1)[0]]
        return f"model.mm_projector.{index}." + rest.split(".", 1)[1]
    raise ValueError(f"no released name for tensor {stored}")


def kept_rows(config: ModelConfig) -> int:
    """Vocabulary rows the release holds: ours without a trailing `<image>` row."""
    rows = config.text.vocab_size
    return rows - 1 if config.image_token_id == rows - 1 else rows


def chatpose_state_dict(config: ModelConfig, params: dict, lora: dict | None = None) -> dict[str, np.ndarray]:
    """{released name: array in torch layout} of `params` (with `lora` merged), pose head included."""
    rows = kept_rows(config)
    out = {}
    for leaf in plan_tensors(config, params):
        value = to_host(merged_leaf(get_leaf(params, leaf.key), lora_node(lora or None, leaf.key), config.lora))
        for i, (t, kind, lp) in enumerate(zip(leaf.tensors, leaf.kinds, leaf.layer_paths, strict=True)):
            array = schema.to_torch_layout(value[i] if leaf.stacked else value, kind, lp, config)
            if kind == "vocab":
                array = array[:rows]
            out[released_name(t.name, config)] = array
    head = {k: to_host(v) for k, v in schema.flatten(params["pose_head"]).items()}
    for layer, index in (("fc1", 0), ("fc2", 2)):
        out[f"model.text_hidden_fcs.0.{index}.weight"] = np.asarray(head[(layer, "kernel")]).T
        out[f"model.text_hidden_fcs.0.{index}.bias"] = np.asarray(head[(layer, "bias")])
    return out


def released_config_json(config: ModelConfig) -> dict:
    """config.json in the release's LlavaLlama style (what `convert.chatpose_torch` reads back)."""
    t, v = config.text, config.vision
    select = "cls_patch" if v.feature_select == "full" else "patch"
    return {
        "architectures": ["LISAForCausalLM"],
        "model_type": "llava",
        "vocab_size": kept_rows(config),
        "hidden_size": t.hidden_size,
        "intermediate_size": t.intermediate_size,
        "num_hidden_layers": t.num_layers,
        "num_attention_heads": t.num_heads,
        "num_key_value_heads": t.num_kv_heads,
        "rms_norm_eps": t.rms_norm_eps,
        "rope_theta": t.rope_theta,
        "max_position_embeddings": t.max_position_embeddings,
        "hidden_act": t.hidden_act,
        "pad_token_id": config.pad_token_id,
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id,
        "mm_projector_type": "mlp2x_gelu" if config.projector.type == "mlp2x_gelu" else "linear",
        "mm_hidden_size": v.hidden_size,
        "mm_vision_select_layer": v.feature_layer,
        "mm_vision_select_feature": select,
        "mm_use_im_start_end": config.mm_use_im_start_end,
        "pose_frame": config.pose_frame,  # the root's frame: the release's own (OpenCV camera)
        "seg_token_idx": config.pose_token_id,
        "out_dim": config.pose_head.num_joints * 6,
    }


def export_chatpose_torch(config: ModelConfig, params: dict, out_dir: str, lora: dict | None = None) -> str:
    """Writes `out_dir/chatpose.safetensors` and `out_dir/config.json`; returns the weights file."""
    state = chatpose_state_dict(config, params, lora)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, WEIGHTS_FILE)
    plan = [_Tensor(name, tuple(a.shape), np.dtype(a.dtype)) for name, a in state.items()]
    writer = SafetensorsWriter(path, plan)
    for name, array in state.items():
        writer.write(name, array)
    writer.close()
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(released_config_json(config), f, indent=2)
    return path
