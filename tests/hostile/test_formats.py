"""Hostile input to formats/: exact values for inputs float64 cannot hold, fast bipolar,
and a clear ValueError/TypeError, naming the parameter, for every malformed name,
constructor argument, code and input (issue 15).

Correct values come from oracles written here with fractions.Fraction (rounding to a
binary float of p bits, to integers, to odd integers) or from ml_dtypes' casts."""

from __future__ import annotations

import math
import sys
import time
from decimal import Decimal
from fractions import Fraction
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch

from formats import (
    BipolarInt,
    BlockScaled,
    FixedPoint,
    Integer,
    Lut,
    Minifloat,
    bfp,
    grouped_int,
    parse,
)

MODES = ("nearest_even", "nearest_away", "toward_zero", "up", "down")
DBL_MAX = Fraction(sys.float_info.max)


# --- oracles ------------------------------------------------------------------------
def round_int(v: Fraction, mode: str) -> int:
    """``v`` rounded to an integer under ``mode``, by exact rational arithmetic."""
    if mode == "nearest_even":
        return round(v)
    if mode == "nearest_away":
        return int(math.floor(abs(v) + Fraction(1, 2))) * (1 if v >= 0 else -1)
    if mode == "toward_zero":
        return math.trunc(v)
    return math.ceil(v) if mode == "up" else math.floor(v)


def round_binary(x: Fraction, p: int, emin: int, mode: str) -> Fraction:
    """``x`` rounded to a binary float of ``p`` significant bits and least normal
    exponent ``emin`` with unbounded exponent range (overflow is checked by callers)."""
    if x == 0:
        return Fraction(0)
    a = abs(x)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    unit = Fraction(2) ** (max(e, emin) - p + 1)
    return round_int(x / unit, mode) * unit


def float_round(x: Fraction, p: int, emin: int, fmax: Fraction, mode: str) -> float:
    """IEEE-style rounding of ``x`` (inf overflow): the float64 value of the result."""
    r = round_binary(x, p, emin, mode)
    if abs(r) > fmax:
        toward = mode == "toward_zero" or (mode == "down" and x > 0) or (mode == "up" and x < 0)
        sign = 1.0 if x > 0 else -1.0
        return sign * float(fmax) if toward else sign * math.inf
    if r == 0:
        return math.copysign(0.0, float(x)) if x != 0 else 0.0
    return float(r)


F64 = (53, -1022, DBL_MAX)
F32 = (24, -126, Fraction(float(np.finfo(np.float32).max)))
E4M3 = (4, -6, Fraction(448))


def same(got: float, want: float) -> bool:
    """Equal, with equal signs of zero."""
    return got == want and math.copysign(1.0, got) == math.copysign(1.0, want)


