"""Every processing element against its reference model, in Amaranth's simulator.

References (rtl.reference): torch dtypes and integer ops where torch has the formats,
formats/ encode and simulator.gemm / bipolar_gemm / lut_gemm elsewhere.

Each accumulator simulator.gemm runs compiles its own kernels (5-20 s of CPU), so CI
checks one accumulator per behaviour (each rounding direction, saturation, a format
without NaN, pipelining, each PE shape); NUMFAB_FULL=1 adds the ``*_FULL`` cases.
"""

from __future__ import annotations

import os

import pytest

from formats import BlockScaled, ScaleRule, parse
from rtl import BipolarPe, BlockDot, FloatMac, FloatMul, IntMac, LutPe, Quantizer, ShiftAddPe
from rtl.sim import Mismatch, run_amaranth
from rtl.vectors import make_vectors

ROUNDINGS = ["nearest_even", "nearest_away", "toward_zero", "up", "down"]
NVFP4_NO_TS = BlockScaled(parse("e2m1"), parse("float8_e4m3fn"), 16,
                          scale_rule=ScaleRule.NEAREST)
FULL = os.environ.get("NUMFAB_FULL") == "1"


def check(pe, n=200, seed=0, want_ref=None):
    v = make_vectors(pe, n=n, seed=seed)
    if want_ref is not None:
        assert v.header["reference"] == want_ref
    assert v.checks >= min(n, 8)
    assert run_amaranth(pe, v) == v.checks


@pytest.mark.parametrize("src,dst,kw,ref", [
    ("float32", "e4m3fn", {}, "formats"),
    ("float32", "e4m3fn", {"overflow": "saturate"}, "torch"),
    ("float32", "e5m2", {}, "torch"),
    ("float32", "bfloat16", {}, "torch"),
    ("float32", "e4m3fnuz", {}, "torch"),
    ("float32", "e4m3fnuz", {"overflow": "saturate"}, "formats"),
    ("bfloat16", "e2m1", {}, "formats"),
    ("float16", "float6_e3m2fn", {}, "formats"),
    ("e4m3fn", "float16", {}, "torch"),
    ("e5m2", "e3m4b5", {}, "formats"),
    ("float32", "int8", {}, "torch"),
    ("float16", "int4", {"overflow": "wrap"}, "formats"),
    ("float32", "fixed<4,4>", {}, "formats"),
    ("int16", "e4m3fn", {"overflow": "saturate"}, "formats"),
    ("float32", "float16", {}, "torch"),
    ("float32", "float16", {"overflow": "saturate"}, "formats"),
    ("e5m2", "e5m2", {"overflow": "saturate"}, "formats"),
    ("float32", "int32", {}, "torch"),
])
def test_quantizer(src, dst, kw, ref):
    check(Quantizer(src, dst, **kw), n=300, want_ref=ref)


@pytest.mark.parametrize("mode", ROUNDINGS)
def test_quantizer_rounding_modes(mode):
    check(Quantizer("float32", "float16", mode), n=300)
    check(Quantizer("float32", "e4m3fn", mode, overflow="saturate"), n=200, seed=1)


@pytest.mark.parametrize("a,b,out,kw", [
    ("e4m3fn", "e4m3fn", None, {}),
    ("e4m3fn", "e5m2", "bfloat16", {}),
    ("e2m1", "e2m1", None, {}),
    ("e2m3", "e3m2", "e4m3fn", {}),
    ("e5m2", "e5m2", "e4m3fn", {"overflow": "saturate"}),
    ("float16", "float16", "float16", {}),
    ("bfloat16", "bfloat16", "bfloat16", {}),
    ("float32", "float32", "float32", {}),
    ("e4m3fnuz", "e5m2fnuz", "e4m3fnuz", {}),
    ("e3m4b5", "e4m3fn", "float16", {"stages": 2}),
    ("e5m2", "e5m2", "e5m2", {"overflow": "saturate", "rounding": "up"}),
    ("float16", "float16", "float16", {"overflow": "saturate"}),
])
def test_float_mul(a, b, out, kw):
    check(FloatMul(a, b, out, **kw), n=300)


@pytest.mark.parametrize("mode", ROUNDINGS)
def test_float_mul_rounding_modes(mode):
    check(FloatMul("e4m3fn", "e4m3fn", "e3m2", rounding=mode), n=300)


