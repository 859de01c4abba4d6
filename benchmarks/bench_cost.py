"""Cost-model speed: estimate() per call and the fit (issue target: estimate < 1 ms).

Run: .venv/bin/python benchmarks/bench_cost.py
(The calibration grid's time is printed by `numfab cost calibrate`.)
"""

from __future__ import annotations

import time

from costmodel import estimate, gemm_cost
from costmodel.estimate import fit, fit_quality


def _per_call(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main() -> None:
    import formats

    formats.setup_runtime()  # as the numfab command does
    t0 = time.perf_counter()
    fit()
    print(f"fit (98 calibration points, one NNLS per target): {time.perf_counter() - t0:.3f} s")
    t0 = time.perf_counter()
    q = fit_quality()
    print(f"fit_quality (leave-one-out, 2 x 49 refits): {time.perf_counter() - t0:.3f} s")
    for t, v in q.items():
        print(f"  {t}: LOO median {v['loo_median']:.1%}, max {v['loo_max']:.1%}")
    cases = {"FloatMac e4m3 -> fp32": lambda: estimate("FloatMac", a="e4m3fn", b="e4m3fn",
                                                      acc="float32"),
             "BlockDot mxfp4 k=8 (cmos)": lambda: estimate("BlockDot", a="mxfp4", acc="float32",
                                                          k=8, target="cmos"),
             "gemm_cost 4096^3 mxfp4": lambda: gemm_cost(4096, 4096, 4096, "mxfp4", "mxfp4")}
    for label, fn in cases.items():
        fn()
        print(f"{label:<28} {_per_call(fn, 2000) * 1e3:.4f} ms per call (target < 1 ms)")


if __name__ == "__main__":
    main()
