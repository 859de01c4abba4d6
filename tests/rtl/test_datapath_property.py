"""Property tests over random datapaths: the PE ``rtl.build(datapath)`` makes computes
that datapath bit for bit (its Amaranth simulation equals ``simulator.gemm`` of the
datapath on the same codes), reports it back as its ``.datapath``, and is priced the same
from the datapath as from the built PE; a datapath no PE computes is refused with a
ValueError naming what is missing.

Which datapaths a PE computes is restated here from the PEs' documentation (not read
from rtl), so a wrong refusal or a wrong acceptance fails. Each simulated datapath
compiles its own simulator kernels (seconds each): CI runs a few fixed examples,
NUMFAB_FULL=1 runs many.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rtl
from costmodel.features import features, features_of
from formats import BlockScaled, FixedBase, Integer, Minifloat
from rtl.sim import run_amaranth
from rtl.vectors import make_vectors
from simulator import Accumulator, Datapath, Order

FULL = os.environ.get("NUMFAB_FULL") == "1"

FLOATS = ["e4m3", "e5m2", "e2m1", "e3m2", "e2m3", "e4m3fnuz"]
INTS = ["int4", "int8", "uint4"]
#: scalar operands FloatMac multiplies exactly: minifloats, integers, fixed point
SCALARS = [*FLOATS, *INTS, "fixed<4,4>", "bfloat16"]
#: block formats by block size (operands must block K alike)
BLOCKS = {32: ["mxfp4", "mxfp6_e2m3", "mxfp8_e4m3", "mxint8"], 16: ["nvfp4", "bfp8_b16"]}
ACC_FLOATS = ["float16", "bfloat16", "float32", "e5m2", "e3m2", "e5m7"]
ACC_INTS = ["int16", "int24", "int32"]
MODES = ["nearest_even", "nearest_away", "toward_zero", "up", "down"]
NARROW = ["e5m2", "e3m2", "bfloat16", "float16", "e4m3"]  # product / tree formats


#: what makes a datapath one no PE computes (one per drawn datapath, or none)
SPOILERS = ["stochastic", "pairwise", "exact", "lanes", "int products", "scalar tree",
            "rounded tree of one", "tree over cycles", "mixed operands", "int acc for floats"]


@st.composite
def datapaths(draw: st.DrawFn, simulated: bool = False) -> Datapath:
    """A random datapath. ``simulated``: one a PE computes, small enough for the golden
    vectors (trees of at most 8); otherwise, a third of the time, with one thing no PE
    computes (``SPOILERS``)."""
    spoil = None if simulated or draw(st.integers(0, 2)) else draw(st.sampled_from(SPOILERS))
    kind = draw(st.sampled_from(["float", "int", "int-float", "block", "grouped"]))
    if spoil == "mixed operands":
        kind = "mixed"
    elif spoil == "int products":
        kind = "int"
    elif spoil == "int acc for floats":
        kind = "float"
    elif spoil in ("scalar tree", "rounded tree of one", "tree over cycles"):
        kind = "float" if spoil == "scalar tree" else "block"
    if kind == "float":
        a, b = draw(st.sampled_from(FLOATS)), draw(st.sampled_from(FLOATS))
    elif kind == "int":
        a, b = draw(st.sampled_from(INTS)), draw(st.sampled_from(INTS))
    elif kind == "int-float":  # an integer operand or two into a float accumulator
        a, b = draw(st.sampled_from(SCALARS)), draw(st.sampled_from([*INTS, "fixed<4,4>"]))
        if draw(st.booleans()):
            a, b = b, a
    elif kind == "block":
        size = draw(st.sampled_from(sorted(BLOCKS)))
        a, b = draw(st.sampled_from(BLOCKS[size])), draw(st.sampled_from(BLOCKS[size]))
    elif kind == "grouped":
        a, b = draw(st.sampled_from(["int8", "int4", "uint4"])), "int4_g32"
    else:
        a, b = draw(st.sampled_from([("bipolar2", "e4m3"), ("e4m3", "mxfp4"),
                                     ("uint4", "nvfp4")]))
    lanes = 2 if spoil == "lanes" else 1
    if spoil == "exact":
        return Datapath(a, b, Accumulator(None))
    if spoil == "int acc for floats":
        return Datapath(a, b, Accumulator(draw(st.sampled_from(ACC_INTS))))
    if kind == "int":
        pf = draw(st.sampled_from(["int8", "e5m2"])) if spoil == "int products" else None
        acc = Accumulator(draw(st.sampled_from(ACC_INTS)),
                          overflow=draw(st.sampled_from([None, "wrap", "saturate"])),
                          product_format=pf)
        return Datapath(a, b, acc, lanes=lanes)
    kw: dict[str, Any] = {"rounding": draw(st.sampled_from(MODES)),
                          "overflow": draw(st.sampled_from([None, "saturate"]))}
    if spoil == "stochastic":
        kw.update(rounding="stochastic", seed=draw(st.integers(0, 99)))
    width, k = 1, None
    if kind == "grouped":
        width = 32
        kw.update(order="tree", tree_width=width)
        k = draw(st.sampled_from([8, 16, 32]))
    elif spoil == "pairwise":
        kw["order"] = "pairwise"
    elif spoil in ("scalar tree", "tree over cycles") or (
            kind in ("block", "mixed") and draw(st.booleans())):
        width = draw(st.sampled_from([2, 4, 8] if simulated else [2, 4, 8, 16]))
        kw.update(order="tree", tree_width=width)
        if spoil == "tree over cycles":
            k = width // 2
        elif draw(st.booleans()):
            kw.update(tree_format=draw(st.sampled_from(NARROW)),
                      tree_rounding=draw(st.sampled_from(MODES)))
    elif spoil == "rounded tree of one" or draw(st.integers(0, 3)) == 0:
        kw.update(order="tree", tree_width=1)  # one product per tree: sequential
        if spoil == "rounded tree of one":
            kw["tree_format"] = "bfloat16"
    if kind != "grouped" and draw(st.booleans()):
        kw.update(chunk=width * draw(st.integers(1, 6)),
                  chunk_format=draw(st.sampled_from(["float32", "float16", "bfloat16"])))
    if kind != "grouped" and draw(st.booleans()):
        kw.update(product_format=draw(st.sampled_from(NARROW)),
                  product_rounding=draw(st.sampled_from(MODES)))
    acc = Accumulator(draw(st.sampled_from(ACC_FLOATS)), **kw)
    return Datapath(a, b, acc, k=k, lanes=lanes)


def canonical(dp: Datapath) -> Datapath:
    """``dp`` with an adder tree of one product (unrounded) written as sequential
    accumulation: the same arithmetic (``simulator.gemm`` runs the same kernel), which
    PEs report in the sequential form."""
    acc = dp.accumulator
    if acc.order is Order.TREE and acc.tree_width == 1 and acc.tree_format is None:
        acc = dataclasses.replace(acc, order="sequential", tree_width=None)
        return dataclasses.replace(dp, accumulator=acc)
    return dp


def expected_kind(dp: Datapath) -> str | None:
    """The PE kind that computes ``dp``, or None: the PEs' documented capabilities."""
    acc, a, b = dp.accumulator, dp.a, dp.b
    if dp.lanes != 1 or acc.exact or acc.rounding.value == "stochastic" \
            or acc.order is Order.PAIRWISE:
        return None
    pf = acc.product_format
    width = acc.tree_width if acc.order is Order.TREE else 1
    if pf is not None and not isinstance(pf, Minifloat):
        return None  # products are rounded to minifloats only
    if acc.tree_format is not None and width == 1:
        return None
    if isinstance(a, BlockScaled) and isinstance(b, BlockScaled):
        return "BlockDot" if dp.k == width else None  # one whole tree per cycle
    if isinstance(a, Integer) and isinstance(b, BlockScaled) \
            and isinstance(b.element, Integer):
        plain = acc.chunk is None and pf is None and acc.tree_format is None
        return "ShiftAddPe" if plain and width == b.block_size and not b.zero_point \
            and isinstance(acc.format, Minifloat) else None
    if width != 1:
        return None  # no scalar adder trees
    if isinstance(a, (Minifloat, FixedBase)) and isinstance(b, (Minifloat, FixedBase)) \
            and isinstance(acc.format, Minifloat):
        return "FloatMac"  # exact products of minifloats, integers or fixed point
    if isinstance(a, Integer) and isinstance(b, Integer) and isinstance(acc.format, Integer):
        return None if pf is not None else "IntMac"
    return None


