"""Property testing of number formats and of anything that claims to quantize to one.

Hypothesis strategies (``formats_strategy``, ``values_of``, ``rounding_inputs``) and
ready-made property checks (``check_monotone``, ``check_idempotent``,
``check_sign_symmetric``, ``check_half_ulp``, ``check_directed_brackets``,
``check_round_trip``) that a user can point at their own quantizer or hardware model: a
quantizer is any callable mapping a float64 numpy array to the quantized float64 array.

Needs ``hypothesis`` (``pip install numfab[testing]``); the checks themselves only numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._base import Format
from ._enums import Rounding, Special
from .integer import FixedPoint, Integer
from .lut import BipolarInt, Lut
from .minifloat import Minifloat

__all__ = [
    "check_directed_brackets",
    "check_half_ulp",
    "check_idempotent",
    "check_monotone",
    "check_round_trip",
    "check_sign_symmetric",
    "formats_strategy",
    "minifloats",
    "rounding_inputs",
    "values_of",
]

Quantizer = Callable[[np.ndarray], np.ndarray]


def _st() -> Any:
    try:
        from hypothesis import strategies as st
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "formats.testing strategies need hypothesis: pip install 'numfab[testing]'"
        ) from exc
    return st


def minifloats(max_bits: int = 12) -> Any:
    """Strategy: valid :class:`Minifloat` formats of at most ``max_bits`` bits, every
    special-value convention, biases around the default, with and without subnormals."""
    st = _st()

    @st.composite
    def build(draw: Any) -> Minifloat:
        special = draw(st.sampled_from(list(Special)))
        signed = draw(st.booleans()) if special is not Special.FNUZ else True
        lo_e = 2 if special is Special.IEEE else 1
        e = draw(st.integers(lo_e, min(8, max_bits - int(signed) - (1 if special is
                                                                   Special.IEEE else 0))))
        m_max = max_bits - int(signed) - e
        m = draw(st.integers(1 if special is Special.IEEE else 0, max(m_max, 0)))
        subnormals = (draw(st.booleans()) if draw(st.integers(0, 4)) == 0 else True) or (
            special is Special.FNUZ)
        default = (1 << (e - 1)) - (0 if special is Special.FNUZ else 1)
        bias = default + draw(st.integers(-3, 3))
        for kw in ({"bias": bias, "subnormals": subnormals}, {}, {"exp_bits": 3}):
            try:
                return Minifloat(kw.pop("exp_bits", e), m, special=special, signed=signed,
                                 **kw)
            except ValueError:
                continue
        return Minifloat(4, 3, special=Special.FN)

    return build()


def formats_strategy(max_bits: int = 12) -> Any:
    """Strategy: any valid scalar format (minifloat, integer, fixed point, bipolar, LUT)."""
    st = _st()
    ints = st.builds(
        lambda b, s, n: Integer(b, signed=s, narrow=n and s and b >= 2),
        st.integers(1, max_bits), st.booleans(), st.booleans(),
    )
    fixed = st.tuples(st.integers(-2, 6), st.integers(-2, 8), st.booleans()).filter(
        lambda t: 1 <= t[0] + t[1] <= max_bits
    ).map(lambda t: FixedPoint(t[0], t[1], signed=t[2]))
    bip = st.builds(BipolarInt, st.integers(1, min(max_bits, 10)))
    luts = st.lists(
        st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=32),
        min_size=2, max_size=32, unique=True,
    ).map(lambda v: Lut(tuple(v)))
    return st.one_of(minifloats(max_bits), ints, fixed, bip, luts)


def values_of(fmt: Format, specials: bool = True) -> Any:
    """Strategy: values representable in ``fmt`` (its NaN/Inf too when ``specials``)."""
    st = _st()
    v = fmt.values()
    if not specials:
        v = v[np.isfinite(v)]
    return st.sampled_from([float(x) for x in v])


def rounding_inputs(fmt: Format) -> Any:
    """Strategy: inputs at and around rounding midpoints of ``fmt``: a midpoint between
    two neighbouring values, nudged by -2..2 float64 ulps, or a point inside the gap."""
    st = _st()
    grid = fmt.finite_values()
    grid = np.unique(grid)

    @st.composite
    def build(draw: Any) -> float:
        if grid.size < 2:
            return float(grid[0])
        j = draw(st.integers(0, grid.size - 2))
        a, b = float(grid[j]), float(grid[j + 1])
        kind = draw(st.sampled_from(["mid", "inside"]))
        if kind == "mid":
            x = a / 2 + b / 2
            for _ in range(draw(st.integers(-2, 2)) % 5):
                x = float(np.nextafter(x, draw(st.sampled_from([-np.inf, np.inf]))))
            return x
        t = draw(st.floats(0, 1))
        return a + (b - a) * t

    return build()


# --- property checks: each raises AssertionError naming the first counterexample -------
def _arr(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


def check_monotone(quantize: Quantizer, x: Any) -> None:
    """x <= y implies q(x) <= q(y) (NaNs ignored; -0 counts as below +0, since rounding
    may follow the sign of a zero, as bipolar and tables without zero do)."""
    v = _arr(x)[~np.isnan(_arr(x))]
    xs = v[np.lexsort((~np.signbit(v), v))]
    q = _arr(quantize(xs))
    ok = np.isnan(q[:-1]) | np.isnan(q[1:]) | (q[:-1] <= q[1:])
    if not ok.all():
        i = int(np.argmin(ok))
        raise AssertionError(f"not monotone: q({xs[i]!r})={q[i]!r} > q({xs[i + 1]!r})={q[i + 1]!r}")


def check_idempotent(quantize: Quantizer, x: Any) -> None:
    """q(q(x)) == q(x)."""
    q1 = _arr(quantize(_arr(x)))
    q2 = _arr(quantize(q1))
    ok = (q1 == q2) | (np.isnan(q1) & np.isnan(q2))
    if not ok.all():
        i = int(np.argmin(ok))
        raise AssertionError(f"not idempotent at x={_arr(x)[i]!r}: q={q1[i]!r}, q(q)={q2[i]!r}")


def check_sign_symmetric(quantize: Quantizer, x: Any) -> None:
    """q(-x) == -q(x) (for symmetric formats and sign-symmetric rounding modes)."""
    xs = _arr(x)
    a = _arr(quantize(-xs))
    b = -_arr(quantize(xs))
    ok = (a == b) | (np.isnan(a) & np.isnan(b))
    if not ok.all():
        i = int(np.argmin(ok))
        raise AssertionError(f"not sign-symmetric at x={xs[i]!r}: q(-x)={a[i]!r}, -q(x)={b[i]!r}")


def _neighbours(fmt: Format, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    grid = np.unique(fmt.finite_values())
    j = np.clip(np.searchsorted(grid, xs, side="right") - 1, 0, grid.size - 1)
    k = np.clip(np.searchsorted(grid, xs, side="left"), 0, grid.size - 1)
    return grid[j], grid[k]


def check_half_ulp(quantize: Quantizer, fmt: Format, x: Any) -> None:
    """For in-range x, |q(x) - x| <= half the gap between x's two neighbours in ``fmt``
    (the bound of any round-to-nearest mode)."""
    xs = _arr(x)
    xs = xs[np.isfinite(xs) & (xs >= fmt.min) & (xs <= fmt.max)]
    lo, hi = _neighbours(fmt, xs)
    err = np.abs(_arr(quantize(xs)) - xs)
    ok = err <= (hi - lo) / 2
    if not ok.all():
        i = int(np.argmin(ok))
        raise AssertionError(
            f"error {err[i]!r} at x={xs[i]!r} exceeds half the gap [{lo[i]!r}, {hi[i]!r}]"
        )


def check_directed_brackets(fmt: Format, x: Any) -> None:
    """down(x) <= x <= up(x), each a neighbour of x, and toward-zero between 0 and x.

    Only x inside the range count: beyond it every mode saturates, and a format without
    zero treats the gap around zero the same way (every mode clamps a magnitude below the
    least one to it, keeping x's sign; zero becomes the least positive value)."""
    xs = _arr(x)
    xs = xs[np.isfinite(xs) & (xs >= fmt.min) & (xs <= fmt.max)]
    if 0.0 not in fmt.finite_values():
        xs = xs[np.abs(xs) >= fmt.smallest_subnormal]
    lo, hi = _neighbours(fmt, xs)
    d = _arr(fmt.quantize(xs, Rounding.DOWN, "saturate"))
    u = _arr(fmt.quantize(xs, Rounding.UP, "saturate"))
    if not ((d <= xs) & (xs <= u) & (d == lo) & (u == hi)).all():
        i = int(np.argmin((d <= xs) & (xs <= u) & (d == lo) & (u == hi)))
        raise AssertionError(
            f"x={xs[i]!r}: down={d[i]!r} up={u[i]!r}, neighbours {lo[i]!r}, {hi[i]!r}"
        )


def check_round_trip(fmt: Format) -> None:
    """decode(encode(values())) reproduces every value exactly (sign of zero included)."""
    v = fmt.values()
    fin = np.isfinite(v)
    back = fmt.decode(fmt.encode(v[fin], overflow="saturate"))
    if not (np.array_equal(back, v[fin]) and np.array_equal(np.signbit(back), np.signbit(v[fin]))):
        bad = np.flatnonzero((back != v[fin]) | (np.signbit(back) != np.signbit(v[fin])))
        raise AssertionError(f"{fmt}: value {v[fin][bad[0]]!r} comes back as {back[bad[0]]!r}")
