"""Process tuning for numfab's kernels: numba's thread pool and glibc's malloc thresholds.

Importing numfab changes nothing here; :func:`setup_runtime` is an explicit call, made by
the ``numfab`` command, the benchmarks and the test suite, and by anyone who wants the
speed they measure (see the README).
"""

from __future__ import annotations

import os


def _layer_started() -> bool:
    import numba

    try:
        numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        return False
    return True


def setup_runtime() -> dict[str, str]:
    """Tune this process for numfab's parallel kernels; returns what it set.

    - numba's OpenMP pool, left to spin after each parallel kernel, fights BLAS's and
      torch's pools for the cores (on 2 cores a 0.4 ms BLAS call became 10 ms): with
      ``OMP_WAIT_POLICY=PASSIVE`` it sleeps at once, and its ~20 us launch beats the
      workqueue pool's ~40 us (which also is not safe for kernels launched from several
      Python threads at once). Without libgomp: the workqueue pool.
    - glibc returns every freed block above 128 KiB to the OS and maps fresh zeroed pages
      for the next one (a 256x256 GEMM spent half its time in page faults): blocks up to
      64 MiB come from the heap instead, and up to 128 MiB of freed heap stays mapped
      (``mallopt`` M_MMAP_THRESHOLD / M_TRIM_THRESHOLD).

    A setting the user made is never overridden: ``NUMBA_THREADING_LAYER`` or
    ``numba.config.THREADING_LAYER`` already chosen, ``OMP_WAIT_POLICY`` in the
    environment, ``NUMFAB_MALLOPT=0``. Call it before the first parallel kernel runs: a
    thread pool already started is left as it is (libgomp reads its wait policy once).
    """
    import numba

    done: dict[str, str] = {}
    user_layer = "NUMBA_THREADING_LAYER" in os.environ or \
        numba.config.THREADING_LAYER != "default"  # type: ignore[attr-defined]
    if not user_layer and not _layer_started():
        import ctypes.util as cu

        if cu.find_library("gomp"):
            if "OMP_WAIT_POLICY" not in os.environ:
                os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
                done["OMP_WAIT_POLICY"] = "PASSIVE"
            layer = "omp"
        else:
            layer = "workqueue"
        numba.config.THREADING_LAYER = layer  # type: ignore[attr-defined]
        done["threading_layer"] = layer
    if os.environ.get("NUMFAB_MALLOPT", "1") != "0" and _keep_heap():
        done["malloc"] = "mmap threshold 64 MiB, trim threshold 128 MiB"
    return done


def _keep_heap() -> bool:
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return False  # not glibc: its malloc keeps its own policy
    return True