@settings(max_examples=400 if FULL else 120, deadline=None, derandomize=True)
@given(datapaths())
def test_build_or_refuse(dp: Datapath) -> None:
    """Every datapath is built into the expected PE, which reports the same datapath and
    is priced alike from either side, or refused with a ValueError naming it."""
    kind = expected_kind(dp)
    if kind is None:
        with pytest.raises(ValueError, match=r"^no PE computes the datapath .*: it needs "):
            rtl.build(dp)
        with pytest.raises(ValueError, match=r"^no PE computes the datapath"):
            features(dp)
        return
    pe = rtl.build(dp)
    assert pe.kind == kind
    assert pe.datapath == canonical(dp)
    assert features(dp) == features_of(pe)


@settings(max_examples=40 if FULL else 3, deadline=None, derandomize=True)
@given(datapaths(simulated=True), st.integers(0, 2**16))
def test_built_pe_equals_the_simulator(dp: Datapath, seed: int) -> None:
    """The PE built from a random computable datapath equals ``simulator.gemm`` of that
    datapath on the same codes after every step (every block for BlockDot) in Amaranth's
    simulator."""
    pe = rtl.build(dp)
    assert pe.kind == expected_kind(dp) and pe.datapath == canonical(dp)
    v = make_vectors(pe, n=48, seed=seed)
    assert v.header["accumulator"] == str(canonical(dp).accumulator)
    assert "simulator.gemm" in v.header["reference"]
    assert run_amaranth(pe, v) == v.checks > 0
