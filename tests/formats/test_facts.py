"""Derived facts of formats (precision, LSB exponent range, stored bits) against
independent computation: exact rationals over every value, ml_dtypes' finfo, and counts
of the codes an encoding actually holds."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import formats
from formats import BlockScaled, Format, Minifloat, parse
from formats import testing as ft

SCALAR = [n for n, f in formats.NAMED.items() if isinstance(f, Format) and f.bits <= 16]


def _lowbit(v: Fraction) -> int:
    """Exponent of the lowest set bit of a nonzero dyadic rational."""
    num, den = abs(v.numerator), v.denominator
    assert den & (den - 1) == 0, "format values are dyadic"
    return (num & -num).bit_length() - 1 - (den.bit_length() - 1)


def _floor_log2(v: Fraction) -> int:
    e = abs(v.numerator).bit_length() - v.denominator.bit_length()
    return e if Fraction(2) ** e <= abs(v) else e - 1


def check_significand_facts(fmt: Format) -> None:
    """Every finite value is +-m * 2**e, integer m < 2**precision, e in the LSB range;
    every bound is tight."""
    vals = [Fraction(float(v)) for v in fmt.finite_values() if v != 0]
    p, lo, hi = fmt.precision, fmt.lsb_exp_min, fmt.lsb_exp_max
    assert lo <= hi
    lows = [_lowbit(v) for v in vals]
    assert min(lows) == lo, (fmt, min(lows), lo)  # the quantum, and an odd multiple of it
    for v, low in zip(vals, lows):
        e = min(low, hi)  # the largest LSB the format allows this value
        m = abs(v) / Fraction(2) ** e
        assert m.denominator == 1 and m < 2**p, (fmt, v, e, m)
    top = max(abs(v) for v in vals)
    assert _floor_log2(top) == hi + p - 1, (fmt, top, hi, p)


@pytest.mark.parametrize("name", SCALAR)
def test_significand_facts_of_named_formats(name: str) -> None:
    check_significand_facts(parse(name))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ft.formats_strategy(max_bits=10))
def test_significand_facts_of_random_formats(fmt: Format) -> None:
    check_significand_facts(fmt)
    if isinstance(fmt, Minifloat):
        assert fmt.precision == fmt.man_bits + 1


ML = ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
      "float8_e4m3b11fnuz", "float8_e3m4", "float8_e4m3", "float6_e3m2fn", "float6_e2m3fn",
      "float4_e2m1fn", "float8_e8m0fnu", "bfloat16", "float16", "float32", "float64"]


@pytest.mark.parametrize("name", ML)
def test_minifloat_facts_match_ml_dtypes_finfo(name: str) -> None:
    dt = getattr(ml_dtypes, name, None) or np.dtype(name).type
    fi = ml_dtypes.finfo(dt)
    f = parse(name)
    assert f.precision == fi.nmant + 1
    assert f.lsb_exp_max == fi.maxexp - 1 - fi.nmant  # finfo's maxexp is emax + 1
    assert f.lsb_exp_min == math.log2(float(fi.smallest_subnormal))


def test_minifloat_whose_values_are_not_float64_is_refused() -> None:
    # without subnormals the lowest binade's LSB is emin - man_bits: 2**-1074 * 1.25 is no
    # float64, so bias 1074 (emin = -1074) is refused for man_bits = 2; 1072 is the limit
    with pytest.raises(ValueError, match=r"bias must be in 1023\.\.1072 for exp_bits=11, "
                                         r"man_bits=2 .* not 1074"):
        Minifloat(11, 2, bias=1074, subnormals=False)
    f = Minifloat(11, 2, bias=1072, subnormals=False)
    assert f.lsb_exp_min == -1074
    assert Fraction(f.decode(1)) == Fraction(5, 4) * Fraction(2) ** -1072


# --- stored bits ----------------------------------------------------------------------
BLOCKS = ["mxfp4", "mxfp8_e4m3", "mxfp6_e3m2", "mxint8", "nvfp4", "nvint4", "int4_g128",
          "uint4_g128_asym", "bfp8_b16",
          "block<float4_e2m1fn;ue4m3;16;rceil;tensor=bfloat16>",
          "block<float4_e2m1fn;ue4m3;16;rceil;tensor=float8_e4m3fn>",
          "block<float4_e2m1fn;float8_e8m0fnu;4x8;floor>",
          "block<int8;float16;8;nearest;axis=0>"]
SHAPES = [(3, 70), (2, 5, 33), (1, 1), (17, 16), (0, 32), (32, 0)]


def _counted_bits(f: BlockScaled, enc: Any) -> int:
    """Bits of what an encoding holds: each code at its format's width."""
    n = enc.codes.size * f.element.bits + enc.scales.size * f.scale.bits
    if enc.zeros is not None:
        n += enc.zeros.size * f.element.bits
    if enc.tensor_scale is not None:
        assert f.tensor_scale is not None
        n += f.tensor_scale.bits
    return n


