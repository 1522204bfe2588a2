"""The Hugging Face LLaVA schema, one table for both directions: `convert.hf` reads it to import,
`export.hf_export` to export; those two only stream tensors.

Names: every tensor name a checkpoint may hold is normalised to one canonical form
(`language_model.layers.0.self_attn.q_proj.weight`, `vision_tower.encoder.layers.0...`,
`multi_modal_projector.linear_1...`, `lm_head.weight`); `hf_name` maps a leaf of our params tree
to its canonical name and how its values are laid out, `stored_name` gives the name
`save_pretrained` writes. Config: the decoder and tower families, activations and rope types.
"""

from __future__ import annotations

import re

import numpy as np

HF_LLAVA = "hf_llava"  # LlavaForConditionalGeneration folders (llava-hf/*, export-hf)
ORIGINAL_LLAVA = "original_llava"  # liuhaotian/llava-v1.5-* (LlavaLlamaForCausalLM)

# ---------------------------------------------------------------------------------------------
# Config

# What each supported family fixes that its transformers config does not state as a field.
TEXT_FAMILIES = {
    "llama": dict(qkv_bias=False),
    "mistral": dict(qkv_bias=False),
    "qwen2": dict(qkv_bias=True),  # q/k/v carry a bias, o_proj and the MLP do not
}
VISION_FAMILIES = {
    "clip_vision_model": dict(class_token=True, pre_layernorm=True, patch_bias=False),
    "siglip_vision_model": dict(class_token=False, pre_layernorm=False, patch_bias=True),
}
# transformers' hidden_act -> ours; HF_ACT is its inverse.
OUR_ACT = {"quick_gelu": "quick_gelu", "gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "silu": "silu"}
HF_ACT = {ours: hf for hf, ours in OUR_ACT.items()}
TEXT_ACTS = ("silu", "gelu", "gelu_tanh")  # ours, for the decoder's MLP gate
VISION_ACTS = ("quick_gelu", "gelu", "gelu_tanh")  # ours, for the tower's MLP
ROPE_TYPES = ("default", "llama3")
# Our llama3 rope fields: (transformers' rope_parameters key, type).
LLAMA3_ROPE = {
    "rope_factor": ("factor", float),
    "rope_low_freq_factor": ("low_freq_factor", float),
    "rope_high_freq_factor": ("high_freq_factor", float),
    "rope_original_max_position_embeddings": ("original_max_position_embeddings", int),
}


def vision_family(vision) -> str | None:
    """The transformers model_type whose family fields `vision` (a VisionConfig) has, or None."""
    for model_type, fields in VISION_FAMILIES.items():
        if all(getattr(vision, k) == v for k, v in fields.items()):
            return model_type
    return None


def rope_parameters(text) -> dict:
    """transformers' `rope_parameters` of our TextConfig `text`."""
    rope = {"rope_type": text.rope_type, "rope_theta": text.rope_theta}
    if text.rope_type == "llama3":
        rope.update({hf: getattr(text, ours) for ours, (hf, _) in LLAMA3_ROPE.items()})
    return rope


def rope_fields(rope: dict, theta: float) -> dict:
    """Our TextConfig rope fields of transformers' `rope_parameters` (`rope_type` one of ROPE_TYPES)."""
    fields = dict(rope_theta=float(theta), rope_type=rope.get("rope_type") or "default")
    if fields["rope_type"] == "llama3":
        fields.update({ours: cast(rope[hf]) for ours, (hf, cast) in LLAMA3_ROPE.items()})
    return fields


# ---------------------------------------------------------------------------------------------
# Tensor names

IGNORED = re.compile(r"(rotary_emb\.inv_freq|embeddings\.position_ids)$")  # buffers, not weights
# Checkpoint name prefixes -> canonical ones, first match wins.
_CANONICAL_PREFIXES = (
    (r"^language_model\.model\.", "language_model."),
    (r"^language_model\.lm_head\.", "lm_head."),
    (r"^model\.language_model\.", "language_model."),
    (r"^model\.vision_tower\.vision_tower\.vision_model\.", "vision_tower."),  # original, tower included
    (r"^model\.vision_tower\.(vision_model\.)?", "vision_tower."),
    (r"^vision_tower\.vision_model\.", "vision_tower."),
    (r"^model\.multi_modal_projector\.", "multi_modal_projector."),
    (r"^model\.mm_projector\.0\.", "multi_modal_projector.linear_1."),
    (r"^model\.mm_projector\.2\.", "multi_modal_projector.linear_2."),
    (r"^model\.mm_projector\.", "multi_modal_projector.linear_1."),  # "linear" projector: one Linear
)
# Canonical prefixes -> what transformers' save_pretrained writes (the hub files' names).
_STORED_PREFIXES = (
    ("lm_head.", "language_model.lm_head."),
    ("language_model.", "language_model.model."),
    ("vision_tower.", "vision_tower.vision_model."),
)


def canonical_name(name: str, layout: str) -> str | None:
    """One name for a tensor whatever the layout wrote; None for tensors we do not read."""
    if IGNORED.search(name):
        return None
    for pattern, repl in _CANONICAL_PREFIXES:
        if re.match(pattern, name):
            return re.sub(pattern, repl, name)
    if layout == ORIGINAL_LLAVA and name.startswith("model."):
        return "language_model." + name[len("model.") :]
    if name.startswith(("vision_tower.", "multi_modal_projector.", "language_model.", "lm_head.")):
        return name
    return "?" + name


def clip_canonical(name: str) -> str | None:
    """Names in a standalone CLIP folder (CLIPModel: `vision_model.*`; a CLIPVisionModel saved by
    transformers >= 5.6: no prefix); None outside the vision model (text tower, projections)."""
    if IGNORED.search(name):
        return None
    if name.startswith("vision_model."):
        return "vision_tower." + name[len("vision_model.") :]
    if name.startswith(("embeddings.", "encoder.", "pre_layrnorm.", "post_layernorm.")):
        return "vision_tower." + name
    return None


def stored_name(canonical: str) -> str:
    """Canonical name -> the name transformers' `save_pretrained` writes."""
    for prefix, stored in _STORED_PREFIXES:
        if canonical.startswith(prefix):
            return stored + canonical[len(prefix) :]
    return canonical


def hf_name(path: tuple[str, ...]) -> tuple[str, str]:
    """Our params path -> (canonical HF name, how to transform: 'linear' | 'conv' | 'copy' | 'vocab')."""
    leaf = path[-1]
    parts = []
    for p in path[:-1]:
        m = re.fullmatch(r"layers_(\d+)", p)
        parts.append(f"layers.{m.group(1)}" if m else p)
    if path[0] == "vision_tower" and path[1].startswith("layers_"):
        parts.insert(1, "encoder")
    if path == ("vision_tower", "embeddings", "class_embedding"):
        return "vision_tower.embeddings.class_embedding", "copy"
    if path == ("vision_tower", "embeddings", "position_embedding"):
        return "vision_tower.embeddings.position_embedding.weight", "copy"
    if path == ("vision_tower", "embeddings", "patch_embedding", "kernel"):
        return "vision_tower.embeddings.patch_embedding.weight", "conv"
    if path in (("language_model", "embed_tokens", "embedding"), ("lm_head", "kernel")):
        return ".".join(parts) + ".weight", "vocab"
    if leaf == "kernel":
        return ".".join(parts) + ".weight", "linear"
    if leaf in ("scale", "embedding"):
        return ".".join(parts) + ".weight", "copy"
    return ".".join(parts) + "." + leaf, "copy"


def layer_paths(key: tuple[str, ...], config) -> list[tuple[str, ...]]:
    """A scanned leaf (language_model/layers/... or vision_tower/layers/...) stands for one per-layer
    path per layer, in layer order."""
    depth = {"language_model": config.text.num_layers, "vision_tower": config.vision.num_layers}
    if len(key) < 2 or key[1] != "layers" or key[0] not in depth:
        return [key]
    return [(key[0], f"layers_{i}", *key[2:]) for i in range(depth[key[0]])]


# ---------------------------------------------------------------------------------------------
# Tensor layouts (torch stores linears [out, in], the patch conv [D, C, p, p])


def torch_shape(shape: tuple[int, ...], kind: str, path: tuple[str, ...], config) -> tuple[int, ...]:
    """The HF shape of our leaf of `shape` (`kind` from `hf_name`), computed without any array."""
    if kind == "linear" or (kind == "vocab" and path[0] == "lm_head"):
        return tuple(reversed(shape))
    if kind == "conv":
        p, c = config.vision.patch_size, config.vision.num_channels
        return (shape[1], c, p, p)
    return tuple(shape)


def to_torch_layout(value: np.ndarray, kind: str, path: tuple[str, ...], config) -> np.ndarray:
    """Our leaf -> the HF tensor (the importer reads the inverse).

    linear: kernel [in, out] -> weight [out, in]; conv: kernel [C*p*p, D] -> weight [D, C, p, p];
    vocab: embedding [V, d] as is, lm_head kernel [d, V] -> [V, d]; copy: as is.
    """
    if kind == "linear" or (kind == "vocab" and path[0] == "lm_head"):
        return value.T
    if kind == "conv":
        p, c = config.vision.patch_size, config.vision.num_channels
        return value.T.reshape(value.shape[1], c, p, p)
    return value


def flatten(tree: dict, prefix=()) -> dict:
    """{path tuple: leaf} of a nested dict."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flatten(v, (*prefix, k)))
        else:
            out[(*prefix, k)] = v
    return out


def unflatten(flat: dict) -> dict:
    """The nested dict of {path tuple: leaf}."""
    out: dict = {}
    for key, value in flat.items():
        node = out
        for k in key[:-1]:
            node = node.setdefault(k, {})
        node[key[-1]] = value
    return out
