"""Import the released PyTorch ChatPose (LISA-style) weights into a ChatPose model checkpoint.

Assumed layout (ChatPose grew from LISA; its `LISAForCausalLM`-style model is a LLaVA with `[SEG]`):
  * A state dict: `pytorch_model*.bin` or `*.safetensors` (single or sharded, with or without an
    index) in a folder, or one file (a DeepSpeed-merged `pytorch_model.bin`; a raw DeepSpeed
    `*_model_states.pt` holding the weights under "module" works too).
  * LLaMA decoder: `model.embed_tokens.weight` [R, d], `model.layers.N.self_attn.{q,k,v,o}_proj.weight`,
    `model.layers.N.mlp.{gate,up,down}_proj.weight`, `model.layers.N.{input,post_attention}_layernorm.weight`,
    `model.norm.weight`, `lm_head.weight` [R, d]. R = the tokenizer's base vocabulary + the added
    tokens (`[SEG]`, maybe `<im_start>` / `<im_end>`).
  * Projector `model.mm_projector.{0,2}.{weight,bias}` (mlp2x_gelu) or `model.mm_projector.{weight,bias}`.
  * CLIP tower `model.vision_tower.vision_tower.vision_model.*`, or absent: then read from a CLIP
    folder (`vision_tower_dir`, or config.json's `mm_vision_tower` when that is a local folder).
  * Pose head `model.text_hidden_fcs.0.{0,2}.{weight,bias}`: a ModuleList holding one
    nn.Sequential(Linear(d, d), ReLU, Linear(d, out)[, Dropout]); out = 24 x 6 = 144 for ChatPose.
  * LISA's SAM (`model.visual_model.*`) is not part of ChatPose and is skipped.
  * LoRA, when not merged: PEFT names, i.e. everything under `base_model.model.`, each adapted
    linear as `X.base_layer.weight` (or `X.weight`) + `X.lora_A[.default].weight` [r, d_in] +
    `X.lora_B[.default].weight` [d_out, r]; merged here as W + B @ A * alpha / r, with alpha (and r)
    from `adapter_config.json` next to the weights or from the `lora_alpha` argument.
    `modules_to_save.default.` copies replace their `original_module.`.
  * config.json (LlavaLlamaForCausalLM style: LLaMA fields + `mm_vision_tower`, `mm_vision_select_layer`,
    `mm_vision_select_feature`, ...) next to the weights or passed as `config_json`. Without one the
    decoder shapes come from the tensors, with LLaVA-1.5's constants (head_dim 128 unless
    `num_heads` is given, RMSNorm eps 1e-5, rope theta 1e4, 4096 positions).
  * `[SEG]` is the pose token: its id comes from the tokenizer folder when given, else `pose_token_id`,
    else the last embedding row. Its trained rows are kept. The tokenizer we save calls it `<POSE>`.

The model needs an `<image>` placeholder id (LISA splices images at the sentinel -200): it is added
after the existing rows (or the tokenizer's tokens), its rows at the mean, as import-hf does.
"""

from __future__ import annotations

import glob
import json
import os
import re
import tempfile

import ml_dtypes
import numpy as np

from chatpose_jax.convert import hf
from chatpose_jax.convert import hf_schema as schema
from chatpose_jax.convert.checkpoint_io import save_model_checkpoint
from chatpose_jax.convert.hf import CheckpointError, VocabPlan
from chatpose_jax.convert.tensor_files import TensorFiles
from chatpose_jax.model.config import ModelConfig, PoseHeadConfig, ProjectorConfig
from chatpose_jax.pose_token import strip_space_before_pose

