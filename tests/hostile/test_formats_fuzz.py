"""Hypothesis fuzzing of formats.parse and of quantize (issue 15): a name either parses
to a format that round-trips through its canonical name, or is refused with a
ValueError/TypeError, quickly; quantize of any float either answers or refuses clearly.

Derandomized, with modest example counts, so CI is reproducible and fast."""

from __future__ import annotations

import math
import os
import time
from fractions import Fraction
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formats import BlockScaled, parse

# CI runs a fixed 120 examples per fuzzer; NUMFAB_FULL=1 runs 1000
FUZZ = settings(max_examples=1000 if os.environ.get("NUMFAB_FULL") else 120,
                deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

# pieces of the name grammar, glued at random into near-miss names
PIECES = [
    "block<", ">", ";", "<", ",", "[", "]", "x", "=", "-", "_", " ", "e", "m", "b", "u",
    "fn", "fnuz", "_finite", "_ieee", "_nosub", "_narrow", "_asym", "_g", "float", "int",
    "uint", "fixed<", "ufixed<", "bipolar", "lut[", "bfp", "_b", "axis=", "tensor=",
    "round=", "zero_point", "floor", "ceil", "nearest", "rceil", "mse", "even", "e8m0",
    "e4m3", "fp32", "mxfp4", "nvfp4", "int4", "nan", "inf", "0", "1", "2", "3", "4", "7",
    "8", "16", "32", "64", "100", "-0", "0.5", "1e400", "9999999999999",
]
names_from_pieces = st.lists(st.sampled_from(PIECES), min_size=1, max_size=12).map("".join)
names = st.one_of(st.text(max_size=40), names_from_pieces)


@FUZZ
@given(names)
def test_parse_round_trips_or_refuses(name: str) -> None:
    t0 = time.perf_counter()
    try:
        fmt = parse(name)
    except (ValueError, TypeError) as exc:
        assert str(exc)  # a message, not a bare exception
    else:
        assert parse(str(fmt)) == fmt
    assert time.perf_counter() - t0 < 1.0


SCALAR_FORMATS = ["e4m3", "e5m2", "e2m1", "e8m0", "ue4m3", "bf16", "float64", "int8", "uint4",
                  "int8_narrow", "fixed<1,52>", "fixed<-3,10>", "bipolar5", "nf4", "lut[2,-1,0.5]"]
# extremes beside ordinary floats: zeros, subnormals, the float64 range ends, specials
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308,
                     1.7976931348623157e308, -1.7976931348623157e308, math.inf, -math.inf,
                     math.nan, 2.0**53 + 2, 448.0, 464.0, -464.0]),
)
rounding = st.sampled_from(["nearest_even", "nearest_away", "toward_zero", "up", "down",
                            "stochastic"])
overflow = st.sampled_from([None, "saturate", "inf", "nan", "wrap", "error"])


def _allowed(fmt: Any, ov: Any) -> bool:
    return ov is None or ov in {p.value for p in fmt.allowed_overflow}


@FUZZ
@given(st.sampled_from(SCALAR_FORMATS), st.lists(floats, min_size=1, max_size=8), rounding,
       overflow)
def test_quantize_answers_or_refuses(name: str, xs: list[float], mode: str, ov: Any) -> None:
    fmt = parse(name)
    x = np.array(xs)
    try:
        got = fmt.quantize(x, mode, ov, seed=0)
    except ValueError as exc:
        # the only refusals: a policy the format lacks, or overflow="error"/"wrap" meeting
        # values out of range or NaN/Inf
        assert not _allowed(fmt, ov) or ov in ("error", "wrap"), exc
        return
    assert _allowed(fmt, ov)
    assert got.shape == x.shape and got.dtype == np.float64
    finite = got[np.isfinite(got)]
    assert ((finite <= fmt.max) & (finite >= fmt.min)).all()
    if mode in ("up", "down", "toward_zero"):
        # directed rounding of finite in-range values never crosses the input (formats
        # without zero clamp magnitudes below their least one to it)
        ok = (np.isfinite(x) & (x <= fmt.max) & (x >= fmt.min)
              & (np.abs(x) >= fmt.smallest_subnormal))
        if mode == "up":
            assert (got[ok] >= x[ok]).all()
        elif mode == "down":
            assert (got[ok] <= x[ok]).all()
        else:
            assert (np.abs(got[ok]) <= np.abs(x[ok])).all()


@FUZZ
@given(st.sampled_from(["e4m3", "float64", "int8", "bipolar4", "nf4"]),
       st.fractions(), st.sampled_from(["up", "down", "nearest_even"]))
def test_fraction_inputs_bracketed_exactly(name: str, x: Fraction, mode: str) -> None:
    """Directed rounding of an exact rational lands on the right side of it."""
    fmt = parse(name)
    got = fmt.quantize(x, mode, "saturate")
    assert math.isfinite(got)
    if fmt.min <= x <= fmt.max:
        if mode == "up":
            assert Fraction(got) >= x
        elif mode == "down":
            assert Fraction(got) <= x


@FUZZ
@given(st.sampled_from(["mxfp4", "nvfp4", "mxint8", "int4_g32", "uint4_g32_asym",
                        "block<e4m3;e8m0;4x4;floor>"]),
       st.lists(floats, min_size=0, max_size=40), st.integers(1, 3))
def test_block_quantize_answers_or_refuses(name: str, xs: list[float], rows: int) -> None:
    fmt = parse(name)
    assert isinstance(fmt, BlockScaled)
    x = np.array(xs[: len(xs) // rows * rows]).reshape(rows, -1)
    got = fmt.quantize(x)
    assert got.shape == x.shape
