"""Import LLaVA checkpoints into ChatPose params: both public layouts, streamed into their sharding.

Layouts read:
  * Hugging Face `LlavaForConditionalGeneration` (llava-hf/*): config.json with model_type "llava";
    tensors under `language_model.model.*` / `language_model.lm_head.*` / `vision_tower.vision_model.*`
    (hub files) or `model.language_model.*` / `model.vision_tower.*` / `lm_head.*` (newer saves);
    safetensors, single or sharded with an index.
  * Original LLaVA (liuhaotian/llava-v1.5-*): a LLaMA checkpoint (`model.*`, `lm_head.weight`) with
    `model.mm_projector.{0,2}.*` and config fields `mm_vision_tower`, `mm_projector_type`,
    `mm_vision_select_layer`; the CLIP tower comes from its own folder (`vision_tower_path`, or
    `mm_vision_tower` when that is a local folder), unless the checkpoint carries it under
    `model.vision_tower.vision_tower.*`. Its image placeholder (`<image>`) is added as a token.

Every checkpoint name is first normalised to one canonical form (`language_model.layers.0...`,
`vision_tower.encoder.layers.0...`, `multi_modal_projector.linear_1...`, `lm_head.weight`; the
names, families and activations are `convert.hf_schema`'s, which export-hf reads too), then
each leaf of our params tree is read from its canonical tensor, transposed where torch stores
[out, in], cast to the param dtype and placed straight into its target sharding slice by slice
(`jax.make_array_from_callback` over a memory map), so host memory holds at most one tensor.

`<POSE>` goes after the existing vocabulary (the tokenizer's length, or without tokenizer files
one past the largest special id in config.json). Its embedding and LM-head rows, and any rows
added to make room for it, start at the mean of the existing rows: the original logits keep
their indices.

A folder written by `chatpose-convert export-hf` already holds `<POSE>`: its config.json names
`pose_token_id` and every row is kept as trained; its `pose_head.safetensors` (+ `pose_head.json`,
see `chatpose_jax.export.hf_export`) is read instead of a fresh pose head.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from chatpose_jax.convert import hf_schema as schema
from chatpose_jax.convert.hf_schema import HF_LLAVA, ORIGINAL_LLAVA
from chatpose_jax.convert.tensor_files import TensorFiles
from chatpose_jax.model import chatpose
from chatpose_jax.model.config import ModelConfig, PoseHeadConfig, ProjectorConfig, TextConfig, VisionConfig
from chatpose_jax.model.pose_head import PoseHead
from chatpose_jax.pose_token import strip_space_before_pose

POSE_TOKEN = "<POSE>"
IMAGE_TOKEN = "<image>"
POSE_HEAD_FILE = "pose_head.safetensors"  # written by export-hf: fc1/fc2 .weight [out, in] and .bias
POSE_HEAD_JSON = "pose_head.json"


class CheckpointError(ValueError):
    """A checkpoint does not fit: unknown layout, missing tensor, or a shape off the config."""


@dataclasses.dataclass(frozen=True)
class VocabPlan:
    """How the embedding / LM-head rows of the checkpoint become ours."""

    checkpoint_rows: int  # rows stored in the checkpoint
    rows: int  # rows in our params (>= checkpoint_rows)
    num_existing: int  # tokens the tokenizer had before ours were added: rows averaged
    new_ids: tuple[int, ...]  # rows (re)initialised to that mean: <POSE> (and <image> when added)


# ---------------------------------------------------------------------------------------------
# Layout and config


def detect_layout(hf_config: dict, folder: str) -> str:
    model_type = hf_config.get("model_type")
    if model_type == "llava" and "text_config" in hf_config:
        return HF_LLAVA
    if "mm_vision_tower" in hf_config or model_type == "llava_llama" or "mm_projector_type" in hf_config:
        return ORIGINAL_LLAVA
    raise CheckpointError(
        f"{folder}/config.json: unknown layout (model_type {model_type!r}); expected a Hugging Face "
        "LlavaForConditionalGeneration folder (model_type 'llava') or an original LLaVA folder "
        "(model_type 'llava_llama' with mm_vision_tower)"
    )


def read_layout(folder: str) -> str:
    """HF_LLAVA or ORIGINAL_LLAVA, from `folder`/config.json."""
    return detect_layout(_read_json(os.path.join(folder, "config.json")), folder)


def _read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _rope_fields(tc, where: str) -> dict:
    """TextConfig rope fields from `rope_parameters` (transformers 5) or `rope_theta` / `rope_scaling` (older)."""
    rope = dict(getattr(tc, "rope_parameters", None) or {})
    legacy = getattr(tc, "rope_scaling", None) or {}
    for k, v in legacy.items():
        rope.setdefault(k, v)
    if "type" in rope and "rope_type" not in rope:
        rope["rope_type"] = rope["type"]
    theta = rope.get("rope_theta", getattr(tc, "rope_theta", None) or 10000.0)
    rope_type = rope.get("rope_type") or "default"
    if rope_type not in schema.ROPE_TYPES:
        raise CheckpointError(
            f"{where}: rope scaling of type {rope_type!r} is not supported (supported: {', '.join(schema.ROPE_TYPES)})"
        )
    return schema.rope_fields(rope, theta)


def _sliding_window(tc, model_type: str, where: str) -> int:
    """The window every layer uses (0 = none); a window on only some layers is refused."""
    window = 0 if model_type == "llama" else getattr(tc, "sliding_window", None) or 0
    if model_type == "qwen2" and not getattr(tc, "use_sliding_window", False):
        window = 0  # Qwen2 ignores sliding_window unless use_sliding_window
    layer_types = getattr(tc, "layer_types", None)
    if window and layer_types and any(t != "sliding_attention" for t in layer_types):
        raise CheckpointError(
            f"{where}: a sliding window on only some layers (layer_types {sorted(set(layer_types))}) is not supported"
        )
    return int(window)


def _text_config(tc, vocab_rows: int, where: str = "text_config", model_type: str | None = None) -> TextConfig:
    """Our TextConfig of a transformers decoder config; `model_type` overrides `tc.model_type` (original LLaVA)."""
    model_type = model_type or tc.model_type
    family = schema.TEXT_FAMILIES.get(model_type)
    if family is None:
        raise CheckpointError(
            f"{where}: decoder family {model_type!r} is not supported (supported: {', '.join(schema.TEXT_FAMILIES)})"
        )
    for flag in ("attention_bias", "mlp_bias"):
        if model_type == "llama" and getattr(tc, flag, False):
            raise CheckpointError(f"{where}: llama with {flag}=True is not supported")
    act = schema.OUR_ACT.get(getattr(tc, "hidden_act", "silu"))
    if act not in schema.TEXT_ACTS:
        raise CheckpointError(f"{where}: decoder hidden_act {tc.hidden_act!r} is not supported")
    head_dim = getattr(tc, "head_dim", None) or 0
    if head_dim == tc.hidden_size // tc.num_attention_heads:
        head_dim = 0
    return TextConfig(
        vocab_size=vocab_rows,
        hidden_size=tc.hidden_size,
        intermediate_size=tc.intermediate_size,
        num_layers=tc.num_hidden_layers,
        num_heads=tc.num_attention_heads,
        num_kv_heads=getattr(tc, "num_key_value_heads", None) or tc.num_attention_heads,
        head_dim=head_dim,
        rms_norm_eps=float(tc.rms_norm_eps),
        max_position_embeddings=tc.max_position_embeddings,
        tie_word_embeddings=bool(getattr(tc, "tie_word_embeddings", False)),
        hidden_act=act,
        sliding_window=_sliding_window(tc, model_type, where),
        **family,
        **_rope_fields(tc, where),
    )


def _vision_config(vc, feature_layer: int, feature_select: str, where: str = "vision_config") -> VisionConfig:
    family = schema.VISION_FAMILIES.get(vc.model_type)
    if family is None:
        raise CheckpointError(
            f"{where}: vision tower {vc.model_type!r} is not supported (supported: {', '.join(schema.VISION_FAMILIES)})"
        )
    act = schema.OUR_ACT.get(vc.hidden_act)
    if act not in schema.VISION_ACTS:
        raise CheckpointError(f"{where}: hidden_act {vc.hidden_act!r} is not supported")
    if feature_select == "default" and not family["class_token"]:
        raise CheckpointError(
            f'{where}: vision_feature_select_strategy "default" drops a CLS token that {vc.model_type} does not have'
        )
    return VisionConfig(
        image_size=vc.image_size,
        patch_size=vc.patch_size,
        hidden_size=vc.hidden_size,
        intermediate_size=vc.intermediate_size,
        num_layers=vc.num_hidden_layers,
        num_heads=vc.num_attention_heads,
        num_channels=getattr(vc, "num_channels", 3),
        layer_norm_eps=float(vc.layer_norm_eps),
        feature_layer=feature_layer,
        feature_select=feature_select,
        hidden_act=act,
        **family,
    )


def check_families(raw: dict, where: str) -> None:
    """Refuses, by name, a decoder family, vision tower or rope type we do not read (before transformers parses it)."""
    text = raw.get("text_config") or {}
    vision = raw.get("vision_config") or {}
    text_type = text.get("model_type", "llama")  # LlavaConfig's defaults
    vision_type = vision.get("model_type", "clip_vision_model")
    if text_type not in schema.TEXT_FAMILIES:
        raise CheckpointError(
            f"{where}: decoder family {text_type!r} is not supported (supported: {', '.join(schema.TEXT_FAMILIES)})"
        )
    if vision_type not in schema.VISION_FAMILIES:
        raise CheckpointError(
            f"{where}: vision tower {vision_type!r} is not supported (supported: {', '.join(schema.VISION_FAMILIES)})"
        )
    for key in ("rope_parameters", "rope_scaling"):
        rope = text.get(key) or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type not in schema.ROPE_TYPES:
            raise CheckpointError(
                f"{where}: rope scaling of type {rope_type!r} is not supported (supported: {', '.join(schema.ROPE_TYPES)})"
            )


@dataclasses.dataclass
class _Source:
    """What the folder says before any tensor is read."""

    layout: str
    text: Any  # a transformers text config
    vision: Any  # a transformers CLIPVisionConfig or SiglipVisionConfig
    vision_folder: str | None  # where the CLIP tensors live when not in the main checkpoint
    feature_layer: int
    feature_select: str
    projector: ProjectorConfig
    image_token_id: int | None  # None: the original layout has no placeholder token yet
    pad_token_id: int | None
    bos_token_id: int
    eos_token_id: int


def _read_source(folder: str, vision_tower_path: str | None) -> _Source:
    from transformers import AutoConfig, CLIPVisionConfig, LlamaConfig  # lazy: transformers loads PyTorch

    path = os.path.join(folder, "config.json")
    if not os.path.exists(path):
        raise CheckpointError(f"{folder}: no config.json")
    raw = _read_json(path)
    layout = detect_layout(raw, folder)
    if layout == HF_LLAVA:
        check_families(raw, path)
        cfg = AutoConfig.from_pretrained(folder)
        if not isinstance(cfg.vision_feature_layer, int):
            raise CheckpointError(f"{path}: a list of vision_feature_layer is not supported")
        if cfg.projector_hidden_act != "gelu":
            raise CheckpointError(f"{path}: projector_hidden_act {cfg.projector_hidden_act!r} (only 'gelu')")
        tc, vc = cfg.text_config, cfg.vision_config
        pad = raw.get("pad_token_id", getattr(tc, "pad_token_id", None))
        return _Source(
            layout,
            tc,
            vc,
            None,
            cfg.vision_feature_layer,
            cfg.vision_feature_select_strategy,
            ProjectorConfig("mlp2x_gelu", bool(getattr(cfg, "multimodal_projector_bias", True))),
            getattr(cfg, "image_token_id", None) or cfg.image_token_index,
            pad,
            tc.bos_token_id if tc.bos_token_id is not None else 1,
            tc.eos_token_id if tc.eos_token_id is not None else 2,
        )
    projector_type = raw.get("mm_projector_type", "linear")
    if projector_type not in ("mlp2x_gelu", "linear"):
        raise CheckpointError(f"{path}: mm_projector_type {projector_type!r} (supported: mlp2x_gelu, linear)")
    text = LlamaConfig(**{k: v for k, v in raw.items() if not k.startswith("mm_")})
    vision_folder = vision_tower_path or raw.get("mm_vision_tower")
    if not vision_folder or not os.path.isdir(vision_folder):
        raise CheckpointError(
            f"{path}: the CLIP tower {raw.get('mm_vision_tower')!r} is not a local folder; pass its folder "
            "as vision_tower_path (--vision_tower_dir)"
        )
    vision = CLIPVisionConfig.from_pretrained(vision_folder)
    select = {"patch": "default", "cls_patch": "full"}[raw.get("mm_vision_select_feature", "patch")]
    return _Source(
        layout,
        text,
        vision,
        vision_folder,
        int(raw.get("mm_vision_select_layer", -2)),
        select,
        ProjectorConfig(projector_type, True),
        None,
        raw.get("pad_token_id"),
        text.bos_token_id if text.bos_token_id is not None else 1,
        text.eos_token_id if text.eos_token_id is not None else 2,
    )


def load_tokenizer(folder: str, add_image_token: bool = False):
    """`AutoTokenizer` of `folder` with `<POSE>` (and `<image>` if asked) added; None without tokenizer files."""
    names = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
    if not any(os.path.exists(os.path.join(folder, n)) for n in names):
        return None
    from transformers import AutoTokenizer  # lazy: transformers loads PyTorch

    tokenizer = AutoTokenizer.from_pretrained(folder)
    vocab = tokenizer.get_vocab()
    if add_image_token and IMAGE_TOKEN not in vocab:
        tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    if POSE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([POSE_TOKEN], special_tokens=True)
    return strip_space_before_pose(tokenizer)


def hf_model_config(
    folder: str, vision_tower_path: str | None = None, tokenizer=None, **overrides
) -> tuple[ModelConfig, VocabPlan]:
    """The ModelConfig a folder imports to (vocabulary grown for `<POSE>`), and the vocabulary plan."""
    src = _read_source(folder, vision_tower_path)
    ckpt_rows = src.text.vocab_size
    if tokenizer is None:
        tokenizer = load_tokenizer(folder, add_image_token=src.layout == ORIGINAL_LLAVA)
    exported_pose_id = _read_json(os.path.join(folder, "config.json")).get("pose_token_id")
    if exported_pose_id is not None and tokenizer is not None:
        found = tokenizer.get_vocab().get(POSE_TOKEN)
        if found != exported_pose_id:
            raise CheckpointError(
                f"{folder}: config.json says pose_token_id {exported_pose_id}, the tokenizer has {POSE_TOKEN} at {found}"
            )
    if exported_pose_id is not None:  # an export-hf folder: <POSE> and its rows are already trained
        image_id, pose_id = src.image_token_id, int(exported_pose_id)
        pad = src.pad_token_id if src.pad_token_id is not None else 0
    elif tokenizer is not None:
        vocab = tokenizer.get_vocab()
        image_id = src.image_token_id if src.image_token_id is not None else vocab[IMAGE_TOKEN]
        pose_id = vocab[POSE_TOKEN]
        pad = src.pad_token_id if src.pad_token_id is not None else (tokenizer.pad_token_id or 0)
    elif src.layout == ORIGINAL_LLAVA:
        image_id, pose_id = ckpt_rows, ckpt_rows + 1
        pad = src.pad_token_id if src.pad_token_id is not None else 0
    else:
        special = [
            i for i in (src.image_token_id, src.pad_token_id, src.bos_token_id, src.eos_token_id) if i is not None
        ]
        image_id, pose_id = src.image_token_id, max(special) + 1
        pad = src.pad_token_id if src.pad_token_id is not None else 0
    # Our tokens are appended last, so every id below the first of them is an existing token.
    new_ids = tuple(sorted({pose_id} | ({image_id} if src.layout == ORIGINAL_LLAVA else set())))
    if exported_pose_id is not None:
        new_ids = ()
    rows = max(ckpt_rows, max(new_ids, default=-1) + 1)
    plan = VocabPlan(ckpt_rows, rows, min(new_ids[0], ckpt_rows) if new_ids else ckpt_rows, new_ids)
    head_json = os.path.join(folder, POSE_HEAD_JSON)
    pose_head = PoseHeadConfig()
    if os.path.exists(head_json):
        spec = _read_json(head_json)
        pose_head = PoseHeadConfig(num_joints=int(spec["num_joints"]), max_poses=int(spec.get("max_poses", 1)))
    where = os.path.join(folder, "config.json")
    fields = dict(
        pose_head=pose_head,
        vision=_vision_config(src.vision, src.feature_layer, src.feature_select, f"{where} vision_config"),
        text=_text_config(src.text, rows, f"{where} text_config", "llama" if src.layout == ORIGINAL_LLAVA else None),
        projector=src.projector,
        image_token_id=image_id,
        pose_token_id=pose_id,
        pad_token_id=pad,
        bos_token_id=src.bos_token_id,
        eos_token_id=src.eos_token_id,
        mm_use_im_start_end=bool(_read_json(where).get("mm_use_im_start_end", False)),
    )
    fields.update(overrides)
    return ModelConfig(**fields), plan


# ---------------------------------------------------------------------------------------------
# Tensor shapes


def _expected_hf_shape(kind: str, shape: tuple[int, ...], cfg: ModelConfig, plan: VocabPlan, path) -> tuple[int, ...]:
    """The checkpoint's shape of our leaf: the schema's, with the checkpoint's own vocabulary rows."""
    if kind == "vocab":
        return (plan.checkpoint_rows, cfg.text.hidden_size)
    return schema.torch_shape(shape, kind, path, cfg)


