"""Wall-clock timing shared by the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], repeats: int, warmups: int = 2) -> float:
    """Best wall time of fn() in seconds over `repeats` runs, after `warmups` untimed runs (compiles,
    caches). The best is the run least disturbed by other jobs on the machine."""
    for _ in range(warmups):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
