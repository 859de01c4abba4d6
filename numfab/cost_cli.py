"""``numfab cost``: synthesized and estimated cost of a PE, calibration, GEMM cost."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from typing import Any

from ._args import positive_int
from .rtl_cli import _OPTS, _pe, add_pe_options, datapath_of


def _err(exc: BaseException) -> int:
    print(f"numfab cost: {exc}", file=sys.stderr)
    return 2


def array_spec(text: str) -> tuple[int, int]:
    """argparse type for ``--array``: ``ROWSxCOLS`` with positive integers (``16x16``)."""
    mt = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not mt or int(mt.group(1)) < 1 or int(mt.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"must be ROWSxCOLS with positive integers (e.g. "
                                         f"16x16), not {text!r}")
    return int(mt.group(1)), int(mt.group(2))


def frequency(text: str) -> float:
    """argparse type for ``--freq``: a positive finite number of Hz."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number of Hz (e.g. 250e6), "
                                         f"not {text!r}")
    return value


def _calibrate(args: argparse.Namespace) -> int:
    from costmodel.calibrate import CALIBRATION_CSV, GRID, MODEL_TARGETS, calibrate
    from costmodel.estimate import fit_quality, refit
    from costmodel.synth import YosysMissing
    from rtl.outputs import check_output_file

    out = args.output or str(CALIBRATION_CSV)
    n = len(GRID) * len(MODEL_TARGETS)
    done = [0]

    def progress(row: dict[str, Any]) -> None:
        done[0] += 1
        print(f"[{done[0]}/{n}] {row['pe']} {row['options']} {row['target']}: "
              f"{row['primary']} ({row['seconds']} s)", flush=True)

    t0 = time.perf_counter()
    try:
        check_output_file(out, "-o/--output", new_dirs=True)
        calibrate(out, jobs=args.jobs, progress=progress)
    except (TypeError, ValueError, OSError, YosysMissing) as exc:
        return _err(exc)
    print(f"wrote {out} ({n} syntheses in {time.perf_counter() - t0:.0f} s)")
    refit(out)  # the fit this process kept came from the file as it was
    for t, q in fit_quality(out).items():
        print(f"{t}: {q['points']} points, fit median {q['fit_median']:.1%} max "
              f"{q['fit_max']:.1%}, leave-one-out median {q['loo_median']:.1%} max "
              f"{q['loo_max']:.1%}")
    return 0


def _gemm(args: argparse.Namespace) -> int:
    from costmodel import gemm_cost

    try:
        K = 1024 if args.k is None else args.k
        # --k is the GEMM's K here, not a PE option
        dp = datapath_of(args, tuple(o for o in _OPTS if o != "k"))
        if dp is not None:
            c = gemm_cost(args.m, args.n, K, dp, array=args.array, target=args.target,
                          freq=args.freq)
        else:
            a = args.a or "mxfp4"
            c = gemm_cost(args.m, args.n, K, a, args.b or a, args.acc or "float32",
                          array=args.array, target=args.target, freq=args.freq)
    except (TypeError, ValueError) as exc:
        return _err(exc)
    print(json.dumps({"pe": c.pe, "pe_options": c.pe_options, "pes": c.pes,
                      "cycles": c.cycles, "seconds": c.seconds,
                      "macs_per_second": c.macs_per_second, "area": c.area,
                      "area_unit": c.area_unit, "bytes": c.bytes, "energy_pj": c.energy_pj,
                      "pj_per_mac": c.pj_per_mac}, indent=2))
    return 0


def cmd_cost(args: argparse.Namespace) -> int:
    if args.pe is not None and args.pe.lower() == "calibrate":
        return _calibrate(args)
    if args.pe is not None and args.pe.lower() == "gemm":
        return _gemm(args)
    from costmodel import estimate, synthesize
    from costmodel.synth import YosysMissing

    try:
        pe = _pe(args)
        est_target = "xilinx" if args.target == "xilinx-dsp" else args.target
        try:
            est = estimate(pe, target=est_target)
        except ValueError as exc:
            est = None
            note = str(exc)
        t0 = time.perf_counter()
        syn = synthesize(pe, args.target)
        t1 = time.perf_counter()
    except YosysMissing as exc:
        return _err(exc)
    except (TypeError, ValueError) as exc:
        return _err(exc)
    print(f"{pe.kind} {pe.formats} on {args.target} ({syn.yosys}; {t1 - t0:.1f} s)")
    print(f"{'':<14} {'synthesized':>12} {'estimated':>10}")
    unit = {"cmos": "transistors"}.get(args.target, "LUTs")
    prim = f"{est.primary:.0f}" if est and est_target == args.target else "-"
    print(f"{unit:<14} {syn.primary:>12} {prim:>10}")
    print(f"{'FFs':<14} {syn.ffs:>12} {est.ffs if est else '-':>10}")
    for k in ("carry", "muxes", "dsps", "brams", "cells"):
        print(f"{k:<14} {getattr(syn, k):>12}")
    if syn.luts_by_size:
        print("LUTs by size   " + ", ".join(f"LUT{k}: {v}" for k, v in syn.luts_by_size.items()))
    if est is None:
        print(f"estimate: {note}")
    elif est_target != args.target:
        print(f"estimate for xilinx without DSPs: {est.primary:.0f} LUTs")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "cost", help="hardware cost of a PE: Yosys synthesis next to the fitted estimate",
        description="numfab cost PE [format options] --target T (or numfab cost --datapath "
        "TEXT --target T) synthesizes the PE with Debian's yosys (xilinx = LUTs without "
        "DSPs, xilinx-dsp, ice40, ecp5, cmos transistors) and prints it next to "
        "costmodel.estimate. 'numfab cost calibrate' regenerates the calibration CSV; "
        "'numfab cost gemm --m --n --k --a --b --acc --array 16x16' (or --datapath TEXT in "
        "place of --a/--b/--acc) prints a GEMM's cycles, area, bytes and energy.")
    add_pe_options(p, "IntMac, FloatMul, FloatMac, BlockDot, FusedDot (with --datapath), "
                   "Quantizer, BipolarPe, LutPe, ShiftAddPe; or 'calibrate' / 'gemm'")
    p.add_argument("--target", default="xilinx")
    p.add_argument("--jobs", type=positive_int, default=2, help="calibrate: parallel syntheses")
    p.add_argument("-o", "--output", help="calibrate: CSV path")
    p.add_argument("--m", type=positive_int, default=1024, help="gemm: rows of A")
    p.add_argument("--n", type=positive_int, default=1024, help="gemm: columns of B")
    p.add_argument("--array", type=array_spec, default=(16, 16),
                   help="gemm: ROWSxCOLS of PEs (default 16x16)")
    p.add_argument("--freq", type=frequency, default=250e6, help="gemm: clock in Hz")
    p.set_defaults(func=cmd_cost)