# ---------------------------------------------------------------------------------------------
# Loading


class _Lazy:
    """A host array described by shape and dtype, read slice by slice by `make_array_from_callback`."""

    def __init__(self, shape, dtype, read):
        self.shape, self.dtype, self._read = tuple(shape), dtype, read

    def __getitem__(self, index):
        return np.ascontiguousarray(self._read(index)).astype(self.dtype)


def _vocab_rows(source: np.ndarray, plan: VocabPlan, transpose: bool) -> np.ndarray:
    """The grown table float32[rows, d]: checkpoint rows, with `new_ids` (and added rows) at the mean."""
    table = np.asarray(source, np.float32)
    mean = table[: plan.num_existing].mean(axis=0)
    out = np.empty((plan.rows, table.shape[1]), np.float32)
    out[: plan.checkpoint_rows] = table
    out[plan.checkpoint_rows :] = mean
    for i in plan.new_ids:
        out[i] = mean
    return out.T if transpose else out


def _param_source(path, kind, tensor_fn, cfg: ModelConfig, plan: VocabPlan):
    """A function index -> numpy slice of our leaf at `path`, from the checkpoint tensor(s)."""
    if kind == "linear":
        return lambda index: tensor_fn().T[index]
    if kind == "conv":
        return lambda index: tensor_fn().reshape(tensor_fn().shape[0], -1).T[index]
    if kind == "vocab":
        cache = {}

        def read(index):
            if "table" not in cache:
                cache["table"] = _vocab_rows(tensor_fn(), plan, transpose=path[0] == "lm_head")
            return cache["table"][index]

        return read
    return lambda index: tensor_fn()[index]


