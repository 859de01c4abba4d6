"""The scalar formats' GPU kernels against the CPU kernels at scale, on a CUDA device.

For every format up to 16 bits: decode of every code (float32 and float64); encode and
quantize of every bfloat16 and every float16 bit pattern (as bfloat16 / float16 tensors)
in every rounding mode and overflow policy; then random float32 bit patterns (every
exponent, NaN payloads included) and random bfloat16 patterns until each format family
(minifloats, integers/fixed point, tables) has seen ``--per-family`` inputs (default
10**8) spread over its formats, modes and policies. Stochastic rounding uses one seed per
batch on both sides. Prints the counts and exits non-zero on any mismatch.

    python benchmarks/gpu_exhaustive.py [--per-family 100000000]

tests/gpu/test_scalar_gpu.py runs the same comparison through Triton's interpreter in CI.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import torch

import formats
from formats import Minifloat, Overflow, Rounding, Special

FAMILIES = {
    "minifloat": [
        "float8_e4m3fn", "float8_e4m3", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
        "float8_e4m3b11fnuz", "float8_e3m4", "float6_e2m3fn", "float6_e3m2fn",
        "float4_e2m1fn", "float8_e8m0fnu", "ue4m3", "ue5m3", "ue8m0", "e3m4b5", "bfloat16",
        "float16", "e6m9", "e4m11", Minifloat(4, 3, 7, Special.IEEE, subnormals=False),
        Minifloat(3, 2, 3, Special.FN, subnormals=False, signed=False),
        Minifloat(5, 0, 15, Special.FINITE), "tfloat32", "float32", "e5m20", "e11m20",
    ],
    "integer": ["int4", "uint4", "int8", "uint8", "int16", "uint16", "fixed<3,4>",
                "fixed<-2,6>", "fixed<8,8>", "fixed<12,-3>", "int24", "fixed<20,12>"],
    "table": ["nf4", "fp4_lut", "bipolar3", "bipolar8", "bipolar16"],
}


def _fmt(f: object) -> formats.Format:
    return f if isinstance(f, formats.Format) else formats.parse(str(f))


def _bits(t: torch.Tensor) -> torch.Tensor:
    if t.is_floating_point():
        return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])
    return t.to(torch.int64) if t.dtype in (torch.uint16,) else t


class Tally:
    def __init__(self) -> None:
        self.compared: dict[str, int] = {}
        self.mismatches = 0

    def check(self, family: str, what: str, cpu: torch.Tensor, gpu: torch.Tensor) -> None:
        a, b = _bits(cpu), _bits(gpu.cpu())
        if a.dtype != b.dtype or a.shape != b.shape:
            print(f"MISMATCH {what}: dtype/shape {cpu.dtype}{tuple(cpu.shape)} vs "
                  f"{gpu.dtype}{tuple(gpu.shape)}")
            self.mismatches += a.numel()
            return
        differ = a != b
        if cpu.is_floating_point():
            # NaN results must be NaN at the same elements; their payload and sign in
            # 16-bit outputs follow each device's float32 -> 16-bit cast (torch's CPU cast
            # of NaN to bfloat16 gives 0xFFFF, CUDA's 0x7FFF), not numfab
            differ &= ~(torch.isnan(cpu) & torch.isnan(gpu.cpu()))
        bad = int(differ.sum())
        self.compared[family] = self.compared.get(family, 0) + a.numel()
        if bad:
            idx = differ.nonzero().flatten()[:3].tolist()
            print(f"MISMATCH {what}: {bad} of {a.numel()}, e.g. at {idx}: "
                  f"{[int(a[i]) for i in idx]} vs {[int(b[i]) for i in idx]}")
            self.mismatches += bad


def _compare(tally: Tally, family: str, fmt: formats.Format, x: torch.Tensor, mode: Rounding,
             pol: Overflow | None, seed: int) -> None:
    kw = {"seed": seed} if mode is Rounding.STOCHASTIC else {}
    what = f"{fmt} {mode.value} {pol.value if pol else 'default'} {x.dtype}[{x.numel()}]"
    if pol is Overflow.WRAP:
        x = x[torch.isfinite(x)]
    xg = x.cuda()
    try:
        c_cpu = fmt.encode(x, mode, pol, **kw)
    except ValueError as exc:
        try:
            fmt.encode(xg, mode, pol, **kw)
        except ValueError as exc_g:
            if str(exc_g) != str(exc):
                print(f"MISMATCH {what}: errors differ: {exc} / {exc_g}")
                tally.mismatches += 1
            return
        print(f"MISMATCH {what}: the GPU raised nothing ({exc})")
        tally.mismatches += 1
        return
    tally.check(family, "encode " + what, c_cpu, fmt.encode(xg, mode, pol, **kw))
    tally.check(family, "quantize " + what, fmt.quantize(x, mode, pol, **kw),
                fmt.quantize(xg, mode, pol, **kw))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-family", type=int, default=10**8)
    ap.add_argument("--chunk", type=int, default=1 << 22)
    ap.add_argument("--families", default=",".join(FAMILIES),
                    help="comma-separated subset of " + ", ".join(FAMILIES))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: this script compares the GPU kernels with the CPU's")
        return 2
    warnings.simplefilter("ignore", RuntimeWarning)
    t0 = time.time()
    tally = Tally()
    rng = np.random.default_rng(2026)
    all16 = torch.arange(1 << 16, dtype=torch.int32).to(torch.int16)
    for family in args.families.split(","):
        fmts = [_fmt(n) for n in FAMILIES[family]]
        for fmt in fmts:
            if fmt.bits <= 16:
                codes = torch.arange(fmt.valid_codes, dtype=torch.int64)
                codes = codes.to(torch.uint8 if fmt.bits <= 8 else torch.uint16)
                for dt in (np.float32, np.float64):
                    tally.check(family, f"decode {fmt} {np.dtype(dt)}", fmt.decode(codes, dtype=dt),
                                fmt.decode(codes.cuda(), dtype=dt))
            for mode in Rounding:
                for pol in [None, *fmt.allowed_overflow]:
                    for view in (torch.bfloat16, torch.float16):
                        _compare(tally, family, fmt, all16.view(view), mode, pol, 7)
            print(f"  {fmt}: every code and 16-bit pattern done ({time.time() - t0:.0f} s)",
                  flush=True)
        # random float32 and bfloat16 bit patterns up to the family's quota
        combos = [(f, m, p) for f in fmts for m in Rounding for p in [None, *f.allowed_overflow]]
        done = 0
        i = 0
        while done < args.per_family:
            fmt, mode, pol = combos[i % len(combos)]
            n = args.chunk
            bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
            if i % 4 == 3:  # a quarter of the batches: bfloat16 patterns
                x = torch.from_numpy((bits >> 16).astype(np.uint16).view(np.int16)).view(
                    torch.bfloat16)
            elif i % 4 == 2:  # normal-range float32 around the format's range
                scale = float(np.float32(min(fmt.max, 3e38)))
                x = torch.from_numpy((rng.standard_normal(n) * scale).astype(np.float32))
            else:
                x = torch.from_numpy(bits.view(np.float32))
            _compare(tally, family, fmt, x, mode, pol, int(rng.integers(0, 2**63)))
            done += n
            i += 1
        print(f"{family}: {tally.compared.get(family, 0):,} results compared "
              f"({time.time() - t0:.0f} s)", flush=True)
    print(f"device: {torch.cuda.get_device_name()}; total compared "
          f"{sum(tally.compared.values()):,}; mismatches {tally.mismatches}")
    return 1 if tally.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
