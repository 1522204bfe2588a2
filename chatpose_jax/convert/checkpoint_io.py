"""The model checkpoint that `chatpose-convert import-hf` writes and training / chat start from.

Layout of a checkpoint folder PATH:
  PATH/model_config.json   the ModelConfig as JSON (`ModelConfig.to_dict`)
  PATH/params/             the params pytree, an orbax StandardCheckpointer checkpoint
  PATH/tokenizer/          the tokenizer with `<POSE>` added (only when the source had one)

`load_model_checkpoint` restores every array straight into its sharding on a mesh when one is
given (from the config's logical axis rules), else on the first device.
"""

from __future__ import annotations

import json
import os

import jax
import orbax.checkpoint as ocp

from chatpose_jax.model import chatpose
from chatpose_jax.model.config import ModelConfig, model_config_from_dict

CONFIG_FILE = "model_config.json"
PARAMS_DIR = "params"
TOKENIZER_DIR = "tokenizer"


def save_model_checkpoint(
    path: str, config: ModelConfig, params: dict, tokenizer=None, overwrite: bool = False
) -> None:
    """Writes config, params (and tokenizer) under `path`; refuses an existing folder unless `overwrite`."""
    path = os.path.abspath(path)
    if os.path.exists(path) and os.listdir(path) and not overwrite:
        raise FileExistsError(f"{path} exists and is not empty (pass overwrite=True to replace it)")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, CONFIG_FILE), "w") as f:
        json.dump(config.to_dict(), f, indent=2)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(os.path.join(path, PARAMS_DIR), params, force=overwrite)
        ckptr.wait_until_finished()
    if tokenizer is not None:
        tokenizer.save_pretrained(os.path.join(path, TOKENIZER_DIR))


def load_model_config(path: str) -> ModelConfig:
    with open(os.path.join(path, CONFIG_FILE)) as f:
        return model_config_from_dict(json.load(f))


def load_model_checkpoint(
    path: str, mesh: jax.sharding.Mesh | None = None, logical_axis_rules=None
) -> tuple[ModelConfig, dict]:
    """(config, params) from a folder written by `save_model_checkpoint`."""
    path = os.path.abspath(path)
    config = load_model_config(path)
    shapes, _ = chatpose.abstract_variables(config)
    if mesh is None:
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])  # addressable on every host
        shardings = jax.tree.map(lambda _: device, shapes["params"])
    else:
        shardings = chatpose.variable_shardings(config, mesh, logical_axis_rules)["params"]
    target = jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes["params"], shardings
    )
    with ocp.StandardCheckpointer() as ckptr:
        params = ckptr.restore(os.path.join(path, PARAMS_DIR), target)
    return config, params


def load_checkpoint_tokenizer(path: str):
    """The tokenizer saved with the checkpoint, or None."""
    folder = os.path.join(path, TOKENIZER_DIR)
    if not os.path.isdir(folder):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def import_hf(
    hf_dir: str, out: str, vision_tower_dir: str | None = None, overwrite: bool = False, **overrides
) -> ModelConfig:
    """HF / original LLaVA folder -> model checkpoint at `out` (what `chatpose-convert import-hf` runs)."""
    from chatpose_jax.convert.hf import load_llava, load_tokenizer, read_layout

    tokenizer = load_tokenizer(hf_dir, add_image_token=read_layout(hf_dir) != "hf_llava")
    config, params = load_llava(hf_dir, vision_tower_dir, tokenizer=tokenizer, **overrides)
    save_model_checkpoint(out, config, params, tokenizer, overwrite=overwrite)
    return config
