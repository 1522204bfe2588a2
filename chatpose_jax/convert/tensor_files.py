"""Lazy reading of checkpoint tensors, one at a time, without holding a model in host memory.

safetensors files are parsed directly (8-byte header length, JSON header, raw little-endian data)
and memory-mapped, so a tensor is read from disk only where it is sliced; bfloat16 comes from
`ml_dtypes` (shipped with jax). PyTorch `.bin` shards (older original-LLaVA releases) are read
with torch's memory-mapped `torch.load` when torch is installed.
"""

from __future__ import annotations

import glob
import json
import os
import struct
from collections.abc import Iterator

import ml_dtypes
import numpy as np

_SAFETENSORS_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


class TensorFiles:
    """name -> lazily loaded numpy array, over every weight file of a folder."""

    def __init__(self, folder: str, files: list[str] | None = None):
        self.folder = folder
        self._where: dict[str, tuple[str, object]] = {}  # name -> (file, header entry or None)
        self._bin_cache: dict[str, dict] = {}
        files = _weight_files(folder) if files is None else files
        if not files:
            raise FileNotFoundError(
                f"{folder}: no weights found (expected model.safetensors, a *.safetensors.index.json, "
                "*.safetensors shards or pytorch_model*.bin)"
            )
        for path in files:
            if path.endswith(".safetensors"):
                for name, entry in _safetensors_header(path).items():
                    self._where[name] = (path, entry)
            else:
                for name in _torch_load(path):
                    self._where[name] = (path, None)

    @classmethod
    def from_file(cls, path: str) -> TensorFiles:
        """The tensors of one file (`.safetensors`, or a torch `.bin` / `.pt` state dict)."""
        return cls(path, [path])

    def keys(self) -> list[str]:
        return list(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def shape(self, name: str) -> tuple[int, ...]:
        path, entry = self._where[name]
        if entry is not None:
            return tuple(entry["shape"])
        return tuple(self._bin(path)[name].shape)

    def get(self, name: str) -> np.ndarray:
        """The tensor as a numpy array (a memory map for safetensors: nothing is read until used)."""
        path, entry = self._where[name]
        if entry is None:
            tensor = self._bin(path)[name]
            import torch  # lazy: PyTorch

            if tensor.dtype == torch.bfloat16:
                return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
            return tensor.numpy()
        dtype = np.dtype(_SAFETENSORS_DTYPES[entry["dtype"]])
        begin, end = entry["data_offsets"]
        offset = entry["header_end"] + begin
        shape = tuple(entry["shape"])
        if end == begin:
            return np.zeros(shape, dtype)
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)

    def _bin(self, path: str) -> dict:
        if path not in self._bin_cache:
            self._bin_cache = {path: _torch_load(path)}  # one shard open at a time
        return self._bin_cache[path]

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        for name in self._where:
            yield name, self.get(name)


def _weight_files(folder: str) -> list[str]:
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = os.path.join(folder, index_name)
        if os.path.exists(index):
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
            return sorted({os.path.join(folder, v) for v in weight_map.values()})
    # pose_head.safetensors (export-hf) sits next to the model weights but is not one of them.
    files = sorted(
        f for f in glob.glob(os.path.join(folder, "*.safetensors")) if not f.endswith("pose_head.safetensors")
    )
    return files or sorted(glob.glob(os.path.join(folder, "pytorch_model*.bin")))


def _safetensors_header(path: str) -> dict:
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    for entry in header.values():
        if entry["dtype"] not in _SAFETENSORS_DTYPES:
            raise ValueError(f"{path}: unsupported tensor dtype {entry['dtype']}")
        entry["header_end"] = 8 + length
    return header


def _torch_load(path: str) -> dict:
    try:
        import torch  # lazy: PyTorch
    except ImportError as e:
        raise ImportError(f"{path} is a PyTorch .bin checkpoint; reading it needs torch installed") from e
    return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
