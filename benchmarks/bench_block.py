"""Block-scaled fake quantization: numfab against torchao on the same cores, in one run.

Quantize-dequantize of a 4096x4096 float32 tensor (MXFP4, MXFP8 E4M3, NVFP4 with a tensor
scale), each library in its own process, reported as elements/s and ratios; numfab both
into a fresh output (as torchao) and with ``out=``, beside a plain memory copy.

    .venv/bin/python benchmarks/bench_block.py [--n 4096] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _timing import best_time, tuned  # noqa: E402

CASES = ["mxfp4", "mxfp8_e4m3", "nvfp4"]


def _worker(lib: str, n: int, repeat: int) -> dict[str, float]:
    tuned()
    import numpy as np

    x = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    res: dict[str, float] = {}
    if lib == "numfab":
        import formats

        o = np.empty_like(x)
        for name in CASES:
            f = formats.parse(name)
            res[name] = x.size / best_time(lambda f=f: f.quantize(x), repeat)
            res[name + "/out"] = x.size / best_time(lambda f=f: f.quantize(x, out=o), repeat)
        res["memcpy"] = x.size / best_time(lambda: np.copyto(o, x), repeat)
    else:
        import logging
        import warnings

        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.disable(logging.WARNING)
            from torchao.prototype.mx_formats.config import ScaleCalculationMode
            from torchao.prototype.mx_formats.mx_tensor import to_dtype, to_mx
            from torchao.prototype.mx_formats.nvfp4_tensor import (
                NVFP4Tensor,
                per_tensor_amax_to_scale,
            )
        t = torch.from_numpy(x)
        for name, dt in [("mxfp4", torch.float4_e2m1fn_x2), ("mxfp8_e4m3", torch.float8_e4m3fn)]:
            def mx(dt=dt):  # type: ignore[no-untyped-def]
                s, d = to_mx(t, dt, 32, ScaleCalculationMode.FLOOR)
                return to_dtype(d, s, dt, 32, torch.float32)

            res[name] = x.size / best_time(mx, repeat)

        def nv():  # type: ignore[no-untyped-def]
            pts = per_tensor_amax_to_scale(torch.max(torch.abs(t)))
            q = NVFP4Tensor.to_nvfp4(t, block_size=16, per_tensor_scale=pts)
            return q.dequantize(torch.float32)

        res["nvfp4"] = x.size / best_time(nv, repeat)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.n, args.repeat)))
        return
    res = {}
    for lib in ["numfab", "torchao"]:
        out = subprocess.run(
            [sys.executable, __file__, "--worker", lib, "--n", str(args.n),
             "--repeat", str(args.repeat)], capture_output=True, text=True, check=True,
        ).stdout
        res[lib] = json.loads(out.strip().splitlines()[-1])
    print(f"{args.n}x{args.n} float32, quantize + dequantize, best of {args.repeat}")
    print("numfab: fresh output like torchao; out=: into a preallocated array")
    print(f"{'format':<14}{'numfab M/s':>12}{'out= M/s':>10}{'torchao M/s':>13}{'ratio':>8}"
          f"{'out= ratio':>11}")
    for name in CASES:
        a, o, b = res["numfab"][name], res["numfab"][name + "/out"], res["torchao"][name]
        print(f"{name:<14}{a / 1e6:12.0f}{o / 1e6:10.0f}{b / 1e6:13.1f}{a / b:8.1f}"
              f"{o / b:11.1f}")
    print(f"memory copy (np.copyto, preallocated): {res['numfab']['memcpy'] / 1e6:.0f} M/s")


if __name__ == "__main__":
    main()
