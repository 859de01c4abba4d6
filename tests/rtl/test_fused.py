"""FusedDot, the fused multi-term adder as tensor cores sum (``order='fused'``): the PE
``rtl.build(datapath)`` makes equals ``simulator.gemm`` of that datapath on the same codes
after every step, bit for bit, in Amaranth's simulator (and one on Icarus), on random
operands and the adder's hard cases (cancellation, products shifted out of the window,
subnormals, overflow, NaN / Inf, all-zero steps of either sign).

Each datapath compiles its own simulator kernels (5-10 s of CPU): CI checks the settings
below at small ``n`` (the H100 models' arithmetic at 4 or 8 products per step);
NUMFAB_FULL=1 adds the full-width H100 FP8 step (32 products) and more modes.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import rtl
from formats import parse
from rtl import FusedDot
from rtl.reference import decode
from rtl.sim import Mismatch, run_amaranth
from rtl.vectors import make_vectors
from simulator import Accumulator, Datapath

FULL = os.environ.get("NUMFAB_FULL") == "1"

#: the H100 FP8 models (Accumulator.named("h100_fp8_fast_accum"), "h100_fp8_scaled_mm")
#: at 8 / 4 products per step, E4M3 x E4M3 and E4M3 x E5M2
FP8 = "e8m13,toward_zero,fused{n}w13,align_from=exponents"

SETTINGS = [
    # H100 FP8, use_fast_accum=True (a narrow register, truncated)
    "a=e4m3 b=e4m3 acc=" + FP8.format(n=8),
    # H100 FP8 torch._scaled_mm: promoted into float32 every 8 products here (128 there)
    "a=e4m3 b=e5m2 acc=" + FP8.format(n=4) + ",chunk8->float32",
    # aligned by value in a window narrower than the sum's precision, the shifted-out
    # bits rounded to nearest; a float16 sum that overflows to Inf in every mode
    "a=e4m3 b=e5m2 acc=float16,toward_zero,fused4w8,align_rounding=nearest_even,"
    "inf_on_overflow",
    # the products aligned alone, then added into a bfloat16 accumulator (rounding up)
    "a=e4m3 b=e5m2 acc=bfloat16,up,fused4w9,align_acc=false",
]

SETTINGS_FULL = [
    "a=e4m3 b=e4m3 acc=" + FP8.format(n=32),
    "a=e4m3 b=e5m2 acc=" + FP8.format(n=32) + ",chunk128->float32",
    # the H100 bfloat16 / float16 models (h100_bf16_triton) at 4 and 16 products per step
    "a=bfloat16 b=bfloat16 acc=float32,toward_zero,fused4w25,align_from=exponents,"
    "inf_on_overflow",
    "a=float16 b=float16 acc=float32,toward_zero,fused16w25,align_from=exponents,"
    "inf_on_overflow",
    "a=e4m3 b=e4m3 acc=float16,nearest_away,fused4w6,align_rounding=up",
    "a=e5m2 b=e4m3 acc=float16,down,fused2w3,align_rounding=down,align_acc=false",
    "a=e5m2 b=e5m2 acc=bfloat16,nearest_even,fused3w12,align_rounding=nearest_away,"
    "align_from=exponents",
    # an accumulator without NaN / Inf (a sticky invalid flag), saturating
    "a=e4m3 b=e5m2 acc=e3m2,nearest_even,fused2w4",
    "a=e4m3fnuz b=e2m1 acc=e5m7,toward_zero,fused4w8,chunk8->bfloat16",
]


@pytest.mark.parametrize("text", SETTINGS + (SETTINGS_FULL if FULL else []))
def test_fused_pe_equals_the_simulator(text: str, tmp_path) -> None:
    """rtl.build(datapath) equals simulator.gemm of the datapath after every step. The
    first setting also runs on Icarus, pipelined (stages=1), and with a window one bit
    narrower, which the same vectors must catch (one simulator kernel per setting)."""
    dp = Datapath.parse(text)
    pe = rtl.build(dp)
    assert isinstance(pe, FusedDot) and pe.datapath == dp
    v = make_vectors(pe, n=48, seed=7)
    assert v.header["reference"] == "simulator.gemm"
    assert v.header["accumulator"] == str(dp.accumulator)
    assert run_amaranth(pe, v) == v.checks == 48
    if text == SETTINGS[2]:
        # the vectors reach the hard results: NaN, +-Inf (by overflow too), -0 and +0
        got = decode(parse("float16"), np.array([c for c in v.expected["acc"]]))
        assert np.isnan(got).any() and np.isinf(got).any()
        assert (np.signbit(got) & (got == 0)).any() and (~np.signbit(got) & (got == 0)).any()
    if text == SETTINGS[0]:
        from rtl.verify import run_icarus

        assert run_icarus(pe, v, tmp_path)["checks"] == v.checks
        kw = {"n": 8, "rounding": "toward_zero", "align_from": "exponents"}
        staged = FusedDot("e4m3", "e4m3", "e8m13", align_bits=13, stages=1, **kw)
        assert staged.latency == 2 and staged.datapath == dp
        vs = make_vectors(staged, n=24, seed=8)
        assert run_amaranth(staged, vs) == vs.checks == 24
        narrow = FusedDot("e4m3", "e4m3", "e8m13", align_bits=12, **kw)
        with pytest.raises(Mismatch, match="FusedDot on Amaranth's simulator"):
            run_amaranth(narrow, v)


def test_fused_pe_is_the_named_h100_models() -> None:
    """The PE of a named silicon model is its whole arithmetic (32 products per step,
    chunked promotion for torch._scaled_mm), reported back as the model."""
    for name, n in (("h100_fp8_fast_accum", 32), ("h100_fp8_scaled_mm", 32),
                    ("h100_bf16_triton", 16)):
        acc = Accumulator.named(name)
        a = "bfloat16" if "bf16" in name else "e4m3"
        dp = Datapath(a, a, acc)
        pe = rtl.describe(dp)
        assert pe.kind == "FusedDot" and pe.n == n and pe.datapath == dp
        assert pe.parameters["align_from"] == "exponents"


def test_fused_verilog_is_deterministic() -> None:
    make = lambda: FusedDot("e4m3", "e5m2", "float16", n=4, align_bits=11,  # noqa: E731
                            align_rounding="nearest_even", inf_on_overflow=True, chunk=8)
    text = rtl.to_verilog(make(), "fused")
    assert text == rtl.to_verilog(make(), "fused")
    assert "module fused" in text
    m = rtl.manifest(make(), "fused")
    ports = {p["name"]: p for p in m["ports"]}
    assert ports["a"]["elements"] == 4 and ports["a"]["width"] == 32
    assert ports["acc"]["width"] == 32  # the float32 chunk register


@pytest.mark.parametrize(("kw", "exc", "match"), [
    ({"n": 0}, ValueError, r"^n must be an int in 1\.\.256, not 0$"),
    ({"n": True}, ValueError, r"^n must be an int in 1\.\.256, not True$"),
    ({"align_bits": 0}, ValueError, r"align_bits \(the fused adder's window\) must be an int "
     r"in 1\.\.\d+ for tree_width 32, not 0"),
    ({"rounding": "stochastic"}, ValueError, r"^rounding must be deterministic in hardware"),
    ({"align_rounding": "stochastic"}, ValueError, r"^align_rounding must be deterministic"),
    ({"align_from": "operands"}, ValueError, r"^align_from must be 'value' or 'exponents', "
     r"not 'operands'$"),
    ({"align_acc": 1}, TypeError, r"^align_acc must be a bool, not 1$"),
    ({"inf_on_overflow": True, "overflow": "saturate"}, ValueError,
     r"inf_on_overflow needs overflow='inf', not 'saturate'"),
    ({"chunk": 12}, ValueError, r"^chunk must be an int in 1\.\.\d+ a multiple of k=32"),
    ({"stages": 2}, ValueError, r"^stages must be an int in 0\.\.1, not 2$"),
    ({"a": "int8"}, TypeError, r"^a must be a minifloat format"),
    ({"acc": "e8m0"}, TypeError, r"^acc must be a signed minifloat with subnormals"),
])
def test_fused_pe_options_are_checked(kw, exc, match) -> None:
    with pytest.raises(exc, match=match):
        FusedDot(**kw)
