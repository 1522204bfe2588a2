"""Load a trained model for inference, export or evaluation, whatever form it was saved in.

`load_trained(path)` accepts:
  - a training workdir (its latest checkpoint), or one step folder `WORKDIR/checkpoints/STEP`;
  - a model checkpoint written by `chatpose-convert import-hf` (`model_config.json` + `params/`);
  - a Hugging Face LLaVA folder (`config.json` + safetensors), e.g. one made by `export-hf`.
For a training checkpoint the frozen base is rebuilt the way the run built it (from its
`init_checkpoint`, or the random init of its seed), and the trained parts are restored over it.
Workdirs and model checkpoints may be `gs://` (Hugging Face folders must be local).
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import orbax.checkpoint as ocp

from chatpose_jax import paths
from chatpose_jax.body import frames
from chatpose_jax.config_types import from_config_dict
from chatpose_jax.convert import checkpoint_io
from chatpose_jax.convert.hf import load_llava
from chatpose_jax.experiment import Experiment
from chatpose_jax.model.config import ModelConfig
from chatpose_jax.parallel.mesh import MeshConfig, make_mesh
from chatpose_jax.train import checkpoint as ckpt
from chatpose_jax.train import state as state_lib
from chatpose_jax.train.chatpose_task import load_initial_params
from chatpose_jax.train.setup import build_abstract_trainer, new_token_ids, place_params


@dataclasses.dataclass
class TrainedModel:
    config: ModelConfig
    params: dict  # the full params tree (trained parts joined in)
    lora: dict  # the LoRA tree ({} when none)
    tokenizer_dir: str | None  # a folder AutoTokenizer can load, when one is known
    experiment: Experiment | None = None  # for training checkpoints
    step: int | None = None


def _latest_step_dir(path: str) -> str | None:
    folder = paths.path(path) / "checkpoints"
    if not folder.is_dir():
        return None
    steps = sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())
    return paths.join(folder, str(steps[-1])) if steps else None


def _step_dir(path: str) -> str | None:
    if (paths.path(path) / "state").is_dir() and (paths.path(path) / "config").is_dir():
        return path
    return _latest_step_dir(path)


def find_tokenizer_dir(*candidates: str | None) -> str | None:
    """The first candidate folder holding tokenizer files, as a local folder (gs:// ones are copied)."""
    for folder in candidates:
        if (
            folder
            and paths.path(folder).is_dir()
            and any(
                (paths.path(folder) / f).exists()
                for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
            )
        ):
            return paths.local_copy(folder)
    return None


def _frozen_base(experiment: Experiment, mesh) -> dict:
    """The frozen half of the run's params on `mesh`, as training built it (its LoRA is never made)."""
    params, _ = load_initial_params(experiment, mesh)  # on `mesh` already
    if params is None:  # the run started from its seed's random init
        params, _ = place_params(experiment, mesh, seed=experiment.train.seed)
    frozen, _ = state_lib.split_params(params, {}, experiment.train.trainable, new_token_ids(experiment))
    return frozen


def load_training_checkpoint(step_dir: str, mesh=None) -> TrainedModel:
    saved = json.loads((paths.path(step_dir) / "config" / "metadata").read_text())
    # Checkpoints written before the mesh had dcn_* fields name the slices num_slices.
    num_slices = saved.get("mesh", {}).pop("num_slices", 1)
    if num_slices > 1 and "dcn_data" not in saved["mesh"]:
        saved["mesh"]["dcn_data"] = num_slices
    frames.require_pose_frame(
        saved.get("model", {}).get("pose_frame"),
        f"training checkpoint {step_dir} (config.model.pose_frame)",
        "its pose head learnt roots in another frame; train it again on datasets prepared by this version",
    )
    experiment = from_config_dict(Experiment, saved)
    if mesh is None:
        mesh = make_mesh(MeshConfig(data=1), jax.local_devices()[:1])  # addressable on every host
        experiment = dataclasses.replace(
            experiment, mesh=dataclasses.replace(experiment.mesh, data=-1, fsdp=1, tensor=1)
        )
    # The state is restored straight onto its shapes and shardings; only a run that froze part of
    # the model needs that part rebuilt (from its init_checkpoint, or its seed's random init).
    abstract = build_abstract_trainer(experiment, mesh, donate=False)
    frozen = {} if experiment.train.trainable == "all" else _frozen_base(experiment, mesh)
    step_path = paths.path(step_dir)
    workdir, step = os.fspath(step_path.parent.parent), int(step_path.name)
    manager = ckpt.make_manager(workdir, keep=None, async_save=False)
    try:
        restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract.state)))
    finally:
        manager.close()
    full, lora = state_lib.join_params(frozen, restored["state"].trainable, new_token_ids(experiment))
    tokenizer_dir = find_tokenizer_dir(
        paths.join(workdir, "tokenizer"),
        experiment.data.tokenizer,
        paths.join(experiment.init_checkpoint, "tokenizer") if experiment.init_checkpoint else None,
    )
    return TrainedModel(experiment.model, full, lora, tokenizer_dir, experiment, step)


def load_trained(path: str, mesh=None) -> TrainedModel:
    """The model saved at `path` (see the module docstring), on `mesh` or the first device.

    Raises:
      FileNotFoundError: naming `path` when it holds none of the known forms.
    """
    if not paths.path(path).is_dir():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    step_dir = _step_dir(path)
    if step_dir is not None:
        return load_training_checkpoint(step_dir, mesh)
    if (paths.path(path) / checkpoint_io.CONFIG_FILE).exists():
        config, params = checkpoint_io.load_model_checkpoint(path, mesh)
        return TrainedModel(config, params, {}, find_tokenizer_dir(paths.join(path, checkpoint_io.TOKENIZER_DIR)))
    if not paths.is_remote(path) and os.path.exists(os.path.join(path, "config.json")):
        config, params = load_llava(path, mesh=mesh)
        return TrainedModel(config, params, {}, find_tokenizer_dir(path))
    raise FileNotFoundError(
        f"{path} is neither a training workdir (checkpoints/STEP), a model checkpoint ({checkpoint_io.CONFIG_FILE}) "
        "nor a Hugging Face folder (config.json)"
    )
