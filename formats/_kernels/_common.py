"""What every kernel family shares: the mode and policy codes, the description of a float
input, integer rounding of a significand, and bit-level helpers.

Structured arguments in parallel loops: a ``prange`` loop body reloads the fields of a
tuple it captures on every iteration (its output array might alias them), while
captured scalars stay in registers (measured: ~12% on a decode loop). So a kernel
unpacks its NamedTuple arguments into scalars before the loop and rebuilds them inside
it for the inlined per-element functions, which costs nothing once inlined.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from .._enums import Overflow, Rounding
from .._jit import INLINE as _INLINE
from .._jit import bitcast

__all__ = ["DOWN", "OERR", "OINF", "ONAN", "RNA", "RNE", "RTZ", "SAT", "STOCH", "TWO_M62",
           "UP", "WRAP", "FloatInput", "bitcast", "key", "round_right", "sel", "split_float"]

# Rounding-mode codes (Rounding.code); overflow-policy codes (Overflow.code): ERROR runs
# as SATURATE and counts.
RNE, RNA, RTZ, UP, DOWN, STOCH = (m.code for m in Rounding)
SAT, OINF, ONAN, WRAP, OERR = (m.code for m in Overflow)

TWO_M62 = 2.0**-62


class FloatInput(NamedTuple):
    """The IEEE layout of an input dtype (float16/32/64), whose elements the kernels take
    as bit patterns (an unsigned-integer view)."""

    #: stored mantissa bits (10, 23, 52)
    man: int
    #: exponent bias (15, 127, 1023)
    bias: int
    #: the all-ones exponent field, Inf and NaN (31, 255, 2047)
    exp_ones: int
    #: bit position of the sign (15, 31, 63)
    sign_bit: int


@numba.njit(**_INLINE)
def round_right(sig, shift, neg, mode, rnd, rbits, par):  # pragma: no cover - jitted
    """Round the non-negative integer ``sig / 2**shift`` to an integer (a negative shift,
    from a format with more mantissa bits than the input, is exact).

    ``rnd`` is a uniform random integer in [0, 2**62) used only by STOCH; ``rbits`` > 0
    limits stochastic rounding to that many random bits (hardware-style truncation).
    ``par`` is added to ``q`` before the nearest-even parity test, for formats whose code
    parity is not the significand's (no mantissa bits: the exponent field decides).
    """
    if shift < 0:  # a format wider than the input: exact (sig fits 53 bits)
        return sig << -shift
    s = shift if shift < 62 else 62
    q = sig >> s
    rem = sig - (q << s)
    full = np.int64(1) << s
    twice = rem << 1
    if mode == RNE:
        inc = (twice > full) or (twice == full and ((q + par) & 1) == 1)
    elif mode == RNA:
        inc = twice >= full and rem != 0
    elif mode == RTZ:
        inc = False
    elif mode == UP:
        inc = rem != 0 and neg == 0
    elif mode == DOWN:
        inc = rem != 0 and neg != 0
    elif shift > 62:
        inc = rnd * TWO_M62 < math.ldexp(float(sig), -shift)
    elif rbits > 0 and s > rbits:
        inc = (rnd >> (62 - rbits)) < (rem >> (s - rbits))
    else:
        inc = (rnd >> (62 - s)) < rem
    return q + np.int64(inc)


@numba.njit(**_INLINE)
def split_float(v, fin):  # pragma: no cover - jitted
    """Split IEEE bits into (negative, is_nan, is_inf, significand, unbiased exponent).

    ``fin`` describes the input float (a :class:`FloatInput`).
    """
    imb, ibias, iemax, isign = fin.man, fin.bias, fin.exp_ones, fin.sign_bit
    e_field = (v >> imb) & iemax
    frac = v & ((np.int64(1) << imb) - 1)
    neg = (v >> isign) & 1
    nonfinite = e_field == iemax
    is_nan = nonfinite and frac != 0
    is_inf = nonfinite and frac == 0
    sig = frac | (np.int64(e_field != 0) << imb)
    ex = (e_field if e_field > 1 else 1) - ibias
    return neg, is_nan, is_inf, sig, ex


@numba.njit(**_INLINE)
def key(xv):  # pragma: no cover - jitted
    """Total-order key of a float64 (monotone in value, -0 below +0)."""
    k = bitcast(np.float64(xv), np.int64(0))
    return k if k >= 0 else -(k & np.int64(0x7FFFFFFFFFFFFFFF)) - 1


@numba.njit(**_INLINE)
def sel(c, x, y):  # pragma: no cover - jitted
    """Branch-free select on uint32: c is 0 or 1."""
    m = np.uint32(np.uint32(0) - c)
    return np.uint32(np.uint32(x & m) | np.uint32(y & np.uint32(~m)))
