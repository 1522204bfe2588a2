"""Metrics to the workdir: `metrics.jsonl` always, TensorBoard event files when `tensorboard` is installed.

Only process 0 writes. Events are written with tensorboard's own writer (no TensorFlow graph),
imported lazily, so the training code runs where neither is installed.
"""

from __future__ import annotations

import json
import math
import os
import time

import jax
from absl import logging


class MetricWriter:
    """Appends one JSON object per call to WORKDIR/metrics.jsonl and mirrors scalars to TensorBoard."""

    def __init__(self, workdir: str, enabled: bool | None = None):
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self._tb = None
        self._jsonl = None
        if not self.enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8")  # noqa: SIM115
        try:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter

            self._tb = EventFileWriter(os.path.join(workdir, "tensorboard"))
        except ImportError:
            logging.warning("tensorboard is not installed: metrics go to metrics.jsonl only")

    def write(self, step: int, scalars: dict[str, float], prefix: str = "train") -> None:
        if not self.enabled:
            return
        clean = {k: (float(v) if math.isfinite(float(v)) else str(float(v))) for k, v in scalars.items()}
        self._jsonl.write(json.dumps({"step": int(step), "split": prefix, **clean}) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            from tensorboard.compat.proto import event_pb2, summary_pb2

            values = [summary_pb2.Summary.Value(tag=f"{prefix}/{k}", simple_value=float(v)) for k, v in scalars.items()]
            event = event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary_pb2.Summary(value=values))
            self._tb.add_event(event)
            self._tb.flush()

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(workdir: str, split: str = "train") -> list[dict]:
    """The rows of WORKDIR/metrics.jsonl for one split (tests and reports read it back)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if r.get("split") == split]
