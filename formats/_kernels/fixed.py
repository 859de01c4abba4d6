"""Two's-complement integer and fixed-point kernels (value = integer * 2**ulp_exp)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from .._jit import INLINE as _INLINE
from .._jit import PJIT as _PJIT
from ._common import RNA, RNE, RTZ, STOCH, UP, WRAP, FloatInput, round_right, split_float

__all__ = ["FixedParams", "GridConsts", "fixed_quantize_fast", "fixed_round1", "int_encode",
           "int_quantize", "int_value1"]


class FixedParams(NamedTuple):
    """An integer or fixed-point format as its kernels take it."""

    #: exponent of the value of integer 1 (``FixedBase.ulp_exp``)
    ulp_exp: int
    #: code width in bits
    nbits: int
    #: the largest integer (``FixedBase.max_int``)
    pos_max: int
    #: the magnitude of the most negative integer (``FixedBase.max_neg_int``; 0 unsigned)
    neg_max: int


class GridConsts(NamedTuple):
    """An integer grid as float64 constants, for the float fast paths: a value x rounds
    to ``clamp(round(x * scale), lo, hi) * inv_scale``."""

    #: 2**-ulp_exp (exact)
    scale: float
    #: 2**ulp_exp (exact)
    inv_scale: float
    #: the most negative integer, as a float
    lo: float
    #: the largest integer, as a float
    hi: float


@numba.njit(**_INLINE)
def fixed_round1(v, fin, ulp_exp, mode, rnd, rbits):  # pragma: no cover
    """Round one IEEE bit pattern to a multiple of 2**ulp_exp.

    Returns (negative, is_nan, is_inf, magnitude in ulps, huge) where ``huge`` flags a
    magnitude of 2**62 ulps or more (then the magnitude returned is exact mod 2**64).
    """
    neg, is_nan, is_inf, sig, ex = split_float(v, fin)
    shift = ulp_exp - ex + fin.man
    huge = False
    if shift >= 0:
        q = round_right(sig, shift, neg, mode, rnd, rbits, 0)
    else:
        left = -shift
        huge = ex - ulp_exp >= 62
        q = sig << left if left < 64 else np.int64(0)
    return neg, is_nan, is_inf, q, huge


@numba.njit(**_INLINE)
def int_value1(v, fin, p, policy, mode, rnd, rbits):  # pragma: no cover - jitted
    """Round one IEEE bit pattern to a signed integer count of 2**ulp_exp of the format
    ``p`` (:class:`FixedParams`), saturating (or, under WRAP, keeping the exact integer
    for the caller to wrap). Returns (value, overflowed, wrappable) where wrappable is
    false for NaN and Inf."""
    pos_max, neg_max = p.pos_max, p.neg_max
    neg, is_nan, is_inf, q, huge = fixed_round1(v, fin, p.ulp_exp, mode, rnd, rbits)
    if is_nan:
        return np.int64(0), True, False
    limit = neg_max if neg != 0 else pos_max
    over = is_inf or huge or q > limit
    mag = q if (not over or (policy == WRAP and not is_inf)) else limit
    return (-mag if neg != 0 else mag), over, not is_inf


@numba.njit(**_PJIT)
def int_encode(xb, out, rnd, fin, p, policy, mode, rbits):  # pragma: no cover - jitted
    """Two's-complement codes of x / 2**ulp_exp (``xb``: IEEE bits of layout ``fin``) in
    the format ``p`` (:class:`FixedParams`); returns the count of overflows."""
    ulp_exp, nbits, pos_max, neg_max = p  # scalars into the loop (see _common)
    imb, ibias, iexp, isign = fin
    mask = (np.int64(1) << nbits) - 1 if nbits < 64 else np.int64(-1)
    bad = 0
    for i in prange(xb.size):
        r = rnd[i] if mode == STOCH else np.int64(0)
        val, over, _ = int_value1(np.int64(xb[i]), FloatInput(imb, ibias, iexp, isign),
                                  FixedParams(ulp_exp, nbits, pos_max, neg_max), policy,
                                  mode, r, rbits)
        out[i] = val & mask
        bad += np.int64(over)
    return bad


@numba.njit(**_PJIT)
def int_quantize(xb, out, rnd, fin, p, policy, mode, rbits):  # pragma: no cover - jitted
    """Fused encode + decode of the fixed-point format ``p`` (:class:`FixedParams`;
    value = integer * 2**ulp_exp); returns the count of overflows."""
    ulp_exp, nbits, pos_max, neg_max = p  # scalars into the loop (see _common)
    imb, ibias, iexp, isign = fin
    mask = (np.int64(1) << nbits) - 1
    half = np.int64(1) << (nbits - 1)
    bad = 0
    for i in prange(xb.size):
        r = rnd[i] if mode == STOCH else np.int64(0)
        val, over, finite = int_value1(np.int64(xb[i]), FloatInput(imb, ibias, iexp, isign),
                                       FixedParams(ulp_exp, nbits, pos_max, neg_max), policy,
                                       mode, r, rbits)
        if policy == WRAP and over and finite:
            val = val & mask
            if neg_max > 0 and val >= half:
                val -= np.int64(1) << nbits
        out[i] = math.ldexp(float(val), ulp_exp)
        bad += np.int64(over)
    return bad


@numba.njit(**_PJIT)
def fixed_quantize_fast(x, out, g, mode):  # pragma: no cover - jitted
    """Fused quantize of float32/float64 input onto the integer grid ``g``
    (:class:`GridConsts`; deterministic modes, saturating). float64 arithmetic
    throughout: scaling by a power of two is exact, the rounding functions are exact, and
    the clamp bounds are integers. NaN gives 0. Returns the number of out-of-range (or
    NaN) elements."""
    scale, inv_scale, lo, hi = g.scale, g.inv_scale, g.lo, g.hi
    bad = 0
    for i in prange(x.size):
        y = np.float64(x[i]) * scale
        if mode == RNE:
            r = np.rint(y)
        elif mode == RNA:
            t = np.trunc(y)
            r = t + np.copysign(1.0, y) if abs(y - t) >= 0.5 else t
        elif mode == RTZ:
            r = np.trunc(y)
        elif mode == UP:
            r = np.ceil(y)
        else:
            r = np.floor(y)
        nan = y != y
        over = nan or r > hi or r < lo
        r = min(max(r, lo), hi)
        out[i] = (0.0 if nan else r + 0.0) * inv_scale  # + 0.0: -0 becomes +0
        bad += np.int64(over)
    return bad