def load_llava(
    path: str,
    vision_tower_path: str | None = None,
    *,
    mesh: jax.sharding.Mesh | None = None,
    logical_axis_rules=None,
    rng: jax.Array | None = None,
    tokenizer=None,
    **config_overrides,
) -> tuple[ModelConfig, dict]:
    """Reads a LLaVA folder (either layout) into (config, params).

    The returned config computes in bfloat16 unless told otherwise: `ModelConfig.dtype` defaults to
    "bfloat16" (matmul inputs and activations; norms, softmax and logits stay float32) and params are
    stored as `ModelConfig.param_dtype`, float32 by default, whatever the folder's `torch_dtype`. For
    float32 computation, as the transformers model runs after `.float()`, pass `dtype="float32"`:
    `load_llava(path, dtype="float32")`.

    Args:
      path: the checkpoint folder (config.json + weights [+ tokenizer files]).
      vision_tower_path: the CLIP folder for the original layout (default: `mm_vision_tower`).
      mesh, logical_axis_rules: place each param in its sharding on `mesh` (default: one device).
      rng: seeds the fresh pose head (default key 0).
      tokenizer: a tokenizer already holding `<POSE>` (default: read from `path` when present).
      **config_overrides: ModelConfig fields to set (dtype, param_dtype, lora, pose_head, ...).

    Returns:
      (config, params); params has the layout of `chatpose.init_params`; the pose head is read from
      `pose_head.safetensors` when the folder has one (an export-hf folder), else freshly initialised.

    Raises:
      CheckpointError: unknown layout, a missing tensor, a tensor whose shape does not fit the
        config (naming the tensor, the shape found and the one expected), or an unexpected tensor.
    """
    config, plan = hf_model_config(path, vision_tower_path, tokenizer, **config_overrides)
    layout = detect_layout(_read_json(os.path.join(path, "config.json")), path)
    files = TensorFiles(path)
    names: dict[str, tuple[TensorFiles, str]] = {}
    unexpected = []
    for name in files.keys():
        canon = schema.canonical_name(name, layout)
        if canon is None:
            continue
        if canon.startswith("?"):
            unexpected.append(name)
        names[canon] = (files, name)
    if unexpected:
        raise CheckpointError(f"{path}: tensors that fit no known layout ({layout}): {unexpected[:5]}")
    if layout == ORIGINAL_LLAVA and not any(n.startswith("vision_tower.") for n in names):
        vision_files = TensorFiles(_source_vision_folder(path, vision_tower_path))
        for name in vision_files.keys():
            canon = schema.clip_canonical(name)
            if canon is not None:
                names[canon] = (vision_files, name)

    params, shardings = read_params(config, plan, names, path, mesh, logical_axis_rules)
    if os.path.exists(os.path.join(path, POSE_HEAD_FILE)):
        head_files = TensorFiles.from_file(os.path.join(path, POSE_HEAD_FILE))
        params["pose_head"] = read_pose_head(head_files, config, shardings)
    else:
        params["pose_head"] = _init_pose_head(config, shardings["pose_head"], jax.random.key(0) if rng is None else rng)
    return config, params


