"""Export ChatPose params to a Hugging Face LLaVA folder plus the pose head, streamed tensor by tensor.

The folder `export_hf` writes (loadable as it is by `LlavaForConditionalGeneration.from_pretrained`,
and with a tokenizer by `AutoTokenizer.from_pretrained` and `AutoProcessor.from_pretrained`):
  config.json                        LlavaConfig (llama, mistral or qwen2 text config; clip or siglip
                                     vision tower); vocab sizes = our rows; `pose_token_id` at the top
  generation_config.json             bos / eos / pad ids
  model-0000i-of-0000n.safetensors   LoRA merged into the base; each shard at most `max_shard_bytes`
  model.safetensors.index.json       {"metadata": {"total_size"}, "weight_map": {name: shard}}
  tokenizer files                    the tokenizer with `<POSE>` at `pose_token_id` (when given)
  preprocessor_config.json,          with the tokenizer: LlavaProcessor's image processor, image-token
  processor_config.json,             count and Vicuna v1 chat template, so transformers alone turns an
  chat_template.json                 image and a question into our inputs (`export.hf_processor`)
  pose_head.safetensors              fc1.weight [d, d], fc1.bias [d], fc2.weight [J*6, d], fc2.bias
                                     [J*6] (torch layout: weight is [out, in])
  pose_head.json                     what the pose head reads and returns (POSE_HEAD_FORMAT below)

Tensor names are the ones transformers' own `save_pretrained` writes for LLaVA
(`language_model.model.*`, `language_model.lm_head.weight`, `vision_tower.vision_model.*`,
`multi_modal_projector.*`): every transformers version that loads llava-hf hub files loads them.
Names and layouts come from the schema the importer reads too (`convert.hf_schema`), so
`load_llava(export_hf(x)) == x` bit for bit (same param dtype).

Memory: the shard layout is planned from shapes alone, so each shard's header is written first and
then one param leaf at a time is merged with its LoRA (on device, in its sharding), gathered to the
host (`process_allgather` when the array spans several processes; every process takes part, only
process 0 writes) and appended to the file. The host never holds more than one leaf (a scanned
leaf holds all layers of one weight).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import struct

import jax
import ml_dtypes
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from chatpose_jax.convert import hf
from chatpose_jax.convert import hf_schema as schema
from chatpose_jax.export.hf_processor import PROCESSOR_FILES, write_processor_files
from chatpose_jax.inference.session import image_aspect_of
from chatpose_jax.model.config import ModelConfig
from chatpose_jax.model.lora import merge_lora
from chatpose_jax.train.trained_model import load_trained

SHARD_BYTES = 5 * 10**9  # transformers' "5GB" default: at most this many bytes of tensors per shard
INDEX_FILE = "model.safetensors.index.json"
POSE_HEAD_FORMAT = {
    "format": "chatpose-pose-head",
    "version": 1,
    "input": "last decoder hidden state (after the final norm) at the position t with input_ids[t + 1] == <POSE>",
    "layers": ["fc1: Linear(hidden_size, hidden_size)", "ReLU", "fc2: Linear(hidden_size, num_joints * 6)"],
    "output": "rot6d [num_joints, 6], HMR2.0 layout: (2, 3) rows are the first two columns of the rotation",
    "joints": "0 = global_orient, 1..23 = SMPL body_pose",
}
_SAFETENSORS_DTYPE = {
    np.dtype(np.float32): "F32",
    np.dtype(np.float16): "F16",
    np.dtype(ml_dtypes.bfloat16): "BF16",
    np.dtype(np.float64): "F64",
}
_OUR_FILES = ("model-*-of-*.safetensors", "model.safetensors", INDEX_FILE, "pose_head.*", *PROCESSOR_FILES)


class ExportError(ValueError):
    """The model cannot be written in the Hugging Face layout (naming the field or tensor at fault)."""


# ---------------------------------------------------------------------------------------------
# Names and layouts


def _get(tree: dict, key: tuple[str, ...]):
    for k in key:
        tree = tree[k]
    return tree


@dataclasses.dataclass(frozen=True)
class _Tensor:
    name: str  # stored name
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


@dataclasses.dataclass(frozen=True)
class _Leaf:
    """One param leaf and the HF tensors it becomes (one per layer when the decoder is scanned)."""

    key: tuple[str, ...]
    tensors: tuple[_Tensor, ...]
    kinds: tuple[str, ...]
    layer_paths: tuple[tuple[str, ...], ...]
    stacked: bool


def plan_tensors(config: ModelConfig, params: dict) -> list[_Leaf]:
    """Every model leaf (pose head excluded) with the HF names, shapes and dtypes it is written as."""
    leaves = []
    for key, value in sorted(schema.flatten(params).items()):  # one order whatever built the dict
        if key[0] == "pose_head":
            continue
        layer_paths = schema.layer_paths(key, config) if config.scan_layers else [key]
        stacked = config.scan_layers and len(layer_paths) > 1
        leaf_shape = tuple(value.shape[1:] if stacked else value.shape)
        tensors, kinds = [], []
        for lp in layer_paths:
            canonical, kind = schema.hf_name(lp)
            shape = schema.torch_shape(leaf_shape, kind, lp, config)
            tensors.append(_Tensor(schema.stored_name(canonical), tuple(shape), np.dtype(value.dtype)))
            kinds.append(kind)
        leaves.append(_Leaf(key, tuple(tensors), tuple(kinds), tuple(layer_paths), stacked))
    return leaves


def plan_shards(tensors: list[_Tensor], max_shard_bytes: int) -> list[list[_Tensor]]:
    """Consecutive tensors grouped into shards of at most `max_shard_bytes` (a larger tensor alone)."""
    shards: list[list[_Tensor]] = [[]]
    size = 0
    for t in tensors:
        if shards[-1] and size + t.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += t.nbytes
    return shards


# ---------------------------------------------------------------------------------------------
# safetensors, written as a stream


class SafetensorsWriter:
    """Writes one safetensors file whose tensors (names, shapes, dtypes, order) are known up front.

    The header goes first; `write` then appends each tensor's bytes in the planned order, so a
    file of any size is written holding one tensor at a time.
    """

    def __init__(self, path: str, tensors: list[_Tensor], metadata: dict | None = None):
        header: dict = {"__metadata__": metadata or {"format": "pt"}}
        offset = 0
        for t in tensors:
            if t.dtype not in _SAFETENSORS_DTYPE:
                raise ExportError(f"{t.name}: dtype {t.dtype} has no safetensors code")
            header[t.name] = {
                "dtype": _SAFETENSORS_DTYPE[t.dtype],
                "shape": list(t.shape),
                "data_offsets": [offset, offset + t.nbytes],
            }
            offset += t.nbytes
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as the safetensors library writes it
        self._expected = list(tensors)
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._file.write(struct.pack("<Q", len(raw)) + raw)
        self.path = path

    def write(self, name: str, value: np.ndarray) -> None:
        if not self._expected:
            raise ExportError(f"{self.path}: tensor {name} was not planned for this file")
        t = self._expected.pop(0)
        if t.name != name or tuple(value.shape) != t.shape or value.dtype != t.dtype:
            raise ExportError(
                f"{self.path}: tensor {name} {tuple(value.shape)} {value.dtype} arrives where "
                f"{t.name} {t.shape} {t.dtype} was planned"
            )
        self._file.write(np.ascontiguousarray(value).tobytes())  # safetensors is little-endian, as are our hosts

    def close(self) -> None:
        self._file.close()
        if self._expected:
            raise ExportError(f"{self.path}: tensors never written: {[t.name for t in self._expected[:5]]}")


# ---------------------------------------------------------------------------------------------
# Config files


def text_config(t, config: ModelConfig):
    """The transformers decoder config that expresses `t`: qwen2 for q/k/v biases, mistral for a window, else llama.

    The class is chosen by what the fields need, not by a family name: each one reads back to `t`.
    """
    from transformers import LlamaConfig, MistralConfig, Qwen2Config  # lazy: transformers loads PyTorch

    fields = dict(
        vocab_size=t.vocab_size,
        hidden_size=t.hidden_size,
        intermediate_size=t.intermediate_size,
        num_hidden_layers=t.num_layers,
        num_attention_heads=t.num_heads,
        num_key_value_heads=t.num_kv_heads,
        head_dim=t.resolved_head_dim,
        max_position_embeddings=t.max_position_embeddings,
        rms_norm_eps=t.rms_norm_eps,
        rope_parameters=schema.rope_parameters(t),
        tie_word_embeddings=t.tie_word_embeddings,
        hidden_act=schema.HF_ACT[t.hidden_act],
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    if t.qkv_bias:  # LlamaConfig's attention_bias would put a bias on o_proj too
        window = dict(use_sliding_window=True, sliding_window=t.sliding_window, max_window_layers=0)
        return Qwen2Config(**fields, **(window if t.sliding_window else dict(use_sliding_window=False)))
    if t.sliding_window:
        return MistralConfig(**fields, sliding_window=t.sliding_window)
    return LlamaConfig(**fields)


def vision_config(v):
    """CLIPVisionConfig or SiglipVisionConfig (without pooling head) for `v`; another mix is refused."""
    from transformers import CLIPVisionConfig, SiglipVisionConfig  # lazy: transformers loads PyTorch

    family = schema.vision_family(v)
    fields = dict(
        hidden_size=v.hidden_size,
        intermediate_size=v.intermediate_size,
        num_hidden_layers=v.num_layers,
        num_attention_heads=v.num_heads,
        num_channels=v.num_channels,
        image_size=v.image_size,
        patch_size=v.patch_size,
        layer_norm_eps=v.layer_norm_eps,
        hidden_act=schema.HF_ACT[v.hidden_act],
    )
    if family == "clip_vision_model":
        return CLIPVisionConfig(**fields)
    if family == "siglip_vision_model":
        return SiglipVisionConfig(**fields, vision_use_head=False)
    raise ExportError(
        f"model.vision: class_token={v.class_token}, pre_layernorm={v.pre_layernorm}, patch_bias={v.patch_bias} "
        "is neither CLIP (True, True, False) nor SigLIP (False, False, True)"
    )


def llava_config(config: ModelConfig):
    """The transformers `LlavaConfig` of `config` (plus `pose_token_id`, which the importer reads back)."""
    from transformers import LlavaConfig  # lazy: transformers loads PyTorch

    t, v = config.text, config.vision
    if config.projector.type != "mlp2x_gelu":
        raise ExportError(
            f"model.projector.type {config.projector.type!r}: LlavaForConditionalGeneration has only mlp2x_gelu"
        )
    out = LlavaConfig(
        text_config=text_config(t, config),
        vision_config=vision_config(v),
        image_token_index=config.image_token_id,
        vision_feature_layer=v.feature_layer,
        vision_feature_select_strategy=v.feature_select,
        projector_hidden_act="gelu",
        multimodal_projector_bias=config.projector.bias,
        image_seq_length=v.num_image_tokens,
        pad_token_id=config.pad_token_id,
        tie_word_embeddings=t.tie_word_embeddings,
    )
    out.architectures = ["LlavaForConditionalGeneration"]
    out.dtype = config.param_dtype
    out.pose_token_id = config.pose_token_id
    return out


def _write_generation_config(config: ModelConfig, out_dir: str) -> None:
    from transformers import GenerationConfig  # lazy: transformers loads PyTorch

    GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    ).save_pretrained(out_dir)


def check_tokenizer(tokenizer, config: ModelConfig) -> None:
    """The tokenizer must hold `<POSE>` (and `<image>`, when it has one) at the config's ids."""
    vocab = tokenizer.get_vocab()
    if vocab.get(hf.POSE_TOKEN) != config.pose_token_id:
        raise ExportError(
            f"tokenizer: {hf.POSE_TOKEN} has id {vocab.get(hf.POSE_TOKEN)}, the model's pose_token_id is {config.pose_token_id}"
        )
    if hf.IMAGE_TOKEN in vocab and vocab[hf.IMAGE_TOKEN] != config.image_token_id:
        raise ExportError(
            f"tokenizer: {hf.IMAGE_TOKEN} has id {vocab[hf.IMAGE_TOKEN]}, the model's image_token_id is {config.image_token_id}"
        )
    if len(tokenizer) > config.text.vocab_size:
        raise ExportError(f"tokenizer: {len(tokenizer)} tokens, more than the {config.text.vocab_size} embedding rows")