@pytest.mark.parametrize("name", BLOCKS)
def test_storage_bits_count_what_an_encoding_holds(name: str) -> None:
    f = parse(name)
    assert isinstance(f, BlockScaled)
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        x = rng.standard_normal(shape) * 4
        enc = f.encode(x)
        assert f.block_grid(shape) == enc.scales.shape
        want = _counted_bits(f, enc)
        assert f.storage_bits(shape) == enc.storage_bits == want, shape
        if x.size:
            assert enc.bits_per_element == want / x.size
        else:
            assert enc.bits_per_element == f.bits_per_element
        data = enc.pack()
        assert len(data) == enc.nbytes
        back = f.unpack(data, shape)
        assert np.array_equal(back.dequantize(), enc.dequantize())
        assert back.tensor_scale == enc.tensor_scale


def test_storage_bits_by_hand() -> None:
    """A partial block still stores a scale; a tensor scale costs its format's bits."""
    mx = parse("mxfp4")  # 32 E2M1 elements + an E8M0 scale per block
    assert mx.storage_bits((3, 70)) == 3 * 70 * 4 + 3 * math.ceil(70 / 32) * 8
    nv = parse("nvfp4")  # 16 E2M1 + an E4M3 scale, a float32 tensor scale
    assert nv.storage_bits((1, 16)) == 16 * 4 + 8 + 32
    bf = parse("block<float4_e2m1fn;ue4m3;16;rceil;tensor=bfloat16>")  # 7-bit UE4M3
    assert bf.storage_bits((1, 16)) == 16 * 4 + 7 + 16
    asym = parse("uint4_g128_asym")  # a float16 scale and a 4-bit zero point per group
    assert asym.storage_bits((2, 130)) == 2 * 130 * 4 + 2 * 2 * (16 + 4)
    assert parse("e4m3").storage_bits((3, 5)) == 3 * 5 * 8
    assert parse("e4m3").storage_bits(()) == 8


@pytest.mark.parametrize("shape", [5, (-1, 2), (2.0,), "3", None, (True,)])
def test_storage_bits_refuse_bad_shapes(shape: Any) -> None:
    for f in (parse("mxfp4"), parse("e4m3")):
        with pytest.raises(ValueError, match="shape must be a tuple of non-negative ints"):
            f.storage_bits(shape)


def test_block_grid_refuses_ranks_the_blocks_do_not_fit() -> None:
    with pytest.raises(ValueError, match="rank >= 1"):
        parse("mxfp4").block_grid(())
    with pytest.raises(ValueError, match="rank >= 2 for the 2-D tiles"):
        parse("block<float4_e2m1fn;float8_e8m0fnu;4x8;floor>").block_grid((8,))
    with pytest.raises(ValueError, match=r"axis must be in -1\.\.0 for rank 1, not 3"):
        parse("block<int8;float16;8;nearest;axis=3>").block_grid((8,))


def test_pack_refuses_a_tensor_scale_its_format_cannot_hold() -> None:
    f = parse("nvfp4")
    enc = f.encode(np.linspace(-1, 1, 16).reshape(1, 16))
    bad = type(enc)(f, enc.codes, enc.scales, 1.0 + 2.0**-30, enc.saturated, enc.flushed)
    with pytest.raises(ValueError, match="tensor_scale .* is not a value of the tensor-scale "
                                         "format float32"):
        bad.pack()


@pytest.mark.parametrize("name", ["mxfp4", "nvfp4", "int4_g128", "uint4_g128_asym"])
def test_block_precision_is_the_elements(name: str) -> None:
    f = parse(name)
    assert isinstance(f, BlockScaled)
    assert f.precision == f.element.precision
    if f.zero_point:
        # code - zero point spans -q..q: as many magnitude bits as q
        q = int(f.element.max)
        assert max(abs(c - z) for c in range(q + 1) for z in range(q + 1)).bit_length() \
            == f.precision
