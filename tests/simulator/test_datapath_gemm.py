"""simulator.gemm computes every field of a Datapath: products rounded to integers, the
output rounding (out, out_rounding), a fixed number of terms; against exact rationals
and numpy's own float16/float32 arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import formats
import simulator
from simulator import Accumulator, Datapath

E4M3 = formats.parse("e4m3")


def _e4m3_values(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    codes = rng.integers(0, 256, size=shape)
    vals = np.asarray(E4M3.decode(codes), np.float64)
    return np.where(np.isfinite(vals), vals, 1.0)


def _round_int(x: Fraction, mode: str, lo: int, hi: int) -> int:
    """x rounded to an integer in ``mode`` and saturated to [lo, hi]."""
    fl = x.numerator // x.denominator
    rem = x - fl
    if mode == "nearest_even":
        up = rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2 == 1)
    elif mode == "nearest_away":
        up = rem > Fraction(1, 2) or (rem == Fraction(1, 2) and x > 0)
    elif mode == "toward_zero":
        up = rem != 0 and x < 0
    elif mode == "up":
        up = rem != 0
    else:
        up = False
    return min(hi, max(lo, fl + int(up)))


@pytest.mark.parametrize("mode", ["nearest_even", "nearest_away", "toward_zero", "up",
                                  "down"])
def test_products_rounded_to_int8(mode: str) -> None:
    """Each product rounded to int8 (saturating), then summed in float32 (numpy's)."""
    rng = np.random.default_rng(7)
    a = _e4m3_values(rng, (6, 40))
    b = np.asarray(E4M3.quantize(_e4m3_values(rng, (40, 5)) / 4), np.float64)
    acc = Accumulator("float32", product_format="int8", product_rounding=mode)
    got = simulator.gemm(a, b, a_format="e4m3", b_format="e4m3", accumulator=acc)
    want = np.zeros((6, 5))
    for i in range(6):
        for j in range(5):
            s = np.float32(0.0)
            for k in range(40):
                p = _round_int(Fraction(a[i, k]) * Fraction(b[k, j]), mode, -128, 127)
                s = np.float32(s + np.float32(p))
            want[i, j] = s
    np.testing.assert_array_equal(got, want)
    assert np.any(want != (a @ b))  # the rounding of products shows


def _float16_toward_zero(x: Fraction) -> float:
    r = np.float16(float(x))  # one of x's two float16 neighbours
    if abs(Fraction(float(r))) > abs(x):
        r = np.nextafter(r, np.float16(0))
    return float(r)


def test_datapath_out_rounding_and_terms() -> None:
    """terms=K exact sums, rounded once toward zero to float16 (out=float16,toward_zero)."""
    rng = np.random.default_rng(3)
    a = _e4m3_values(rng, (8, 16))
    b = np.asarray(E4M3.quantize(_e4m3_values(rng, (16, 7)) * 2.0**-9), np.float64)
    dp = Datapath("e4m3", "e4m3", None, terms=16, out="float16",
                  out_rounding="toward_zero")
    got = simulator.gemm(a, b, datapath=dp)
    want = np.array([[_float16_toward_zero(sum(Fraction(a[i, k]) * Fraction(b[k, j])
                                               for k in range(16)))
                      for j in range(7)] for i in range(8)])
    np.testing.assert_array_equal(got, want)
    near = simulator.gemm(a, b, datapath=Datapath("e4m3", "e4m3", None, terms=16,
                                                 out="float16"))
    assert np.any(near != got)  # the rounding mode is honoured, not the default
    # fewer than terms products: the rest count as zero
    short = simulator.gemm(a[:, :12], b[:12], datapath=dp)
    want12 = np.array([[_float16_toward_zero(sum(Fraction(a[i, k]) * Fraction(b[k, j])
                                                 for k in range(12)))
                        for j in range(7)] for i in range(8)])
    np.testing.assert_array_equal(short, want12)


@pytest.mark.parametrize("call, exc, msg", [
    (lambda a, b: simulator.gemm(np.ones((2, 17)), np.ones((17, 2)), datapath=Datapath(
        "e4m3", "e4m3", None, terms=16)), ValueError,
     r"^K=17 is more than the datapath's terms=16"),
    (lambda a, b: simulator.gemm(a, b, datapath=Datapath("e4m3", None, None, terms=1,
                                                         out="e2m1")),
     ValueError, r"is a conversion \(b=none\): it multiplies nothing"),
    (lambda a, b: simulator.gemm(a, b, out_format="e4m3", datapath=Datapath(
        "e4m3", "e4m3", None, terms=2, out="float16")), ValueError,
     r"^give either out_format or a datapath with out=, not both"),
    (lambda a, b: simulator.gemm(a, b, out_format="int53"), ValueError,
     r"^out_format must have at most 51 significant bits .* not 53 \(int53\)$"),
], ids=["terms-exceeded", "conversion", "out-twice", "out-too-wide"])
def test_datapath_refusals(call, exc, msg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=msg):
        call(np.ones((2, 2)), np.ones((2, 2)))


def test_float64_out_is_the_default_result() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.uniform(-2, 2, (5, 9)), rng.uniform(-2, 2, (9, 4))
    acc = None  # exact sums: the float64 result is their one nearest-even rounding
    got = simulator.gemm(a, b, a_format="float16", b_format="float16", accumulator=acc,
                         out_format="float64")
    qa, qb = (np.asarray(np.float16(x), np.float64) for x in (a, b))
    want = [[float(sum(Fraction(qa[i, k]) * Fraction(qb[k, j]) for k in range(9)))
             for j in range(4)] for i in range(5)]
    np.testing.assert_array_equal(got, np.array(want))
