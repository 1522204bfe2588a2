"""The model checkpoint that `chatpose-convert import-hf` writes and training / chat start from.

Layout of a checkpoint folder PATH:
  PATH/model_config.json   the ModelConfig as JSON (`ModelConfig.to_dict`), whose `pose_frame`
                           names the frame of the pose head's root (a folder without it is refused)
  PATH/params/             the params pytree, an orbax StandardCheckpointer checkpoint
  PATH/tokenizer/          the tokenizer with `<POSE>` added (only when the source had one)

`load_model_checkpoint` restores every array straight into its sharding on a mesh when one is
given (from the config's logical axis rules), else on the first device. PATH may be local or
`gs://` (epath for the JSON and the tokenizer, orbax for the arrays).
"""

from __future__ import annotations

import json
import os
import tempfile

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from chatpose_jax import paths
from chatpose_jax.body import frames
from chatpose_jax.convert.hf import load_llava, load_tokenizer, read_layout
from chatpose_jax.model import chatpose
from chatpose_jax.model.config import ModelConfig, model_config_from_dict

CONFIG_FILE = "model_config.json"
PARAMS_DIR = "params"
TOKENIZER_DIR = "tokenizer"


def save_model_checkpoint(
    path: str, config: ModelConfig, params: dict, tokenizer=None, overwrite: bool = False
) -> None:
    """Writes config, params (and tokenizer) under `path`; refuses an existing folder unless `overwrite`."""
    path = paths.absolute(path)
    folder = paths.path(path)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{path} exists and is not empty (pass overwrite=True to replace it)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2))
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(folder / PARAMS_DIR, params, force=overwrite)
        ckptr.wait_until_finished()
    if tokenizer is not None:
        if paths.is_remote(path):  # transformers writes local folders only
            with tempfile.TemporaryDirectory() as local:
                tokenizer.save_pretrained(local)
                paths.copy_tree(local, folder / TOKENIZER_DIR)
        else:
            tokenizer.save_pretrained(os.path.join(path, TOKENIZER_DIR))


def load_model_config(path: str) -> ModelConfig:
    """The ModelConfig of the checkpoint at `path`.

    Raises:
      PoseFrameError: the checkpoint was written before roots moved to the OpenCV camera frame.
    """
    raw = json.loads((paths.path(path) / CONFIG_FILE).read_text())
    frames.require_pose_frame(
        raw.get("pose_frame"),
        f"model checkpoint {paths.join(path, CONFIG_FILE)}",
        "import it again (chatpose-convert import-hf or import-chatpose-torch)",
    )
    return model_config_from_dict(raw)


def load_model_checkpoint(
    path: str, mesh: jax.sharding.Mesh | None = None, logical_axis_rules=None
) -> tuple[ModelConfig, dict]:
    """(config, params) from a folder written by `save_model_checkpoint`."""
    path = paths.absolute(path)
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
        folder = paths.path(path) / PARAMS_DIR
        if config.scan_layers and _has_unrolled_tower(ckptr, folder):
            return config, _restore_unrolled_tower(ckptr, folder, target, config.vision.num_layers)
        params = ckptr.restore(folder, target)
    return config, params


def _has_unrolled_tower(ckptr: ocp.StandardCheckpointer, folder) -> bool:
    """Whether the params hold vision_tower/layers_{i}: written with scan_layers before the tower scanned too."""
    stored = ckptr.metadata(folder)
    stored = getattr(getattr(stored, "item_metadata", stored), "tree", stored)
    return "layers_0" in (stored.get("vision_tower") or {})


def _restore_unrolled_tower(ckptr: ocp.StandardCheckpointer, folder, target: dict, num_layers: int) -> dict:
    """Restores a checkpoint whose tower layers are stored one by one, stacking them as the scanned tower holds them."""
    tower = dict(target["vision_tower"])
    stacked = tower.pop("layers")

    def one_layer(leaf):
        sharding = leaf.sharding
        if isinstance(sharding, jax.sharding.NamedSharding):
            sharding = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec(*sharding.spec[1:]))
        return jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype, sharding=sharding)

    for i in range(num_layers):
        tower[f"layers_{i}"] = jax.tree.map(one_layer, stacked)
    params = ckptr.restore(folder, {**target, "vision_tower": tower})
    tower = dict(params["vision_tower"])
    layers = [tower.pop(f"layers_{i}") for i in range(num_layers)]
    tower["layers"] = jax.tree.map(lambda leaf, *xs: jax.device_put(jnp.stack(xs), leaf.sharding), stacked, *layers)
    return {**params, "vision_tower": tower}


def load_checkpoint_tokenizer(path: str):
    """The tokenizer saved with the checkpoint, or None."""
    folder = paths.join(path, TOKENIZER_DIR)
    if not paths.path(folder).is_dir():
        return None
    from transformers import AutoTokenizer  # lazy: transformers loads PyTorch

    return AutoTokenizer.from_pretrained(paths.local_copy(folder))


def import_hf(
    hf_dir: str, out: str, vision_tower_dir: str | None = None, overwrite: bool = False, **overrides
) -> ModelConfig:
    """HF / original LLaVA folder -> model checkpoint at `out` (what `chatpose-convert import-hf` runs)."""
    tokenizer = load_tokenizer(hf_dir, add_image_token=read_layout(hf_dir) != "hf_llava")
    config, params = load_llava(hf_dir, vision_tower_dir, tokenizer=tokenizer, **overrides)
    save_model_checkpoint(out, config, params, tokenizer, overwrite=overwrite)
    return config
