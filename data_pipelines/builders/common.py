"""What every builder shares: skipping bad records with a count and a warning, or raising.

A long preparation never dies on one bad file (an unreadable image, a missing AMASS sequence,
a malformed JSON entry, a pose with NaN): the record is skipped, counted under its reason, and
a warning names the file. `strict=True` raises instead. A source that yields no record at all
is an error (a wrong folder must not produce an empty dataset, or a stream that never ends).
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle

import numpy as np
from absl import logging

MAX_WARNINGS_PER_REASON = 20  # later occurrences are only counted


class BadRecordError(ValueError):
    """A bad record under strict=True; the message names the file and what is wrong."""


class BadRecords:
    """Counter of skipped records by reason; warns (or raises when strict) naming the file."""

    def __init__(self, dataset: str, strict: bool = False):
        self.dataset, self.strict = dataset, strict
        self.counts: collections.Counter[str] = collections.Counter()

    def skip(self, reason: str, where: str, detail: str = "") -> None:
        message = f"{self.dataset}: skipping a record ({reason}) from {where}" + (f": {detail}" if detail else "")
        if self.strict:
            raise BadRecordError(message)
        self.counts[reason] += 1
        if self.counts[reason] <= MAX_WARNINGS_PER_REASON:
            logging.warning(message)

    def summary(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items())) or "none"


def require_records(dataset: str, split: str, count: int, where: str) -> None:
    """Raises when a split got no record: the folder is wrong or every record was bad."""
    if count == 0:
        raise FileNotFoundError(f"{dataset}: no readable record for split {split!r} in {where}")


def read_json(path: str):
    """json.load with the file named in the error."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: malformed JSON ({e})") from e


def read_image_bytes(path: str, bad: BadRecords) -> bytes | None:
    """The file's bytes when it decodes as an image (JPEG, PNG, ...); None (skipped, counted) otherwise."""

    try:
        with open(path, "rb") as f:
            data = f.read()
        return check_image_bytes(data, path, bad)
    except OSError as e:
        bad.skip("unreadable image", path, str(e))
        return None


def check_image_bytes(data: bytes, where: str, bad: BadRecords) -> bytes | None:
    """`data` when it fully decodes as an RGB-convertible image; None (skipped, counted) otherwise."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.width < 2 or im.height < 2:
                raise OSError(f"image of {im.width}x{im.height} pixels")
        return data
    except Exception as e:  # PIL raises many types for corrupt files
        bad.skip("unreadable image", where, f"{type(e).__name__}: {e}")
        return None


def finite(values: dict[str, np.ndarray], where: str, bad: BadRecords) -> bool:
    """True when every array is finite; otherwise skips the record naming the first bad key."""
    for key, value in values.items():
        if not np.all(np.isfinite(value)):
            bad.skip("non-finite value", where, f"key {key!r} holds NaN or inf")
            return False
    return True


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only (4D-Humans `data.pyd`), never arbitrary code."""

    def find_class(self, module: str, name: str):
        if module.split(".")[0] == "numpy" or (module == "builtins" and name in {"dict", "list", "tuple", "set"}):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_array_pickle(data: bytes):
    return _ArrayUnpickler(io.BytesIO(data)).load()


def first_existing(*paths: str) -> str | None:
    return next((p for p in paths if os.path.exists(p)), None)
