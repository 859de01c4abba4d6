"""Pareto fronts of accuracy against hardware cost, and the cost of a format pair."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

from formats import Integer

from .energy import energy_per_op
from .estimate import estimate
from .gemm import _format, pe_for

__all__ = ["pareto_front", "format_cost"]


def pareto_front(costs: Sequence[float], metrics: Sequence[float], *,
                 lower_is_better: bool = True) -> list[bool]:
    """For each point, whether no other point is at least as good in both cost (lower is
    better) and metric, and strictly better in one. Equal points are both on the front."""
    if len(costs) != len(metrics):
        raise ValueError(f"costs and metrics must have the same length, not {len(costs)} "
                         f"and {len(metrics)}")
    sign = 1.0 if lower_is_better else -1.0
    pts = [(float(c), sign * float(m)) for c, m in zip(costs, metrics)]
    bad = [i for i, (c, m) in enumerate(pts) if not (math.isfinite(c) and math.isfinite(m))]
    if bad:
        raise ValueError(f"costs and metrics must be finite; point {bad[0]} is "
                         f"({costs[bad[0]]}, {metrics[bad[0]]})")
    front = []
    for i, (c, m) in enumerate(pts):
        dominated = any((c2 <= c and m2 <= m) and (c2 < c or m2 < m)
                        for j, (c2, m2) in enumerate(pts) if j != i)
        front.append(not dominated)
    return front


def format_cost(a_format: Any, b_format: Any, accumulator: Any = "float32",
                target: str = "xilinx") -> dict[str, Any]:
    """Per-MAC cost of multiplying ``a_format`` by ``b_format`` into ``accumulator``: the
    PE chosen by :func:`costmodel.gemm.pe_for`, its estimated cost and energy divided by
    the MACs it does per cycle. Integer x integer GEMMs accumulate in int32 (scales
    applied after), whatever ``accumulator`` says."""
    fa, fb = _format(a_format, "a_format"), _format(b_format, "b_format")
    facc = _format(accumulator, "accumulator")
    if not isinstance(target, str):
        raise TypeError(f"target must be a str, not {type(target).__name__}")
    return dict(_format_cost(fa, fb, facc, target))


@functools.lru_cache(maxsize=256)
def _format_cost(fa: Any, fb: Any, facc: Any, target: str) -> dict[str, Any]:
    if isinstance(fa, Integer) and isinstance(fb, Integer):
        facc = Integer(32)
    kind, opts, mpc = pe_for(fa, fb, facc)
    est = estimate(kind, target=target, **opts)
    return {"pe": kind, "macs_per_cycle": mpc, "cost_per_mac": est.primary / mpc,
            "unit": est.unit, "pj_per_mac": energy_per_op(kind, **opts) / mpc,
            "target": target}