FLOAT_MAC = [
    ("e4m3fn", "e4m3fn", "float32", {}),
    ("e5m2", "e4m3fn", "float16", {}),
    ("e4m3fn", "e4m3fn", "bfloat16", {"stages": 1}),
    ("e2m1", "e2m1", "e6m9", {}),
    ("float16", "float16", "float32", {}),
    ("e4m3fn", "e4m3fn", "float16", {"rounding": "up", "overflow": "saturate"}),
    ("e5m2", "e5m2", "e5m2", {"overflow": "saturate"}),
    ("e4m3fn", "e4m3fn", "e2m1", {}),
    ("float16", "e2m1", "e3m2", {"rounding": "toward_zero"}),
]
#: toward zero, rounding down and an E2M1 accumulator once more each
FLOAT_MAC_FULL = [
    ("e4m3fn", "e4m3fn", "e5m2", {"rounding": "toward_zero"}),
    ("e4m3fn", "e5m2", "float16", {"rounding": "down"}),
    ("float16", "float16", "e2m1", {}),
]


@pytest.mark.parametrize("a,b,acc,kw", FLOAT_MAC + (FLOAT_MAC_FULL if FULL else []))
def test_float_mac(a, b, acc, kw):
    check(FloatMac(a, b, acc, **kw), n=96)


@pytest.mark.parametrize("fmt,acc,kw", [
    ("mxfp8_e4m3", "float32", {"k": 8}),
    ("mxfp8_e5m2", "float32", {"k": 8}),
    ("mxfp6_e3m2", "bfloat16", {"k": 8}),
    ("mxfp6_e2m3", "float32", {"k": 4, "stages": 1}),
    ("mxfp4", "float32", {}),
    ("mxint8", "float32", {"k": 8}),
    (NVFP4_NO_TS, "float32", {}),
    ("nvfp4", "float32", {"k": 8}),
    ("nvint4", "float32", {"k": 8}),
    ("mxint8_full", "float32", {"k": 8}),
    ("bfp8_b16", "float32", {}),
])
def test_block_dot(fmt, acc, kw):
    check(BlockDot(fmt, acc, **kw), n=64)


@pytest.mark.parametrize("fmt,acc,seed", [("mxint8", "e5m2", 0),
                                          *([("mxfp4", "float16", 1)] if FULL else [])])
def test_block_dot_directed_rounding_tiny_sums(fmt, acc, seed):
    """Rounding up lifts tiny sums to a subnormal: the simulator's exact-add shortcut
    must account for it (it once dropped such addends)."""
    check(BlockDot(fmt, acc, k=8, rounding="up"), n=64, seed=seed)


def test_block_dot_mixed_operands():
    check(BlockDot("mxfp8_e4m3", "float32", b="mxfp8_e5m2", k=8), n=64)


@pytest.mark.parametrize("a,b,bits,kw", [
    ("int8", "int8", 32, {}),
    ("int8", "int8", 16, {}),
    ("int8", "int8", 16, {"overflow": "saturate"}),
    ("uint4", "int8", 12, {"stages": 1}),
])
def test_int_mac(a, b, bits, kw):
    check(IntMac(a, b, bits, **kw), n=300, want_ref="torch + simulator.gemm (agree)")


@pytest.mark.parametrize("a,b,k", [("bipolar1", "bipolar1", 32), ("bipolar4", "bipolar4", 16),
                                   ("int4", "int4", 16), ("int8", "int2", 8),
                                   ("int3", "bipolar2", 5)])
def test_bipolar_pe(a, b, k):
    check(BipolarPe(a, b, k), n=160)


@pytest.mark.parametrize("w,x,group,groups", [("int4", "int8", 4, 2), ("int2", "int8", 4, 4),
                                              ("bipolar3", "int8", 4, 1),
                                              ("int4", "int4", 3, 2), ("int8", "uint8", 2, 2)])
def test_lut_pe(w, x, group, groups):
    check(LutPe(w, x, group=group, groups=groups), n=160)


#: CI: the group test_icarus runs too (one accumulator); NUMFAB_FULL=1 adds larger groups
SHIFT_ADD = [("int8", "int4_g32", "bfloat16", 8),
             *([("int8", "int4_g128", "float32", 32), ("int4", "int8_g64", "float32", 16)]
               if FULL else [])]


@pytest.mark.parametrize("x,w,acc,lanes", SHIFT_ADD)
def test_shift_add_pe(x, w, acc, lanes):
    check(ShiftAddPe(x, w, acc, lanes=lanes), n=64)


def test_shift_add_clear_mid_group():
    """clear with en restarts the group's partial sum, even mid-group."""
    from rtl.vectors import Vectors

    pe = ShiftAddPe("int8", "int4_g32", "float32", lanes=16)  # two steps per group
    one = 0x3C00  # float16 1.0
    x = [1] * 16
    w = [1] * 16
    pack = sum(v << (8 * i) for i, v in enumerate(x)), sum(v << (4 * i) for i, v in enumerate(w))
    steps = [  # (clear, last): an aborted half group, then a clean group of 32 products
        (1, 0), (1, 0), (0, 1)]
    v = Vectors("ShiftAddPe", True, 1,
                {"x": [pack[0]] * 3, "w": [pack[1]] * 3, "scale": [one] * 3, "en": [1] * 3,
                 "clear": [c for c, _ in steps], "last": [ls for _, ls in steps]},
                {"acc": [None, None, 0x42000000]}, {})  # 32.0
    assert run_amaranth(pe, v) == 1


