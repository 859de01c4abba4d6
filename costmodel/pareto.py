"""Pareto fronts of accuracy against hardware cost, and the per-MAC cost of a datapath."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from formats import parse

from .energy import energy_per_op
from .estimate import estimate

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


def format_cost(a_format: Any, b_format: Any = None, accumulator: Any = "float32",
                target: str = "xilinx") -> dict[str, Any]:
    """Per-MAC cost of a datapath: the PE that computes it (``rtl.build(datapath)``), its
    estimated cost (:func:`costmodel.estimate`) and energy (:func:`costmodel.energy_per_op`)
    divided by the products it takes per cycle (the datapath's ``k``).

    The datapath is ``a_format`` when that is a :class:`simulator.Datapath` (leave
    ``b_format`` and ``accumulator`` out), else ``Datapath(a_format, b_format,
    accumulator)``: ``accumulator`` is an :class:`simulator.Accumulator`, its text or a
    format name (``"float32"``: a sequential nearest-even float32 accumulator, one
    product per cycle; integer operands run on a FloatMac, their exact products summed in
    that format). Exactly that datapath is priced; a datapath no PE computes (scalar x
    block operands, pairwise order, stochastic rounding, ...) is rtl's ValueError
    naming what is missing, never another PE's price.

    Returns a dict: ``pe`` (kind), ``datapath`` (its text), ``macs_per_cycle``,
    ``cost_per_mac`` (in ``unit``), ``unit``, ``pj_per_mac`` and ``target``.

    Raises
    ------
    TypeError
        ``target`` is not a str, a format of the wrong kind, or ``b_format`` missing.
    ValueError
        Unknown formats or target, formats that form no datapath, a datapath no PE
        computes.
    """
    from simulator import Datapath

    if not isinstance(target, str):
        raise TypeError(f"target must be a str, not {type(target).__name__}")
    if isinstance(a_format, Datapath):
        if b_format is not None or accumulator != "float32":
            raise ValueError("give either a datapath or a_format, b_format and accumulator, "
                             "not both")
        dp = a_format
    elif b_format is None:
        raise TypeError("format_cost needs b_format (or a simulator.Datapath in place of "
                        "a_format)")
    else:
        fa, fb = parse(a_format, parameter="a_format"), parse(b_format, parameter="b_format")
        try:
            dp = Datapath(fa, fb, accumulator)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"a_format={fa}, b_format={fb}, accumulator={accumulator!r} form "
                            f"no datapath: {exc}") from None
    return _datapath_cost(dp, target)


def _datapath_cost(dp: Any, target: str) -> dict[str, Any]:
    est = estimate(dp, target=target)  # rtl describes the datapath's PE once per process
    return {"pe": est.pe, "datapath": str(dp), "macs_per_cycle": dp.k,
            "cost_per_mac": est.primary / dp.k, "unit": est.unit,
            "pj_per_mac": energy_per_op(dp) / dp.k, "target": target}
