"""Training input from `data_pipelines`: global batches on the mesh, with a resumable position.

This is the one place the training side touches the pipeline (and TensorFlow), through the
documented batch layout and the tokenizer. Each host reads its own shard; the source's state
holds every host's position (gathered), so one checkpoint restores all hosts.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils

from chatpose_jax import paths
from chatpose_jax.experiment import Experiment

HELD_OUT_SPLITS = ("val", "validation", "test")


def tokenizer_dir(experiment: Experiment) -> str:
    """The tokenizer folder of a run: `data.tokenizer`, else the init checkpoint's own."""
    candidates = [experiment.data.tokenizer]
    if experiment.init_checkpoint:
        candidates += [paths.join(experiment.init_checkpoint, "tokenizer"), experiment.init_checkpoint]
    for folder in candidates:
        if folder and paths.path(folder).is_dir():
            return folder
    raise FileNotFoundError(
        "no tokenizer: set config.data.tokenizer to a folder with tokenizer files "
        f"(tried {', '.join(repr(c) for c in candidates if c) or 'nothing'})"
    )


def keep_tokenizer_with_run(experiment: Experiment, workdir: str) -> str:
    """Copies the run's tokenizer to WORKDIR/tokenizer (process 0), so checkpoints are self-contained."""
    source = tokenizer_dir(experiment)
    target = paths.join(workdir, "tokenizer")
    if jax.process_index() == 0 and paths.absolute(source) != paths.absolute(target):
        paths.copy_tree(source, target)
    return source


def held_out_splits(data_dir: str, datasets: tuple[str, ...]) -> dict[str, str]:
    """{dataset: its first held-out split} for the datasets that have one (posescript: 'val', ...)."""
    from data_pipelines import prepared  # imported here: the pipeline imports TensorFlow, kept lazy

    found = {}
    for name in datasets:
        splits = list(prepared.open_builder(name, data_dir).info.splits.keys())
        for wanted in HELD_OUT_SPLITS:
            match = next((s for s in splits if s == wanted or s.endswith("_" + wanted)), None)
            if match:
                found[name] = match
                break
    return found


def check_token_ids(tokenizer, model) -> None:
    """Raises ValueError when the tokenizer holds ids the model has no embedding row for (naming the token)."""
    for token, token_id in sorted(tokenizer.get_vocab().items(), key=lambda kv: -kv[1])[:8]:
        if token_id >= model.text.vocab_size:
            raise ValueError(
                f"tokenizer token {token!r} has id {token_id}, beyond model.text.vocab_size={model.text.vocab_size}"
                + (" (added for model.mm_use_im_start_end)" if token in ("<im_start>", "<im_end>") else "")
            )


class PipelineSource:
    """`BatchSource` over `data_pipelines.pipeline.BatchIterator` for one split role ("train" / "validation")."""

    def __init__(self, experiment: Experiment, mesh, split: str = "train"):
        # Imported here to keep TensorFlow lazy; the package registers the builders, hides accelerators from TF.
        import data_pipelines  # noqa: F401
        from data_pipelines import pipeline
        from data_pipelines.tokenizer import load_tokenizer

        if not experiment.data.data_dir:
            raise FileNotFoundError("config.data.data_dir is empty: point it at the prepared TFDS datasets")
        self.mesh = mesh
        self._pipeline = pipeline
        overrides = {}
        if split != "train":
            held_out = held_out_splits(experiment.data.data_dir, experiment.data.datasets)
            if not held_out:
                raise FileNotFoundError(
                    f"none of {experiment.data.datasets} has a held-out split ({', '.join(HELD_OUT_SPLITS)})"
                )
            names = tuple(held_out)
            ratios = tuple(experiment.data.ratios[experiment.data.datasets.index(n)] for n in names)
            overrides = dict(datasets=names, ratios=ratios, splits=tuple(held_out[n] for n in names))
        config = pipeline.pipeline_config(experiment, **overrides)
        tokenizer = load_tokenizer(tokenizer_dir(experiment), image_start_end=experiment.model.mm_use_im_start_end)
        check_token_ids(tokenizer, experiment.model)
        self.iterator = pipeline.BatchIterator(config, tokenizer)

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        return self._pipeline.global_batch(next(self.iterator), self.mesh)

    def dropped(self) -> dict[str, int]:
        """{reason: samples this host's tokenizer left out so far} (e.g. 'pose_truncated')."""
        return self.iterator.dropped

    def state(self) -> dict:
        mine = self.iterator.state()
        if jax.process_count() == 1:
            return {"hosts": [mine]}
        positions = multihost_utils.process_allgather(np.int64(mine["next_index"]))
        hosts = [{**mine, "process_index": i, "next_index": int(p)} for i, p in enumerate(positions)]
        if "consumed" in mine:  # packed rows: each host's samples past its next_index that a batch took
            for host, consumed in zip(hosts, allgather_ragged(mine["consumed"]), strict=True):
                host["consumed"] = consumed
        return {"hosts": hosts}

    def restore(self, state: dict) -> None:
        hosts = state["hosts"]
        if len(hosts) != jax.process_count():
            raise ValueError(
                f"the checkpoint's input state is for {len(hosts)} hosts, this run has {jax.process_count()}"
            )
        self.iterator.restore(hosts[jax.process_index()])


def allgather_ragged(values: list[int]) -> list[list[int]]:
    """Every host's list of ints (lists of different lengths), in process order."""
    counts = multihost_utils.process_allgather(np.int64(len(values)))
    padded = np.full(max(1, int(np.max(counts))), -1, np.int64)
    padded[: len(values)] = values
    gathered = multihost_utils.process_allgather(padded)
    return [[int(v) for v in row[:n]] for row, n in zip(np.asarray(gathered), np.asarray(counts), strict=True)]


def make_pipeline_source(experiment: Experiment, mesh, split: str) -> PipelineSource:
    return PipelineSource(experiment, mesh, split)
