"""Bit-true GEMM on the GPU (issue 19): speed at 4096^3 and GPU == CPU at scale.

Speed (on a CUDA device): ``simulator.gemm`` on CUDA tensors, 4096 x 4096 x 4096, E4M3
operands (quantized on the device, included in the time) with
- a float16 per-add sequential accumulator (target >= 200 G MAC/s),
- a float32 per-add sequential accumulator (>= 200),
- the named H100 FP8 model h100_fp8_scaled_mm (>= 500),
- MXFP4 operands with a float32 tree-of-32 accumulator (>= 200),
each as G MAC/s, as a ratio to the same card's bfloat16 ``torch.matmul`` and to numfab's
CPU path (figures from ``--cpu``, recorded on the 2-core development machine).

Check (``--check``): for every accumulator setting of tests/simulator/test_gemm_gpu.py
(float32 and float64 kernels where both apply), random operands whose exponents spread
widely (cancellation, subnormal products, overflow for the narrow accumulators), K not a
multiple of the tile or step: GPU == CPU bit for bit, at least 10**6 MACs per setting.

    python benchmarks/bench_gpu_gemm.py [--check] [--speed] [--size 4096]
    python benchmarks/bench_gpu_gemm.py --cpu          # the CPU path, this machine
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._timing import best_time, tuned  # noqa: E402

CPU_JSON = Path(__file__).with_name("bench_gpu_gemm_cpu.json")

SPEED = [
    ("float16 per-add", "e4m3", "e4m3", "float16"),
    ("float32 per-add", "e4m3", "e4m3", "float32"),
    ("h100_fp8_scaled_mm", "e4m3", "e4m3", "named:h100_fp8_scaled_mm"),
    ("MXFP4 float32 tree32", "mxfp4", "mxfp4", "float32,nearest_even,tree32"),
]

#: also timed, for information (no target): the float64 kernel, the pairwise order
INFO = [
    ("float16 stochastic (float64 kernel)", "e4m3", "e4m3", "float16,stochastic,seed=1"),
    ("float32 toward_zero (float64 kernel)", "e4m3", "e4m3", "float32,toward_zero"),
]


def _acc(text: str):  # type: ignore[no-untyped-def]
    from simulator import Accumulator

    return Accumulator.named(text[6:]) if text.startswith("named:") else text


def cpu() -> None:
    """The CPU path's MAC/s for the speed settings (512 x 2048 x 512, numpy in, best of
    3), written to bench_gpu_gemm_cpu.json for the GPU run's ratios."""
    tuned()
    from simulator import gemm

    rng = np.random.default_rng(0)
    M, K, N = 512, 2048, 512
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    res = {}
    for name, af, bf, acc in SPEED:
        t = best_time(lambda af=af, bf=bf, acc=acc: gemm(a, b, a_format=af, b_format=bf,
                                                         accumulator=_acc(acc)), 3)
        res[name] = M * K * N / t
        print(f"CPU {name:24s} {res[name] / 1e6:9.1f} M MAC/s", flush=True)
    res["machine"] = f"{os.cpu_count()} cores"
    CPU_JSON.write_text(json.dumps(res, indent=1) + "\n")


def speed(size: int) -> None:
    import torch

    from simulator import gemm

    def cuda_time(fn, reps: int = 3) -> float:  # type: ignore[no-untyped-def]
        fn()
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        return best

    dev = "cuda"
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}", flush=True)
    M = K = N = size
    macs = M * K * N
    g = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn((M, K), device=dev, generator=g)
    b = torch.randn((K, N), device=dev, generator=g)
    a16, b16 = a.to(torch.bfloat16), b.to(torch.bfloat16)
    t_bf16 = cuda_time(lambda: torch.matmul(a16, b16), 10)
    base = macs / t_bf16
    print(f"{'torch.matmul bfloat16':30s} {base / 1e9:10.1f} G MAC/s", flush=True)
    cpu_rates = json.loads(CPU_JSON.read_text()) if CPU_JSON.exists() else {}
    from simulator import _gemm_gpu as GG

    for name, af, bf, acc in SPEED + INFO:
        t0 = time.perf_counter()
        gemm(a, b, a_format=af, b_format=bf, accumulator=_acc(acc))  # compiles
        torch.cuda.synchronize()
        first = time.perf_counter() - t0
        t = cuda_time(lambda af=af, bf=bf, acc=acc: gemm(a, b, a_format=af, b_format=bf,
                                                         accumulator=_acc(acc)))
        rate = macs / t
        cr = cpu_rates.get(name)
        vs_cpu = f"  {rate / cr:8.0f}x CPU ({cr / 1e6:.0f} M MAC/s)" if cr else ""
        print(f"{name:30s} {rate / 1e9:10.1f} G MAC/s  {rate / base:6.3f}x bf16 matmul"
              f"{vs_cpu}  [{GG.LAST[0]}; first call {first:.1f} s]", flush=True)