SEG_TOKEN = "[SEG]"
_POSE_HEAD = {
    "fc1.weight": "model.text_hidden_fcs.0.0.weight",
    "fc1.bias": "model.text_hidden_fcs.0.0.bias",
    "fc2.weight": "model.text_hidden_fcs.0.2.weight",
    "fc2.bias": "model.text_hidden_fcs.0.2.bias",
}
_SKIPPED = re.compile(r"^model\.visual_model\.|rotary_emb\.inv_freq$|\.original_module\.")
_LORA = re.compile(r"^(?P<base>.+)\.lora_(?P<ab>[AB])(\.default)?\.weight$")


class _Dict:
    """A loaded state dict with the `TensorFiles` reading interface (for DeepSpeed's {"module": ...})."""

    def __init__(self, folder: str, tensors: dict):
        self.folder, self._t = folder, tensors

    def keys(self):
        return list(self._t)

    def __contains__(self, name):
        return name in self._t

    def shape(self, name):
        return tuple(self._t[name].shape)

    def get(self, name):
        t = self._t[name]
        import torch  # lazy: PyTorch

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16) if t.dtype == torch.bfloat16 else t.numpy()


class StateDict:
    """The released tensors under normalised names (PEFT prefixes gone), with LoRA merged on read."""

    def __init__(self, path: str, lora_alpha: float | None = None):
        self.folder = path
        files = TensorFiles(path) if os.path.isdir(path) else TensorFiles.from_file(path)
        if "module" in files.keys() and not os.path.isdir(path):  # raw DeepSpeed model states
            files = _Dict(path, files._bin(path)["module"])
        self._files = files
        self._where: dict[str, str] = {}
        lora: dict[str, dict[str, str]] = {}
        for name in files.keys():
            if _SKIPPED.search(name):
                continue
            norm = _normalise(name)
            m = _LORA.match(norm)
            if m:
                lora.setdefault(m.group("base"), {})[m.group("ab")] = name
            else:
                self._where[norm] = name
        self._lora: dict[str, tuple[str, str]] = {}
        for base, ab in lora.items():
            if set(ab) != {"A", "B"}:
                raise CheckpointError(f"{path}: LoRA of {base} has only lora_{''.join(ab)}")
            if base + ".weight" not in self._where:
                raise CheckpointError(f"{path}: LoRA on {base} but no base weight {base}.base_layer.weight / .weight")
            self._lora[base + ".weight"] = (ab["A"], ab["B"])
        self.scaling = None
        if self._lora:
            self.scaling = _lora_scaling(path, lora_alpha, files.shape(next(iter(self._lora.values()))[0])[0])

    def keys(self) -> list[str]:
        return list(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._files.shape(self._where[name]))

    def get(self, name: str) -> np.ndarray:
        value = self._files.get(self._where[name])
        if name not in self._lora:
            return value
        a_name, b_name = self._lora[name]
        a, b = (np.asarray(self._files.get(n), np.float32) for n in (a_name, b_name))
        if a.shape[1] != value.shape[1] or b.shape[0] != value.shape[0] or a.shape[0] != b.shape[1]:
            raise CheckpointError(
                f"{self.folder}: LoRA of {name}: lora_A {a.shape}, lora_B {b.shape} do not fit the weight {value.shape}"
            )
        return (np.asarray(value, np.float32) + (b @ a) * self.scaling).astype(value.dtype)