# --- items 1 and 2: exact rounding of integers, Fractions, longdouble, Decimal -------
EXACT_FLOAT_CASES = [
    # (id, format name, oracle parameters, input, exact value)
    ("f64-int-2^53+1", "float64", F64, 2**53 + 1, Fraction(2**53 + 1)),
    ("f64-int64arr-2^53+1", "float64", F64, np.array([2**53 + 1], np.int64), Fraction(2**53 + 1)),
    ("f64-uint64-max", "float64", F64, np.array([2**64 - 1], np.uint64), Fraction(2**64 - 1)),
    ("f64-int64-max", "float64", F64, np.array([2**63 - 1], np.int64), Fraction(2**63 - 1)),
    ("f64-objint-neg", "float64", F64, np.array([-(2**70) - 1], object), Fraction(-(2**70) - 1)),
    ("f32-int-2^53+1", "float32", F32, 2**53 + 1, Fraction(2**53 + 1)),
    ("f32-int-2^24+1", "float32", F32, np.array([2**24 + 1]), Fraction(2**24 + 1)),
    ("f64-third", "float64", F64, Fraction(1, 3), Fraction(1, 3)),
    ("f64-neg-third", "float64", F64, Fraction(-1, 3), Fraction(-1, 3)),
    ("f64-tie-plus", "float64", F64, 1 + Fraction(1, 2**53), 1 + Fraction(1, 2**53)),
    ("f64-tie-odd", "float64", F64, 1 + Fraction(3, 2**53), 1 + Fraction(3, 2**53)),
    ("f64-tiny-pos", "float64", F64, Fraction(1, 2**1100), Fraction(1, 2**1100)),
    ("f64-tiny-neg", "float64", F64, -Fraction(1, 2**1100), -Fraction(1, 2**1100)),
    ("f64-subnormal-tie", "float64", F64, Fraction(3, 2**1075), Fraction(3, 2**1075)),
    ("f64-huge", "float64", F64, Fraction(2**1100), Fraction(2**1100)),
    ("f64-below-overflow", "float64", F64, Fraction(2**1024 - 2**970 - 1),
     Fraction(2**1024 - 2**970 - 1)),
    ("f64-overflow-tie", "float64", F64, -Fraction(2**1024 - 2**970), -Fraction(2**1024 - 2**970)),
    ("f64-decimal", "float64", F64, Decimal("0.1"), Fraction(Decimal("0.1"))),
    ("f64-obj-decimal", "float64", F64, np.array([Decimal("-2.5e-400")], object),
     Fraction(Decimal("-2.5e-400"))),
    ("e4m3-issue", "e4m3", E4M3, Fraction(17, 16) + Fraction(1, 2**70),
     Fraction(17, 16) + Fraction(1, 2**70)),
    ("e4m3-below-tie", "e4m3", E4M3, Fraction(17, 16) - Fraction(1, 2**70),
     Fraction(17, 16) - Fraction(1, 2**70)),
    ("e4m3-obj-fraction", "e4m3", E4M3, np.array([Fraction(-465, 1) + Fraction(1, 10**30)], object),
     Fraction(-465) + Fraction(1, 10**30)),
    ("bf16-int", "bf16", (8, -126, Fraction(float(ml_dtypes.finfo(ml_dtypes.bfloat16).max))),
     2**60 + 2**52 + 1, Fraction(2**60 + 2**52 + 1)),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "name,fparams,x,exact", [c[1:] for c in EXACT_FLOAT_CASES],
    ids=[c[0] for c in EXACT_FLOAT_CASES],
)
def test_exact_inputs_round_once(name: str, fparams: tuple[int, int, Fraction], x: Any,
                                 exact: Fraction, mode: str) -> None:
    fmt = parse(name)
    got = np.asarray(fmt.quantize(x, mode), np.float64).reshape(-1)[0]
    want = float_round(exact, *fparams, mode)
    if name == "e4m3" and math.isinf(want):  # E4M3FN has no Inf: overflow is NaN
        want = math.nan
    assert same(float(got), want) or (math.isnan(got) and math.isnan(want)), (got, want)


@pytest.mark.parametrize("mode", MODES)
def test_longdouble_rounds_from_its_exact_value(mode: str) -> None:
    x = np.longdouble(1) / np.longdouble(3)
    exact = Fraction(*x.as_integer_ratio())
    got = parse("float64").quantize(np.array([x, -x]), mode)
    assert same(got[0], float_round(exact, *F64, mode))
    assert same(got[1], float_round(-exact, *F64, mode))


INT_CASES = [
    ("int8", 2**60 + 1, "wrap"),
    ("int8", -(2**64) - 129, "wrap"),
    ("int8", 2**60 + 1, "saturate"),
    ("uint8", 2**64 + 255, "wrap"),
    ("int53", 2**52 - 1 + Fraction(1, 2) + Fraction(1, 2**80), "saturate"),
    ("fixed<63,-10>", 2**60 + 1535, "saturate"),
    ("fixed<1,52>", Fraction(1, 3), "saturate"),
    ("fixed<2,51>", -Fraction(2**200 + 1, 2**200), "wrap"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,x,overflow", INT_CASES, ids=[f"{c[0]}-{c[2]}-{i}" for i, c in
                                                            enumerate(INT_CASES)])
def test_exact_inputs_to_integers(name: str, x: Any, overflow: str, mode: str) -> None:
    fmt = parse(name)
    frac = fmt.frac_bits if isinstance(fmt, FixedPoint) else 0
    q = round_int(Fraction(x) * Fraction(2) ** frac, mode)
    half = 2 ** (fmt.bits - 1)
    lo, hi = (-half, half - 1) if fmt.signed else (0, 2 * half - 1)
    if overflow == "wrap":
        q = (q - lo) % (2**fmt.bits) + lo
    else:
        q = min(max(q, lo), hi)
    assert fmt.encode(x, mode, overflow) == q % (2**fmt.bits)
    assert fmt.quantize(np.array([x], object), mode, overflow)[0] == float(q / Fraction(2) ** frac)


