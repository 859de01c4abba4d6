"""rtl.build(datapath): the PE that computes a simulator.Datapath, verified against
simulator.gemm on the same codes (the golden vectors read the PE's datapath)."""

from __future__ import annotations

import os
from typing import Any

import pytest

import rtl
from rtl.sim import run_amaranth
from rtl.vectors import make_vectors
from simulator import Datapath

#: NUMFAB_FULL=1 also simulates the datapaths CI leaves to other tests
FULL = os.environ.get("NUMFAB_FULL") == "1"

BUILDABLE = [
    ("a=e4m3 b=e5m2 acc=float16,toward_zero", "FloatMac"),
    ("a=e2m3 b=e3m2 acc=bfloat16,up,overflow=saturate", "FloatMac"),
    ("a=int8 b=int4 acc=int24,overflow=saturate", "IntMac"),
    ("a=int8 b=int8 acc=int16", "IntMac"),
    ("a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree8", "BlockDot"),
    ("a=mxfp8_e4m3 b=mxfp6_e2m3 acc=float16,down,tree4", "BlockDot"),
    ("a=nvfp4 b=nvfp4 acc=float32,nearest_even", "BlockDot"),
    ("a=e4m3 b=e5m2 acc=float16,toward_zero,chunk16->float32", "FloatMac"),
    ("a=int8 b=int8 acc=float32", "FloatMac"),
    ("a=bfloat16 b=int4 acc=float32", "FloatMac"),
    ("a=fixed<4,4> b=e4m3 acc=float16,toward_zero,chunk8->float32,products@e5m2", "FloatMac"),
    ("a=e4m3 b=e4m3 acc=float32,up,products@bfloat16,product_rounding=down", "FloatMac"),
    ("a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree32,chunk128->float32", "BlockDot"),
    ("a=mxfp8_e4m3 b=mxfp8_e4m3 acc=bfloat16,nearest_even,tree8@float16,tree_rounding=up,"
     "chunk64->float32,products@e5m2", "BlockDot"),
    ("a=int8 b=int4_g32 acc=float16,toward_zero,tree32 k=8", "ShiftAddPe"),
    ("a=e4m3 b=e5m2 acc=exact terms=1", "FloatMul"),
    ("a=e4m3 b=e5m2 acc=exact terms=1 out=e4m3,up,overflow=saturate", "FloatMul"),
    ("a=float16 b=none acc=exact terms=1 out=int8,down", "Quantizer"),
    ("a=bipolar2 b=int4 acc=exact,tree8 terms=8", "BipolarPe"),
    ("a=int8 b=int2 acc=exact,tree4 terms=8 lut=true", "LutPe"),
    ("a=e4m3 b=e5m2 acc=e8m13,toward_zero,fused32w13,align_from=exponents,chunk128->float32",
     "FusedDot"),
    ("a=bfloat16 b=bfloat16 acc=float32,toward_zero,fused16w25,align_from=exponents,"
     "inf_on_overflow", "FusedDot"),
    ("a=e2m1 b=e3m2 acc=float16,down,fused4w6,align_rounding=up,align_acc=false", "FusedDot"),
]


@pytest.mark.parametrize(("text", "kind"), BUILDABLE, ids=[t for t, _ in BUILDABLE])
def test_built_pe_computes_its_datapath(text: str, kind: str) -> None:
    dp = Datapath.parse(text)
    pe = rtl.build(dp)
    assert type(pe).__name__ == kind
    assert pe.datapath == dp  # the datapath read back from the built PE


#: each simulated accumulator compiles its own simulator kernels (5-20 s of CPU): CI
#: verifies the IntMac one here, the float PEs built from datapaths being verified by the
#: promoting, integer-operand, scale-rule and property tests; NUMFAB_FULL=1 adds these
VERIFIED = [BUILDABLE[2][0], *([BUILDABLE[0][0], BUILDABLE[4][0]] if FULL else [])]


@pytest.mark.parametrize("text", VERIFIED)
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


#: integer operands into a float accumulator: fake quantization's int8 x int8 sums in
#: float32, and weight-only int4 quantization of bfloat16 activations
INTEGER_OPERANDS = ["a=int8 b=int8 acc=float32", "a=bfloat16 b=int4 acc=float32"]


