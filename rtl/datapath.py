"""Which processing element computes a :class:`simulator.Datapath`.

rtl reads the datapath from ``simulator`` and never re-derives it: the operand formats,
the accumulator's format, rounding and overflow, and the PE geometry ``k`` (the adder
tree's width) become the options of the one PE that computes exactly that arithmetic.
A datapath no PE can compute is a ``ValueError`` naming what is missing.
"""

from __future__ import annotations

from typing import Any, NoReturn

from formats import BipolarInt, BlockScaled, FixedBase, Integer, Minifloat, Rounding

__all__ = ["pe_options"]


def pe_options(datapath: Any) -> tuple[str, dict[str, Any]]:
    """(PE kind, ``rtl.build`` options) of the PE that computes ``datapath`` bit for bit.

    Accumulating datapaths (``terms=None``):

    - block x block formats (MX, NVFP4, BFP): ``BlockDot`` summing ``k`` element pairs per
      cycle exactly (the accumulator's adder tree, ``k`` = ``tree_width``; sequential
      accumulation is ``k = 1``), one rounding into the accumulator;
    - integer x grouped integers along K (``int4_g128``, symmetric): ``ShiftAddPe``, each
      group summed exactly (``tree_width`` = the group size) over ``group / k`` cycles of
      ``k`` lanes, scaled once, one rounding into the accumulator;
    - scalar operands (minifloats, integers, fixed point, in any pairing: int8 x int8,
      bfloat16 x int4, ...) into a minifloat, sequential: ``FloatMac`` (exact products,
      one rounding per step);
    - int x int into ``int<n>``, sequential: ``IntMac`` (wrap or saturate).

    - minifloat x minifloat, the fused multi-term adder (``order='fused'``, as tensor
      cores sum: ``Accumulator.named("h100_fp8_fast_accum")``, ...): ``FusedDot`` taking
      a whole step of ``n`` = ``tree_width`` products per cycle (``k = n``), aligned
      with the accumulator (``align_acc``) to the largest exponent within ``align_bits``
      (``align_rounding``, ``align_from``), summed exactly, one rounding into the
      accumulator (``inf_on_overflow`` included).

    FloatMac, BlockDot and FusedDot also take chunked promotion (``chunk``/``chunk_format``: their
    output is then the wide register) and products rounded to a minifloat
    (``product_format``/``product_rounding``); BlockDot a tree sum rounded to a minifloat
    (``tree_format``/``tree_rounding``).

    Fixed-length datapaths (``terms`` set, exact accumulator, no running sum):

    - no ``b``, ``terms=1``: ``Quantizer`` (``out`` with ``out_rounding``/``out_overflow``);
    - minifloat x minifloat, ``terms=1``: ``FloatMul``, exact (``out=None``) or rounded
      once to ``out``;
    - ``lut=True``: ``LutPe`` (``a`` the activations, ``b`` the weights), ``group = k``
      products per table, ``groups = terms / k``;
    - int/bipolar x int/bipolar, ``terms = k``: ``BipolarPe`` with ``k`` pairs.

    Settings that change nothing are not options: ``chunk_format`` without ``chunk``,
    ``product_rounding`` without ``product_format``, ``tree_rounding`` without
    ``tree_format``, a seed without stochastic rounding; nor is pipelining (``stages``):
    ``rtl.build(pe.datapath)`` is the PE ``pe`` without pipeline registers.

    Raises
    ------
    TypeError
        ``datapath`` is not a :class:`simulator.Datapath` (or its text).
    ValueError
        What the datapath needs that no PE builds (each missing piece named): the exact
        accumulator with a running sum, stochastic rounding, pairwise order, products
        rounded to an integer or fixed-point format (or, with the fused adder, to any
        format), the fused adder over operands other than scalar minifloats or over
        several cycles per step, ``inf_on_overflow`` outside the fused adder, a rounded
        tree sum over one product,
        an adder tree over scalar minifloats or integers, a tree taken over several
        cycles by BlockDot, several outputs per PE, an output rounding after a running
        sum, zero points, or an unsupported format pairing.
    """
    from simulator import Datapath

    dp = Datapath.parse(datapath) if isinstance(datapath, str) else datapath
    if not isinstance(dp, Datapath):
        raise TypeError(f"datapath must be a simulator.Datapath or its text, not "
                        f"{type(datapath).__name__}")
    if dp.lanes != 1:
        _refuse(dp, f"{dp.lanes} outputs per PE (lanes={dp.lanes}: every PE computes one "
                "output; an array of PEs computes many, see costmodel.gemm_cost)")
    if dp.terms is not None:
        return _fixed_length(dp)
    return _accumulating(dp)