@pytest.mark.parametrize("x,want", [
    (Fraction(2) + Fraction(1, 2**80), 3.0),
    (Fraction(2) - Fraction(1, 2**80), 1.0),
    (Fraction(-1, 2**1100), -1.0),
    (Fraction(1, 2**1100), 1.0),
    (2**80 + 1, 15.0),
])
def test_exact_inputs_to_bipolar(x: Any, want: float) -> None:
    # nearest odd integer in -15..15, as an exact rational decides
    assert parse("bipolar4").quantize(x) == want


def test_exact_inputs_error_policy() -> None:
    f64 = parse("float64")
    assert f64.quantize(Fraction(2**1024 - 2**970 - 1), overflow="error") == sys.float_info.max
    with pytest.raises(ValueError, match=r"1 element\(s\) of x are out of range for float64"):
        f64.quantize(Fraction(2**1024 - 2**970), overflow="error")


def test_exact_inputs_refuse_stochastic() -> None:
    with pytest.raises(ValueError, match=r"rounding='stochastic' takes values float64 holds "
                                         r"exactly; x holds 1"):
        parse("float64").quantize(Fraction(1, 3), "stochastic", seed=0)


@pytest.mark.parametrize("x", [np.array([Fraction(1, 3)] * 32, object),
                               np.array([2**53 + 1] * 32, np.int64)], ids=["fraction", "int64"])
def test_block_formats_refuse_inexact_inputs(x: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"x holds 32 value\(s\) that float64 cannot hold "
                                         r"exactly .*convert them with float\(\)"):
        parse("mxfp4").quantize(x)


