"""Block formats on a CUDA GPU: bit-identity with the CPU path at scale, and the speed of
the fused quantize-dequantize (issue 17). Run on a machine with a GPU:

    PYTHONPATH=$PWD python benchmarks/gpu_block_check.py [--quick] [--sweep]
        [--torchao-compile] [--skip-check] [--skip-timing]

1. Check: for each family (MX, NVFP4/NVINT4, BFP, grouped integers with and without zero
   points, 2-D tiles and other axes) at least 10**8 elements in total (--quick: 10**7)
   of four distributions (normal with a random magnitude per row and outliers, random bit
   patterns (NaN, Inf, subnormals, huge values), Cauchy, tiny values near the subnormal
   range mixed with exact midpoints), as float32 and bfloat16 (and float16 on part of
   them), through ``quantize`` on the GPU and on the CPU; ``encode`` (codes, scales,
   tensor scale, statistics, ``dequantize``) on a part of each. Prints the counts; any
   mismatch fails the run (NaN compares as NaN: payloads of arithmetic NaNs are the
   hardware's).
2. Timing: MXFP4, MXFP8 (E4M3) and NVFP4 quantize-dequantize of a 16384x16384 float32 and
   bfloat16 tensor (median of CUDA-event times after a warm-up), as elements/s and as a
   fraction of the same tensor's device copy (``y.copy_(x)``), with torchao's ``to_mx`` /
   ``to_dtype`` and ``NVFP4Tensor`` beside when torchao imports (eager; compiled with
   --torchao-compile). The issue's target: >= 0.40 of copy. Then the calls run under
   ``torch.cuda.set_sync_debug_mode("error")``: any host copy or device wait fails.
   --sweep also times the fused kernel's tile sizes and warp counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _timing import tuned  # noqa: E402

import formats  # noqa: E402
from formats import BlockScaled  # noqa: E402

DISTS = ["normal", "bits", "cauchy", "tiny"]


def _f(name: str, **kw: Any) -> BlockScaled:
    fmt = formats.parse(name)
    assert isinstance(fmt, BlockScaled)
    return dataclasses.replace(fmt, **kw) if kw else fmt


def _b(body: str) -> BlockScaled:
    return _f(f"block<{body}>")


#: family -> formats; each is checked on float32 and bfloat16 (fused where the CPU fuses)
FAMILIES: dict[str, list[BlockScaled]] = {
    "MX": [_f(n) for n in ("mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4",
                           "mxint8", "mxint8_full")]
    + [_f("mxfp4", scale_rule=r) for r in ("ceil", "even", "rceil")]
    + [_f("mxfp8_e4m3", scale_rule="rceil")],
    "NV": [_f("nvfp4"), _f("nvint4"), _f("nvfp4", scale_rule="rceil"),
           _f("nvfp4", scale_rounding="toward_zero")],
    "BFP": [_f("bfp8_b16"), _f("bfp4_b8"), _f("bfp6_b32")],
    "groups": [_f("int4_g128"), _f("int4_g32_bfloat16"), _f("int8_g64_float32"),
               _f("int4_g32_float8_e8m0fnu"), _f("int4_g16_ue4m3"), _f("uint4_g128_asym"),
               _f("uint8_g32_asym_ue5m3")],
    "tiles/axes": [_b("float8_e4m3fn;float8_e8m0fnu;32x32;floor"),
                   _b("float4_e2m1fn;float8_e4m3fn;16x16;nearest"),
                   _b("float4_e2m1fn;float8_e8m0fnu;32;floor;axis=0")],
}
#: slower composite cases, checked on fewer elements (counted in their family)
EXTRA: dict[str, list[BlockScaled]] = {
    "MX": [_f("mxfp4", scale_rule="mse")],
    "NV": [_f("nvfp4", scale_rule="mse")],
}


def _data(shape: tuple[int, int], dtype: torch.dtype, dist: str, g: torch.Generator
          ) -> torch.Tensor:
    """A tensor of ``dist`` on the GPU."""
    rows, cols = shape
    dev = "cuda"
    mag = torch.exp2(torch.randint(-30, 31, (rows, 1), device=dev, generator=g).double())
    if dist == "bits":
        width = torch.finfo(dtype).bits
        ints = {32: torch.int32, 16: torch.int16}[width]
        r = torch.randint(0, 2**width, shape, device=dev, generator=g, dtype=torch.int64)
        return (r - (r >= 2 ** (width - 1)).long() * 2**width).to(ints).view(dtype)
    if dist == "normal":
        x = torch.randn(shape, device=dev, generator=g, dtype=torch.float64) * mag
        out = torch.rand(shape, device=dev, generator=g) < 1e-3
        x = torch.where(out, x * 1000.0, x)
    elif dist == "cauchy":
        x = torch.empty(shape, device=dev, dtype=torch.float64).cauchy_(generator=g) * mag
    else:  # tiny values and exact grid points (ties of the small element formats)
        tiny = torch.randn(shape, device=dev, generator=g, dtype=torch.float64) * torch.exp2(
            -torch.randint(110, 150, (rows, 1), device=dev, generator=g).double())
        grid = torch.randint(-64, 65, shape, device=dev, generator=g).double() / 8 * mag
        x = torch.where(torch.rand(shape, device=dev, generator=g) < 0.5, tiny, grid)
    return x.to(dtype)


def _shape(fmt: BlockScaled, n: int) -> tuple[int, int]:
    """A 2-D shape of about ``n`` elements, whole blocks along the last axis."""
    bs = fmt.block_size
    cols = 4096 if isinstance(bs, tuple) or fmt.axis != -1 else bs * max(1, 4096 // bs)
    return max(1, n // cols), cols


def _mismatch(got: torch.Tensor, want: torch.Tensor) -> int:
    """Elements whose bits differ (NaN equal to NaN), after a dtype/shape check."""
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype)
    g, w = got.detach().cpu(), want.detach().cpu()
    gn, wn = torch.isnan(g), torch.isnan(w)
    ints = {8: torch.int64, 4: torch.int32, 2: torch.int16}[g.element_size()]
    diff = (g.view(ints) != w.view(ints)) & ~gn
    return int((gn != wn).sum()) + int(diff.sum())


def _ints(got: torch.Tensor, want: np.ndarray) -> int:
    return int((got.cpu().to(torch.int64) != torch.from_numpy(want.astype(np.int64))).sum())


def check(total: int) -> list[str]:
    """The GPU against the CPU; returns the failures."""
    g = torch.Generator(device="cuda")
    g.manual_seed(0)
    failures: list[str] = []
    for family, fmts in FAMILIES.items():
        extra = EXTRA.get(family, [])
        cases = [(f, d) for f in fmts for d in (torch.float32, torch.bfloat16)]
        per = total // (len(cases) * len(DISTS)) + 1
        count = bad = 0
        t0 = time.perf_counter()
        for fmt, dtype in cases + [(f, torch.float32) for f in extra]:
            n = per if fmt not in extra else per // 8
            for dist in DISTS:
                x = _data(_shape(fmt, n), dtype, dist, g)
                m = _mismatch(fmt.quantize(x), fmt.quantize(x.cpu()))
                count += x.numel()
                bad += m
                if m:
                    failures.append(f"{family} {fmt} {dtype} {dist}: quantize {m} differ")
        # float16 (the composite path) and encode, on a part
        for fmt in fmts + extra:
            for dtype, dist in ((torch.float16, "normal"), (torch.float32, "bits"),
                                (torch.bfloat16, "normal")):
                x = _data(_shape(fmt, per // 8), dtype, dist, g)
                if dtype == torch.float16:
                    m = _mismatch(fmt.quantize(x), fmt.quantize(x.cpu()))
                else:
                    eg, ec = fmt.encode(x), fmt.encode(x.cpu())
                    m = sum(_ints(getattr(eg, k), getattr(ec, k))
                            for k in ("codes", "scales", "saturated", "flushed")
                            if getattr(ec, k) is not None)
                    if ec.zeros is not None:
                        m += _ints(eg.zeros, ec.zeros)
                    if ec.tensor_scale is not None:
                        m += int(float(eg.tensor_scale) != ec.tensor_scale)
                    m += _mismatch(eg.dequantize(), torch.from_numpy(
                        np.ascontiguousarray(ec.dequantize())))
                count += x.numel()
                bad += m
                if m:
                    failures.append(f"{family} {fmt} {dtype} {dist}: "
                                    f"{'quantize' if dtype == torch.float16 else 'encode'} "
                                    f"{m} differ")
        print(f"{family:<11} {count:>12,} elements compared, {bad} mismatches "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return failures


def cuda_time(fn: Callable[[], object], reps: int) -> float:
    """Median seconds of ``fn`` by CUDA events, after a warm-up call."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return statistics.median(times)


