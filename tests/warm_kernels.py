"""Compile numba's kernels once, before the test workers start (``make test`` runs the two
halves side by side): two pytest-xdist workers starting on empty caches otherwise both
compile the same shared kernels at the same moment. Only fills numba's disk cache; the
tests check everything.

    python -m tests.warm_kernels 0|1
"""

from __future__ import annotations

import sys

import numpy as np


def half0() -> None:
    import formats

    x32 = np.linspace(-300, 300, 4099, dtype=np.float32)
    x64 = x32.astype(np.float64)
    for name in ("float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "ue4m3", "bfloat16",
                 "float16", "e3m4b5", "float8_e4m3fnuz"):
        f = formats.parse(name)
        for x in (x32, x64):
            for mode in ("nearest_even", "toward_zero", "up", "stochastic"):
                kw = {"seed": 1} if mode == "stochastic" else {}
                c = f.encode(x, rounding=mode, **kw)
                f.decode(c)
                f.quantize(x, rounding=mode, **kw)
    import torch

    for dt in (torch.bfloat16, torch.float16):
        t = torch.from_numpy(x32).to(dt)
        for name in ("float8_e4m3fn", "float4_e2m1fn", "int8"):
            formats.parse(name).quantize(t)


def half1() -> None:
    import formats
    import simulator

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 256)).astype(np.float32)
    for name in ("int4", "int8", "uint8", "fixed<3,4>", "nf4", "bipolar3"):
        f = formats.parse(name)
        for xx in (x, x.astype(np.float64)):
            f.decode(f.encode(xx))
            f.quantize(xx, rounding="toward_zero")
    for name in ("mxfp4", "mxfp8_e4m3", "nvfp4", "mxint8", "bfp8_b16", "int4_g128"):
        f = formats.parse(name)
        for xx in (x, x.astype(np.float64)):
            f.quantize(xx)
            f.encode(xx).dequantize()
    a, b = x[:8], x.T[:, :8]
    for acc in ("float32", "float16", "bfloat16,toward_zero", "float16,nearest_even,tree8",
                "float16,nearest_even,pairwise", "exact"):
        for fa in ("float8_e4m3fn", "mxfp4"):
            simulator.gemm(a, b, a_format=fa, b_format=fa, accumulator=acc)


if __name__ == "__main__":
    {"0": half0, "1": half1}[sys.argv[1]]()
