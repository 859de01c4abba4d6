"""Which processing element computes a :class:`simulator.Datapath`.

rtl reads the datapath from ``simulator`` and never re-derives it: the operand formats,
the accumulator's format, rounding and overflow, and the PE geometry ``k`` (the adder
tree's width) become the options of the one PE that computes exactly that arithmetic.
A datapath no PE can compute is a ``ValueError`` naming what is missing.
"""

from __future__ import annotations

from typing import Any

from formats import BlockScaled, Integer, Minifloat, Rounding

__all__ = ["pe_options"]


def pe_options(datapath: Any) -> tuple[str, dict[str, Any]]:
    """(PE kind, ``rtl.build`` options) of the PE that computes ``datapath`` bit for bit:

    - block x block formats (MX, NVFP4, BFP): ``BlockDot`` summing ``k`` element pairs per
      cycle exactly (the accumulator's adder tree of ``tree_width`` = ``k``; sequential
      accumulation is ``k = 1``), one rounding into the accumulator;
    - minifloat x minifloat into a minifloat, sequential: ``FloatMac``;
    - int x int into ``int<n>``, sequential: ``IntMac`` (wrap or saturate).

    FloatMac and BlockDot also take chunked promotion (``chunk``/``chunk_format``: their
    output is then the wide register) and products rounded to a minifloat
    (``product_format``/``product_rounding``); BlockDot a tree sum rounded to a minifloat
    (``tree_format``/``tree_rounding``). Settings that change nothing are not options:
    ``chunk_format`` without ``chunk``, ``product_rounding`` without ``product_format``,
    ``tree_rounding`` without ``tree_format``, a seed without stochastic rounding.

    Raises
    ------
    TypeError
        ``datapath`` is not a :class:`simulator.Datapath` (or its text).
    ValueError
        What the datapath needs that no PE builds: the exact accumulator, stochastic
        rounding, pairwise order, products rounded to an integer or fixed-point format,
        a rounded tree sum over one product, an adder tree over scalar operands, several
        outputs per PE, or an unsupported format pairing.
    """
    from simulator import Datapath, Order

    dp = Datapath.parse(datapath) if isinstance(datapath, str) else datapath
    if not isinstance(dp, Datapath):
        raise TypeError(f"datapath must be a simulator.Datapath or its text, not "
                        f"{type(datapath).__name__}")
    acc = dp.accumulator
    missing = []
    if acc.exact:
        missing.append("an exact accumulator (a PE accumulates in a format: give one)")
    if acc.rounding is Rounding.STOCHASTIC:
        missing.append("stochastic rounding (no PE has a random source)")
    if acc.order is Order.PAIRWISE:
        missing.append("pairwise summation (a PE accumulates sequentially or through an "
                       "adder tree)")
    pf = acc.product_format
    if pf is not None and not isinstance(pf, Minifloat):
        missing.append(f"products rounded to {pf} (PEs round products to minifloats)")
    if acc.tree_format is not None and acc.tree_width == 1:
        missing.append(f"a rounded adder-tree sum of one product (tree_format="
                       f"{acc.tree_format} with tree_width 1)")
    if dp.lanes != 1:
        missing.append(f"{dp.lanes} outputs per PE (lanes={dp.lanes}: every PE computes one "
                       "output; an array of PEs computes many, see costmodel.gemm_cost)")
    a, b, fmt = dp.a, dp.b, acc.format
    if missing:
        raise ValueError(f"no PE computes the datapath {dp}: it needs {'; '.join(missing)}")
    extra: dict[str, Any] = {}
    if acc.chunk is not None:
        extra.update(chunk=acc.chunk, chunk_format=acc.chunk_format)
    if pf is not None:
        extra.update(product_format=pf, product_rounding=acc.product_rounding)
    if isinstance(a, BlockScaled) and isinstance(b, BlockScaled):
        if acc.tree_format is not None:
            extra.update(tree_format=acc.tree_format, tree_rounding=acc.tree_rounding)
        return "BlockDot", {"a": a, "b": b, "acc": fmt, "k": dp.k, "rounding": acc.rounding,
                            "overflow": acc.overflow, **extra}
    if acc.order is Order.TREE:
        raise ValueError(f"no PE computes the datapath {dp}: an adder tree over scalar "
                         "operands (only BlockDot sums k products per cycle)")
    if isinstance(a, Minifloat) and isinstance(b, Minifloat) and isinstance(fmt, Minifloat):
        return "FloatMac", {"a": a, "b": b, "acc": fmt, "rounding": acc.rounding,
                            "overflow": acc.overflow, **extra}
    if isinstance(a, Integer) and isinstance(b, Integer) and isinstance(fmt, Integer):
        if pf is not None:
            raise ValueError(f"no PE computes the datapath {dp}: it needs products rounded "
                             f"to {pf} before an integer accumulator (IntMac adds exact "
                             "products)")
        return "IntMac", {"a": a, "b": b, "acc_bits": fmt.bits, "overflow": acc.overflow}
    raise ValueError(f"no PE computes the datapath {dp}: PEs take block x block formats "
                     "(BlockDot), minifloat x minifloat into a minifloat (FloatMac) or "
                     "int x int into int<n> (IntMac)")
