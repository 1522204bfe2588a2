"""What the training loop needs from a model family: its trainer, its batches, its evaluation, its log.

`experiment.task` picks one: "chatpose" (the LLaVA + pose-head model) or "retrieval" (the
text-pose retrieval model the text benchmarks use). The loop (`train.loop`) owns resuming,
checkpointing, logging, preemption and divergence checks for both.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from chatpose_jax.utils import flops


@jax.jit
def _global_sum(x):
    return jnp.sum(x)


class ChatPoseTask:
    """The ChatPose model: frozen base + LoRA state, pipeline batches, held-out loss and MPJPE."""

    progress_keys = ("loss", "pose_l1")

    def default_source(self, experiment, workdir: str):
        from chatpose_jax.train.input import keep_tokenizer_with_run, make_pipeline_source

        keep_tokenizer_with_run(experiment, workdir)
        return make_pipeline_source

    def build_trainer(self, experiment, mesh, workdir: str, resuming: bool):
        from chatpose_jax.train.loop import load_body_model_for, load_initial_params
        from chatpose_jax.train.setup import build_trainer

        params, lora = (None, None) if resuming else load_initial_params(experiment, mesh)
        return build_trainer(experiment, mesh, params, lora, load_body_model_for(experiment, workdir))

    def evaluate(self, trainer, experiment, mesh, make_source, workdir: str, step: int) -> dict:
        from chatpose_jax.train.loop import evaluate

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


class RetrievalTask:
    """The text-pose retrieval model: PoseScript pairs, InfoNCE, validation recalls (best kept)."""

    progress_keys = ("loss", "logit_scale")

    def default_source(self, experiment, workdir: str):
        from chatpose_jax.retrieval import train

        if not experiment.retrieval.tokenizer and experiment.data.tokenizer and jax.process_index() == 0:
            from chatpose_jax import paths

            kept = paths.join(workdir, "tokenizer")
            if not paths.path(kept).is_dir():
                paths.copy_tree(experiment.data.tokenizer, kept)
        return lambda e, mesh, split: train.make_source(e, mesh, split, workdir)

    def build_trainer(self, experiment, mesh, workdir: str, resuming: bool):
        from chatpose_jax.retrieval import train

        return train.build_trainer(experiment, mesh, workdir)

    def evaluate(self, trainer, experiment, mesh, make_source, workdir: str, step: int) -> dict:
        from chatpose_jax.retrieval import train

        return train.evaluate(trainer, workdir, step)

    def throughput(self, experiment, batch: dict, step_time: float, peak: float | None) -> dict:
        return {"pairs_per_s": batch["poses"].shape[0] / step_time}


TASKS: dict[str, Any] = {"chatpose": ChatPoseTask(), "retrieval": RetrievalTask()}


def task_of(experiment):
    return TASKS[experiment.task]
