"""Minifloat kernels of any width: encoding and decoding through int64 significands
(every input dtype, every rounding mode, stochastic rounding included)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from .._jit import INLINE as _INLINE
from .._jit import PJIT as _PJIT
from ._common import (
    DOWN,
    OERR,
    OINF,
    ONAN,
    RTZ,
    SAT,
    STOCH,
    UP,
    FloatInput,
    round_right,
    split_float,
)

__all__ = ["MinifloatParams", "mf_decode", "mf_decode1", "mf_encode", "mf_encode1"]


class MinifloatParams(NamedTuple):
    """A minifloat as its kernels take it (``Minifloat._params`` builds it once)."""

    #: stored mantissa bits
    man: int
    #: exponent bias
    bias: int
    #: exponent of the smallest normal value (1 - bias, or -bias without subnormals)
    emin: int
    #: True where the zero exponent field is an ordinary binade (no subnormals, no zero)
    nosub: bool
    #: True where the code's top bit is a sign bit
    signed: bool
    #: True for the fnuz convention: NaN at the negative-zero code, no -0
    fnuz: bool
    #: magnitude code (sign bit clear) of the largest finite value
    maxmag: int
    #: magnitude code of Inf, -1 without Inf
    infmag: int
    #: code of the positive NaN, -1 without NaN
    nancode: int
    #: code width in bits
    nbits: int


@numba.njit(**_INLINE)
def mf_encode1(v, fin, p, policy, mode, rnd, rbits):  # pragma: no cover - jitted
    """Encode one IEEE bit pattern (input layout ``fin``) into a code of the minifloat
    ``p`` (:class:`MinifloatParams`). Returns (code, overflowed)."""
    man, emin, nosub, signed, fnuz = p.man, p.emin, p.nosub, p.signed, p.fnuz
    maxmag, infmag, nancode, nbits = p.maxmag, p.infmag, p.nancode, p.nbits
    neg, is_nan, is_inf, sig, ex = split_float(v, fin)
    if sig != 0 and sig < (np.int64(1) << fin.man):
        # a subnormal input: normalise so the leading one sits at bit imb
        lz = fin.man + 1 - math.frexp(float(sig))[1]
        sig <<= lz
        ex -= lz
    sign_bit = np.int64(1) << (nbits - 1)
    over = False
    if is_nan:
        if nancode >= 0:
            return nancode | (neg * sign_bit if (signed and not fnuz) else 0), False
        return np.int64(0), policy == OERR
    e_eff = ex if ex > emin else emin
    # With no mantissa bits a normal code's parity is its exponent field's.
    par = (e_eff - emin + (0 if nosub else 1) + 1) & 1 if (man == 0 and ex >= emin) else 0
    q = round_right(sig, e_eff - man - ex + fin.man, neg, mode, rnd, rbits, par)
    if nosub:
        if ex < emin or sig == 0:
            mag = np.int64(0)
        else:
            mag = ((e_eff - emin) << man) + q - (np.int64(1) << man)
    elif sig == 0:
        mag = np.int64(0)
    else:
        mag = ((e_eff - emin) << man) + q
    if is_inf:
        mag = maxmag + 1
    negative = neg != 0 and (mag != 0 or (nosub and not is_inf))
    if negative and not signed:
        # Below an unsigned format's range: clamp to its least value, or NaN.
        if policy == ONAN and nancode >= 0:
            return nancode, False
        return np.int64(0), policy == OERR
    if nosub and sig == 0 and not is_inf:
        # Exact zero in a format without zero.
        if policy == ONAN and nancode >= 0:
            return nancode, False
        return np.int64(0), policy == OERR
    if mag > maxmag:
        over = True
        to_max = is_inf is False and (
            mode == RTZ or (mode == DOWN and neg == 0) or (mode == UP and neg != 0)
        )
        if policy == SAT or policy == OERR or to_max:
            mag = maxmag
        elif policy == OINF:
            mag = infmag
        else:
            return nancode | (neg * sign_bit if (signed and not fnuz) else 0), False
    if signed and neg != 0 and not (fnuz and mag == 0):
        mag |= sign_bit
    return mag, over and policy == OERR


@numba.njit(**_PJIT)
def mf_encode(xb, out, table, rnd, fin, p, policy, mode, rbits):  # pragma: no cover
    """Encode every element of ``xb`` (IEEE bits of layout ``fin``) into the minifloat
    ``p`` (:class:`MinifloatParams`) with rounding ``mode`` (``rnd``: the random integers
    of stochastic rounding, ``rbits`` its random bits) and overflow ``policy``; with a
    non-empty ``table`` (the value of each code, formats of at most 16 bits) write the
    decoded values instead: fused fake-quantization."""
    n = xb.size
    use_table = table.size > 0
    bad = 0
    # scalars into the loop, tuples rebuilt inside it (see _common)
    imb, ibias, iexp, isign = fin
    man, bias, emin, nosub, signed, fnuz, maxmag, infmag, nancode, nbits = p
    for i in prange(n):
        r = rnd[i] if mode == STOCH else np.int64(0)
        code, over = mf_encode1(
            np.int64(xb[i]), FloatInput(imb, ibias, iexp, isign),
            MinifloatParams(man, bias, emin, nosub, signed, fnuz, maxmag, infmag, nancode,
                            nbits),
            policy, mode, r, rbits)
        if use_table:
            out[i] = table[code]
        else:
            out[i] = code
        bad += np.int64(over)
    return bad


@numba.njit(**_INLINE)
def mf_decode1(c, p):  # pragma: no cover - jitted
    """The value (float64) of code ``c`` of the minifloat ``p`` (:class:`MinifloatParams`)."""
    man, bias, emin, nosub, signed, fnuz = p.man, p.bias, p.emin, p.nosub, p.signed, p.fnuz
    maxmag, infmag, nancode, nbits = p.maxmag, p.infmag, p.nancode, p.nbits
    sign_bit = np.int64(1) << (nbits - 1)
    neg = signed and (c & sign_bit) != 0
    mag = c & (sign_bit - 1) if signed else c
    if fnuz and c == nancode:
        return np.nan
    if mag > maxmag:
        if mag == infmag:
            return -np.inf if neg else np.inf
        return np.nan
    f = mag >> man
    m = mag & ((np.int64(1) << man) - 1)
    if f == 0 and not nosub:
        val = math.ldexp(float(m), emin - man)
    else:
        val = math.ldexp(float(m + (np.int64(1) << man)), f - bias - man)
    return -val if neg else val


@numba.njit(**_PJIT)
def mf_decode(codes, out, p):  # pragma: no cover - jitted
    """Decode every code of the minifloat ``p`` (:class:`MinifloatParams`) into ``out``."""
    man, bias, emin, nosub, signed, fnuz, maxmag, infmag, nancode, nbits = p  # see _common
    for i in prange(codes.size):
        out[i] = mf_decode1(np.int64(codes[i]), MinifloatParams(
            man, bias, emin, nosub, signed, fnuz, maxmag, infmag, nancode, nbits))
