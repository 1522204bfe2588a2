"""A retrieval model trained briefly on the session's synthetic PoseScript data (made once per session)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from tests.data_synth_cache import synthetic_data

REPO = Path(__file__).resolve().parent.parent
STEPS = 150
_CACHE: dict[str, str] = {}


def retrieval_config(data_dir: str, tokenizer: str, steps: int = STEPS):
    spec = importlib.util.spec_from_file_location("retrieval_config", REPO / "configs" / "retrieval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config("tiny")
    c.data.data_dir, c.data.tokenizer = data_dir, tokenizer
    c.train.num_steps, c.train.batch_size, c.train.eval_every, c.train.checkpoint_every = steps, 16, 0, steps
    c.mesh.data = -1
    return c


def retrieval_workdir(tmp_path_factory) -> str:
    """WORKDIR of `chatpose-train --config configs/retrieval.py:tiny` run in-process for STEPS steps."""
    if "workdir" not in _CACHE:
        from chatpose_jax.experiment import load_experiment
        from chatpose_jax.train.loop import train_and_evaluate

        data = synthetic_data(tmp_path_factory)
        workdir = str(tmp_path_factory.mktemp("retrieval") / "w")
        experiment = load_experiment(retrieval_config(data["data_dir"], data["raw"]["tokenizer"]))
        train_and_evaluate(experiment, workdir, progress=False)
        assert os.path.exists(os.path.join(workdir, "retrieval_best", "info.json"))
        _CACHE["workdir"] = workdir
    return _CACHE["workdir"]