@pytest.mark.parametrize("text", INTEGER_OPERANDS)
def test_integer_operand_pe_verifies_on_both_simulators(text: str, tmp_path) -> None:
    """FloatMac takes integer operands (each code a significand with a fixed exponent:
    the product is exact, then one rounding per step into the accumulator) and equals
    simulator.gemm of the datapath on the same codes, in Amaranth's simulator and on
    Icarus; its integer ports are the codes' width."""
    from rtl.verify import run_icarus

    dp = Datapath.parse(text)
    pe = rtl.build(dp)
    assert pe.kind == "FloatMac" and pe.datapath == dp
    assert len(pe.b.as_value()) == dp.b.bits
    v = make_vectors(pe, n=96, seed=4)
    assert v.header["reference"] == "simulator.gemm"
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
    ("a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree32 k=8", r"a tree of 32 products taken "
     r"over 4 cycles of k=8 \(BlockDot sums its whole tree per cycle"),
    ("a=e4m3 b=e4m3 acc=float32 out=bfloat16", r"the running sum rounded to out=bfloat16 "
     r"\(no accumulating PE rounds its output: follow it with a Quantizer\)"),
    ("a=int8 b=int4 acc=int32 lut=true", r"table lookups with a running sum"),
    ("a=int8 b=uint4_g32_asym acc=float32,nearest_even,tree32", r"zero points "
     r"\(uint4_g32_asym: ShiftAddPe takes symmetric groups\)"),
    ("a=int8 b=int4_g32 acc=float32,nearest_even,tree16", r"a group of 32 summed in trees of "
     r"16"),
    ("a=int8 b=int4_g32 acc=float32,nearest_even,tree32,chunk64->float32", r"chunked "
     r"promotion, rounded products or a rounded tree sum in ShiftAddPe"),
    ("a=int8 b=int4 acc=exact,tree4 terms=8", r"2 trees of 4 products per output "
     r"\(BipolarPe sums one tree: terms = k\)"),
    ("a=int8 b=int4 acc=exact,tree4 terms=4 out=int16", r"an exact integer dot product "
     r"rounded to int16"),
    ("a=e4m3 b=e4m3 acc=exact,tree2 terms=2", r"a dot product of exactly 2 products of "
     r"float8_e4m3fn x float8_e4m3fn without a running sum"),
    ("a=e4m3 b=int8 acc=exact terms=1", r"a dot product of exactly 1 products"),
    ("a=e4m3 b=e4m3 acc=float32,nearest_even,tree8", r"an adder tree over scalar operands"),
    ("a=e4m3 b=mxfp4 acc=float32", r"a PE for these formats: PEs take block x block"),
    ("a=bipolar2 b=e4m3 acc=float32", r"a PE for these formats: PEs take block x block"),
    ("a=int8 b=int8 acc=fixed<8,8>", r"a PE for these formats: PEs take block x block"),
    ("a=mxfp8_e4m3 b=mxfp8_e4m3 acc=float32,toward_zero,fused32w13", r"the fused adder over "
     r"mxfp8_e4m3 x mxfp8_e4m3 \(FusedDot multiplies scalar minifloats\)"),
    ("a=int8 b=e4m3 acc=float32,toward_zero,fused8w13", r"the fused adder over int8 x "
     r"float8_e4m3fn"),
    ("a=e4m3 b=e4m3 acc=float32,toward_zero,fused8w13,products@bfloat16", r"products "
     r"rounded to bfloat16 before the fused adder \(FusedDot aligns exact products\)"),
    ("a=e4m3 b=e4m3 acc=float32,toward_zero,fused32w13 k=8", r"a fused step of 32 products "
     r"taken over 4 cycles of k=8 \(FusedDot takes a whole step per cycle"),
    ("a=e4m3 b=e4m3 acc=float32,toward_zero,fused8w13 out=bfloat16", r"the running sum "
     r"rounded to out=bfloat16"),
    ("a=e4m3 b=e4m3 acc=float16,stochastic,seed=3,fused8w10", r"stochastic rounding"),
    ("a=e4m3 b=e4m3 acc=float32,toward_zero,inf_on_overflow", r"overflow to \+-Inf in every "
     r"rounding mode \(inf_on_overflow: FusedDot's, order='fused'\)"),
])
def test_datapaths_no_pe_computes(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=r"no PE computes the datapath .*" + match):
        rtl.build(Datapath.parse(text))


#: every PE kind, with options (stages included: pipelining is not arithmetic)
EVERY_KIND = [
    lambda: rtl.IntMac("uint4", "int8", 12, overflow="saturate", stages=1),
    lambda: rtl.FloatMul("e4m3fn", "e5m2"),
    lambda: rtl.FloatMul("e3m4", "e2m3", "e4m3fn", rounding="up", overflow="saturate",
                         stages=2),
    lambda: rtl.FloatMac("e5m2", "e4m3fn", "float16", rounding="down", stages=1, chunk=12,
                         chunk_format="float32", product_format="e4m3",
                         product_rounding="toward_zero"),
    lambda: rtl.BlockDot("mxfp6_e2m3", "bfloat16", b="mxfp8_e4m3", k=4, chunk=8,
                         tree_format="float16", tree_rounding="nearest_away"),
    lambda: rtl.BlockDot("nvfp4", "float32", k=1, product_format="bfloat16"),
    lambda: rtl.Quantizer("bfloat16", "fixed<4,4>", "toward_zero", overflow="wrap",
                          stages=1),
    lambda: rtl.Quantizer("int16", "e4m3fn", overflow="saturate"),
    lambda: rtl.BipolarPe("int3", "bipolar2", 5),
    lambda: rtl.LutPe("bipolar3", "uint8", group=3, groups=2),
    lambda: rtl.LutPe("int4", "int8", group=1, groups=3),
    lambda: rtl.ShiftAddPe("int4", "int8_g64", "bfloat16", lanes=16, rounding="up",
                           overflow="saturate"),
    lambda: rtl.FusedDot("e4m3fn", "e5m2", "e8m13", n=16, align_bits=13,
                         rounding="toward_zero", align_from="exponents", stages=1, chunk=64),
    lambda: rtl.FusedDot("bfloat16", "float16", "float32", n=4, align_bits=20,
                         rounding="down", align_rounding="nearest_away", align_acc=False,
                         inf_on_overflow=True),
]


def _arithmetic(pe: Any) -> tuple:
    return pe.kind, pe.formats, {k: v for k, v in pe.parameters.items() if k != "stages"}


@pytest.mark.parametrize("make", EVERY_KIND)
def test_every_pe_builds_back_from_its_datapath(make) -> None:
    """For every PE kind: rtl.build(pe.datapath) is a PE of the same kind with the same
    formats and options (pipeline registers aside), whose datapath is the same value,
    and the datapath's text round-trips."""
    pe = make()
    dp = pe.datapath
    again = rtl.build(dp)
    assert _arithmetic(again) == _arithmetic(pe)
    assert again.datapath == dp == Datapath.parse(str(dp))


def test_every_kind_is_covered() -> None:
    assert {make().kind for make in EVERY_KIND} == set(rtl.PE_KINDS)


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