@pytest.mark.parametrize(("make", "exc", "match"), [
    (lambda: FloatMac(chunk=0), ValueError,
     r"^chunk must be an int in 1\.\.1048576 \(products per promotion into the wide "
     r"register\), not 0$"),
    (lambda: BlockDot("mxfp4", k=8, chunk=12), ValueError,
     r"^chunk must be an int in 1\.\.1048576 a multiple of k=8 \(products per promotion"),
    (lambda: FloatMac(chunk_format="float32"), ValueError,
     r"^chunk_format \(float32\) needs chunk"),
    (lambda: FloatMac(chunk=8, chunk_format="int16"), TypeError,
     r"^chunk_format must be a minifloat format"),
    (lambda: FloatMac(chunk=8, chunk_format="e8m0"), TypeError,
     r"^chunk_format must be a signed minifloat with subnormals"),
    (lambda: FloatMac(product_format="int8"), TypeError,
     r"^product_format must be a minifloat format for a floating-point accumulator, not int8"),
    (lambda: FloatMac(product_format="e4m3", product_rounding="stochastic"), ValueError,
     r"^product_rounding must be deterministic in hardware"),
    (lambda: FloatMul(rounding="up"), ValueError, r"^rounding and overflow apply to out: the "
     r"exact product \(out=None\) is never rounded"),
    (lambda: FloatMul(overflow="saturate"), ValueError, r"^rounding and overflow apply to out"),
    (lambda: BlockDot("mxfp4", k=1, tree_format="bfloat16"), ValueError,
     r"^tree_format \(bfloat16\) needs k > 1: a tree of one product has no sum to round$"),
])
def test_promotion_and_rounding_options_are_checked(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_wide_formats_have_no_vectors():
    with pytest.raises(ValueError, match="at most 32 bits"):
        make_vectors(Quantizer("float64", "float32"))


def test_mismatch_is_reported():
    """A corrupted expected value must fail, naming the cycle."""
    pe = FloatMul("e4m3fn", "e4m3fn", "e4m3fn")
    v = make_vectors(pe, n=20)
    t = next(i for i, e in enumerate(v.expected["p"]) if e is not None)
    v.expected["p"][t] ^= 1
    with pytest.raises(Mismatch, match=f"cycle {t}: p="):
        run_amaranth(pe, v)


def test_block_dot_special_values():
    """NaN scales and elements, Inf x 0, Inf - Inf inside a block and across blocks,
    overflow and underflow of the scaled block sum: hand-derived float32 results."""
    from rtl.vectors import Vectors

    pe = BlockDot("mxfp8_e5m2", "float32", k=4)
    one, inf, ninf, nan_el, big = 0x3C, 0x7C, 0xFC, 0x7D, 0x7B  # e5m2 codes
    nan32, inf32 = 0x7FC00000, 0x7F800000

    def lanes(*codes):
        codes = list(codes) + [0] * (4 - len(codes))
        return sum(c << (8 * i) for i, c in enumerate(codes))

    steps = [  # a, b, sa, sb, clear, expected acc
        (lanes(one), lanes(one), 0xFF, 127, 1, nan32),          # NaN scale
        (lanes(inf), lanes(one), 127, 127, 1, inf32),           # Inf x 1
        (lanes(inf), lanes(0), 127, 127, 1, nan32),             # Inf x 0
        (lanes(inf, ninf), lanes(one, one), 127, 127, 1, nan32),  # Inf - Inf in a block
        (lanes(inf), lanes(one), 127, 127, 1, inf32),
        (lanes(ninf), lanes(one), 127, 127, 0, nan32),          # +Inf then -Inf
        (lanes(big, big, big, big), lanes(big, big, big, big), 254, 254, 1, inf32),
        (lanes(0x80), lanes(0), 127, 127, 1, 0),                # +0 + (-0 x +0) = +0
        (lanes(nan_el), lanes(one), 127, 127, 1, nan32),        # NaN element
        (lanes(one), lanes(one), 0, 0, 1, 0),                   # 2**-254 underflows to +0
        (lanes(one), lanes(one), 127, 128, 1, 0x40000000),      # 1 x 1 x 2 = 2.0
    ]
    cols = list(zip(*steps))
    v = Vectors("BlockDot", True, 1,
                {"a": list(cols[0]), "b": list(cols[1]), "sa": list(cols[2]),
                 "sb": list(cols[3]), "en": [1] * len(steps), "clear": list(cols[4])},
                {"acc": list(cols[5])}, {})
    assert run_amaranth(pe, v) == len(steps)
