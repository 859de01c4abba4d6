"""Run golden vectors through Amaranth's own simulator (fast unit tests, no Icarus)."""

from __future__ import annotations

from typing import Any

from amaranth.sim import Simulator

from .vectors import Vectors

__all__ = ["Mismatch", "run_amaranth", "compare"]


class Mismatch(AssertionError):
    """Outputs differ from the golden vectors; the message lists the first rows."""


def _port(dut: Any, name: str) -> Any:
    p = getattr(dut, name)
    return p.as_value() if hasattr(p, "as_value") else p


def compare(vectors: Vectors, got: dict[str, list[int]], simulator: str) -> int:
    """Raise :class:`Mismatch` naming the first differing cycles; the number of checks."""
    bad = []
    for port, col in vectors.expected.items():
        for t, want in enumerate(col):
            if want is not None and got[port][t] != want:
                ins = ", ".join(f"{k}={vectors.inputs[k][t - _lag(vectors)]:#x}"
                                for k in vectors.inputs if t - _lag(vectors) >= 0)
                bad.append(f"cycle {t}: {port}={got[port][t]:#x}, expected {want:#x} "
                           f"(inputs {ins})")
    if bad:
        raise Mismatch(f"{vectors.pe} on {simulator}: {len(bad)} of {vectors.checks} checks "
                       "differ; first ones:\n  " + "\n  ".join(bad[:8]))
    return vectors.checks


def _lag(v: Vectors) -> int:
    return max(v.latency - 1, 0) if v.clocked else 0


def run_amaranth(component: Any, vectors: Vectors) -> int:
    """Drive ``vectors`` through ``component`` in Amaranth's simulator; the number of
    checked outputs (raises :class:`Mismatch` on any difference)."""
    got: dict[str, list[int]] = {k: [] for k in vectors.expected}
    ins = {k: _port(component, k) for k in vectors.inputs}
    outs = {k: _port(component, k) for k in vectors.expected}

    async def bench(ctx: Any) -> None:
        for t in range(vectors.cycles):
            for k, port in ins.items():
                ctx.set(port, vectors.inputs[k][t])
            if vectors.clocked:
                await ctx.tick()
            for k, port in outs.items():
                got[k].append(int(ctx.get(port)) & ((1 << len(port)) - 1))

    sim = Simulator(component)
    if vectors.clocked:
        sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return compare(vectors, got, "Amaranth's simulator")
