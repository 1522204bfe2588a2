"""Metrics to the workdir: `metrics.jsonl` always, TensorBoard event files when `tensorboard` is installed.

Only process 0 writes. Both files go through `etils.epath`, so a `gs://` workdir works like a
local one; events are encoded with tensorboard's protos and record format (no TensorFlow graph,
no TensorFlow import for local workdirs), imported lazily, so training runs where neither is
installed.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time

import jax
from absl import logging

from chatpose_jax import paths


class _EventFile:
    """One TensorBoard event file (`events.out.tfevents.*`) written through epath."""

    def __init__(self, folder):
        # Imported here: tensorboard.compat imports TensorFlow when it is installed, kept lazy.
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        folder.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}"
        self._file = (folder / name).open("wb")
        self._records = RecordWriter(self._file)
        self.add(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def add(self, event) -> None:
        self._records.write(event.SerializeToString())
        self._records.flush()

    def close(self) -> None:
        self._records.close()


class MetricWriter:
    """Appends one JSON object per call to WORKDIR/metrics.jsonl and mirrors scalars to TensorBoard."""

    def __init__(self, workdir: str, enabled: bool | None = None):
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self._tb = None
        self._jsonl = None
        if not self.enabled:
            return
        root = paths.path(workdir)
        root.mkdir(parents=True, exist_ok=True)
        self._jsonl = (root / "metrics.jsonl").open("a", encoding="utf-8")
        try:
            self._tb = _EventFile(root / "tensorboard")
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
            self._tb.add(
                event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary_pb2.Summary(value=values))
            )

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(workdir: str, split: str = "train") -> list[dict]:
    """The rows of WORKDIR/metrics.jsonl for one split (tests and reports read it back)."""
    path = paths.path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r.get("split") == split]
