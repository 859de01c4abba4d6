"""costmodel prices a simulator.Datapath: exactly the PE that computes it."""

from __future__ import annotations

import pytest

import costmodel
import rtl
from costmodel.features import features, features_of
from rtl.datapath import pe_options
from simulator import Accumulator, Datapath

#: datapaths with a running sum (gemm_cost runs them)
ACCUMULATING = ["a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree32",
                "a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree8",
                "a=nvfp4 b=nvfp4 acc=bfloat16,toward_zero",
                "a=e4m3 b=e5m2 acc=float16,up",
                "a=int8 b=int8 acc=int32,overflow=saturate",
                "a=e4m3 b=e4m3 acc=e3m2,nearest_even,chunk16->bfloat16,products@e5m2",
                "a=mxint8 b=mxint8 acc=float16,nearest_even,tree8@bfloat16,chunk64->e5m2,"
                "products@bfloat16",
                "a=int8 b=int8 acc=float32",
                "a=bfloat16 b=int4 acc=bfloat16,toward_zero,chunk16->float32,products@e5m2",
                "a=e4m3 b=e5m2 acc=e8m13,toward_zero,fused32w13,align_from=exponents,"
                "chunk128->float32",
                "a=e4m3 b=e4m3 acc=float16,up,fused8w10,align_rounding=nearest_even,"
                "align_acc=false"]
SHIFT_ADD = "a=int8 b=int4_g128 acc=float32,nearest_even,tree128 k=8"
#: datapaths without a running sum (terms)
FIXED_LENGTH = ["a=e4m3 b=e5m2 acc=exact terms=1 out=bfloat16,toward_zero",
                "a=float32 b=none acc=exact terms=1 out=int8",
                "a=int4 b=bipolar2 acc=exact,tree16 terms=16",
                "a=int8 b=int2 acc=exact,tree4 terms=16 lut=true"]
DATAPATHS = [*ACCUMULATING, SHIFT_ADD, *FIXED_LENGTH]


@pytest.mark.parametrize("text", DATAPATHS)
def test_priced_as_built(text: str) -> None:
    dp = Datapath.parse(text)
    built = rtl.build(dp)
    kind, opts = pe_options(dp)
    # the features read back from the built PE equal those of the datapath's options
    assert features(dp) == features_of(built) == features(kind, **opts)
    assert costmodel.estimate(dp) == costmodel.estimate(built)
    assert costmodel.energy_per_op(dp) == costmodel.energy_per_op(built)


def test_gemm_cost_reads_the_datapath() -> None:
    acc = Accumulator("float32", order="tree", tree_width=32)
    by_acc = costmodel.gemm_cost(4096, 4096, 4096, "mxfp4", "mxfp4", acc, array=(32, 32))
    by_dp = costmodel.gemm_cost(4096, 4096, 4096, Datapath("mxfp4", "mxfp4", acc),
                                array=(32, 32))
    by_text = costmodel.gemm_cost(4096, 4096, 4096, "mxfp4", "mxfp4", str(acc),
                                  array=(32, 32))
    assert by_acc == by_dp == by_text
    # the PE sums the tree width the simulation sums, not gcd(k, block size)
    assert by_dp.pe == "BlockDot" and by_dp.macs_per_cycle == 32
    assert by_dp.pe_options["k"] == "32" and by_dp.pe_options["rounding"] == "nearest_even"
    seq = costmodel.gemm_cost(64, 64, 64, Datapath("mxfp4", "mxfp4", "float32"))
    assert seq.macs_per_cycle == 1
    assert by_dp.bits["c"] == 4096 * 4096 * 32


