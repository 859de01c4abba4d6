"""Issue 19 on a GPU: infer the accumulation datapath of each matmul call, validate the
model on >= 10**7 dot products, and record fixtures for CI.

For each call (``torch._scaled_mm`` on FP8, Triton ``tl.dot`` on FP8/bf16/fp16,
``torch.matmul`` in bf16): :func:`simulator.probe.probe_accumulator` through the GPU; then
four GEMMs (2048x100x2048 random, 2048x520x2048 with exactly cancelling pairs,
1024x1000x1024 over the formats' whole exponent range, 1024x77x1024 subnormal products
and huge terms: 10,485,760 dot products) on the GPU against ``simulator.gemm`` with the
inferred model on the host's CPU: mismatches and the largest error in output ulps; and
600 random/adversarial dot products per call with the GPU's answers saved as fixtures
(``--fixtures``: codes of the operands, the outputs' float64 values).

    python benchmarks/silicon_probe.py [--out DIR] [--only NAME ...] [--quick]
``--simulate``: no GPU; each call replaced by simulator.gemm with a known model (checks
this script's plumbing on a CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from simulator import Accumulator, gemm
from simulator.probe import gemm_dot, gpu_matmul, model_dot, probe_accumulator, validation_set

# name: (target, a, b, out, fast_accum, named model)
CALLS = {
    "scaled_mm_e4m3_e4m3_f32": ("scaled_mm", "float8_e4m3fn", "float8_e4m3fn", "float32", False,
                                "h100_fp8_scaled_mm"),
    "scaled_mm_e4m3_e5m2_f32": ("scaled_mm", "float8_e4m3fn", "float8_e5m2", "float32", False,
                                "h100_fp8_scaled_mm"),
    "scaled_mm_e4m3_e4m3_bf16": ("scaled_mm", "float8_e4m3fn", "float8_e4m3fn", "bfloat16",
                                 False, "h100_fp8_scaled_mm"),
    "scaled_mm_e4m3_e5m2_bf16": ("scaled_mm", "float8_e4m3fn", "float8_e5m2", "bfloat16",
                                 False, "h100_fp8_scaled_mm"),
    "scaled_mm_fast_e4m3_e4m3_f32": ("scaled_mm", "float8_e4m3fn", "float8_e4m3fn", "float32",
                                     True, "h100_fp8_fast_accum"),
    "triton_e4m3_e4m3_f32": ("triton", "float8_e4m3fn", "float8_e4m3fn", "float32", False,
                             "h100_fp8_triton"),
    "triton_e4m3_e5m2_f32": ("triton", "float8_e4m3fn", "float8_e5m2", "float32", False,
                             "h100_fp8_triton"),
    "triton_bf16_f32": ("triton", "bfloat16", "bfloat16", "float32", False, "h100_bf16_triton"),
    "triton_f16_f32": ("triton", "float16", "float16", "float32", False, "h100_fp16_triton"),
    "matmul_bf16": ("matmul", "bfloat16", "bfloat16", "bfloat16", False, "h100_bf16_matmul"),
    "matmul_f16": ("matmul", "float16", "float16", "float16", False, "h100_fp16_matmul"),
}

SIM = "float32,toward_zero,fused4w13,chunk128->float32"  # --simulate's stand-in


def gemms(fa: str, fb: str, quick: bool) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The validation GEMMs (values of the formats, float64)."""
    from formats import parse

    pa, pb = parse(fa), parse(fb)
    rng = np.random.default_rng(19)
    s = 4 if quick else 1
    out = []

    def q(f, x):  # noqa: ANN001, ANN202
        return np.asarray(f.quantize(np.clip(x, -f.max, f.max)), np.float64)

    M = 2048 // s
    a = rng.standard_normal((M, 100)) * np.exp2(rng.integers(-4, 5, (M, 100)))
    b = rng.standard_normal((100, M)) * np.exp2(rng.integers(-4, 5, (100, M)))
    out.append(("random K=100", q(pa, a), q(pb, b)))
    a = rng.standard_normal((M, 520)) * np.exp2(rng.integers(0, 6, (M, 520)))
    b = rng.standard_normal((520, M))
    a[:, 256:512] = -a[:, :256]
    b[256:512] = b[:256]
    a[:, 512:] *= 2.0**-10
    out.append(("cancelling pairs K=520", q(pa, a), q(pb, b)))
    M = 1024 // s
    a = rng.choice([-1, 1], (M, 1000)) * np.exp2(rng.uniform(pa.lsb_exp_min, pa.emax + 1,
                                                             (M, 1000)))
    b = rng.choice([-1, 1], (1000, M)) * np.exp2(rng.uniform(pb.lsb_exp_min, pb.emax + 1,
                                                             (1000, M)))
    out.append(("whole exponent range K=1000", q(pa, a), q(pb, b)))
    a = rng.standard_normal((M, 77)) * 2.0**pa.emin * np.exp2(-rng.integers(0, 4, (M, 77)))
    b = rng.standard_normal((77, M)) * np.exp2(rng.integers(-3, 1, (77, M)))
    a[rng.integers(0, M, M // 4), rng.integers(0, 77, M // 4)] = pa.max
    out.append(("subnormal products, huge terms K=77", q(pa, a), q(pb, b)))
    return out


def ulps(got: np.ndarray, want: np.ndarray, out: str) -> float:
    from formats import parse

    f = parse(out)
    d = np.abs(got - want)
    fin = np.isfinite(want) & np.isfinite(got) & (d > 0)
    if not fin.any():
        return 0.0
    e = np.floor(np.log2(np.maximum(np.abs(want[fin]), f.smallest_normal)))
    return float((d[fin] / np.exp2(e - f.man_bits)).max())


def codes(x: np.ndarray, fmt: str) -> np.ndarray:
    import torch

    t = torch.from_numpy(x.astype(np.float32)).to(getattr(torch, fmt))
    return t.view(torch.uint8 if t.element_size() == 1 else torch.int16).numpy().copy()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="silicon_out")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--quick", action="store_true", help="GEMMs a quarter the size")
    ap.add_argument("--simulate", action="store_true")
    ap.add_argument("--named", action="store_true",
                    help="validate the named models (simulator.silicon) instead of probing")
    ap.add_argument("--k-max", type=int, default=2048)
    args = ap.parse_args()
    od = Path(args.out)
    od.mkdir(parents=True, exist_ok=True)
    device = "simulated"
    if not args.simulate:
        import torch

        device = torch.cuda.get_device_name()
    print(f"device: {device}", flush=True)
    summary = {"device": device, "calls": {}}
    fixtures: dict[str, np.ndarray] = {}
    for name, (target, fa, fb, out, fast, known) in CALLS.items():
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        try:
            if args.simulate:
                truth = Accumulator.parse(SIM)

                def mm(A, B, truth=truth, fa=fa, fb=fb, out=out):  # noqa: ANN001, ANN202
                    return np.asarray(gemm(A, B, a_format=fa, b_format=fb, accumulator=truth,
                                           out_format=out))
            else:
                mm = gpu_matmul(target, fa, fb, out_format=out, fast_accum=fast)
            print(f"\n== {name}: {target} {fa} x {fb} -> {out}"
                  f"{' fast_accum' if fast else ''}", flush=True)
            rec = {"target": target, "a": fa, "b": fb, "out": out, "fast_accum": fast,
                   "gemms": []}
            if args.named:
                model = Accumulator.named(known)
                rec.update(named=known, model=str(model))
                print(f"named model {known}: {model}", flush=True)
            else:
                r = probe_accumulator(gemm_dot(mm, min_size=128), fa, fb, out_format=out,
                                      k_max=args.k_max, checks=4096)
                model = r.accumulator
                print(f"probed ({time.perf_counter() - t0:.1f} s)\n{r}", flush=True)
                rec.update(model=str(model), probe=str(r), probes=r.probes,
                           checked=r.checked, check_mismatches=r.mismatches)
            total = bad = 0
            worst = 0.0
            for what, A, B in gemms(fa, fb, args.quick):
                t1 = time.perf_counter()
                got = np.asarray(mm(A, B), np.float64)
                want = np.asarray(gemm(A, B, a_format=fa, b_format=fb,
                                       accumulator=model, out_format=out))
                same = (got == want) | (np.isnan(got) & np.isnan(want))
                n_bad = int((~same).sum())
                u = ulps(got, want, out)
                total += got.size
                bad += n_bad
                worst = max(worst, u)
                rec["gemms"].append({"what": what, "shape": [A.shape[0], A.shape[1],
                                                             B.shape[1]],
                                     "dots": int(got.size), "mismatches": n_bad,
                                     "max_ulp": u})
                print(f"  {what}: {got.size} dot products, {n_bad} mismatches, max "
                      f"{u:.3g} ulp ({time.perf_counter() - t1:.1f} s)", flush=True)
            rec.update(dots=total, mismatches=bad, max_ulp=worst)
            print(f"  total: {total} dot products, {bad} mismatches", flush=True)
            # fixtures: the call's answers to 600 random/adversarial dot products
            a, b = validation_set(fa, fb, 600, seed=7, k_max=160)
            got = gemm_dot(mm, min_size=128)(a, b)
            if not args.simulate:
                fixtures[f"{name}.a"] = codes(a, fa)
                fixtures[f"{name}.b"] = codes(b, fb)
                fixtures[f"{name}.out"] = got
            want = model_dot(model, fa, fb, out)(a, b)
            rec["fixture_mismatches"] = int((~((got == want) | (np.isnan(got) & np.isnan(
                want)))).sum())
            summary["calls"][name] = rec
            if fixtures:
                np.savez_compressed(od / "h100_fixtures.npz", **fixtures)
        except Exception as exc:  # noqa: BLE001 - one call failing must not stop the rest
            traceback.print_exc()
            summary["calls"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        (od / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
