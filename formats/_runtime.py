"""Process set-up done once, before any kernel runs: numba's thread pool and glibc's
malloc thresholds (see the comments)."""

import os

import numba

# numba's OpenMP pool, left to spin after each parallel kernel, fights BLAS's and torch's
# pools for the cores (on 2 cores a 0.4 ms BLAS call became 10 ms); with the passive wait
# policy it sleeps at once, and its ~20 us launch beats the workqueue pool's ~40 us (which
# also is not safe for kernels launched from several Python threads at once). libgomp
# reads OMP_WAIT_POLICY when it loads, so it is set here (unless the user has), before
# numba's first parallel kernel loads it. Without libgomp: the workqueue pool. Set
# NUMBA_THREADING_LAYER to choose another.
if "NUMBA_THREADING_LAYER" not in os.environ:
    import ctypes.util as cu

    if cu.find_library("gomp"):
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        numba.config.THREADING_LAYER = "omp"  # type: ignore[attr-defined]
    else:
        numba.config.THREADING_LAYER = "workqueue"  # type: ignore[attr-defined]


def keep_heap() -> None:
    """glibc returns every freed block above 128 KiB to the OS and maps fresh zeroed pages
    for the next one: a 256x256 GEMM spent half its time in page faults. Blocks up to
    64 MiB come from the heap instead, and up to 128 MiB of freed heap stays mapped
    (mallopt M_MMAP_THRESHOLD / M_TRIM_THRESHOLD). NUMFAB_MALLOPT=0 leaves malloc alone."""
    if os.environ.get("NUMFAB_MALLOPT", "1") == "0":
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return  # not glibc: its malloc keeps its own policy


keep_heap()
