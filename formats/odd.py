"""Rounding to odd: the one definition numfab uses wherever a result is rounded twice.

Rounding to odd (truncate toward zero, then set the last bit if anything was cut off)
to a format with at least two more significand bits than a later nearest (or directed)
rounding makes the two roundings together equal one rounding of the exact value (Boldo
and Melquiond, "Emulation of FMA and correctly rounded sums: proved algorithms using
rounding to odd", IEEE Transactions on Computers 57(4), 2008, theorem 1). numfab rounds
exact sums and quotients to odd in float64 or float32 and from there once into the
target format: the block scaling of :mod:`formats` (a float64 quotient to float32, 22
significand bits at most after it) and the accumulators of :mod:`simulator` (an exact
float64 pair to float64, 51 bits at most after it).

The functions are numba ``njit`` functions, inlined where jitted code calls them and
callable from Python on scalars; the ``*_array`` forms apply them elementwise to numpy
arrays. No function here uses fastmath.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._jit import INLINE as _INLINE
from ._jit import PJIT as _PJIT
from ._jit import bitcast as _bitcast

__all__ = ["add_odd", "add_odd_array", "odd_bits32", "pair_odd", "pair_odd_array",
           "to_float32_odd", "two_sum"]


@numba.njit(**_INLINE)
def odd_bits32(t, inexact, away):  # pragma: no cover - jitted
    """Bits (uint32) of the float32 rounding to odd of an exact value ``y``, from a
    float32 ``t`` that is ``y`` truncated toward zero or the next float32 away from zero,
    ``inexact`` (1 where ``y != t``, else 0) and ``away`` (1 where ``|t| > |y|``, else 0):
    step ``t`` back toward zero if it went away, then set its last bit if inexact.
    Branch-free uint32 arithmetic, so that loops calling it vectorize as 8 x i32."""
    u = np.uint32
    return u(u(_bitcast(t, u(0)) - u(away)) | u(inexact))


@numba.njit(**_INLINE)
def to_float32_odd(q):  # pragma: no cover - jitted
    """Bits (uint32) of the float64 ``q`` rounded to odd in float32. A ``q`` beyond
    float32's range gives the largest finite float32 (odd), +-Inf and NaN stay."""
    u = np.uint32
    t = np.float32(q)
    back = np.float64(t)
    inexact = u((back != q) & (abs(q) < np.inf))
    return odd_bits32(t, inexact, u(inexact & u(abs(back) > abs(q))))


@numba.njit(**_INLINE)
def two_sum(a, b):  # pragma: no cover - jitted
    """Knuth's TwoSum: ``(s, e)`` with ``s = a + b`` rounded to nearest-even and
    ``s + e == a + b`` exactly (float64, no overflow)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@numba.njit(**_INLINE)
def pair_odd(hi, lo):  # pragma: no cover - jitted
    """``hi + lo`` rounded to odd in float64, for an exact pair whose ``hi`` is
    ``hi + lo`` rounded to nearest (``|lo|`` at most half an ulp of ``hi``): an even
    ``hi`` with ``lo != 0`` steps one ulp toward ``hi + lo``. Inf and NaN stay."""
    hb = np.float64(hi).view(np.int64)
    fix = (lo != 0.0) & ((hb & 1) == 0) & (((hb >> 52) & 2047) != 2047)
    step = np.int64(1) if (lo > 0.0) == (hi > 0.0) else np.int64(-1)
    return np.int64(hb + (step if fix else np.int64(0))).view(np.float64)


@numba.njit(**_INLINE)
def add_odd(a, b):  # pragma: no cover - jitted
    """``a + b`` (float64) rounded to odd in float64: exact where float64 holds the sum."""
    s, e = two_sum(a, b)
    return pair_odd(s, e)


@numba.njit(**_PJIT)
def _pair_odd_loop(hi, lo, out):  # pragma: no cover - jitted
    for i in prange(out.size):
        out[i] = pair_odd(hi[i], lo[i])


@numba.njit(**_PJIT)
def _add_odd_loop(a, b, out):  # pragma: no cover - jitted
    for i in prange(out.size):
        out[i] = add_odd(a[i], b[i])


def _elementwise(loop, x: np.ndarray, y: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    x, y = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
    out = np.empty(x.shape, np.float64)
    loop(np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(y).reshape(-1),
         out.reshape(-1))
    return out


def pair_odd_array(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """:func:`pair_odd` elementwise over broadcast float64 arrays."""
    return _elementwise(_pair_odd_loop, hi, lo)


def add_odd_array(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`add_odd` elementwise over broadcast float64 arrays."""
    return _elementwise(_add_odd_loop, a, b)