def read_params(
    config: ModelConfig, plan: VocabPlan, names: dict, where: str, mesh=None, logical_axis_rules=None
) -> tuple[dict, dict]:
    """Every param but the pose head, each read from its canonical tensor straight into its sharding.

    Args:
      names: canonical HF name -> (owner, stored name); `owner` has `shape(name)` and `get(name)`
        (a `TensorFiles`, or any object that reads tensors lazily, e.g. with LoRA merged in).
      where: what to name in errors (the checkpoint path).

    Returns:
      (params without "pose_head", the shardings tree of all params).
    """
    path = where
    shapes, axes = chatpose.abstract_variables(config)
    shapes, axes = shapes["params"], axes["params"]
    if mesh is None:
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        shardings = jax.tree.map(lambda _: device, shapes)
    else:
        shardings = chatpose.variable_shardings(config, mesh, logical_axis_rules)["params"]
    param_dtype = chatpose.DTYPES[config.param_dtype]

    flat_shapes = {k: v for k, v in schema.flatten(shapes).items() if k[0] != "pose_head"}
    flat_shardings = schema.flatten(shardings)
    stacked = config.scan_layers
    params_flat = {}
    for key, struct_ in flat_shapes.items():
        layer_paths = schema.layer_paths(key, config) if stacked else [key]
        reads = []
        for lp in layer_paths:
            hf_name, kind = schema.hf_name(lp)
            if hf_name not in names:
                raise CheckpointError(
                    f"{path}: missing tensor {hf_name} (for params/{'/'.join(lp)}), expected shape "
                    f"{_expected_hf_shape(kind, struct_.shape[1:] if stacked and len(layer_paths) > 1 else struct_.shape, config, plan, lp)}"
                )
            owner, real = names[hf_name]
            leaf_shape = struct_.shape[1:] if stacked and len(layer_paths) > 1 else struct_.shape
            expected = _expected_hf_shape(kind, leaf_shape, config, plan, lp)
            found = owner.shape(real)
            if tuple(found) != tuple(expected):
                raise CheckpointError(
                    f"{path}: tensor {real} has shape {tuple(found)}, expected {tuple(expected)} "
                    f"(params/{'/'.join(lp)} of the config read from config.json)"
                )
            reads.append(_param_source(lp, kind, lambda o=owner, r=real: o.get(r), config, plan))
        if stacked and len(layer_paths) > 1:
            read = lambda index, reads=reads: np.stack([reads[i](index[1:]) for i in range(len(reads))[index[0]]])  # noqa: E731
        else:
            read = reads[0]
        host = _Lazy(struct_.shape, param_dtype, read)
        params_flat[key] = jax.make_array_from_callback(struct_.shape, flat_shardings[key], lambda idx, h=host: h[idx])

    return schema.unflatten(params_flat), shardings