def check(min_macs: int) -> None:
    import torch

    from simulator import _gemm_gpu as GG
    from simulator import gemm
    from tests.simulator.test_gemm_gpu import SETTINGS

    rng = np.random.default_rng(1)
    total = 0
    bad_total = 0
    extra = [("int16", "int8", "int8", 256, 0, None), ("int32", "int8", "int8", 256, 0, None),
             ("exact", "e4m3", "e4m3", 256, 2, None),
             ("fixed<24,6>,overflow=saturate", "fixed<3,4>", "int8", 256, 0, None),
             ("float16,pairwise", "e4m3", "e4m3", 200, 3, None),
             ("float16,stochastic,seed=9,pairwise,chunk16->float32", "e4m3", "e4m3", 200, 3,
              None),
             ("bfloat16,toward_zero,pairwise,chunk32->float32", "nvfp4", "e5m2", 200, 3, None),
             ("int20,pairwise,overflow=saturate", "int8", "int8", 200, 0, None)]
    for acc, af, bf, K, spread, _ in list(SETTINGS) + extra:
        K = max(K, 200) + 13
        M, N = 96, 88
        while M * N * K < min_macs:
            M, N = M + 32, N + 32
        for force in (False, True):
            if spread:
                x = rng.standard_normal((M, K)) * 2.0 ** rng.integers(-spread, spread + 1,
                                                                     (M, K))
                y = rng.standard_normal((K, N)) * 2.0 ** rng.integers(-spread, spread + 1,
                                                                     (K, N))
            else:
                x = rng.integers(-100, 101, (M, K)).astype(np.float64)
                y = rng.integers(-100, 101, (K, N)).astype(np.float64)
            t0 = time.perf_counter()
            try:
                ref = gemm(x, y, a_format=af, b_format=bf, accumulator=acc)
            except ValueError as exc:
                ref = exc
            tc = time.perf_counter() - t0
            GG.FORCE_FLOAT64[0] = force
            t0 = time.perf_counter()
            try:
                got = gemm(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda(),
                           a_format=af, b_format=bf, accumulator=acc)
                torch.cuda.synchronize()
                got = got.cpu().numpy()
            except ValueError as exc:
                got = exc
            tg = time.perf_counter() - t0
            GG.FORCE_FLOAT64[0] = False
            if isinstance(ref, Exception) or isinstance(got, Exception):
                nbad = 0 if str(ref) == str(got) else M * N
                what = f"error: {str(ref)[:60]}"
            else:
                d = (ref.view(np.int64) != got.view(np.int64)) & ~(np.isnan(ref)
                                                                     & np.isnan(got))
                nbad = int(d.sum())
                what = f"{np.isnan(ref).sum()} NaN, {np.isinf(ref).sum()} Inf"
            total += M * N * K
            bad_total += nbad
            print(f"{acc[:62]:62s} {af:>10s} x {bf:<10s} {M}x{K}x{N} {GG.LAST[0]:15s} "
                  f"mismatches {nbad} ({what}; cpu {tc:.1f} s, gpu {tg:.1f} s)", flush=True)
            if force is False and GG.LAST[0] != "float32 kernel":
                break
    print(f"TOTAL {total} MACs compared, {bad_total} mismatching outputs", flush=True)
    linear()
    # a product beyond the device's memory: a clear error before any allocation
    big = torch.randn((1 << 17, 64), device="cuda")
    try:
        gemm(big, big.T, a_format="e4m3", b_format="e4m3", accumulator="float16")
        print("beyond memory: NO ERROR", flush=True)
    except ValueError as exc:
        print(f"beyond memory: {type(exc).__name__}: {exc}", flush=True)


def linear() -> None:
    """simulate()'s bit-true Linear layers on the GPU == on the CPU."""
    import torch
    from torch import nn

    from simulator import Accumulator
    from simulator.torch import LayerSpec, simulate

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(512, 384), nn.ReLU(), nn.Linear(384, 256))
    x = torch.randn(4, 64, 512)
    for acc in (Accumulator.named("h100_fp8_scaled_mm"), Accumulator.parse("float16"),
                Accumulator.parse("bfloat16,stochastic,seed=1")):
        spec = LayerSpec(weight="e4m3", act="e4m3", accumulator=acc)
        with simulate(model, spec) as sm:
            want = sm(x)
        gm = model.cuda()
        with simulate(gm, spec) as sm:
            got = sm(x.cuda()).cpu()
        model.cpu()
        same = torch.equal(got, want)
        print(f"bit-true Linear layers on the GPU vs CPU, {acc}: "
              f"{'equal' if same else 'DIFFERENT'} ({want.numel()} outputs)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", action="store_true", help="measure the CPU path here")
    ap.add_argument("--check", action="store_true", help="GPU == CPU per setting")
    ap.add_argument("--speed", action="store_true", help="the 4096^3 timings")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--min-macs", type=int, default=10**6)
    args = ap.parse_args()
    if args.cpu:
        cpu()
        return
    if args.speed or not args.check:
        speed(args.size)
    if args.check:
        check(args.min_macs)


if __name__ == "__main__":
    main()
