"""Seed claim ("Post-Training Quantization with Low-precision Minifloats and Integers on
FPGAs"): "integer quantization often remains the Pareto-optimal option, given its
relatively smaller hardware resource footprint".

Checked with numfab's own numbers: SmolLM2 weights and activations in INT8/6/4 (per
channel / per token) and FP8/FP6/FP4 minifloats (E4M3, E5M2, E3M2, E2M3, E2M1), KL to the
unquantized model; hardware cost of the MAC each pair runs on (costmodel.estimate for
xilinx LUTs without DSPs, and energy per MAC); the Pareto front of KL against LUTs.

The accuracy runs fake quantization, which sums every format's products in float32
(EvalConfig.datapath); no PE sums integer products into float32, so here the integer
formats are priced as integer hardware computes them: an IntMac into int32, the exact
integer sum with the scales applied after, which the float32 sums of the scaled products
match to float32 rounding (far below the quantization error compared).

    .venv/bin/python examples/int_vs_minifloat_pareto.py [TOKENS]
"""

import sys

from _compare import compare

from costmodel import pareto_front
from costmodel.pareto import format_cost
from numfab.evaluate import EvalConfig

n = int(sys.argv[1]) if len(sys.argv) > 1 else 256
fmts = ["int8", "int6", "int4", "float8_e4m3fn", "float8_e5m2", "float6_e3m2fn",
        "float6_e2m3fn", "float4_e2m1fn"]
r = compare({f: EvalConfig("smollm2", weights=f, acts=f, tokens=n) for f in fmts})
cost = {f: format_cost(f, f, "int32" if f.startswith("int") else "float32", "xilinx")
        for f in fmts}
front = pareto_front([cost[f]["cost_per_mac"] for f in fmts], [r[f]["kl"] for f in fmts])
print(f"\n{'format':16s} {'PE':9s} {'LUTs/MAC':>9s} {'pJ/MAC':>7s} {'KL':>9s}  Pareto")
for f, on in sorted(zip(fmts, front), key=lambda t: cost[t[0]]["cost_per_mac"]):
    c = cost[f]
    print(f"{f:16s} {c['pe']:9s} {c['cost_per_mac']:9.0f} {c['pj_per_mac']:7.3f} "
          f"{r[f]['kl']:9.5f}  {'*' if on else ''}")
ints = [f for f, on in zip(fmts, front) if on and f.startswith("int")]
mfs = [f for f, on in zip(fmts, front) if on and not f.startswith("int")]
print(f"\nPareto front: {len(ints)} integer and {len(mfs)} minifloat formats "
      f"({', '.join(f for f, on in zip(fmts, front) if on)}).")
print("claim holds" if len(ints) >= len(mfs) else "claim does not hold here",
      "(integer formats make up most of the front)" if len(ints) >= len(mfs) else "")
