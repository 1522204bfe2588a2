"""Experiment config files: the `get_config()` of a `configs/*.py` module, by path or by name.

The CLIs read the same files through ml_collections' `--config=PATH[:ARG]` flag; the demo, the
benchmarks and the tests read them here, so a config file is loaded one way in the project.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import ml_collections

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"  # the repository's configs/


def load_config_file(path: str | os.PathLike, *args) -> ml_collections.ConfigDict:
    """`get_config(*args)` of the Python config file at `path` (`--config=path:arg` passes one arg)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"experiment_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise AttributeError(f"config file {path} defines no get_config()")
    return module.get_config(*args)


def repo_config(name: str, *args) -> ml_collections.ConfigDict:
    """A config of the repository's `configs/` by name: "tiny", "llava15_7b.py", "backbones/mistral_7b"."""
    file = name if name.endswith(".py") else f"{name}.py"
    return load_config_file(CONFIGS_DIR / file, *args)
