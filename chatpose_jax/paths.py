"""Paths users give (workdirs, data, checkpoints, outputs): local or `gs://`, through `etils.epath`.

`epath.Path` reads and writes local files with the os functions and `gs://` objects with
`tf.io.gfile` (or fsspec/gcsfs without TensorFlow), as orbax, TFDS and TensorBoard do, so one
code path serves a laptop and a TPU pod. Libraries that open files only by local name (Hugging
Face tokenizers, pickle readers of SMPL files) get a local copy through `local_copy`.
"""

from __future__ import annotations

import hashlib
import os
import shutil

from etils import epath

PathLike = str | os.PathLike


def path(p: PathLike) -> epath.Path:
    """`p` as an `epath.Path` (local or `gs://...`)."""
    return epath.Path(p)


def is_remote(p: PathLike) -> bool:
    """Whether `p` names an object store (`gs://`, `s3://`, ...) rather than a local file."""
    return "://" in os.fspath(p)


def absolute(p: PathLike) -> str:
    """A path as a user gave it, resolved: local paths absolute (`~` expanded, relative ones against the
    working directory), URIs (`gs://...`) as given less a trailing slash.

    The one place paths are resolved: every path argument of the command-line tools goes through it
    (`chatpose_jax.cli.common.define_path`), and so does every path handed to orbax, which refuses
    relative ones ("Checkpoint path should be absolute").
    """
    return os.fspath(p).rstrip("/") if is_remote(p) else os.path.abspath(os.path.expanduser(os.fspath(p)))


def join(p: PathLike, *parts: str) -> str:
    """`p/part/...` as a string, for local paths and URIs alike."""
    return os.fspath(path(p).joinpath(*parts))


def copy_tree(src: PathLike, dst: PathLike) -> None:
    """Copies the files under `src` to `dst` (either may be remote), overwriting files of the same name."""
    src, dst = path(src), path(dst)
    if not src.is_dir():
        dst.parent.mkdir(parents=True, exist_ok=True)
        # Streamed through the two files, so any pair of backends works (bucket <-> disk).
        with src.open("rb") as reader, dst.open("wb") as writer:
            shutil.copyfileobj(reader, writer, 16 * 1024 * 1024)
        return
    dst.mkdir(parents=True, exist_ok=True)
    for child in src.iterdir():
        copy_tree(child, dst / child.name)


def cache_dir() -> str:
    """Where remote files are copied for readers that need local names."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "chatpose_jax", "remote")


def local_copy(p: PathLike) -> str:
    """A local name for `p`: `p` itself when local, else a copy (file or folder) in `cache_dir()`.

    The copy is kept under a name derived from the URI and this process (processes sharing a host
    never write one file at once) and refreshed on each call, so a reader sees the current content.
    """
    if not is_remote(p):
        return os.fspath(p)
    uri = os.fspath(p).rstrip("/")
    key = f"{hashlib.sha256(uri.encode()).hexdigest()[:16]}-{os.getpid()}"
    target = os.path.join(cache_dir(), key, path(uri).name)
    copy_tree(uri, target)
    return target
