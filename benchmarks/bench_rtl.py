"""Simulation throughput of the generated PEs: Amaranth's simulator vs Icarus (cocotb).

Run: .venv/bin/python benchmarks/bench_rtl.py   (needs iverilog; ~1 minute)
"""

from __future__ import annotations

import tempfile
import time

from rtl import BlockDot, FloatMac, FloatMul
from rtl.sim import run_amaranth
from rtl.vectors import make_vectors
from rtl.verify import run_icarus


def _timed(pe, v) -> tuple[float, float]:
    t0 = time.perf_counter()
    run_amaranth(pe, v)
    ta = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_icarus(pe, v, tmp)  # includes Verilog conversion, iverilog build, vvp start
        ti = time.perf_counter() - t0
    return ta, ti


def main() -> None:
    import formats

    formats.setup_runtime()  # as the numfab command does
    """Steady-state rates from two runs (n and 16 vectors): (n - 16) / (t_n - t_16);
    the fixed start-up (simulator compile / iverilog build) printed apart."""
    cases = [("FloatMul e4m3fn x e4m3fn -> e4m3fn", FloatMul("e4m3fn", "e4m3fn", "e4m3fn"),
              30000),
             ("FloatMac e4m3fn x e4m3fn -> float32", FloatMac("e4m3fn", "e4m3fn", "float32"),
              3000),
             ("BlockDot mxfp4, k=8, float32", BlockDot("mxfp4", "float32", k=8), 1200)]
    print(f"{'PE':<38} {'Amaranth/s':>11} {'start s':>8} {'Icarus/s':>10} {'start s':>8} "
          f"{'Icarus/Amaranth':>15}")
    for label, pe, n in cases:
        small = make_vectors(pe, n=16)
        big = make_vectors(pe, n=n)
        a1, i1 = _timed(pe, small)
        a2, i2 = _timed(pe, big)
        dn = big.cycles - small.cycles
        ra, ri = dn / (a2 - a1), dn / (i2 - i1)
        print(f"{label:<38} {ra:>11,.0f} {a1 - small.cycles / ra:>8.2f} {ri:>10,.0f} "
              f"{i1 - small.cycles / ri:>8.2f} {ri / ra:>15.2f}")


if __name__ == "__main__":
    main()