# --- item 3: bipolar<n> is an arithmetic set -----------------------------------------
def bipolar_oracle(x: float, n: int) -> float:
    """Nearest odd integer in +-(2**n - 1); a tie (an even x) goes to the even code
    (code = (v + 2**n - 1) / 2), and x = +-0 follows the sign of the zero."""
    top = 2**n - 1
    if x == 0:
        return math.copysign(1.0, x)
    lo = math.floor(x)
    lo = lo if lo % 2 else lo - 1
    cands = [v for v in (lo, lo + 2) if -top <= v <= top] or [top if x > 0 else -top]
    best = min(cands, key=lambda v: (abs(Fraction(x) - v), ((v + top) // 2) % 2))
    return float(best)


@pytest.mark.parametrize("n", [1, 2, 3, 8, 12, 16])
def test_bipolar_is_fast_and_right(n: int) -> None:
    x = np.concatenate([np.arange(10.0), -np.arange(10.0), [2.0**n, -(2.0**n) - 3, 0.5]])
    t0 = time.perf_counter()
    got = parse(f"bipolar{n}").quantize(x)
    assert time.perf_counter() - t0 < 10  # bipolar16 took ~15 minutes
    assert [same(g, bipolar_oracle(float(v), n)) for g, v in zip(got, x)] == [True] * x.size


@pytest.mark.parametrize("name", ["bipolar0", "bipolar17", "bipolar<99999>"])
def test_bipolar_width_limit(name: str) -> None:
    with pytest.raises(ValueError, match=r"bits must be an integer in 1\.\.16, not \d+"):
        parse(name)


# --- item 4: malformed names --------------------------------------------------------
BAD_NAMES = [
    ("block<mxfp4;e8m0;32;floor>", r"block<\.\.\.> element must be a scalar format "
     r"\(minifloat, integer, fixed point, bipolar or lut\), not the block format 'mxfp4'"),
    ("block<e4m3;mxfp4;32;floor>", r"block<\.\.\.> scale must be a scalar format .*'mxfp4'"),
    ("block<e4m3;e8m0;32;floor;tensor=mxfp4>", r"block<\.\.\.> tensor must be a scalar format"),
    ("block<e4m3;e8m0;32;floor;tensor=nvfp4>", r"block<\.\.\.> tensor must be a scalar format"),
    ("block<block<e4m3;e8m0;32;floor>;e8m0;32;floor>", r"block formats do not nest"),
    ("block<e4m3;e8m0;4x4x4;floor>", r"size must be a positive integer or <rows>x<cols>.*'4x4x4'"),
    ("block<e4m3;e8m0;x;floor>", r"size must be a positive integer or <rows>x<cols>.*'x'"),
    ("block<e4m3;e8m0;-4;floor>", r"size must be a positive integer or <rows>x<cols>.*'-4'"),
    ("block<e4m3;e8m0;1e3;floor>", r"size must be a positive integer or <rows>x<cols>.*'1e3'"),
    ("block<e4m3;e8m0;0;floor>", r"block_size must be a positive int or a \(rows, cols\)"),
    ("block<e4m3;e8m0;0x4;floor>", r"block_size must be a positive int or a \(rows, cols\)"),
    ("block<e4m3;e8m0;100000000000;floor>", r"block_size must hold at most 16777216 \(2\*\*24\)"),
    ("block<e4m3;e8m0;8192x8192;floor>", r"block_size must hold at most 16777216 \(2\*\*24\)"),
    ("block<e4m3;e8m0;" + "9" * 40 + ";floor>", r"block<\.\.\.> size must be an integer of at "
     r"most 12 digits"),
    ("int4_g99999999999", r"block_size must hold at most 16777216"),
    ("bfp8_b0", r"block_size must be a positive int"),
    ("block<>", r"block<\.\.\.> needs block<element;scale;size;rule"),
    ("block<;;;>", r"size must be a positive integer or <rows>x<cols>.*''"),
    ("block<e4m3;e8m0;32;bogus>", r"scale_rule must be one of 'floor', 'ceil', 'even', "
     r"'rceil', 'nearest', 'mse'"),
    ("block<e4m3;e8m0;32;floor;axis=x>", r"block<\.\.\.> axis must be an integer, not 'x'"),
    ("block<e4m3;e8m0;32;floor;axis=99999>", r"block<\.\.\.> axis must be an integer"),
    ("block<e4m3;e8m0;32;floor;axis=100>", r"axis must be in -64\.\.63"),
    ("block<e4m3;e8m0;32;floor;axis=1;axis=2>", r"option 'axis' given twice"),
    ("block<e4m3;e8m0;32;floor;zero_point=1>", r"option zero_point takes no value"),
    ("block<e4m3;e8m0;32;floor;=>", r"unknown option '=' \(allowed: axis=<int>, tensor="),
    ("block<e4m3;e8m0;32;floor;round=bogus>", r"scale_rounding must be one of 'nearest_even'"),
    ("block<e4m3;e8m0;32;floor;tensor=>", r"block<\.\.\.> tensor: unknown format name ''"),
    ("block<;e8m0;32;floor>", r"block<\.\.\.> element: unknown format name ''"),
    ("block<lut[0,-0];e8m0;32;floor>", r"block<\.\.\.> element: table must hold a nonzero value"),
    ("block<lut[-1,-0.5];e8m0;32;floor>", r"element format lut\[-1\.0,-0\.5\] has no positive "
     r"values"),
    ("lut[0,-0]", r"table must hold a nonzero value, not only zeros \[0\.0, -0\.0\]"),
    ("lut[0]", r"table must hold a nonzero value"),
    ("lut[1,1]", r"table values must be distinct"),
    ("lut[1,0,-0,0]", r"table values must be distinct"),
    ("lut[nan]", r"table values must all be finite"),
    ("lut[1,inf]", r"table values must all be finite"),
    ("lut[1e400]", r"table values must all be finite"),
    ("lut[]", r"table must hold 1\.\.65536 entries, not 0"),
    ("lut[,,]", r"table must hold 1\.\.65536 entries, not 0"),
    ("lut[0x10]", r"lut\[\.\.\.\] table must be comma-separated decimal numbers"),
    ("lut[1;2]", r"lut\[\.\.\.\] table must be comma-separated decimal numbers"),
    ("lut[" + "1," * 70000 + "]", r"table must hold 1\.\.65536 entries, not 70000"),
    ("e100m100", r"exp_bits must be an integer in 1\.\.11, not 100"),
    ("e0m0", r"exp_bits must be an integer in 1\.\.11, not 0"),
    ("e12m3", r"exp_bits must be an integer in 1\.\.11, not 12"),
    ("e11m53", r"man_bits must be an integer in 0\.\.52, not 53"),
    ("e4m3b99999", r"bias must be in 0\.\.1072 for exp_bits=4, man_bits=3"),
    ("e4m3b-99999", r"bias must be in 0\.\.1072 for exp_bits=4, man_bits=3"),
    ("e2m0", r"special 'ieee' needs exp_bits >= 2 and man_bits >= 1"),
    ("e" + "9" * 5000 + "m3", r"exp_bits must be an integer of at most 12 digits"),
    ("float9_e4m3", r"float9 does not match the 8 bits"),
    ("ue4m3fnuz", r"special 'fnuz' .* needs signed=True and subnormals=True"),
    ("int0", r"bits must be an integer in 1\.\.53, not 0"),
    ("int1000", r"bits must be an integer in 1\.\.53, not 1000"),
    ("int" + "9" * 5000, r"bits must be an integer of at most 12 digits"),
    ("int1_narrow", r"narrow=True needs a signed integer of at least 2 bits"),
    ("int0_g32", r"bits must be an integer in 1\.\.53, not 0"),
    ("int4_g32_bogus", r"group scale must be one of float16, bfloat16, float32"),
    ("bfp1_b32", r"bfp mantissa bits must be an integer in 2\.\.53, not 1"),
    ("fixed<0,0>", r"int_bits \+ frac_bits must be in 1\.\.53, not 0 \+ 0 = 0"),
    ("fixed<100,100>", r"int_bits \+ frac_bits must be in 1\.\.53, not 100 \+ 100 = 200"),
    ("fixed<-5,3>", r"int_bits \+ frac_bits must be in 1\.\.53, not -5 \+ 3 = -2"),
    ("fixed<2000,-1990>", r"int_bits must be an integer in -1074\.\.1074, not 2000"),
    ("e\u0663m\u0663", r"format name must be printable ASCII"),
    ("int\u0668", r"format name must be printable ASCII"),
    ("\uff454m3", r"format name must be printable ASCII"),
    ("e4m3\x00", r"format name must be printable ASCII"),
    ("", r"unknown format name ''"),
    ("block<e4m3;e8m0;32;floor", r"unknown format name 'block<e4m3;e8m0;32;floor'"),
    ("fixed<1,2>>", r"unknown format name 'fixed<1,2>>'"),
    ("lut[1,2", r"unknown format name 'lut\[1,2'"),
    ("e4m3e4m3", r"unknown format name 'e4m3e4m3'; did you mean"),
    ("int-1", r"unknown format name 'int-1'"),
]


@pytest.mark.parametrize("name,match", BAD_NAMES, ids=[n[:40] for n, _ in BAD_NAMES])
def test_parse_refuses_clearly(name: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse(name)


@pytest.mark.parametrize("name", [None, 8, b"e4m3", ["e4m3"], 4.5])
def test_parse_needs_a_string(name: Any) -> None:
    with pytest.raises(TypeError, match=r"format name must be a str, not "):
        parse(name)


GOOD_ODD_NAMES = ["fixed<-1,3>", "lut[2,1]", "lut[0,-0,1]", "block<e4m3;e8m0;3;floor>",
                  "block<int4;uint4;32;nearest>", "block<e4m3;e8m0;32x32;floor;axis=0>",
                  "block<e4m3;e8m0; 3 ;floor>", "e1m0_finite", "bipolar<16>", "int53",
                  "block<e4m3;e8m0;16777216;floor>"]


@pytest.mark.parametrize("name", GOOD_ODD_NAMES)
def test_unusual_valid_names_round_trip(name: str) -> None:
    f = parse(name)
    assert parse(str(f)) == f


CTOR_ERRORS = [
    (lambda: BlockScaled(parse("mxfp4"), parse("e8m0"), 32), TypeError,
     r"element must be a scalar Format \(Minifloat, Integer, FixedPoint, BipolarInt, Lut\), "
     r"not the block format mxfp4"),
    (lambda: BlockScaled(parse("e4m3"), "e8m0", 32), TypeError, r"scale must be a scalar Format"),
    (lambda: BlockScaled(parse("e4m3"), parse("e8m0"), 32, tensor_scale=parse("nvfp4")),
     TypeError, r"tensor_scale must be a scalar Format .* not the block format nvfp4"),
    (lambda: BlockScaled(parse("e4m3"), parse("e8m0"), 10**12), ValueError,
     r"block_size must hold at most 16777216 \(2\*\*24\) elements per block, not 1000000000000"),
    (lambda: BlockScaled(parse("e4m3"), parse("e8m0"), (4, 4, 4)), ValueError,
     r"block_size must be a positive int or a \(rows, cols\) tuple of them, not \(4, 4, 4\)"),
    (lambda: BlockScaled(parse("e4m3"), parse("e8m0"), -3), ValueError,
     r"block_size must be a positive int .*not -3"),
    (lambda: BlockScaled(parse("e4m3"), parse("e8m0"), True), ValueError,
     r"block_size must be a positive int .*not True"),
    (lambda: BlockScaled(parse("e4m3"), parse("e8m0"), 32.0), ValueError,
     r"block_size must be a positive int .*not 32\.0"),
    (lambda: BlockScaled(parse("e4m3"), parse("e8m0"), 32, axis=1000), ValueError,
     r"axis must be in -64\.\.63 \(numpy's dimension limit\), not 1000"),
    (lambda: BlockScaled(parse("e4m3"), parse("e8m0"), 32, axis="0"), TypeError,
     r"axis must be an int, not '0'"),
    (lambda: BlockScaled(Lut((-1.0, -0.5)), parse("e8m0"), 32), ValueError,
     r"element format lut\[-1\.0,-0\.5\] has no positive values"),
    (lambda: Lut((0.0, -0.0)), ValueError, r"table must hold a nonzero value"),
    (lambda: Lut(()), ValueError, r"table must hold 1\.\.65536 entries, not 0"),
    (lambda: Lut(((1.0, 2.0),)), TypeError, r"table must be a 1-D sequence of real numbers"),
    (lambda: Lut(5.0), TypeError, r"table must be a 1-D sequence of real numbers"),
    (lambda: Lut(("a", "b")), TypeError, r"table must be a sequence of real numbers"),
    (lambda: Minifloat("4", 3), TypeError, r"exp_bits must be an integer, not '4'"),
    (lambda: Minifloat(4, 3, special="bogus"), ValueError,
     r"special must be one of 'ieee', 'fn', 'fnuz', 'finite'"),
    (lambda: Minifloat(4, 3, bias=1.5), TypeError, r"bias must be an integer, not 1\.5"),
    (lambda: Integer(4.0), TypeError, r"bits must be an integer, not 4\.0"),
    (lambda: Integer(8, signed="yes"), TypeError, r"signed must be a bool, not 'yes'"),
    (lambda: FixedPoint(-1, 1), ValueError, r"int_bits \+ frac_bits must be in 1\.\.53"),
    (lambda: BipolarInt(17), ValueError, r"bits must be an integer in 1\.\.16, not 17"),
    (lambda: bfp("8", 32), TypeError, r"bfp mantissa bits must be an integer, not '8'"),
    (lambda: grouped_int(4, 0), ValueError, r"block_size must be a positive int"),
    (lambda: grouped_int(4, 32, "e4m3"), ValueError, r"group scale must be one of"),
]


@pytest.mark.parametrize("make,exc,match", CTOR_ERRORS,
                         ids=[f"ctor{i}" for i in range(len(CTOR_ERRORS))])
def test_constructors_refuse_clearly(make: Any, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("x", [np.array(3.0), np.float64(3.0), 3.0, torch.tensor(3.0)],
                         ids=["0d-array", "np-scalar", "float", "0d-tensor"])
@pytest.mark.parametrize("op", ["quantize", "encode"])
def test_block_formats_refuse_0d_inputs(x: Any, op: str) -> None:
    with pytest.raises(ValueError, match=r"x must be an array of rank >= 1 for the block format "
                                         r"mxfp4, not a 0-d scalar"):
        getattr(parse("mxfp4"), op)(x)


def test_tiles_refuse_1d_inputs() -> None:
    with pytest.raises(ValueError, match=r"x must have rank >= 2 for the 2-D tiles \(4, 4\)"):
        parse("block<e4m3;e8m0;4x4;floor>").quantize(np.ones(16))


def test_huge_block_on_small_input_allocates_only_the_input() -> None:
    # one partial block of 3 elements: scale 2**floor(log2(3)) / 2**emax_elem(e4m3fn = 8)
    f = parse("block<e4m3;e8m0;16777216;floor>")
    x = np.array([3.0, 1.0, 0.3])
    want = np.array(x, ml_dtypes.float8_e4m3fn).astype(np.float64)  # scale 2**(1-8): exact
    assert np.array_equal(f.quantize(x), want)
    enc = f.encode(x)
    assert enc.scales.shape == (1,) and np.array_equal(enc.dequantize(), want)


@pytest.mark.parametrize("data,shape,exc,match", [
    (b"\x00" * 17, (-1,), ValueError, r"shape must be a tuple of non-negative ints, not \(-1,\)"),
    (b"\x00" * 17, (32.0,), ValueError, r"shape must be a tuple of non-negative ints"),
    (b"\x00" * 17, 32, ValueError, r"shape must be a tuple of non-negative ints, not 32"),
    ("x" * 17, (32,), TypeError, r"data must be bytes, not str"),
    (b"\x00" * 3, (32,), ValueError, r"data must hold 17 bytes for mxfp4 and shape \(32,\), not 3"),
])
def test_block_unpack_refuses_clearly(data: Any, shape: Any, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        parse("mxfp4").unpack(data, shape)


# --- item 5: NaN/Inf, codes, policy names, non-numeric input --------------------------
SPECIALS = np.array([np.nan, np.inf, -np.inf, 1.0])


@pytest.mark.parametrize("name,overflow,want", [
    ("int8", None, [0.0, 127.0, -128.0, 1.0]),  # documented: NaN -> 0, Inf saturates
    ("uint4", None, [0.0, 15.0, 0.0, 1.0]),
    ("fixed<4,4>", None, [0.0, 7.9375, -8.0, 1.0]),
    ("bipolar4", None, [1.0, 15.0, -15.0, 1.0]),  # NaN -> the entry nearest zero (+1)
    ("nf4", None, [0.0, 1.0, -1.0, 1.0]),
])
def test_nan_inf_into_formats_without_them(name: str, overflow: Any, want: list[float]) -> None:
    assert np.array_equal(parse(name).quantize(SPECIALS, overflow=overflow), want)


@pytest.mark.parametrize("name,dtype,overflow", [
    ("e4m3", ml_dtypes.float8_e4m3fn, None),
    ("e5m2", ml_dtypes.float8_e5m2, None),
    ("e4m3fnuz", ml_dtypes.float8_e4m3fnuz, None),
    ("e8m0", ml_dtypes.float8_e8m0fnu, None),
    ("e2m1", ml_dtypes.float4_e2m1fn, None),
])
def test_nan_inf_into_minifloats_match_ml_dtypes(name: str, dtype: Any, overflow: Any) -> None:
    want = SPECIALS.astype(dtype).astype(np.float64)
    assert np.array_equal(parse(name).quantize(SPECIALS, overflow=overflow), want, equal_nan=True)


@pytest.mark.parametrize("name,overflow,match", [
    ("int8", "wrap", r"x holds NaN or Inf, which cannot wrap into int8"),
    ("int8", "error", r"3 element\(s\) of x are out of range for int8"),
    ("bipolar4", "error", r"3 element\(s\) of x are out of range for bipolar4"),
    ("nf4", "error", r"3 element\(s\) of x are out of range for nf4"),
    ("e4m3", "error", r"2 element\(s\) of x are out of range for float8_e4m3fn"),
    ("e4m3", "inf", r"overflow for float8_e4m3fn must be one of 'saturate', 'error', 'nan', "
                    r"not 'inf'"),
    ("e2m1", "nan", r"overflow for float4_e2m1fn must be one of 'saturate', 'error', not 'nan'"),
    ("int8_narrow", "wrap", r"overflow for int8_narrow must be one of 'saturate', 'error', "
                            r"not 'wrap'"),
    ("bipolar4", "inf", r"overflow for bipolar4 must be one of 'saturate', 'error', not 'inf'"),
    ("e4m3", "bogus", r"overflow must be one of 'saturate', 'inf', 'nan', 'wrap', 'error' "
                      r"\(or the enum\), not 'bogus'"),
    ("e4m3", 3, r"overflow must be one of 'saturate', 'inf', 'nan', 'wrap', 'error'"),
])
def test_overflow_policies_refuse_clearly(name: str, overflow: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse(name).quantize(SPECIALS, overflow=overflow)


@pytest.mark.parametrize("rounding", ["bogus", None, 3, "nearest-odd"])
def test_unknown_rounding(rounding: Any) -> None:
    with pytest.raises(ValueError, match=r"rounding must be one of 'nearest_even', "
                                         r"'nearest_away', 'toward_zero', 'up', 'down', "
                                         r"'stochastic' \(or the enum\)"):
        parse("e4m3").encode(1.0, rounding)


@pytest.mark.parametrize("name,codes,exc,match", [
    ("e4m3", -1, ValueError, r"codes for float8_e4m3fn must be in 0\.\.255, got values in -1"),
    ("e4m3", 256, ValueError, r"codes for float8_e4m3fn must be in 0\.\.255, got values in 256"),
    ("e4m3", np.array([2**64 - 1], np.uint64), ValueError, r"must be in 0\.\.255"),
    ("e4m3", torch.tensor([-1]), ValueError, r"must be in 0\.\.255"),
    ("nf4", 16, ValueError, r"codes for nf4 must be in 0\.\.15, got values in 16\.\.16"),
    ("bipolar2", np.array([4]), ValueError, r"codes for bipolar2 must be in 0\.\.3"),
    ("int8_narrow", 128, ValueError, r"code 128 \(-2\*\*7\) is not part of int8_narrow"),
    ("e4m3", 1.5, TypeError, r"codes must be integers, not dtype float64"),
    ("e4m3", np.array([1.0]), TypeError, r"codes must be integers, not dtype float64"),
    ("e4m3", True, TypeError, r"codes must be integers, not dtype bool"),
    ("e4m3", "1", TypeError, r"codes must be integers, not dtype <U1"),
    ("e4m3", None, TypeError, r"codes must be integers, not dtype object"),
])
def test_decode_refuses_bad_codes(name: str, codes: Any, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        parse(name).decode(codes)


@pytest.mark.parametrize("dtype,exc", [(np.float16, ValueError), ("bogus", TypeError)])
def test_decode_dtype(dtype: Any, exc: type) -> None:
    with pytest.raises(exc, match=r"dtype must be float32 or float64, not "):
        parse("e4m3").decode(1, dtype=dtype)


NON_NUMERIC = [("str", "1.0"), ("none", None), ("complex", 1 + 2j), ("bool", True),
               ("str-list", ["a"]), ("mixed-list", [1, "x"]), ("dict", {"a": 1}),
               ("object", np.array([object()])), ("bool-array", np.array([True])),
               ("complex-array", np.ones(2, complex)), ("complex-tensor", torch.ones(2) * 1j),
               ("datetime", np.array(["2020-01-01"], "datetime64[D]"))]


@pytest.mark.parametrize("name", ["e4m3", "int8", "nf4", "mxfp4"])
@pytest.mark.parametrize("x", [v for _, v in NON_NUMERIC], ids=[k for k, _ in NON_NUMERIC])
def test_non_numeric_inputs(name: str, x: Any) -> None:
    with pytest.raises(TypeError, match=r"x must (hold real numbers|be numeric|be a real tensor)"):
        parse(name).quantize(x)


@pytest.mark.parametrize(("name", "exc", "match"), [
    ("e9m9x", ValueError, r"^w_format: unknown format name 'e9m9x'"),
    (8, TypeError, r"^w_format: format name must be a str, not int"),
    ("block<mxfp4;e8m0;32;floor>", ValueError, r"^w_format: block<\.\.\.> element must be a "
     r"scalar format"),
])
def test_parse_names_the_parameter(name: object, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        parse(name, parameter="w_format")
