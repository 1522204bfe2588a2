"""`train_and_evaluate(experiment, workdir, task)`: the run users start with `chatpose-train`.

Places the model on the mesh, resumes from the workdir's latest checkpoint (state and input
position), steps, logs (experiment.json, metrics.jsonl, TensorBoard, a progress bar on process 0),
evaluates on a held-out split, checkpoints asynchronously every `checkpoint_every` steps and on
SIGTERM (preemption), and stops with a clear error after `max_nonfinite_in_row` skipped updates.
The workdir may be local or `gs://`: everything in it is written through epath or orbax.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from typing import Any, Protocol

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from tqdm import tqdm

from chatpose_jax import paths
from chatpose_jax.experiment import Experiment
from chatpose_jax.parallel.mesh import make_mesh
from chatpose_jax.train import checkpoint as ckpt
from chatpose_jax.train.metric_writer import MetricWriter
from chatpose_jax.utils import flops


class TrainingDivergedError(RuntimeError):
    """Too many non-finite losses or gradients in a row."""


class BatchTooLongError(ValueError):
    """A batch row holds more labelled tokens than the step's cross-entropy reads (train.max_text_length)."""


def _check_lengths(metrics: dict, step: int, max_text_length: int, workdir: str) -> None:
    """Stops the run when step `step` (1-based) read fewer labelled tokens than its batch held."""
    beyond = int(metrics.get("tokens_beyond_max_text_length", 0))
    if beyond > 0:
        raise BatchTooLongError(
            f"the batch of step {step} held {beyond} labelled tokens beyond train.max_text_length="
            f"{max_text_length} in its rows, which the cross-entropy would leave out: raise "
            "train.max_text_length or truncate the rows as the data pipeline does; the last good checkpoint "
            f"in {workdir} is kept"
        )


def _report_dropped(source, host: dict, warned: set[str], max_text_length: int) -> None:
    """Adds the samples the source's tokenizer dropped so far on this host (`dropped_REASON`, counts) to the
    logged metrics, and warns once per reason: a dropped sample is data the run never sees."""
    dropped = getattr(source, "dropped", None)
    for reason, count in (dropped() if callable(dropped) else {}).items():
        host[f"dropped_{reason}"] = float(count)
        if reason not in warned:
            warned.add(reason)
            advice = f": raise train.max_text_length (now {max_text_length})" if reason == "pose_truncated" else ""
            logging.warning("the input pipeline dropped %d samples so far (%s)%s", count, reason, advice)


class BatchSource(Protocol):
    """Global batches as sharded jax.Arrays, with a resumable position (and, optionally, `dropped()`:
    {reason: samples the tokenizer left out so far on this host})."""

    def __next__(self) -> dict: ...

    def state(self) -> dict: ...

    def restore(self, state: dict) -> None: ...


SourceFactory = Callable[[Experiment, Any, str], BatchSource]  # (experiment, mesh, split) -> source


class Task(Protocol):
    """What the loop needs from a model family (`train.chatpose_task`, `retrieval.task`; `train.tasks` picks one)."""

    progress_keys: tuple[str, ...]  # metrics shown on the progress bar

    def default_source(self, experiment: Experiment, workdir: str) -> SourceFactory: ...

    def build_trainer(self, experiment: Experiment, mesh, workdir: str, resuming: bool) -> Any:
        """An object with `.state`, `.step(batch) -> metrics` (state restored over `.state` when resuming)."""

    def evaluate(
        self, trainer, experiment: Experiment, mesh, make_source: SourceFactory, workdir: str, step: int
    ) -> dict: ...

    def throughput(self, experiment: Experiment, batch: dict, step_time: float, peak: float | None) -> dict: ...


