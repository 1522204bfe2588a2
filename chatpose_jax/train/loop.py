"""`train_and_evaluate(experiment, workdir)`: the run users start with `chatpose-train`.

Places the model on the mesh, resumes from the workdir's latest checkpoint (state and input
position), steps, logs (experiment.json, metrics.jsonl, TensorBoard, a progress bar on process 0),
evaluates on a held-out split, checkpoints asynchronously every `checkpoint_every` steps and on
SIGTERM (preemption), and stops with a clear error after `max_nonfinite_in_row` skipped updates.
The workdir may be local or `gs://`: everything in it is written through epath or orbax.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from collections.abc import Callable
from typing import Any, Protocol

import jax
import numpy as np
from absl import logging

from chatpose_jax import paths
from chatpose_jax.experiment import Experiment
from chatpose_jax.parallel.mesh import make_mesh
from chatpose_jax.train import checkpoint as ckpt
from chatpose_jax.train.metric_writer import MetricWriter
from chatpose_jax.train.setup import Trainer
from chatpose_jax.train.tasks import task_of
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


class BatchSource(Protocol):
    """Global batches as sharded jax.Arrays, with a resumable position."""

    def __next__(self) -> dict: ...

    def state(self) -> dict: ...

    def restore(self, state: dict) -> None: ...


SourceFactory = Callable[[Experiment, Any, str], BatchSource]  # (experiment, mesh, split) -> source


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
        from jax.experimental import multihost_utils

        return bool(np.any(multihost_utils.process_allgather(np.array(self.requested))))


def peak_flops_per_device() -> float | None:
    kind = jax.devices()[0].device_kind.lower()
    for name, peak in flops.PEAK_BF16_FLOPS.items():
        if name in kind.replace(" ", ""):
            return peak
    return None


def _mean_eval(sums: list[dict]) -> dict:
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


def evaluate(trainer: Trainer, source: BatchSource, num_batches: int) -> dict:
    """Mean held-out loss terms (and MPJPE with a body model) over `num_batches` batches."""
    sums = [jax.device_get(trainer.evaluate(next(source))) for _ in range(num_batches)]
    return _mean_eval(sums)


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
    from chatpose_jax.convert import checkpoint_io

    rules = experiment.mesh.logical_axis_rules
    if (paths.path(path) / checkpoint_io.CONFIG_FILE).exists():
        config, params = checkpoint_io.load_model_checkpoint(path, mesh, rules)
    else:
        from chatpose_jax.convert.hf import load_llava

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
    from chatpose_jax.body import load_body_model

    if spec == "synthetic":
        from chatpose_jax.body import synthetic

        path = paths.join(workdir, "body_model", "SMPL_NEUTRAL.pkl")
        if jax.process_index() == 0 and not paths.path(path).exists():
            with tempfile.TemporaryDirectory() as local:  # written locally, then copied (gs:// workdirs)
                paths.copy_tree(synthetic.write_smpl_pkl(os.path.join(local, "SMPL_NEUTRAL.pkl")), path)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("synthetic body model written")
        spec = path
    return load_body_model(spec)


def train_and_evaluate(
    experiment: Experiment,
    workdir: str,
    make_source: SourceFactory | None = None,
    config_json: dict | None = None,
    progress: bool = True,
) -> dict:
    """Trains to `experiment.train.num_steps`, resuming from `workdir`. Returns the last metrics."""
    cfg = experiment.train
    task = task_of(experiment)
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
        from tqdm import tqdm

        bar = tqdm(total=cfg.num_steps, initial=start, desc=experiment.name, dynamic_ncols=True)

    def run_eval(step: int) -> dict:
        metrics = task.evaluate(trainer, experiment, mesh, make_source, workdir, step)
        writer.write(step, metrics, prefix="eval")
        return metrics

    try:
        with _Preemption() as preemption:
            window_start, window_steps = time.perf_counter(), 0
            previous = None
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
