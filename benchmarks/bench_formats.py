"""Scalar-format throughput: numfab against ml_dtypes and torch, in one run.

fp32 -> format -> fp32 round trips ("fake quantization") of N normal float32 values,
reported as elements/s and as ratios. Each library runs in its own process, because
numba's and torch's thread pools fight on a small machine; every process uses all cores
and writes into a preallocated output where the library allows it.

    .venv/bin/python benchmarks/bench_formats.py [--n 16777216] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _timing import best_time, tuned  # noqa: E402

CASES = ["float8_e4m3fn", "float4_e2m1fn", "float6_e3m2fn", "int4", "bipolar4", "nf4"]


def _worker(lib: str, n: int, repeat: int) -> dict[str, float]:
    tuned()
    import numpy as np

    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    res: dict[str, float] = {}
    if lib == "copy":
        out = np.empty_like(x)
        res["memcpy"] = n / best_time(lambda: np.copyto(out, x), repeat)
    elif lib == "numfab":
        import formats

        out = np.empty_like(x)
        for name in CASES:
            f = formats.parse(name)
            scale = np.float32(f.max / 4)
            xs = (x * scale).astype(np.float32)
            res[name] = n / best_time(lambda f=f, xs=xs: f.quantize(xs, out=out), repeat)
        codes = np.empty(n, np.uint8)
        e4 = formats.parse("float8_e4m3fn")
        res["float8_e4m3fn encode"] = n / best_time(lambda: e4.encode(x, out=codes), repeat)
        res["float8_e4m3fn decode"] = n / best_time(lambda: e4.decode(codes, dtype=np.float32),
                                                repeat)
        # the general integer kernels: float64 input, stochastic rounding, wide formats
        x64 = x.astype(np.float64)
        o64 = np.empty_like(x64)
        res["float8_e4m3fn f64"] = n / best_time(lambda: e4.quantize(x64, out=o64), repeat)
        res["float8_e4m3fn f64 encode"] = n / best_time(lambda: e4.encode(x64, out=codes),
                                                    repeat)
        res["float8_e4m3fn stochastic"] = n / best_time(
            lambda: e4.quantize(x, "stochastic", seed=0, out=out), repeat)
        i8 = formats.parse("int8")
        xi = (x * np.float32(30)).astype(np.float32)
        res["int8 stochastic"] = n / best_time(
            lambda: i8.quantize(xi, "stochastic", seed=0, out=out), repeat)
        xw = x64 * 300
        res["int8 f64 wrap"] = n / best_time(
            lambda: i8.quantize(xw, overflow="wrap", out=o64), repeat)
        e8m15 = formats.parse("e8m15")  # 24 bits: no code table, the decode kernel
        c24 = e8m15.encode(x)
        res["e8m15 decode"] = n / best_time(lambda: e8m15.decode(c24, out=o64), repeat)
    elif lib == "ml_dtypes":
        import ml_dtypes

        for name in ["float8_e4m3fn", "float4_e2m1fn", "float6_e3m2fn", "int4"]:
            dt = getattr(ml_dtypes, name)
            res[name] = n / best_time(lambda dt=dt: x.astype(dt).astype(np.float32), repeat)
    elif lib == "torch":
        import torch

        t = torch.from_numpy(x)
        res["float8_e4m3fn"] = n / best_time(
            lambda: t.to(torch.float8_e4m3fn).to(torch.float32), repeat
        )
        res["torch_threads"] = float(torch.get_num_threads())
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1 << 24)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.n, args.repeat)))
        return
    results = {}
    for lib in ["copy", "numfab", "ml_dtypes", "torch"]:
        out = subprocess.run(
            [sys.executable, __file__, "--worker", lib, "--n", str(args.n),
             "--repeat", str(args.repeat)],
            capture_output=True, text=True, check=True,
        ).stdout
        results[lib] = json.loads(out.strip().splitlines()[-1])
    ours = results["numfab"]
    print(f"{args.n} float32 elements, fp32 -> format -> fp32, best of {args.repeat}")
    print(f"memory copy: {results['copy']['memcpy'] / 1e6:9.0f} M elem/s")
    print(f"{'format':<24}{'numfab M/s':>12}{'ml_dtypes M/s':>15}{'torch M/s':>11}"
          f"{'x ml_dtypes':>13}{'x torch':>9}")
    for name, v in ours.items():
        md = results["ml_dtypes"].get(name)
        tv = results["torch"].get(name)
        print(
            f"{name:<24}{v / 1e6:12.0f}"
            f"{(md or 0) / 1e6:15.0f}{(tv or 0) / 1e6:11.0f}"
            f"{(v / md if md else float('nan')):13.1f}{(v / tv if tv else float('nan')):9.1f}"
        )
    print(f"torch threads: {results['torch']['torch_threads']:.0f}")


if __name__ == "__main__":
    main()