def _torchao(compile_: bool) -> dict[str, Callable[[torch.Tensor], torch.Tensor]] | str:
    """torchao's quantize-dequantize per case, or why it is not there."""
    try:
        import logging
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.disable(logging.WARNING)
            from torchao.prototype.mx_formats.mx_tensor import to_dtype, to_mx
            from torchao.prototype.mx_formats.nvfp4_tensor import (
                NVFP4Tensor,
                per_tensor_amax_to_scale,
            )
            logging.disable(logging.NOTSET)
    except Exception as exc:  # any import failure: report it, time numfab alone
        return f"torchao not importable ({type(exc).__name__}: {exc})"

    def mx(dt: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
        def run(x: torch.Tensor) -> torch.Tensor:
            s, d = to_mx(x, dt, 32)
            return to_dtype(d, s, dt, 32, x.dtype)
        return run

    def nv(x: torch.Tensor) -> torch.Tensor:
        pts = per_tensor_amax_to_scale(torch.max(torch.abs(x)))
        return NVFP4Tensor.to_nvfp4(x, block_size=16, per_tensor_scale=pts).dequantize(
            x.dtype)

    fns = {"mxfp4": mx(torch.float4_e2m1fn_x2), "mxfp8_e4m3": mx(torch.float8_e4m3fn),
           "nvfp4": nv}
    if compile_:
        fns = {k: torch.compile(v) for k, v in fns.items()}
    return fns


CASES = ["mxfp4", "mxfp8_e4m3", "nvfp4"]


def timing(reps: int, compile_ao: bool, n: int = 16384) -> list[str]:
    """The speed table; returns the cases below the target."""
    failures = []
    ao = _torchao(compile_ao)
    if isinstance(ao, str):
        print(ao)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(n, n, device="cuda").to(dtype)
        y = torch.empty_like(x)
        t_copy = cuda_time(lambda x=x, y=y: y.copy_(x), reps)
        print(f"\n{n}x{n} {dtype}: device copy {x.numel() / t_copy / 1e9:.1f} G elem/s "
              f"({2 * x.numel() * x.element_size() / t_copy / 1e12:.2f} TB/s)")
        print(f"{'format':<12}{'G elem/s':>10}{'of copy':>9}{'out= G/s':>10}{'of copy':>9}"
              f"{'torchao G/s':>13}{'numfab/torchao':>16}")
        for name in CASES:
            fmt = _f(name)
            t_new = cuda_time(lambda fmt=fmt, x=x: fmt.quantize(x), reps)
            t_out = cuda_time(lambda fmt=fmt, x=x, y=y: fmt.quantize(x, out=y), reps)
            line = (f"{name:<12}{x.numel() / t_new / 1e9:10.1f}{t_copy / t_new:9.2f}"
                    f"{x.numel() / t_out / 1e9:10.1f}{t_copy / t_out:9.2f}")
            if not isinstance(ao, str):
                try:
                    t_ao = cuda_time(lambda x=x, fn=ao[name]: fn(x), reps)
                    line += f"{x.numel() / t_ao / 1e9:13.1f}{t_ao / t_new:16.1f}"
                except Exception as exc:  # report torchao's failure, keep timing numfab
                    line += f"  torchao failed: {type(exc).__name__}: {str(exc)[:60]}"
            print(line, flush=True)
            if t_copy / t_new < 0.40:
                failures.append(f"{name} {dtype}: {t_copy / t_new:.2f} of copy (< 0.40)")
    return failures


def sync_free() -> list[str]:
    """Each timed call under torch's sync debug mode 'error'."""
    failures = []
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(1024, 4096, device="cuda").to(dtype)
        for name in CASES:
            fmt = _f(name)
            fmt.quantize(x)
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                fmt.quantize(x)
            except RuntimeError as exc:
                failures.append(f"{name} {dtype}: the device waited ({str(exc)[:80]})")
            finally:
                torch.cuda.set_sync_debug_mode(0)
    print(f"\nhost syncs in quantize: {len(failures)} of {2 * len(CASES)} calls")
    return failures


def sweep(reps: int, n: int = 16384) -> None:
    """The fused kernel's time per tile size and warp count."""
    gpu = formats._gpu.kernels("block")
    base = gpu.TILE, gpu.WARPS
    print(f"\nsweep, {n}x{n}: G elem/s per (TILE, WARPS); now {base}")
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(n, n, device="cuda").to(dtype)
        y = torch.empty_like(x)
        for name in CASES:
            fmt = _f(name)
            row = []
            for tile in (2048, 4096, 8192):
                for warps in (4, 8):
                    gpu.TILE, gpu.WARPS = tile, warps
                    t = cuda_time(lambda fmt=fmt, x=x, y=y: fmt.quantize(x, out=y), reps)
                    row.append(f"{tile}/{warps}:{x.numel() / t / 1e9:.0f}")
            print(f"{name} {dtype}: " + " ".join(row), flush=True)
    gpu.TILE, gpu.WARPS = base


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10**7 elements per family")
    p.add_argument("--sweep", action="store_true", help="time tile sizes and warps")
    p.add_argument("--torchao-compile", action="store_true", help="torch.compile torchao")
    p.add_argument("--skip-check", action="store_true")
    p.add_argument("--skip-timing", action="store_true")
    p.add_argument("--reps", type=int, default=20)
    args = p.parse_args()
    tuned()
    import triton

    print(f"{torch.cuda.get_device_name()}; torch {torch.__version__}, triton "
          f"{triton.__version__}, numpy {np.__version__}")
    failures = []
    if not args.skip_check:
        failures += check(10**7 if args.quick else 10**8)
    if not args.skip_timing:
        failures += timing(args.reps, args.torchao_compile)
        failures += sync_free()
    if args.sweep:
        sweep(max(5, args.reps // 4))
    for f in failures:
        print("FAIL", f)
    assert not failures, f"{len(failures)} failures"
    print("all passed")


if __name__ == "__main__":
    main()