def _normalise(name: str) -> str:
    for prefix in ("module.", "base_model.model."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name.replace(".base_layer.", ".").replace(".modules_to_save.default.", ".")


def _lora_scaling(path: str, lora_alpha: float | None, rank: int) -> float:
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    cfg_path = os.path.join(folder, "adapter_config.json")
    cfg = hf._read_json(cfg_path) if os.path.exists(cfg_path) else {}
    alpha = lora_alpha if lora_alpha is not None else cfg.get("lora_alpha")
    if alpha is None:
        raise CheckpointError(
            f"{path}: the weights hold unmerged LoRA (rank {rank}) but its alpha is unknown: "
            "put adapter_config.json next to them or pass --lora_alpha"
        )
    return float(alpha) / float(cfg.get("r", rank))


# ---------------------------------------------------------------------------------------------
# Config


def _read_config_json(path: str, config_json: str | None) -> dict:
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    candidate = config_json or os.path.join(folder, "config.json")
    return hf._read_json(candidate) if os.path.exists(candidate) else {}


def _text_config(raw: dict, state: StateDict, rows: int, num_heads: int | None):
    from transformers import LlamaConfig  # lazy: transformers loads PyTorch

    if "hidden_size" in raw:
        fields = {k: v for k, v in raw.items() if not k.startswith("mm_") and k not in ("architectures", "model_type")}
        return hf._text_config(LlamaConfig(**fields), rows)
    d = state.shape("model.embed_tokens.weight")[1]
    num_layers = len({int(m.group(1)) for k in state.keys() if (m := re.match(r"model\.layers\.(\d+)\.", k))})
    heads = num_heads or d // 128
    head_dim = d // heads
    kv = state.shape("model.layers.0.self_attn.k_proj.weight")[0] // head_dim
    inter = state.shape("model.layers.0.mlp.gate_proj.weight")[0]
    tc = LlamaConfig(
        vocab_size=rows,
        hidden_size=d,
        intermediate_size=inter,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        rms_norm_eps=1e-5,
        max_position_embeddings=4096,
    )
    return hf._text_config(tc, rows)


def _vision_config(raw: dict, state: StateDict, vision_dir: str | None, num_heads: int | None):
    from transformers import CLIPVisionConfig  # lazy: transformers loads PyTorch

    layer = int(raw.get("mm_vision_select_layer", -2))
    select = {"patch": "default", "cls_patch": "full"}[raw.get("mm_vision_select_feature", "patch")]
    if vision_dir:
        return hf._vision_config(CLIPVisionConfig.from_pretrained(vision_dir), layer, select)
    prefix = "model.vision_tower.vision_tower.vision_model."
    d, c, p, _ = state.shape(prefix + "embeddings.patch_embedding.weight")
    positions = state.shape(prefix + "embeddings.position_embedding.weight")[0]
    num_layers = len(
        {int(m.group(1)) for k in state.keys() if (m := re.match(re.escape(prefix) + r"encoder\.layers\.(\d+)\.", k))}
    )
    vc = CLIPVisionConfig(
        hidden_size=d,
        intermediate_size=state.shape(prefix + "encoder.layers.0.mlp.fc1.weight")[0],
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads or max(1, d // 64),  # CLIP ViTs use 64-wide heads
        num_channels=c,
        patch_size=p,
        image_size=int(round((positions - 1) ** 0.5)) * p,
    )
    return hf._vision_config(vc, layer, select)


def _vision_folder(raw: dict, state: StateDict, vision_tower_dir: str | None) -> str | None:
    has_tower = any(k.startswith("model.vision_tower.") for k in state.keys())
    if has_tower and not vision_tower_dir:
        return None
    folder = vision_tower_dir or raw.get("mm_vision_tower")
    if not folder or not os.path.isdir(folder):
        raise CheckpointError(
            f"{state.folder}: no vision tower tensors and the CLIP folder {raw.get('mm_vision_tower')!r} is not local: "
            "pass --vision_tower_dir"
        )
    return folder


def _released_tokenizer(tokenizer_dir: str, save_dir: str):
    """The released tokenizer with `[SEG]` renamed `<POSE>` (same id), saved to `save_dir` and reloaded."""
    from transformers import AutoTokenizer  # lazy: transformers loads PyTorch

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    vocab = tokenizer.get_vocab()
    if hf.POSE_TOKEN in vocab:
        return tokenizer, vocab[hf.POSE_TOKEN]
    if SEG_TOKEN not in vocab:
        raise CheckpointError(f"{tokenizer_dir}: the tokenizer has neither {SEG_TOKEN} nor {hf.POSE_TOKEN}")
    seg = vocab[SEG_TOKEN]
    tokenizer.save_pretrained(save_dir)
    for path in glob.glob(os.path.join(save_dir, "*.json")):
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace(json.dumps(SEG_TOKEN), json.dumps(hf.POSE_TOKEN)))
    tokenizer = strip_space_before_pose(AutoTokenizer.from_pretrained(save_dir))  # "is [SEG]" splits as released
    if tokenizer.convert_tokens_to_ids(hf.POSE_TOKEN) != seg:
        raise CheckpointError(f"{tokenizer_dir}: renaming {SEG_TOKEN} (id {seg}) to {hf.POSE_TOKEN} failed")
    return tokenizer, seg


def released_model_config(
    state: StateDict,
    raw: dict,
    vision_dir: str | None,
    tokenizer,
    pose_token_id,
    num_heads,
    vision_num_heads,
    **overrides,
) -> tuple[ModelConfig, VocabPlan]:
    """The ModelConfig of the released weights (rows + `<image>`), and how the vocabulary rows map."""
    if "model.embed_tokens.weight" not in state:
        raise CheckpointError(f"{state.folder}: no model.embed_tokens.weight: not a LLaVA / LISA state dict")
    ckpt_rows, d = state.shape("model.embed_tokens.weight")
    if tokenizer is not None:
        vocab = tokenizer.get_vocab()
        pose_id = vocab[hf.POSE_TOKEN]
        # <image> is added to the tokenizer after its last token (which may be inside padded rows).
        image_id, new_ids = (
            (vocab[hf.IMAGE_TOKEN], ()) if hf.IMAGE_TOKEN in vocab else (len(tokenizer), (len(tokenizer),))
        )
    else:
        pose_id = ckpt_rows - 1 if pose_token_id is None else pose_token_id
        image_id, new_ids = ckpt_rows, (ckpt_rows,)
    if not 0 <= pose_id < ckpt_rows:
        raise CheckpointError(f"{state.folder}: pose token id {pose_id} is outside the {ckpt_rows} embedding rows")
    rows = max(ckpt_rows, image_id + 1)
    plan = VocabPlan(ckpt_rows, rows, ckpt_rows, new_ids)
    for stored in _POSE_HEAD.values():
        if stored not in state:
            raise CheckpointError(f"{state.folder}: pose head tensor {stored} is missing (LISA's text_hidden_fcs)")
    out = state.shape(_POSE_HEAD["fc2.weight"])[0]
    if out % 6:
        raise CheckpointError(f"{state.folder}: {_POSE_HEAD['fc2.weight']} has {out} outputs, not a multiple of 6")
    projector = "mlp2x_gelu" if "model.mm_projector.0.weight" in state else "linear"
    text = _text_config(raw, state, rows, num_heads)
    pad = raw.get("pad_token_id")
    if pad is None:
        pad = tokenizer.pad_token_id if tokenizer is not None and tokenizer.pad_token_id is not None else 0
    fields = dict(
        vision=_vision_config(raw, state, vision_dir, vision_num_heads),
        text=text,
        projector=ProjectorConfig(projector, True),
        pose_head=PoseHeadConfig(num_joints=out // 6),
        image_token_id=image_id,
        pose_token_id=pose_id,
        pad_token_id=pad,
        bos_token_id=raw.get("bos_token_id", 1),
        eos_token_id=raw.get("eos_token_id", 2),
        mm_use_im_start_end=bool(raw.get("mm_use_im_start_end", False)),  # as the release wrote its prompts
    )
    fields.update(overrides)
    return ModelConfig(**fields), plan


# ---------------------------------------------------------------------------------------------
# Loading


class _Renamed:
    """`owner`'s tensors under other names (the pose head as fc1/fc2)."""

    def __init__(self, owner, names: dict[str, str]):
        self.folder, self._owner, self._names = owner.folder, owner, names

    def __contains__(self, name):
        return name in self._names and self._names[name] in self._owner

    def stored_name(self, name):
        return self._names[name]

    def shape(self, name):
        return self._owner.shape(self._names[name])

    def get(self, name):
        return self._owner.get(self._names[name])


def load_chatpose_torch(
    ckpt: str,
    *,
    config_json: str | None = None,
    vision_tower_dir: str | None = None,
    tokenizer=None,
    pose_token_id: int | None = None,
    lora_alpha: float | None = None,
    num_heads: int | None = None,
    vision_num_heads: int | None = None,
    mesh=None,
    logical_axis_rules=None,
    **config_overrides,
) -> tuple[ModelConfig, dict]:
    """Released ChatPose / LISA-style weights -> (config, params) (see the module docstring).

    Args:
      ckpt: a file or folder of the state dict.
      config_json: the LlavaLlama config.json (default: next to the weights; optional).
      vision_tower_dir: CLIP folder when the weights lack the tower.
      tokenizer: the tokenizer with `<POSE>` (see `_released_tokenizer`), or None.
      pose_token_id: `[SEG]`'s id without a tokenizer (default the last row).
      lora_alpha: LoRA alpha when no adapter_config.json is next to the weights.
      num_heads, vision_num_heads: head counts when no config says them.
      **config_overrides: ModelConfig fields (dtype, param_dtype, ...).

    Raises:
      CheckpointError: naming the tensor and shapes at fault, or what is missing.
    """
    state = StateDict(ckpt, lora_alpha)
    raw = _read_config_json(ckpt, config_json)
    vision_dir = _vision_folder(raw, state, vision_tower_dir)
    config, plan = released_model_config(
        state, raw, vision_dir, tokenizer, pose_token_id, num_heads, vision_num_heads, **config_overrides
    )
    names: dict[str, tuple] = {}
    unexpected = []
    for name in state.keys():
        if name in _POSE_HEAD.values() or name.startswith("model.text_hidden_fcs."):
            continue
        canon = schema.canonical_name(name, schema.ORIGINAL_LLAVA)
        if canon is None:
            continue
        if canon.startswith("?"):
            unexpected.append(name)
        names[canon] = (state, name)
    if unexpected:
        raise CheckpointError(f"{ckpt}: tensors that fit no part of ChatPose: {unexpected[:5]}")
    if vision_dir is not None:
        vision_files = TensorFiles(vision_dir)
        for name in vision_files.keys():
            canon = schema.clip_canonical(name)
            if canon is not None:
                names[canon] = (vision_files, name)
    params, shardings = hf.read_params(config, plan, names, ckpt, mesh, logical_axis_rules)
    params["pose_head"] = hf.read_pose_head(_Renamed(state, _POSE_HEAD), config, shardings)
    return config, params


def import_chatpose_torch(
    ckpt: str, out: str, *, tokenizer_dir: str | None = None, overwrite: bool = False, **kwargs
) -> ModelConfig:
    """`chatpose-convert import-chatpose-torch`: released weights -> model checkpoint at `out`."""
    out = os.path.abspath(out)
    if os.path.exists(out) and os.listdir(out) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty (pass --overwrite to replace it)")
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = None
        if tokenizer_dir:
            tokenizer, _ = _released_tokenizer(tokenizer_dir, tmp)
        config, params = load_chatpose_torch(ckpt, tokenizer=tokenizer, **kwargs)
        if tokenizer is not None and hf.IMAGE_TOKEN not in tokenizer.get_vocab():
            tokenizer.add_tokens([hf.IMAGE_TOKEN], special_tokens=True)
            if tokenizer.convert_tokens_to_ids(hf.IMAGE_TOKEN) != config.image_token_id:
                raise CheckpointError(f"{tokenizer_dir}: {hf.IMAGE_TOKEN} did not land at {config.image_token_id}")
        save_model_checkpoint(out, config, params, tokenizer, overwrite=overwrite)
    return config
