"""The ChatPose task for the training loop: its initial weights, body model, trainer, batches and evaluation.

The loop (`train.loop`) owns resuming, checkpointing, logging, preemption and divergence checks;
this module owns what is ChatPose's: the frozen base loaded from `init_checkpoint`, the LoRA state,
the pipeline's batches, held-out loss and MPJPE.
"""

from __future__ import annotations

import os
import tempfile

import jax
import jax.numpy as jnp
from absl import logging
from jax.experimental import multihost_utils

from chatpose_jax import paths
from chatpose_jax.body import load_body_model, synthetic
from chatpose_jax.convert import checkpoint_io
from chatpose_jax.convert.hf import load_llava
from chatpose_jax.experiment import Experiment
from chatpose_jax.train import checkpoint as ckpt
from chatpose_jax.train.input import keep_tokenizer_with_run, make_pipeline_source
from chatpose_jax.train.setup import Trainer, build_trainer
from chatpose_jax.utils import flops

SHAPE_FIELDS = ("vision", "text", "projector", "pose_head", "image_token_id", "pose_token_id")


def load_initial_params(experiment: Experiment, mesh):
    """(params, None) from `init_checkpoint` (a model checkpoint or a HF / LLaVA folder), or (None, None).

    The checkpoint's model must have the experiment's shapes; run options (dtypes, LoRA, remat)
    come from the experiment.

    Raises:
      CheckpointMismatchError: naming the first shape field that differs.
    """
    path = experiment.init_checkpoint
    if not path:
        return None, None
    rules = experiment.mesh.logical_axis_rules
    if (paths.path(path) / checkpoint_io.CONFIG_FILE).exists():
        config, params = checkpoint_io.load_model_checkpoint(path, mesh, rules)
    else:
        if paths.is_remote(path):
            raise FileNotFoundError(
                f"init_checkpoint {path}: no {checkpoint_io.CONFIG_FILE} there; a Hugging Face folder must be "
                "local (or import it first: chatpose-convert import-hf --out gs://..., which training reads from "
                "the bucket)"
            )
        config, params = load_llava(path, mesh=mesh, logical_axis_rules=rules)
    for field in SHAPE_FIELDS:
        have, want = getattr(config, field), getattr(experiment.model, field)
        if have != want:
            raise ckpt.CheckpointMismatchError(
                f"init_checkpoint {path} has model.{field}={have}, the config has model.{field}={want}"
            )
    return params, None


def load_body_model_for(experiment: Experiment, workdir: str):
    """The body model for pose metrics / body losses: a file, the synthetic one, or None."""
    spec = experiment.train.body_model
    if not spec:
        logging.warning("no train.body_model: training logs no MPJPE / PA-MPJPE (set train.body_model to an SMPL file)")
        return None
    if spec == "synthetic":
        path = paths.join(workdir, "body_model", "SMPL_NEUTRAL.pkl")
        if jax.process_index() == 0 and not paths.path(path).exists():
            with tempfile.TemporaryDirectory() as local:  # written locally, then copied (gs:// workdirs)
                paths.copy_tree(synthetic.write_smpl_pkl(os.path.join(local, "SMPL_NEUTRAL.pkl")), path)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("synthetic body model written")
        spec = path
    return load_body_model(spec)


def mean_eval(sums: list[dict]) -> dict:
    """Per-token and per-pose means of the eval step's sums, accumulated over batches."""
    total = {k: float(sum(float(s[k]) for s in sums)) for k in sums[0]}
    tokens, poses = max(total["tokens"], 1.0), max(total["poses"], 1.0)
    out = {
        "ce": total["ce_sum"] / tokens,
        "token_accuracy": total["correct"] / tokens,
        "pose_l1": total["pose_l1_sum"] / poses,
        "loss": total["loss_x_tokens"] / tokens,
    }
    if "mpjpe_sum" in total:
        out["mpjpe_mm"] = 1000.0 * total["mpjpe_sum"] / poses
        out["pa_mpjpe_mm"] = 1000.0 * total["pa_mpjpe_sum"] / poses
    return out


def evaluate(trainer: Trainer, source, num_batches: int) -> dict:
    """Mean held-out loss terms (and MPJPE with a body model) over `num_batches` batches of `source`."""
    sums = [jax.device_get(trainer.evaluate(next(source))) for _ in range(num_batches)]
    return mean_eval(sums)


@jax.jit
def _global_sum(x):
    return jnp.sum(x)


class ChatPoseTask:
    """The ChatPose model: frozen base + LoRA state, pipeline batches, held-out loss and MPJPE."""

    progress_keys = ("loss", "pose_l1")

    def default_source(self, experiment, workdir: str):
        keep_tokenizer_with_run(experiment, workdir)
        return make_pipeline_source

    def build_trainer(self, experiment, mesh, workdir: str, resuming: bool):
        # A checkpoint holds the trained half only: a run that freezes part of the model rebuilds that
        # part from its init_checkpoint on resume too. Only a run that trains every weight skips it.
        skip = resuming and experiment.train.trainable == "all"
        params, lora = (None, None) if skip else load_initial_params(experiment, mesh)
        return build_trainer(experiment, mesh, params, lora, load_body_model_for(experiment, workdir))

    def evaluate(self, trainer, experiment, mesh, make_source, workdir: str, step: int) -> dict:
        return evaluate(trainer, make_source(experiment, mesh, "validation"), experiment.train.eval_batches)

    def throughput(self, experiment, batch: dict, step_time: float, peak: float | None) -> dict:
        seq = batch["input_ids"].shape[1]
        # Summed on the devices: with several processes no host holds the whole batch. Padding is excluded.
        out = {"tokens_per_s": float(_global_sum(batch["attention_mask"])) / step_time}
        if peak:
            images = batch["input_ids"].shape[0] if "pixel_values" in batch else 0
            step_flops = flops.train_step_flops(experiment.model, batch["input_ids"].shape[0], seq, images).total
            out["mfu"] = flops.model_flops_utilization(step_flops, step_time, jax.device_count(), peak)
        return out