def read_pose_head(owner, config: ModelConfig, shardings: dict) -> dict:
    """The pose head from torch-layout tensors `fc1.weight` [d, d], `fc1.bias`, `fc2.weight` [J*6, d], `fc2.bias`.

    `owner` reads tensors by name (`shape`, `get`); `shardings` is the params shardings tree.
    """
    d, out = config.text.hidden_size, config.pose_head.num_joints * 6
    expected = {"fc1.weight": (d, d), "fc1.bias": (d,), "fc2.weight": (out, d), "fc2.bias": (out,)}
    param_dtype = chatpose.DTYPES[config.param_dtype]
    head: dict = {"fc1": {}, "fc2": {}}
    for name, shape in expected.items():
        label = owner.stored_name(name) if hasattr(owner, "stored_name") else name
        if name not in owner:
            raise CheckpointError(f"{owner.folder}: pose head tensor {label} is missing, expected shape {shape}")
        if tuple(owner.shape(name)) != shape:
            raise CheckpointError(
                f"{owner.folder}: pose head tensor {label} has shape {tuple(owner.shape(name))}, expected {shape} "
                f"(hidden size {d}, {config.pose_head.num_joints} joints x 6)"
            )
        layer, leaf = name.split(".")
        value = np.asarray(owner.get(name))
        value = value.T if leaf == "weight" else value
        sharding = shardings["pose_head"][layer]["kernel" if leaf == "weight" else "bias"]
        host = np.ascontiguousarray(value).astype(param_dtype)
        head[layer]["kernel" if leaf == "weight" else "bias"] = jax.make_array_from_callback(
            host.shape, sharding, lambda idx, h=host: h[idx]
        )
    return head


def _source_vision_folder(path: str, vision_tower_path: str | None) -> str:
    return vision_tower_path or _read_json(os.path.join(path, "config.json"))["mm_vision_tower"]


def _init_pose_head(config: ModelConfig, shardings, rng) -> dict:
    dtype, param_dtype = chatpose.DTYPES[config.dtype], chatpose.DTYPES[config.param_dtype]
    head = PoseHead(config.pose_head, config.text.hidden_size, dtype, param_dtype, config.initializer_range)
    init = lambda r: nn.unbox(head.init(r, jnp.zeros((1, config.text.hidden_size), dtype)))["params"]  # noqa: E731
    return jax.jit(init, out_shardings=shardings)(rng)
