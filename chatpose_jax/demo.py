"""`make demo`: the embedded end-to-end run on the tiny default config.

It runs every stage that the project has so far, in the order of the data flow, on generated
data, and writes what it makes under `--workdir`. Later stages (data synthesis, training,
evaluation, chat) join this list as they are built.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", "demo_out", "Where the demo writes its outputs.")
_CONFIG = flags.DEFINE_string("config_file", None, "Experiment config file (default: configs/tiny.py).")

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_config_file(path: str | os.PathLike):
    """Loads `get_config()` from a config file by path (the same files the CLIs take)."""
    spec = importlib.util.spec_from_file_location("experiment_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def stage_config_and_mesh(config_path: Path):
    """Validates the tiny config against this machine's devices and builds its mesh."""
    import jax

    from chatpose_jax.experiment import load_experiment
    from chatpose_jax.parallel.mesh import make_mesh

    experiment = load_experiment(load_config_file(config_path), jax.device_count())
    mesh = make_mesh(experiment.mesh)
    print(
        f"  config {experiment.name!r}: vision {experiment.model.vision.num_layers}x{experiment.model.vision.hidden_size}, "
        f"decoder {experiment.model.text.num_layers}x{experiment.model.text.hidden_size}, "
        f"{experiment.model.vision.num_image_tokens} image tokens"
    )
    print(f"  mesh {dict(mesh.shape)} over {jax.device_count()} {jax.devices()[0].platform} device(s)")
    return experiment


def main(argv):
    del argv
    workdir = Path(_WORKDIR.value)
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = Path(_CONFIG.value) if _CONFIG.value else REPO_ROOT / "configs" / "tiny.py"
    stages = [("config and mesh", lambda: stage_config_and_mesh(config_path))]
    for i, (name, fn) in enumerate(stages, 1):
        start = time.perf_counter()
        print(f"[{i}/{len(stages)}] {name}")
        fn()
        print(f"  done in {time.perf_counter() - start:.1f}s")
    print(f"demo finished; outputs in {workdir}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
