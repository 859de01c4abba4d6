"""costmodel prices a simulator.Datapath: exactly the PE that computes it."""

from __future__ import annotations

import pytest

import costmodel
import rtl
from costmodel.features import features, features_of
from rtl.datapath import pe_options
from simulator import Accumulator, Datapath

DATAPATHS = ["a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree32",
             "a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree8",
             "a=nvfp4 b=nvfp4 acc=bfloat16,toward_zero",
             "a=e4m3 b=e5m2 acc=float16,up",
             "a=int8 b=int8 acc=int32,overflow=saturate"]


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


def test_gemm_cost_datapath_argument_errors() -> None:
    dp = Datapath.parse(DATAPATHS[0])
    with pytest.raises(ValueError, match="either a datapath or a_format and b_format"):
        costmodel.gemm_cost(8, 8, 8, dp, "mxfp4")
    with pytest.raises(TypeError, match="gemm_cost needs b_format"):
        costmodel.gemm_cost(8, 8, 8, "mxfp4")