@pytest.mark.parametrize(("acc", "match"), [
    (Accumulator("float32", order="tree", tree_width=32, product_format="int8"),
     r"no PE computes the datapath .*products rounded to int8"),
    ("float32,nearest_even,pairwise", r"pairwise summation"),
    (Accumulator("float16", rounding="stochastic", seed=0), r"stochastic rounding"),
])
def test_unbuildable_datapaths_are_not_priced(acc: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        costmodel.gemm_cost(64, 64, 64, "mxfp4", "mxfp4", acc)
    with pytest.raises(ValueError, match=match):
        costmodel.estimate(Datapath("mxfp4", "mxfp4", acc))


#: (plain, with the option) pairs: chunked promotion adds a promotion adder, a wide
#: register and a counter; rounded products add a rounder per product; a rounded tree
#: sum a rounder
PAIRS = [
    ("a=e4m3 b=e4m3 acc=float16", "a=e4m3 b=e4m3 acc=float16,nearest_even,chunk32->float32"),
    ("a=e4m3 b=e4m3 acc=float16", "a=e4m3 b=e4m3 acc=float16,nearest_even,products@bfloat16"),
    ("a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree8",
     "a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree8,chunk64->float32"),
    ("a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree8",
     "a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree8,products@e3m2"),
    ("a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree8",
     "a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree8@bfloat16"),
]


@pytest.mark.parametrize(("plain", "more"), PAIRS)
def test_promotion_and_rounders_cost_more(plain: str, more: str) -> None:
    """Synthesis (Yosys, xilinx LUTs) grows with each of these: 529 -> 1481 (chunk),
    529 -> 692 (products), 1406 -> 2505 (chunk), 1406 -> 1936 (products); the model
    prices each of them in the same direction, per PE and per GEMM."""
    p, q = Datapath.parse(plain), Datapath.parse(more)
    for target in ("xilinx", "cmos"):
        assert costmodel.estimate(q, target=target).primary > \
            costmodel.estimate(p, target=target).primary
    assert costmodel.estimate(q).ffs >= costmodel.estimate(p).ffs
    assert costmodel.energy_per_op(q) > costmodel.energy_per_op(p)
    gp, gq = costmodel.gemm_cost(256, 256, 256, p), costmodel.gemm_cost(256, 256, 256, q)
    assert gq.area > gp.area and gq.energy_pj["compute"] > gp.energy_pj["compute"]
    assert gq.cycles == gp.cycles


def test_chunked_gemm_writes_the_wide_format() -> None:
    dp = Datapath.parse("a=e4m3 b=e4m3 acc=float16,nearest_even,chunk32->float32")
    assert costmodel.gemm_cost(64, 32, 128, dp).bits["c"] == 64 * 32 * 32
    shift_add = costmodel.gemm_cost(64, 32, 256, Datapath.parse(SHIFT_ADD))
    assert shift_add.pe == "ShiftAddPe" and shift_add.macs_per_cycle == 8


@pytest.mark.parametrize("text", FIXED_LENGTH)
def test_gemm_cost_refuses_pes_without_a_running_sum(text: str) -> None:
    with pytest.raises(ValueError, match=r"gemm_cost runs a GEMM on accumulating PEs; the "
                       r"datapath .* is a \w+ without a running sum \(terms=\d+\)"):
        costmodel.gemm_cost(8, 8, 8, Datapath.parse(text))


def test_gemm_cost_datapath_argument_errors() -> None:
    dp = Datapath.parse(ACCUMULATING[0])
    with pytest.raises(ValueError, match="either a datapath or a_format and b_format"):
        costmodel.gemm_cost(8, 8, 8, dp, "mxfp4")
    with pytest.raises(TypeError, match="gemm_cost needs b_format"):
        costmodel.gemm_cost(8, 8, 8, "mxfp4")
    with pytest.raises(ValueError, match=r"^a simulator\.Datapath takes no options; the "
                       r"datapath holds them, not stages$"):
        costmodel.estimate(dp, stages=1)


#: the H100 FP8 fused adder (Accumulator.named("h100_fp8_fast_accum")) at other widths
FUSED = "a=e4m3 b=e4m3 acc=e8m13,toward_zero,fused{n}w{w},align_from=exponents"


def test_fused_adder_cost_grows_with_its_terms_and_window() -> None:
    """The fused adder is priced from its width: more products per step (multipliers,
    shifters, a deeper adder tree) and a wider window (wider shifters and adders) cost
    more area and energy per step (Yosys, xilinx LUTs: 2316 for 8 products, 7562 for
    32); a GEMM on it takes n products per cycle, so fewer cycles."""
    def dp(n: int, w: int) -> Datapath:
        return Datapath.parse(FUSED.format(n=n, w=w))

    for target in ("xilinx", "cmos"):
        cost = {(n, w): costmodel.estimate(dp(n, w), target=target).primary
                for n, w in ((8, 13), (16, 13), (32, 13), (32, 25))}
        assert cost[8, 13] < cost[16, 13] < cost[32, 13] < cost[32, 25]
    assert costmodel.energy_per_op(dp(8, 13)) < costmodel.energy_per_op(dp(32, 13)) \
        < costmodel.energy_per_op(dp(32, 25))
    g8, g32 = (costmodel.gemm_cost(512, 512, 512, dp(n, 13)) for n in (8, 32))
    assert g8.pe == g32.pe == "FusedDot"
    assert (g8.macs_per_cycle, g32.macs_per_cycle) == (8, 32)
    assert g32.cycles < g8.cycles and g32.area > g8.area
    assert g32.pe_options["align_bits"] == "13" and g32.pe_options["n"] == "32"
    # the named model is the 32-product, 13-bit step; torch._scaled_mm adds the float32
    # promotion (its register and adder), written out in float32
    named = Datapath("e4m3", "e4m3", Accumulator.named("h100_fp8_fast_accum"))
    assert costmodel.estimate(named) == costmodel.estimate(dp(32, 13))
    scaled = Datapath("e4m3", "e4m3", Accumulator.named("h100_fp8_scaled_mm"))
    assert costmodel.estimate(scaled).primary > costmodel.estimate(named).primary
    assert costmodel.gemm_cost(64, 64, 256, scaled).bits["c"] == 64 * 64 * 32
