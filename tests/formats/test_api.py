"""The public contract: names, inputs/outputs, facts and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import formats
from formats import BipolarInt, FixedPoint, Integer, Lut, Minifloat, parse


@pytest.mark.parametrize("name", list(formats.NAMED))
def test_parse_str_round_trip_named(name: str) -> None:
    f = parse(name)
    assert str(f) == name
    assert parse(str(f)) == f


@pytest.mark.parametrize(
    "fmt",
    [Minifloat(3, 4, bias=5), Minifloat(6, 9), Minifloat(4, 3, special="fnuz", bias=9),
     Minifloat(2, 2, special="finite"), Minifloat(5, 0, special="fn", signed=False),
     Minifloat(3, 2, subnormals=False), Integer(7), Integer(3, signed=False),
     Integer(8, narrow=True), FixedPoint(4, 4), FixedPoint(-1, 6, signed=False),
     BipolarInt(5), Lut((0.1, -0.25, 3.0)), Lut((-0.0, 0.0, 1.5))],
    ids=str,
)
def test_parse_str_round_trip(fmt: formats.Format) -> None:
    assert parse(str(fmt)) == fmt
    assert str(parse(str(fmt))) == str(fmt)


def test_aliases() -> None:
    assert parse("e4m3") == parse("fp8_e4m3") == parse("float8_e4m3fn")
    assert parse("e2m1") == parse("fp4") == Minifloat(2, 1, special="finite")
    assert parse("bf16") == Minifloat(8, 7)
    assert parse("e8m0") == parse("float8_e8m0fnu")
    assert parse("e4m3b11fnuz") == parse("float8_e4m3b11fnuz")
    assert parse("bipolar<4>") == parse("bipolar4") == BipolarInt(4)
    assert parse("fixed< 4 , 4 >") == FixedPoint(4, 4)


def test_unknown_name_suggests() -> None:
    with pytest.raises(ValueError, match="did you mean 'e4m3'"):
        parse("e4m3x")
    with pytest.raises(TypeError, match="must be a str"):
        parse(3)
    with pytest.raises(ValueError, match="float16 does not match"):
        parse("float16_e4m3")


def test_facts_e4m3fn() -> None:
    f = parse("float8_e4m3fn")
    assert (f.max, f.smallest_normal, f.smallest_subnormal, f.eps) == (448.0, 2**-6, 2**-9,
                                                                        0.125)
    assert (f.has_inf, f.has_nan, f.nan_code, f.bias, f.bits) == (False, True, 0x7F, 7, 8)
    g = parse("float8_e4m3fnuz")
    assert (g.bias, g.nan_code, g.max, g.has_negative_zero) == (8, 0x80, 240.0, False)
    e8 = parse("e8m0")
    assert (e8.max, e8.min, e8.has_zero, e8.bits) == (2.0**127, 2.0**-127, False, 8)
    assert parse("int4").min == -8 and parse("int4_narrow").min == -7
    assert parse("fixed<1,7>").max == 1 - 2**-7


def test_lut_of_e2m1_equals_minifloat() -> None:
    mf = Minifloat(2, 1, special="finite")
    lut = Lut(tuple(float(v) for v in mf.values()))
    x = np.concatenate([np.linspace(-8, 8, 4097), mf.finite_values(),
                        (mf.finite_values()[:-1] + mf.finite_values()[1:]) / 2])
    for mode in formats.Rounding:
        if mode is formats.Rounding.STOCHASTIC:
            continue
        np.testing.assert_array_equal(lut.encode(x, mode), mf.encode(x, mode))


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: Minifloat(0, 3, special="fn"), ValueError, "exp_bits must be an integer in 1..11"),
        (lambda: Minifloat(1, 2), ValueError, "special 'ieee' needs exp_bits >= 2"),
        (lambda: Minifloat(4, -1), ValueError, "man_bits must be an integer in 0..52"),
        (lambda: Minifloat(4, 3, bias=2000), ValueError, "bias must be in"),
        (lambda: Minifloat(4, 3.0), TypeError, "man_bits must be an integer"),
        (lambda: Minifloat(4, 3, special="odd"), ValueError, "special must be one of"),
        (lambda: Minifloat(4, 3, special="fnuz", signed=False), ValueError, "needs signed=True"),
        (lambda: Integer(0), ValueError, "bits must be an integer in 1..53"),
        (lambda: Integer(4, signed=False, narrow=True), ValueError, "narrow=True needs"),
        (lambda: FixedPoint(30, 30), ValueError, "int_bits \\+ frac_bits must be in 1..53"),
        (lambda: BipolarInt(17), ValueError, "bits must be an integer in 1..16"),
        (lambda: Lut((1.0, float("nan"))), ValueError, "finite"),
        (lambda: Lut((1.0, 1.0)), ValueError, "distinct"),
        (lambda: Lut(()), ValueError, "1..65536"),
        (lambda: parse("e4m3").encode([1.0], rounding="sideways"), ValueError, "rounding must"),
        (lambda: parse("e4m3").encode([1.0], overflow="inf"), ValueError, "overflow for"),
        (lambda: parse("e2m1").encode([1.0], overflow="nan"), ValueError, "overflow for"),
        (lambda: parse("e4m3").encode(np.array(["a"])), TypeError, "real numbers"),
        (lambda: parse("e4m3").encode(np.array([True])), TypeError, "real numbers"),
        (lambda: parse("e4m3").decode(np.array([256])), ValueError, "codes for float8_e4m3fn"),
        (lambda: parse("e4m3").decode(np.array([-1])), ValueError, "must be in 0..255"),
        (lambda: parse("e4m3").decode(np.array([1.0])), TypeError, "codes must be integers"),
        (lambda: parse("nf4").decode(np.array([16])), ValueError, "0..15"),
        (lambda: Lut((1.0, 2.0, 3.0)).decode(np.array([3])), ValueError, "0..2"),
        (lambda: parse("int4_narrow").decode(np.array([8])), ValueError, "not part of"),
        (lambda: parse("e2m1").encode([np.nan], overflow="error"), ValueError, "out of range"),
        (lambda: parse("int8").encode([300.0], overflow="error"), ValueError, "out of range"),
        (lambda: parse("e4m3").encode([500.0], overflow="error"), ValueError, "out of range"),
        (lambda: parse("e4m3").quantize(np.zeros(3, np.float32), out=np.zeros(2, np.float32)),
         ValueError, "out must have shape"),
        (lambda: parse("e4m3").encode(np.zeros(3), out=np.zeros(3, np.uint16)),
         ValueError, "out must have dtype uint8"),
        (lambda: formats.pack(np.array([16]), 4), ValueError, "0..15"),
        (lambda: formats.pack(np.array([1]), 33), ValueError, "bits must be an integer in 1..32"),
        (lambda: formats.unpack(np.zeros(1, np.uint8), 4, 3), ValueError, "count must be"),
    ],
)
def test_bad_input(call, exc, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=match):
        call()


def test_inputs_outputs() -> None:
    f = parse("e4m3")
    assert f.encode(1.0) == 0x38 and isinstance(f.encode(1.0), int)
    assert f.quantize(1.06) == 1.0 and isinstance(f.quantize(1.06), float)
    assert f.decode(0x38) == 1.0
    x0 = np.array(3.3)
    assert f.quantize(x0).shape == () and f.quantize(x0) == 3.25
    x16 = np.array([1.06, -300.0], np.float16)
    assert f.quantize(x16).dtype == np.float16
    np.testing.assert_array_equal(f.quantize(x16), [1.0, -288.0])
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    out = np.empty_like(x)
    assert f.quantize(x, out=out) is out
    np.testing.assert_array_equal(out, f.quantize(x.astype(np.float64)).astype(np.float32))
    codes = np.empty(x.shape, np.uint8)
    assert f.encode(x, out=codes) is codes
    np.testing.assert_array_equal(f.decode(codes, dtype=np.float32), out)
    np.testing.assert_array_equal(f.quantize([1.06, 2.0]), [1.0, 2.0])


def test_torch_in_torch_out() -> None:
    f = parse("e4m3")
    t = torch.randn(4, 6, dtype=torch.float32)
    q = f.quantize(t)
    assert isinstance(q, torch.Tensor) and q.shape == t.shape and q.dtype == torch.float32
    ref = t.to(torch.float8_e4m3fn).to(torch.float32)
    assert torch.equal(q, ref)
    c = f.encode(t)
    assert isinstance(c, torch.Tensor) and c.dtype == torch.uint8
    assert torch.equal(f.decode(c).to(torch.float32), ref)
    tb = t.to(torch.bfloat16)
    assert torch.equal(f.quantize(tb), tb.float().to(torch.float8_e4m3fn).float())


def test_finfo_like_facts_consistent() -> None:
    for name, f in formats.NAMED.items():
        if f.bits > 16:
            continue
        v = f.finite_values()
        assert v.max() == f.max, name
        assert math.isclose(float(v[v > 0].min()), f.smallest_subnormal), name


def test_review_regressions() -> None:
    """Cases a differential fuzzer found (all against the exact reference)."""
    from formats.reference import ref_encode

    assert parse("float32").quantize(np.zeros(1, np.float16))[0] == 0.0
    assert parse("bf16").encode(np.zeros(1, np.float16))[0] == 0
    assert Minifloat(8, 3, bias=140).encode(np.zeros(1, np.float32))[0] == 0
    assert Minifloat(11, 10, bias=1030).quantize(np.zeros(1))[0] == 0.0
    x = np.float32(1.5 * 2.0**-127)
    e8 = parse("e8m0")
    assert e8.encode(np.array([x]))[0] == e8.encode(np.array([x], np.float64))[0] == \
        ref_encode(e8, float(x))
    for v in (2.0**-140, 3 * 2.0**-149, 5e-324):
        for fmt in (parse("bf16"), Minifloat(8, 3, bias=140)):
            got = int(fmt.encode(np.array([v], np.float64))[0])
            assert got == ref_encode(fmt, v), (str(fmt), v)
    odd = Minifloat(11, 6, bias=1059, special="fn", subnormals=False)
    assert parse(str(odd)) == odd
    for f in (Minifloat(3, 2), Minifloat(2, 1), Minifloat(2, 3)):
        assert parse(str(f)) == f and str(f).endswith("_ieee")
    t = torch.tensor(1.3)
    assert parse("e4m3").quantize(t).shape == () and parse("e4m3").encode(t).shape == ()
    assert parse("e4m3").quantize(torch.ones(2, dtype=torch.bfloat16)).dtype == torch.bfloat16
    assert parse("fixed<-1000,1024>").quantize(np.array([0.0]))[0] == 0.0
    f = FixedPoint(8, -1)
    assert f.quantize(np.array([5e-324]), "up")[0] == 2.0
    assert f.quantize(np.array([-5e-324]), "down")[0] == -2.0
    assert math.copysign(1.0, Integer(4).quantize(np.array([-0.3]))[0]) == 1.0
    # integers beyond 2**53 round exactly (1535/1024 rounds to 1, not 1.5's even 2)
    assert FixedPoint(63, -10).encode(2**60 + 1535) == 2**50 + 1
    assert int(Integer(53).encode(np.array([2**60], np.int64))[0]) == 2**52 - 1