# ---------------------------------------------------------------------------------------------
# Streaming


def to_host(x: jax.Array) -> np.ndarray:
    """The whole array on this host; a collective when `x` spans processes (every process must call it)."""
    if getattr(x, "is_fully_addressable", True):
        return np.asarray(jax.device_get(x))

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _lora_node(lora: dict | None, key: tuple[str, ...]) -> dict | None:
    """The `lora/{lora_a, lora_b}` node of the linear whose kernel is at `key`, if it has one."""
    if not lora or key[-1] != "kernel":
        return None
    node = lora
    for k in key[:-1]:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node.get("lora") if isinstance(node, dict) else None


def merged_leaf(value: jax.Array, lora_node: dict | None, lora_cfg) -> jax.Array:
    """`value` with its LoRA folded in, by `merge_lora` itself so that export(lora) == export(merged)."""
    if lora_node is None:
        return value
    return merge_lora({"kernel": value}, {"lora": lora_node}, lora_cfg)["kernel"]


def _output_exists(out_dir: str) -> bool:
    exists = os.path.isdir(out_dir) and bool(os.listdir(out_dir))
    if jax.process_count() == 1:
        return exists

    # Process 0's answer for all, so no process waits in a gather that another has left.
    return bool(multihost_utils.broadcast_one_to_all(np.int32(exists)))


