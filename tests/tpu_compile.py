"""Compiling for TPU slices on this CPU host: libtpu's compile-only devices, in their own processes."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# libtpu beside the 8 forced CPU devices of the test process; no CPU platform pinned.
TPU_COMPILE_ENV = {**os.environ, "ALLOW_MULTIPLE_LIBTPU_LOAD": "1", "XLA_FLAGS": ""}
TPU_COMPILE_ENV.pop("JAX_PLATFORMS", None)
# Programs compiled for compile-only TPU devices cannot be read back from JAX's persistent cache.
TPU_COMPILE_ENV.pop("JAX_COMPILATION_CACHE_DIR", None)


def compile_cli(*args, timeout=600) -> subprocess.CompletedProcess:
    """`chatpose-compile ARGS` from the repository root, output captured."""
    return subprocess.run(
        [str(BIN / "chatpose-compile"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=TPU_COMPILE_ENV,
        cwd=REPO,
    )


UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def printed_bytes(text: str, name: str) -> float:
    """Bytes of the first `NAME 1.5 GiB` in a compile report."""
    value, unit = re.search(rf"{name} ([\d.]+) (B|KiB|MiB|GiB)", text).groups()
    return float(value) * UNITS[unit]
