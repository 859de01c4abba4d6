"""Peak memory of the simulator's GEMMs, as a multiple of the operands' bytes.

numpy reports its allocations to tracemalloc; the peak above the baseline (operands
already allocated) is divided by the bytes of the two float64 operands. Output arrays
count against us. numba's per-thread scratch rows are not traced (they are O(N) per
thread).

    .venv/bin/python benchmarks/mem_gemm.py [--n 512]
"""

from __future__ import annotations

import argparse
import tracemalloc

import numpy as np


def main() -> None:
    import formats

    formats.setup_runtime()  # as the numfab command does
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=512)
    n = p.parse_args().n
    import formats
    import simulator as S

    rng = np.random.default_rng(0)
    f = formats.parse("float8_e4m3fn")
    a = np.asarray(f.quantize(rng.standard_normal((n, n))))
    b = np.asarray(f.quantize(rng.standard_normal((n, n))))
    qi = np.rint(a * 8).clip(-127, 127)
    i4 = np.rint(a * 2).clip(-8, 7)
    cases = {
        "gemm exact (BLAS fast path)": lambda: S.gemm(a, b, a_format="e4m3", b_format="e4m3",
                                                      accumulator=None),
        "gemm fp16 per-add (kernel)": lambda: S.gemm(a, b, a_format="e4m3", b_format="e4m3",
                                                     accumulator="float16"),
        "gemm mxfp4 x mxfp4, fp32": lambda: S.gemm(a, b, a_format="mxfp4", b_format="mxfp4",
                                                   accumulator="float32"),
        "gemm nvfp4 x nvfp4, fp32": lambda: S.gemm(a, b, a_format="nvfp4", b_format="nvfp4",
                                                   accumulator="float32"),
        "gemm int8 -> int32": lambda: S.gemm(qi, qi, a_format="int8", b_format="int8",
                                             accumulator="int32"),
        "bipolar_gemm int4": lambda: S.bipolar_gemm(i4, i4, a_format="int4", b_format="int4"),
        "lut_gemm e4m3 x int4": lambda: S.lut_gemm(a, i4, w_format="int4"),
        "grouped_gemm int8 x int4_g128": lambda: S.grouped_gemm(qi, b, compare=False),
    }
    ops = 2 * n * n * 8
    print(f"{n}x{n}x{n}; operands {ops / 2**20:.1f} MiB (two float64 matrices)")
    for name, fn in cases.items():
        fn()  # compile and warm
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        print(f"{name:32s} peak {peak / 2**20:7.1f} MiB = {peak / ops:4.2f}x operands")


if __name__ == "__main__":
    main()
