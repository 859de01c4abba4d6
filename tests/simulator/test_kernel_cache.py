"""simulator's GEMM kernels (jitted closures, one per accumulator configuration) are
found in numba's disk cache by the next process: each process compiled each
configuration afresh before (7-13 s at -O1), and appended one more cache entry."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import numpy as np
from simulator import gemm
rng = np.random.default_rng(0)
a, b = rng.standard_normal((3, 8)), rng.standard_normal((8, 2))
print(gemm(a, b, a_format="e4m3", b_format="e4m3",
           accumulator="e5m7,up,tree2@e6m5,chunk4->float16").tobytes().hex())
"""


def _run() -> tuple[str, list[str]]:
    # the suite's cache (NUMBA_CACHE_DIR, as make test sets it): the other kernels load
    # from it; this configuration is compiled by the first run or an earlier suite's
    env = {**os.environ, "NUMBA_DEBUG_CACHE": "1"}
    p = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                       text=True, check=True, timeout=600)
    lines = p.stdout.splitlines()
    kern = [ln for ln in lines if "make_gemm.locals.kern" in ln]
    return lines[-1], kern


def test_second_process_loads_the_gemm_kernel() -> None:
    out1, kern1 = _run()
    assert kern1, "no cache activity for the GEMM kernel"
    out2, kern2 = _run()
    assert out2 == out1
    assert any("data loaded" in ln for ln in kern2), kern2
    assert not any("data saved" in ln for ln in kern2), kern2  # not compiled again