def _refuse(dp: Any, *missing: str) -> NoReturn:
    raise ValueError(f"no PE computes the datapath {dp}: it needs {'; '.join(missing)}")


def _fixed_length(dp: Any) -> tuple[str, dict[str, Any]]:
    """The PEs without a running sum: Quantizer, FloatMul, LutPe, BipolarPe."""
    a, b, k, n = dp.a, dp.b, dp.k, dp.terms
    out = {} if dp.out is None else {"out": dp.out, "rounding": dp.out_rounding,
                                     "overflow": dp.out_overflow}
    if b is None:
        return "Quantizer", {"a": a, **out}
    if dp.lut or not isinstance(a, Minifloat):
        if dp.out is not None:
            _refuse(dp, f"an exact integer dot product rounded to {dp.out} (LutPe and "
                    "BipolarPe output the exact sum)")
        if dp.lut:
            return "LutPe", {"x": a, "w": b, "group": k, "groups": n // k}
        if isinstance(a, (Integer, BipolarInt)) and isinstance(b, (Integer, BipolarInt)):
            if n != k:
                _refuse(dp, f"{n // k} trees of {k} products per output (BipolarPe sums one "
                        f"tree: terms = k)")
            return "BipolarPe", {"a": a, "b": b, "k": k}
    elif isinstance(b, Minifloat) and n == 1:
        return "FloatMul", {"a": a, "b": b, **out}
    _refuse(dp, f"a dot product of exactly {n} products of {a} x {b} without a running sum "
            "(PEs: FloatMul, one minifloat product; BipolarPe, one exact tree of int/bipolar "
            "pairs; LutPe, table lookups; Quantizer, no b)")


def _accumulating(dp: Any) -> tuple[str, dict[str, Any]]:
    """The PEs with a running sum: BlockDot, ShiftAddPe, FloatMac, IntMac, FusedDot."""
    from simulator import Order

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
    if acc.order is Order.FUSED:
        return _fused(dp, missing)
    if acc.inf_on_overflow:
        missing.append("overflow to +-Inf in every rounding mode (inf_on_overflow: "
                       "FusedDot's, order='fused')")
    if pf is not None and not isinstance(pf, Minifloat):
        missing.append(f"products rounded to {pf} (PEs round products to minifloats)")
    if acc.tree_format is not None and acc.tree_width == 1:
        missing.append(f"a rounded adder-tree sum of one product (tree_format="
                       f"{acc.tree_format} with tree_width 1)")
    if dp.out is not None:
        missing.append(f"the running sum rounded to out={dp.out} (no accumulating PE "
                       "rounds its output: follow it with a Quantizer)")
    if dp.lut:
        missing.append("table lookups with a running sum (LutPe computes one dot product "
                       "of terms products: set terms)")
    a, b, fmt = dp.a, dp.b, acc.format
    if missing:
        _refuse(dp, *missing)
    extra: dict[str, Any] = {}
    if acc.chunk is not None:
        extra.update(chunk=acc.chunk, chunk_format=acc.chunk_format)
    if pf is not None:
        extra.update(product_format=pf, product_rounding=acc.product_rounding)
    tree = acc.tree_width if acc.order is Order.TREE else 1
    if isinstance(a, BlockScaled) and isinstance(b, BlockScaled):
        if dp.k != tree:
            _refuse(dp, f"a tree of {tree} products taken over {tree // dp.k} cycles of "
                    f"k={dp.k} (BlockDot sums its whole tree per cycle: k = tree width)")
        if acc.tree_format is not None:
            extra.update(tree_format=acc.tree_format, tree_rounding=acc.tree_rounding)
        return "BlockDot", {"a": a, "b": b, "acc": fmt, "k": dp.k, "rounding": acc.rounding,
                            "overflow": acc.overflow, **extra}
    if isinstance(a, Integer) and isinstance(b, BlockScaled) \
            and isinstance(b.element, Integer) and isinstance(fmt, Minifloat):
        return "ShiftAddPe", _shift_add(dp, extra)
    if tree != 1:
        _refuse(dp, "an adder tree over scalar operands (only BlockDot and ShiftAddPe sum "
                "trees)")
    scalar = (Minifloat, FixedBase)
    if isinstance(a, scalar) and isinstance(b, scalar) and isinstance(fmt, Minifloat):
        return "FloatMac", {"a": a, "b": b, "acc": fmt, "rounding": acc.rounding,
                            "overflow": acc.overflow, **extra}
    if isinstance(a, Integer) and isinstance(b, Integer) and isinstance(fmt, Integer):
        if pf is not None:
            _refuse(dp, f"products rounded to {pf} before an integer accumulator (IntMac "
                    "adds exact products)")
        return "IntMac", {"a": a, "b": b, "acc_bits": fmt.bits, "overflow": acc.overflow}
    _refuse(dp, "a PE for these formats: PEs take block x block formats (BlockDot), integer "
            "x grouped integers (ShiftAddPe), minifloat / integer / fixed-point operands into "
            "a minifloat (FloatMac) or int x int into int<n> (IntMac)")


def _fused(dp: Any, missing: list[str]) -> tuple[str, dict[str, Any]]:
    """The fused multi-term adder: FusedDot, one whole step of scalar minifloat products
    per cycle."""
    acc, a, b = dp.accumulator, dp.a, dp.b
    n = acc.tree_width
    if acc.product_format is not None:
        missing.append(f"products rounded to {acc.product_format} before the fused adder "
                       "(FusedDot aligns exact products)")
    if not (isinstance(a, Minifloat) and isinstance(b, Minifloat)):
        missing.append(f"the fused adder over {a} x {b} (FusedDot multiplies scalar "
                       "minifloats)")
    if dp.k != n:
        missing.append(f"a fused step of {n} products taken over {n // dp.k} cycles of "
                       f"k={dp.k} (FusedDot takes a whole step per cycle: k = tree width)")
    if dp.out is not None:
        missing.append(f"the running sum rounded to out={dp.out} (no accumulating PE "
                       "rounds its output: follow it with a Quantizer)")
    if dp.lut:
        missing.append("table lookups with a running sum (LutPe computes one dot product "
                       "of terms products: set terms)")
    if missing:
        _refuse(dp, *missing)
    extra: dict[str, Any] = {}
    if acc.chunk is not None:
        extra.update(chunk=acc.chunk, chunk_format=acc.chunk_format)
    return "FusedDot", {"a": a, "b": b, "acc": acc.format, "n": n,
                        "align_bits": acc.align_bits, "rounding": acc.rounding,
                        "overflow": acc.overflow, "align_rounding": acc.align_rounding,
                        "align_acc": acc.align_acc, "align_from": acc.align_from,
                        "inf_on_overflow": acc.inf_on_overflow, **extra}


def _shift_add(dp: Any, extra: dict[str, Any]) -> dict[str, Any]:
    acc, w = dp.accumulator, dp.b
    missing = []
    if w.zero_point:
        missing.append(f"zero points ({w}: ShiftAddPe takes symmetric groups)")
    if acc.tree_width != w.block_size:
        missing.append(f"a group of {w.block_size} summed in trees of {acc.tree_width or 1} "
                       f"(ShiftAddPe sums each group exactly: order='tree', tree_width="
                       f"{w.block_size})")
    if extra or acc.tree_format is not None:
        missing.append("chunked promotion, rounded products or a rounded tree sum in "
                       "ShiftAddPe")
    if missing:
        _refuse(dp, *missing)
    return {"x": dp.a, "w": w, "acc": acc.format, "lanes": dp.k, "rounding": acc.rounding,
            "overflow": acc.overflow}
