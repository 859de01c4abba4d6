"""Shared helpers for the benchmark scripts: timing, and the process tuning numfab's
CLI makes (benchmarks measure numfab as its command runs)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` calls of ``fn`` after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def tuned() -> None:
    """``formats.setup_runtime()``, as the ``numfab`` command calls it: before any kernel
    runs in this process."""
    import formats

    formats.setup_runtime()
