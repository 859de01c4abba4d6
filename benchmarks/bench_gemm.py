"""Bit-true GEMM: numfab's simulator against apytypes and float32 BLAS, in one run.

256x256x256 (default) with E4M3 operands: per-add-rounded sequential accumulation in fp16
and fp32 (numfab fused, and numfab with products rounded to the accumulator as apytypes
does), the exact accumulator (provably exact BLAS fast path), and the seed-hardware GEMMs;
each library in its own process (numba's and other thread pools fight on 2 cores).
Prints MAC/s and ratios.

    .venv/bin/python benchmarks/bench_gemm.py [--n 256] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _timing import best_time, tuned  # noqa: E402


def _operands(n: int):  # type: ignore[no-untyped-def]
    import numpy as np

    import formats

    f = formats.parse("float8_e4m3fn")
    rng = np.random.default_rng(0)
    return f.quantize(rng.standard_normal((n, n))), f.quantize(rng.standard_normal((n, n)))


def _worker(lib: str, n: int, repeat: int) -> dict[str, float]:
    tuned()
    import numpy as np

    a, b = _operands(n)
    macs = float(n) ** 3
    res: dict[str, float] = {}
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    o = np.empty((n, n), np.float32)
    if lib == "numfab":
        import simulator as S

        # BLAS timed here too, under the same conditions (the report takes the faster)
        res["blas float32"] = macs / best_time(lambda: np.matmul(a32, b32, out=o), repeat * 4)

        cases = {
            "fp16 per-add": S.Accumulator("float16"),
            "fp32 per-add": S.Accumulator("float32"),
            "fp16 per-add, rounded products": S.Accumulator("float16", product_format="float16"),
            "fp32 per-add, rounded products": S.Accumulator("float32", product_format="float32"),
            "fp16 pairwise": S.Accumulator("float16", order="pairwise"),
            "fp16 stochastic": S.Accumulator("float16", rounding="stochastic", seed=0),
            "bf16 chunk128 -> fp32": S.Accumulator("bfloat16", chunk=128),
            "exact (BLAS fast path)": S.Accumulator(None),
        }
        for name, acc in cases.items():
            res[name] = macs / best_time(
                lambda acc=acc: S.gemm(a, b, a_format="float8_e4m3fn",
                                       b_format="float8_e4m3fn", accumulator=acc), repeat)
        qi = np.rint(a * 8).clip(-127, 127)
        res["int8 x int8 -> int32 (wrap)"] = macs / best_time(
            lambda: S.gemm(qi, qi, a_format="int8", b_format="int8", accumulator="int32"),
            repeat)
        i4 = np.rint(a * 2).clip(-8, 7)
        res["bipolar_gemm int4 x int4"] = macs / best_time(
            lambda: S.bipolar_gemm(i4, i4, a_format="int4", b_format="int4"), repeat)
        res["lut_gemm e4m3 x int4 (g=4)"] = macs / best_time(
            lambda: S.lut_gemm(a, i4, w_format="int4", group=4), repeat)
        res["lut_gemm, int8 table per row"] = macs / best_time(
            lambda: S.lut_gemm(a, i4, w_format="int4", group=4, table_format="int8",
                               table_scale="row"), repeat)
        res["lut_gemm, int8 table per table"] = macs / best_time(
            lambda: S.lut_gemm(a, i4, w_format="int4", group=4, table_format="int8"), repeat)
        res["lut_gemm, lookup kernel"] = macs / best_time(
            lambda: S.lut_gemm(a, i4, w_format="int4", group=4, method="lookup"), repeat)
        res["bipolar_gemm, plane pairs"] = macs / best_time(
            lambda: S.bipolar_gemm(i4, i4, a_format="int4", b_format="int4", method="pairs"),
            repeat)
        res["grouped_gemm int8 x int4_g128"] = macs / best_time(
            lambda: S.grouped_gemm(qi, b, w_format="int4_g128", accumulator="float32",
                                   compare=False),
            repeat)
        res["int8 x int8 -> int16 (saturate)"] = macs / best_time(
            lambda: S.gemm(qi, qi, a_format="int8", b_format="int8",
                           accumulator=S.Accumulator("int16", overflow="saturate")), repeat)
    elif lib == "apytypes":
        from apytypes import APyFloatAccumulatorContext, APyFloatArray

        A = APyFloatArray.from_float(a, 8, 23, 127)
        B = APyFloatArray.from_float(b, 8, 23, 127)
        for name, (e, m, bias) in {"fp16 per-add, rounded products": (5, 10, 15),
                                   "fp32 per-add, rounded products": (8, 23, 127)}.items():
            def run(e=e, m=m, bias=bias):  # type: ignore[no-untyped-def]
                with APyFloatAccumulatorContext(exp_bits=e, man_bits=m, bias=bias):
                    return A @ B
            res[name] = macs / best_time(run, max(1, repeat // 2))
    else:
        res["blas float32"] = macs / best_time(lambda: np.matmul(a32, b32, out=o), repeat * 4)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--worker")
    args = p.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.n, args.repeat)))
        return
    out: dict[str, dict[str, float]] = {}
    for lib in ("numfab", "apytypes", "blas"):
        r = subprocess.run([sys.executable, __file__, "--worker", lib, "--n", str(args.n),
                            "--repeat", str(args.repeat)], capture_output=True, text=True,
                           check=True)
        out[lib] = json.loads(r.stdout.strip().splitlines()[-1])
    n = args.n
    blas = max(out["blas"]["blas float32"], out["numfab"].pop("blas float32"))
    print(f"{n}x{n}x{n}, E4M3 operands, best of {args.repeat}; float32 BLAS "
          f"{blas / 1e9:.1f} G MAC/s (the faster of its own process and numfab's)")
    print(f"{'case':34s} {'numfab':>10s} {'apytypes':>10s} {'vs apy':>7s} {'vs BLAS':>8s}")
    for name, v in out["numfab"].items():
        apy = out["apytypes"].get(name)
        ref = apy if apy is not None else out["apytypes"].get(
            name.replace("per-add", "per-add, rounded products"))
        ratio = f"{v / ref:6.1f}x" if ref else "      -"
        apy_s = f"{apy / 1e6:7.0f} M" if apy else "         -"
        print(f"{name:34s} {v / 1e6:8.0f} M {apy_s:>10s} {ratio:>7s} {v / blas:7.3f}x")
    print("(ratio of fused cases is against apytypes' rounded-product run of the same "
          "accumulator, the nearest thing it models)")


if __name__ == "__main__":
    main()
