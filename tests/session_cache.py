"""Test artefacts built once per session and shared by every pytest-xdist worker.

`once(tmp_path_factory, NAME, build)` runs `build(folder)` the first time any worker asks for NAME
and stores its (JSON) value; a worker asking meanwhile waits on a file lock, then reads the value.
The lock, the value and the folder sit in the session's temporary root, which every worker's own
base temp folder shares (pytest-xdist's recipe for session-scoped fixtures). Without xdist the
root is the session's base temp folder itself. What `build` returns must not be modified by tests:
they copy what they change.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

_VALUES: dict[str, object] = {}


def session_root(tmp_path_factory) -> Path:
    """The folder shared by every worker of this session (the base temp folder without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def once(tmp_path_factory, name: str, build: Callable[[Path], object]):
    """`build(ROOT/name)`'s value, built by the first worker that asks and read from disk by the others."""
    if name not in _VALUES:
        root = session_root(tmp_path_factory)
        done = root / f"{name}.json"
        with FileLock(str(root / f"{name}.lock")):
            if not done.exists():
                folder = root / name
                shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
                folder.mkdir()
                value = build(folder)
                done.write_text(json.dumps(value))
            _VALUES[name] = json.loads(done.read_text())
    return _VALUES[name]
