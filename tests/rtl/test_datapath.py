"""rtl.build(datapath): the PE that computes a simulator.Datapath, verified against
simulator.gemm on the same codes (the golden vectors read the PE's datapath)."""

from __future__ import annotations

import pytest

import rtl
from rtl.sim import run_amaranth
from rtl.vectors import make_vectors
from simulator import Datapath

BUILDABLE = [
    ("a=e4m3 b=e5m2 acc=float16,toward_zero", "FloatMac"),
    ("a=e2m3 b=e3m2 acc=bfloat16,up,overflow=saturate", "FloatMac"),
    ("a=int8 b=int4 acc=int24,overflow=saturate", "IntMac"),
    ("a=int8 b=int8 acc=int16", "IntMac"),
    ("a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree8", "BlockDot"),
    ("a=mxfp8_e4m3 b=mxfp6_e2m3 acc=float16,down,tree4", "BlockDot"),
    ("a=nvfp4 b=nvfp4 acc=float32,nearest_even", "BlockDot"),
    ("a=e4m3 b=e5m2 acc=float16,toward_zero,chunk16->float32", "FloatMac"),
    ("a=e4m3 b=e4m3 acc=float32,up,products@bfloat16,product_rounding=down", "FloatMac"),
    ("a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree32,chunk128->float32", "BlockDot"),
    ("a=mxfp8_e4m3 b=mxfp8_e4m3 acc=bfloat16,nearest_even,tree8@float16,tree_rounding=up,"
     "chunk64->float32,products@e5m2", "BlockDot"),
]


@pytest.mark.parametrize(("text", "kind"), BUILDABLE, ids=[t for t, _ in BUILDABLE])
def test_built_pe_computes_its_datapath(text: str, kind: str) -> None:
    dp = Datapath.parse(text)
    pe = rtl.build(dp)
    assert type(pe).__name__ == kind
    assert pe.datapath == dp  # the datapath read back from the built PE


@pytest.mark.parametrize("text", [BUILDABLE[0][0], BUILDABLE[2][0], BUILDABLE[4][0]])
def test_built_pe_verifies_against_the_simulator(text: str) -> None:
    pe = rtl.build(Datapath.parse(text))
    v = make_vectors(pe, n=64, seed=1)
    assert v.header["accumulator"] == str(Datapath.parse(text).accumulator)
    assert run_amaranth(pe, v) == v.checks


#: chunked promotion, rounded products and rounded tree sums (one datapath per PE: each
#: accumulator compiles its own simulator kernels); the narrow e3m2 has no NaN (a sticky
#: flag keeps it) and e5m2 operands bring Inf, which e4m3 products turn into NaN
PROMOTED = [
    ("a=e5m2 b=e4m3 acc=e3m2,toward_zero,chunk3->float16,products@e4m3,product_rounding=up",
     16),
    ("a=mxfp4 b=mxfp4 acc=float16,down,tree4@bfloat16,chunk8->float32,products@e3m2", 32),
]


@pytest.mark.parametrize(("text", "wide_bits"), PROMOTED, ids=[t for t, _ in PROMOTED])
def test_promoting_pe_verifies_on_both_simulators(text: str, wide_bits: int,
                                                  tmp_path) -> None:
    """The PE built from a datapath with chunked promotion / rounded products equals
    simulator.gemm of that datapath on the same codes, after every step (every block
    for BlockDot), in Amaranth's simulator and on Icarus; its output port is the wide
    register's format."""
    from rtl.verify import run_icarus

    dp = Datapath.parse(text)
    pe = rtl.build(dp)
    assert pe.datapath == dp
    assert len(pe.acc.as_value()) == wide_bits
    v = make_vectors(pe, n=96, seed=3)
    assert v.header["reference"] == "simulator.gemm"
    assert v.header["accumulator"] == str(dp.accumulator)
    assert run_amaranth(pe, v) == v.checks > 0
    assert run_icarus(pe, v, tmp_path)["checks"] == v.checks


@pytest.mark.parametrize(("text", "match"), [
    ("a=e4m3 b=e4m3 acc=exact", r"an exact accumulator"),
    ("a=e4m3 b=e4m3 acc=float16,stochastic,seed=1", r"stochastic rounding \(no PE has a "
     r"random source\)"),
    ("a=e4m3 b=e4m3 acc=float32,nearest_even,pairwise", r"pairwise summation"),
    ("a=e4m3 b=e4m3 acc=float32,nearest_even,products@int8",
     r"products rounded to int8 \(PEs round products to minifloats\)"),
    ("a=int8 b=int8 acc=int32,products@int8", r"products rounded to int8 \(PEs round"),
    ("a=int8 b=int8 acc=int32,products@e4m3", r"products rounded to float8_e4m3fn before an "
     r"integer accumulator \(IntMac adds exact products\)"),
    ("a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree1@bfloat16",
     r"a rounded adder-tree sum of one product \(tree_format=bfloat16 with tree_width 1\)"),
    ("a=e4m3 b=e4m3 acc=float32 lanes=4", r"4 outputs per PE \(lanes=4: every PE computes "
     r"one output"),
    ("a=e4m3 b=e4m3 acc=float32,nearest_even,tree8", r"an adder tree over scalar operands"),
    ("a=int8 b=e4m3 acc=float32", r"PEs take block x block formats"),
    ("a=int8 b=int8 acc=fixed<8,8>", r"PEs take block x block formats"),
])
def test_datapaths_no_pe_computes(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=r"no PE computes the datapath .*" + match):
        rtl.build(Datapath.parse(text))


def test_build_datapath_takes_no_options() -> None:
    with pytest.raises(ValueError, match="build\\(datapath\\) takes no options"):
        rtl.build(Datapath.parse(BUILDABLE[0][0]), stages=1)


RULES = ["floor", "ceil", "even", "rceil", "nearest"]


@pytest.mark.parametrize("rule", RULES)
def test_block_dot_every_scale_rule(rule: str, tmp_path) -> None:
    """The vectors hand the same codes and scale codes to the PE and to simulator.gemm
    (encoded operands): the format's scale rule is never inverted, so a PE built for any
    rule verifies, in Amaranth's simulator and on Icarus."""
    from rtl.verify import run_icarus

    fmt = f"block<e2m1;e8m0;32;{rule}>"
    pe = rtl.build(Datapath.parse(f"a={fmt} b={fmt} acc=float32,nearest_even,tree8"))
    v = make_vectors(pe, n=48, seed=5)
    assert run_amaranth(pe, v) == v.checks > 0
    assert run_icarus(pe, v, tmp_path)["checks"] == v.checks