def export_hf(
    config: ModelConfig,
    params: dict,
    out_dir: str,
    *,
    lora: dict | None = None,
    tokenizer=None,
    max_shard_bytes: int = SHARD_BYTES,
    overwrite: bool = False,
    image_aspect: str = "none",
) -> dict:
    """Writes `params` (with `lora` merged) as a Hugging Face LLaVA folder plus the pose head.

    Args:
      config: the model config.
      params: the params tree (`chatpose.init_params` layout), on any mesh.
      out_dir: the folder to write; refused when it exists and is not empty unless `overwrite`.
      lora: the LoRA tree to fold in (config.lora gives alpha / rank), or None / {}.
      tokenizer: a tokenizer (or a folder AutoTokenizer loads) holding `<POSE>` at pose_token_id;
        None writes no tokenizer files.
      max_shard_bytes: largest shard (bytes of tensor data).
      overwrite: replace the files of an earlier export in `out_dir`.
      image_aspect: the image preprocessing the model was trained with ("none", or "pad" for LLaVA-1.5's
        pad-to-square), written into preprocessor_config.json.

    Returns:
      The weight map {stored name: shard file}.

    Raises:
      FileExistsError: `out_dir` is not empty and `overwrite` is False.
      ExportError: a config or tokenizer the HF layout cannot express.
    """
    out_dir = os.path.abspath(out_dir)
    if _output_exists(out_dir) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty (pass --overwrite to replace it)")
    writer_process = jax.process_index() == 0
    if isinstance(tokenizer, str):
        from transformers import AutoTokenizer  # lazy: transformers loads PyTorch

        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    if tokenizer is not None:
        check_tokenizer(tokenizer, config)
    else:
        logging.warning("export-hf: no tokenizer known, %s gets no tokenizer files (pass --tokenizer_dir)", out_dir)
    hf_config = llava_config(config)
    if lora and config.lora.rank <= 0:
        raise ExportError("a LoRA tree was given but model.lora.rank is 0: alpha / rank unknown")

    leaves = plan_tensors(config, params)
    shards = plan_shards([t for leaf in leaves for t in leaf.tensors], max_shard_bytes)
    files = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {t.name: f for f, shard in zip(files, shards, strict=True) for t in shard}
    if writer_process:
        os.makedirs(out_dir, exist_ok=True)
        for pattern in _OUR_FILES:  # stale shards of a larger earlier export would confuse the index
            for stale in glob.glob(os.path.join(out_dir, pattern)):
                os.remove(stale)
        hf_config.save_pretrained(out_dir)
        _write_generation_config(config, out_dir)
        if tokenizer is not None:
            tokenizer.save_pretrained(out_dir)
            write_processor_files(out_dir, config, image_aspect)  # AutoProcessor needs the tokenizer too

    flat_lora = lora or None
    shard_of = {t.name: i for i, shard in enumerate(shards) for t in shard}
    writers: dict[int, SafetensorsWriter] = {}
    for leaf in leaves:
        value = to_host(merged_leaf(_get(params, leaf.key), _lora_node(flat_lora, leaf.key), config.lora))
        for i, (t, kind, lp) in enumerate(zip(leaf.tensors, leaf.kinds, leaf.layer_paths, strict=True)):
            if not writer_process:
                continue
            index = shard_of[t.name]
            if index not in writers:
                for done in [k for k in writers if k < index]:
                    writers.pop(done).close()
                writers[index] = SafetensorsWriter(os.path.join(out_dir, files[index]), shards[index])
            writers[index].write(t.name, schema.to_torch_layout(value[i] if leaf.stacked else value, kind, lp, config))
        del value
    for w in writers.values():
        w.close()
    head = {k: to_host(v) for k, v in schema.flatten(params["pose_head"]).items()}
    if writer_process:
        total = sum(t.nbytes for shard in shards for t in shard)
        with open(os.path.join(out_dir, INDEX_FILE), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
        write_pose_head(out_dir, config, head)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("chatpose_export_hf_done")
    return weight_map


def write_pose_head(out_dir: str, config: ModelConfig, head: dict) -> None:
    """pose_head.safetensors (torch layout) + pose_head.json from the host pose head {(fc, leaf): array}."""
    tensors = {}
    for layer in ("fc1", "fc2"):
        tensors[f"{layer}.weight"] = np.asarray(head[(layer, "kernel")]).T
        tensors[f"{layer}.bias"] = np.asarray(head[(layer, "bias")])
    plan = [_Tensor(n, tuple(a.shape), a.dtype) for n, a in tensors.items()]
    writer = SafetensorsWriter(os.path.join(out_dir, hf.POSE_HEAD_FILE), plan)
    for name, value in tensors.items():
        writer.write(name, value)
    writer.close()
    spec = dict(
        POSE_HEAD_FORMAT,
        hidden_size=config.text.hidden_size,
        num_joints=config.pose_head.num_joints,
        max_poses=config.pose_head.max_poses,
        pose_token=hf.POSE_TOKEN,
        pose_token_id=config.pose_token_id,
        dtype=config.param_dtype,
    )
    with open(os.path.join(out_dir, hf.POSE_HEAD_JSON), "w") as f:
        json.dump(spec, f, indent=2)


def export_checkpoint(
    checkpoint: str, out_dir: str, tokenizer_dir: str | None = None, overwrite: bool = False, mesh=None, **kwargs
) -> dict:
    """`chatpose-convert export-hf`: any checkpoint `load_trained` reads -> Hugging Face folder.

    `mesh`: restore the checkpoint sharded over it (a 13B model does not fit one device); default
    the first device.
    """
    model = load_trained(checkpoint, mesh=mesh)
    tokenizer = tokenizer_dir or model.tokenizer_dir
    return export_hf(
        model.config, model.params, out_dir, lora=model.lora, tokenizer=tokenizer, overwrite=overwrite,
        image_aspect=image_aspect_of(checkpoint, model.experiment), **kwargs,
    )  # fmt: skip
