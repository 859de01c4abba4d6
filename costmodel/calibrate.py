"""The calibration grid: syntheses of PEs across kinds and formats, written to CSV.

``numfab cost calibrate`` (or ``python -m costmodel.calibrate``) regenerates
``costmodel/data/calibration.csv``; the estimate model (:mod:`costmodel.estimate`) is fitted
to it when first used.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing as mp
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .synth import _check_target, yosys_version

__all__ = ["GRID", "HELD_OUT", "CALIBRATION_CSV", "calibrate", "load"]

CALIBRATION_CSV = Path(__file__).with_name("data") / "calibration.csv"

#: targets the model is fitted for
MODEL_TARGETS = ("xilinx", "cmos")

#: (PE kind, options for rtl.build)
GRID: list[tuple[str, dict[str, Any]]] = [
    ("FloatMul", {"a": "e4m3fn", "b": "e4m3fn"}),
    ("FloatMul", {"a": "e4m3fn", "b": "e4m3fn", "out": "e4m3fn"}),
    ("FloatMul", {"a": "e5m2", "b": "e5m2", "out": "e5m2"}),
    ("FloatMul", {"a": "e2m1", "b": "e2m1"}),
    ("FloatMul", {"a": "e3m2", "b": "e2m3", "out": "e4m3fn"}),
    ("FloatMul", {"a": "float16", "b": "float16", "out": "float16"}),
    ("FloatMul", {"a": "bfloat16", "b": "bfloat16", "out": "bfloat16"}),
    ("FloatMul", {"a": "e4m3fn", "b": "e5m2", "out": "bfloat16"}),
    ("FloatMac", {"a": "e4m3fn", "b": "e4m3fn", "acc": "float32"}),
    ("FloatMac", {"a": "e4m3fn", "b": "e4m3fn", "acc": "float16"}),
    ("FloatMac", {"a": "e4m3fn", "b": "e4m3fn", "acc": "bfloat16"}),
    ("FloatMac", {"a": "e5m2", "b": "e5m2", "acc": "float32"}),
    ("FloatMac", {"a": "e2m1", "b": "e2m1", "acc": "float16"}),
    ("FloatMac", {"a": "e2m1", "b": "e2m1", "acc": "bfloat16"}),
    ("FloatMac", {"a": "float16", "b": "float16", "acc": "float32"}),
    ("FloatMac", {"a": "bfloat16", "b": "bfloat16", "acc": "float32"}),
    ("FloatMac", {"a": "e3m2", "b": "e3m2", "acc": "float16"}),
    ("FloatMac", {"a": "e2m3", "b": "e2m3", "acc": "e5m7"}),
    ("IntMac", {"a": "int8", "b": "int8", "acc_bits": 32}),
    ("IntMac", {"a": "int4", "b": "int4", "acc_bits": 16}),
    ("IntMac", {"a": "int8", "b": "int4", "acc_bits": 24}),
    ("IntMac", {"a": "int2", "b": "int8", "acc_bits": 20}),
    ("IntMac", {"a": "int16", "b": "int16", "acc_bits": 40}),
    ("IntMac", {"a": "uint8", "b": "int8", "acc_bits": 32, "overflow": "saturate"}),
    ("IntMac", {"a": "int6", "b": "int6", "acc_bits": 24, "overflow": "saturate"}),
    ("BlockDot", {"a": "mxfp4", "acc": "float32", "k": 8}),
    ("BlockDot", {"a": "mxfp4", "acc": "float32", "k": 16}),
    ("BlockDot", {"a": "mxfp8_e4m3", "acc": "float32", "k": 4}),
    ("BlockDot", {"a": "mxfp6_e2m3", "acc": "float32", "k": 8}),
    ("BlockDot", {"a": "mxint8", "acc": "float32", "k": 8}),
    ("BlockDot", {"a": "nvfp4", "acc": "float32", "k": 8}),
    ("BlockDot", {"a": "bfp8_b16", "acc": "bfloat16", "k": 4}),
    ("Quantizer", {"a": "float32", "out": "e4m3fn"}),
    ("Quantizer", {"a": "float32", "out": "e5m2"}),
    ("Quantizer", {"a": "float32", "out": "bfloat16"}),
    ("Quantizer", {"a": "float16", "out": "e2m1"}),
    ("Quantizer", {"a": "float32", "out": "int8"}),
    ("Quantizer", {"a": "bfloat16", "out": "e4m3fn"}),
    ("BipolarPe", {"a": "int4", "b": "int4", "k": 16}),
    ("BipolarPe", {"a": "bipolar2", "b": "bipolar2", "k": 32}),
    ("BipolarPe", {"a": "int8", "b": "int8", "k": 8}),
    ("BipolarPe", {"a": "int2", "b": "int4", "k": 16}),
    ("LutPe", {"w": "int4", "x": "int8", "group": 4, "groups": 1}),
    ("LutPe", {"w": "int2", "x": "int8", "group": 4, "groups": 2}),
    ("LutPe", {"w": "int4", "x": "int8", "group": 2, "groups": 4}),
    ("LutPe", {"w": "bipolar3", "x": "int8", "group": 3, "groups": 2}),
    ("ShiftAddPe", {"x": "int8", "w": "int4_g128", "acc": "float32", "lanes": 8}),
    ("ShiftAddPe", {"x": "int8", "w": "int4_g32", "acc": "float16", "lanes": 4}),
    ("ShiftAddPe", {"x": "int4", "w": "int4_g64", "acc": "bfloat16", "lanes": 8}),
    # the fused multi-term adder: the H100 FP8 step (32 products, window 13, aligned by
    # the operands' exponents) and smaller or wider ones
    ("FusedDot", {"a": "e4m3fn", "b": "e4m3fn", "acc": "e8m13", "n": 32, "align_bits": 13,
                  "rounding": "toward_zero", "align_from": "exponents"}),
    ("FusedDot", {"a": "e4m3fn", "b": "e4m3fn", "acc": "e8m13", "n": 8, "align_bits": 13,
                  "rounding": "toward_zero", "align_from": "exponents"}),
    ("FusedDot", {"a": "e2m1", "b": "e2m1", "acc": "float16", "n": 16, "align_bits": 8}),
    ("FusedDot", {"a": "e5m2", "b": "e5m2", "acc": "float16", "n": 8, "align_bits": 11,
                  "align_rounding": "nearest_even", "align_acc": False}),
    ("FusedDot", {"a": "bfloat16", "b": "bfloat16", "acc": "float32", "n": 4,
                  "align_bits": 25, "rounding": "toward_zero", "align_from": "exponents",
                  "inf_on_overflow": True}),
]

#: design points kept out of the grid, for testing the fitted model
HELD_OUT: list[tuple[str, dict[str, Any]]] = [
    ("FloatMac", {"a": "e5m2", "b": "e4m3fn", "acc": "float16"}),
    ("IntMac", {"a": "int8", "b": "int8", "acc_bits": 24}),
    ("FloatMul", {"a": "e4m3fn", "b": "e4m3fn", "out": "bfloat16"}),
    ("FusedDot", {"a": "e4m3fn", "b": "e5m2", "acc": "e8m13", "n": 4, "align_bits": 13,
                  "rounding": "toward_zero", "align_from": "exponents"}),
]


def _one(job: tuple[str, dict[str, Any], str]) -> dict[str, Any]:
    import rtl

    from .synth import synthesize

    kind, opts, target = job
    t0 = time.perf_counter()
    r = synthesize(rtl.build(kind, **opts), target)
    return {"pe": kind, "options": json.dumps(opts, sort_keys=True), "target": target,
            "primary": r.primary, "luts": r.luts, "ffs": r.ffs, "carry": r.carry,
            "muxes": r.muxes, "dsps": r.dsps, "cells": r.cells,
            "transistors": "" if r.transistors is None else r.transistors, "yosys": r.yosys,
            "seconds": round(time.perf_counter() - t0, 2)}


def calibrate(out: str | Path = CALIBRATION_CSV, *, targets: tuple[str, ...] = MODEL_TARGETS,
              jobs: int = 2, grid: list[tuple[str, dict[str, Any]]] | None = None,
              progress: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Synthesize every grid point for every target (``jobs`` processes) and write the
    CSV (atomically; its directory is created if missing); the rows. Arguments are
    checked before the first synthesis."""
    from rtl.outputs import check_output_file, write_text

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, not {jobs!r}")
    for t in targets:
        _check_target(t)
    dest = check_output_file(out, "out", new_dirs=True)
    work = [(k, o, t) for k, o in (GRID if grid is None else grid) for t in targets]
    if not work:
        raise ValueError("targets and grid must not be empty")
    yosys_version()  # a missing yosys is reported here, not by every worker
    rows: list[dict[str, Any]] = []
    ctx = mp.get_context("spawn")  # forked OpenMP pools hang
    with ctx.Pool(jobs) as pool:
        for row in pool.imap(_one, work):
            rows.append(row)
            if progress:
                progress(row)
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_text(dest, text.getvalue())
    return rows


def load(path: str | Path = CALIBRATION_CSV) -> list[dict[str, Any]]:
    with Path(path).open() as f:
        return list(csv.DictReader(f))


if __name__ == "__main__":  # pragma: no cover
    t = time.perf_counter()
    calibrate(progress=lambda r: print(r["pe"], r["options"], r["target"], r["primary"],
                                       r["seconds"], flush=True))
    print(f"calibration: {time.perf_counter() - t:.0f} s")