class _Preemption:
    """Remembers a SIGTERM so the loop can checkpoint and leave at a step boundary."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread (e.g. a test runner thread): no handler
            self._previous = None
        return self

    def _handle(self, signum, frame):
        del signum, frame
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def agreed(self) -> bool:
        """Whether any process was asked to stop (all processes must stop at the same step)."""
        if jax.process_count() == 1:
            return self.requested
        return bool(np.any(multihost_utils.process_allgather(np.array(self.requested))))


def peak_flops_per_device() -> float | None:
    kind = jax.devices()[0].device_kind.lower()
    for name, peak in flops.PEAK_BF16_FLOPS.items():
        if name in kind.replace(" ", ""):
            return peak
    return None


def train_and_evaluate(
    experiment: Experiment,
    workdir: str,
    task: Task,
    make_source: SourceFactory | None = None,
    config_json: dict | None = None,
    progress: bool = True,
) -> dict:
    """Trains `task` to `experiment.train.num_steps`, resuming from `workdir`. Returns the last metrics.

    `make_source(experiment, mesh, split)` gives the batches; by default the task's own.
    """
    cfg = experiment.train
    config_json = config_json or ckpt.experiment_to_json(experiment)
    if make_source is None:
        make_source = task.default_source(experiment, workdir)
    if jax.process_index() == 0:
        # The validated experiment, readable without orbax (each checkpoint holds it too, for resume checks).
        root = paths.path(workdir)
        root.mkdir(parents=True, exist_ok=True)
        (root / "experiment.json").write_text(json.dumps(config_json, indent=1))
    mesh = make_mesh(experiment.mesh)
    manager = ckpt.make_manager(workdir, cfg.keep_checkpoints)
    latest = manager.latest_step()
    if latest is not None:  # a checkpoint of another model fails here, before any weights are built
        ckpt.check_saved_config(manager, latest, config_json)
    trainer = task.build_trainer(experiment, mesh, workdir, resuming=latest is not None)
    source = make_source(experiment, mesh, "train")
    if latest is not None:
        state, data_state = ckpt.restore(manager, latest, ckpt.abstract_like(trainer.state), config_json)
        trainer.state = state
        source.restore(data_state)
        logging.info("resumed from step %d of %s", latest, workdir)
    start = int(jax.device_get(trainer.state.step))
    writer = MetricWriter(workdir)
    peak = peak_flops_per_device()
    last: dict = {}
    bar = None
    if progress and jax.process_index() == 0:
        bar = tqdm(total=cfg.num_steps, initial=start, desc=experiment.name, dynamic_ncols=True)

    def run_eval(step: int) -> dict:
        metrics = task.evaluate(trainer, experiment, mesh, make_source, workdir, step)
        writer.write(step, metrics, prefix="eval")
        return metrics

    try:
        with _Preemption() as preemption:
            window_start, window_steps = time.perf_counter(), 0
            previous = None
            warned_drops: set[str] = set()
            for step in range(start, cfg.num_steps):
                batch = next(source)
                metrics = trainer.step(batch)
                # Judge the previous step (already finished) so the check never stalls the pipeline.
                if previous is not None and int(previous["nonfinite_in_row"]) >= cfg.max_nonfinite_in_row:
                    raise TrainingDivergedError(
                        f"{int(previous['nonfinite_in_row'])} non-finite losses or gradients in a row at step "
                        f"{step}; the last good checkpoint in {workdir} is kept (raise "
                        "train.max_nonfinite_in_row, lower optimizer.lr or inspect the data)"
                    )
                if previous is not None:
                    _check_lengths(previous, step, cfg.max_text_length, workdir)
                previous = metrics  # not donated, unlike the state
                window_steps += 1
                done = step + 1
                if done % cfg.log_every == 0 or done == cfg.num_steps:
                    host = {k: float(v) for k, v in jax.device_get(metrics).items()}
                    jax.block_until_ready(trainer.state.step)
                    elapsed = time.perf_counter() - window_start
                    step_time = elapsed / window_steps
                    host["step_time_s"] = step_time
                    host.update(task.throughput(experiment, batch, step_time, peak))
                    host["nonfinite_total"] = float(jax.device_get(trainer.state.nonfinite_total))
                    _report_dropped(source, host, warned_drops, cfg.max_text_length)
                    writer.write(done, host)
                    last = host
                    window_start, window_steps = time.perf_counter(), 0
                    if bar is not None:
                        bar.set_postfix({k: f"{host[k]:.3f}" for k in task.progress_keys if k in host})
                if bar is not None:
                    bar.update(1)
                if cfg.eval_every and done % cfg.eval_every == 0 and done != cfg.num_steps:
                    run_eval(done)
                if done % cfg.checkpoint_every == 0 or done == cfg.num_steps:
                    ckpt.save(manager, done, trainer.state, source.state(), config_json)
                if preemption.agreed():
                    ckpt.save(manager, done, trainer.state, source.state(), config_json, force=True)
                    manager.wait_until_finished()
                    logging.warning("SIGTERM: checkpointed step %d and stopped", done)
                    return last
            if previous is not None:
                _check_lengths(previous, cfg.num_steps, cfg.max_text_length, workdir)
            if int(jax.device_get(trainer.state.nonfinite_in_row)) >= cfg.max_nonfinite_in_row:
                raise TrainingDivergedError(
                    f"{int(jax.device_get(trainer.state.nonfinite_in_row))} non-finite losses or gradients in a row "
                    f"at the end of the run; the last good checkpoint in {workdir} is kept"
                )
        final_eval = run_eval(cfg.num_steps) if cfg.eval_batches else {}
        last = {**last, **{f"eval_{k}": v for k, v in final_eval.items()}}
        return last
    finally:
        manager.wait_until_finished()
        manager.close()
        writer.close()
        if bar is not None:
            bar.close()
