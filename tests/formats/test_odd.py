"""formats.odd, the one definition of rounding to odd, against exact rationals; and the
theorem it is used for: rounding to odd first, then once to a narrower format, equals
rounding the exact value once."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formats import Minifloat, Rounding, odd, parse

FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)


def _odd_oracle(x: Fraction, dtype: type) -> float:
    """``x`` rounded to odd in ``dtype``: itself if representable, else whichever of its
    two neighbours has an odd last bit (beyond the largest finite: that, which is odd)."""
    finfo = np.finfo(dtype)
    top = Fraction(float(finfo.max))
    if abs(x) > top:
        return math.copysign(float(finfo.max), x)
    f = dtype(float(x))  # nearest; then the neighbours of x are f and one step beside it
    if Fraction(float(f)) == x:
        return float(f)
    g = np.nextafter(f, dtype(np.inf if Fraction(float(f)) < x else -np.inf))
    ib = np.int32 if dtype is np.float32 else np.int64
    pick = f if int(np.array(f).view(ib)) & 1 else g
    assert int(np.array(pick).view(ib)) & 1
    return float(pick)


@settings(max_examples=300, deadline=None)
@given(FINITE)
def test_to_float32_odd_against_exact(q: float) -> None:
    got = np.array(odd.to_float32_odd(q), np.uint32).view(np.float32)
    assert float(got) == _odd_oracle(Fraction(q), np.float32)


def test_to_float32_odd_keeps_specials() -> None:
    for v in (np.inf, -np.inf):
        assert np.array(odd.to_float32_odd(v), np.uint32).view(np.float32) == v
    assert np.isnan(np.array(odd.to_float32_odd(np.nan), np.uint32).view(np.float32))


@settings(max_examples=300, deadline=None)
@given(FINITE, FINITE)
def test_add_odd_against_exact(a: float, b: float) -> None:
    exact = Fraction(a) + Fraction(b)
    if abs(exact) >= Fraction(float(np.finfo(np.float64).max)):
        return  # TwoSum is exact only without overflow
    assert odd.add_odd(a, b) == _odd_oracle(exact, np.float64)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(FINITE, FINITE), min_size=1, max_size=20))
def test_array_forms_are_the_scalar_forms(pairs: list[tuple[float, float]]) -> None:
    big = float(np.finfo(np.float64).max) / 4
    a = np.array([p[0] for p in pairs]).clip(-big, big)
    b = np.array([p[1] for p in pairs]).clip(-big, big)
    got = odd.add_odd_array(a, b)
    assert got.tolist() == [odd.add_odd(x, y) for x, y in zip(a, b)]
    s = a + b
    e = (a - (s - (s - a))) + (b - (s - a))  # TwoSum's error, written out here
    assert odd.pair_odd_array(s, e).tolist() == got.tolist()
    # broadcasting: one column against a row
    assert odd.add_odd_array(a[:, None], b[None, :1]).shape == (a.size, 1)


@pytest.mark.parametrize("name", ["e4m3", "e5m2", "e2m1", "bfloat16", "e3m4", "float16"])
@pytest.mark.parametrize("mode", [m for m in Rounding if m is not Rounding.STOCHASTIC])
def test_double_rounding_through_odd_is_one_rounding(name: str, mode: Rounding) -> None:
    """float64 -> float32 to odd -> the format equals float64 -> the format once, for a
    format of at most 22 significand bits, at and around its midpoints."""
    fmt = parse(name)
    assert isinstance(fmt, Minifloat) and fmt.precision <= 22
    v = fmt.finite_values()
    v = v[np.isfinite(v)]
    mids = (v[:-1] + v[1:]) / 2
    rng = np.random.default_rng(7)
    tiny = np.abs(mids) * 2.0**-40 + 2.0**-1070
    x = np.concatenate([mids, mids + tiny, mids - tiny, v,
                        rng.standard_normal(2000) * float(fmt.max) / 3])
    x32 = np.array([odd.to_float32_odd(q) for q in x], np.uint32).view(np.float32)
    once = fmt.quantize(x, mode, "saturate")
    twice = fmt.quantize(x32, mode, "saturate").astype(np.float64)
    assert np.array_equal(once, twice)
