"""The text-pose retrieval task for the training loop: PoseScript pairs, InfoNCE, validation recalls (best kept)."""

from __future__ import annotations

import jax

from chatpose_jax import paths
from chatpose_jax.retrieval import train


class RetrievalTask:
    """The text-pose retrieval model, trained by the same loop as ChatPose."""

    progress_keys = ("loss", "logit_scale")

    def default_source(self, experiment, workdir: str):
        if not experiment.retrieval.tokenizer and experiment.data.tokenizer and jax.process_index() == 0:
            kept = paths.join(workdir, "tokenizer")
            if not paths.path(kept).is_dir():
                paths.copy_tree(experiment.data.tokenizer, kept)
        return lambda e, mesh, split: train.make_source(e, mesh, split, workdir)

    def build_trainer(self, experiment, mesh, workdir: str, resuming: bool):
        return train.build_trainer(experiment, mesh, workdir)

    def evaluate(self, trainer, experiment, mesh, make_source, workdir: str, step: int) -> dict:
        return train.evaluate(trainer, workdir, step)

    def throughput(self, experiment, batch: dict, step_time: float, peak: float | None) -> dict:
        return {"pairs_per_s": batch["poses"].shape[0] / step_time}
