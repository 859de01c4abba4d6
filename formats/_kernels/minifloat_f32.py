"""The float32 fast path of minifloats: float32 in, float32 (or codes) out, at memory
speed, for deterministic modes and formats whose values are float32 numbers.

The general kernels (:mod:`.minifloat`) round through int64 and run at ~0.2-0.5 G
elem/s. Here numba widens every uint32 operation to 64 bits, so each intermediate is
narrowed back with np.uint32(...) (keeping LLVM's vectors at 8 x i32), rounding mode
and signedness are compile-time constants (closure constants in :func:`_fast_entry`:
one straight-line loop each), the target's subnormal range rounds in float32 arithmetic
(magic-number add, exact, then one correction step for the directed modes), and the
bad-element count is a uint32 tally per block.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from .._jit import INLINE as _INLINE
from .._jit import JIT as _JIT
from .._jit import PJIT as _PJIT
from ._common import DOWN, OINF, ONAN, RNA, RNE, RTZ, UP, bitcast, sel

__all__ = ["NO_F32", "CodeConsts", "F32Consts", "code_consts", "elem", "encode_f32",
           "fast_consts", "quantize_f32"]


class F32Consts(NamedTuple):
    """A minifloat, and what an overflow becomes, as the float32 fast path takes them
    (:func:`fast_consts` builds it; every field a numpy uint32 or float32)."""

    #: float32 bit of the kept significand's LSB, 1 << (23 - man)
    lsb: np.uint32
    #: float32 bits of 2**emin: smaller magnitudes round on the subnormal grid
    emin_bits: np.uint32
    #: magic addend 1.5 * 2**(emin - man + 23): (x + cadd) - cadd rounds x to that grid
    cadd: np.float32
    #: the subnormal step 2**(emin - man)
    unit: np.float32
    #: half the subnormal step
    half_unit: np.float32
    #: float32 bits of the largest finite value
    max_bits: np.uint32
    #: float32 bits an overflow becomes under the policy (Inf, NaN or the largest value)
    over_bits: np.uint32
    #: float32 bits of NaN where the format has NaN, else 0 (NaN input gives +0)
    nan_bits: np.uint32
    #: what a negative input becomes in an unsigned format (NaN under policy nan, else 0)
    below_bits: np.uint32
    #: 1 where a NaN input counts as bad (the format has no NaN), else 0
    nan_bad: np.uint32


class CodeConsts(NamedTuple):
    """How :func:`encode_f32` turns a quantized float32 into its code."""

    #: 23 - man: float32 bits >> shift are exponent and mantissa fields
    shift: np.uint32
    #: the field value of 2**(emin - 1) << man, subtracted to rebias the exponent
    offset: np.uint32
    #: 2**-(emin - man) as two float32 factors (a subnormal's magnitude code is its
    #: value times both)
    inv1: np.float32
    #: the second factor
    inv2: np.float32
    #: magnitude code of Inf (0 without Inf)
    inf_code: np.uint32
    #: magnitude code of NaN (0 without NaN; fnuz: the sign bit alone)
    nan_mag: np.uint32
    #: bit position of the code's sign
    sign_shift: np.uint32


_U0, _F0 = np.uint32(0), np.float32(0.0)
#: Placeholders where a kernel takes constants it does not use.
NO_F32 = F32Consts(_U0, _U0, _F0, _F0, _F0, _U0, _U0, _U0, _U0, _U0)
_NO_CODES = CodeConsts(_U0, _U0, _F0, _F0, _U0, _U0, _U0)


@numba.njit(**_INLINE)
def elem(v, mode, signed, fnuz, c):  # pragma: no cover - jitted
    """One element: float32 bits ``v`` rounded to the minifloat of constants ``c``
    (:class:`F32Consts`). ``mode``, ``signed``, ``fnuz`` are literals at every call site
    (so each kernel compiles to straight-line code for its case). Returns (bits, bad 0/1).

    numba widens every uint32 operation to 64 bits, so each intermediate is narrowed
    back with u(...); that keeps LLVM's vectors at 8 x i32.
    """
    lsb, emin_bits, cadd, unit, half_unit, maxb, ro, nanb, below_val, nan0 = c
    u = np.uint32
    f = np.float32
    one = u(1)
    zero = u(0)
    fz = f(0.0)
    v = u(v)
    a = u(v & u(0x7FFFFFFF))
    sgn = u(v & u(0x80000000))
    negb = u(v >> u(31))                          # 1 if sign set
    posb = u(negb ^ one)
    mask = u(lsb - one)
    nmask = u(~mask)
    # ---- normal binades: integer rounding at bit s0 ----
    if mode == RNE:
        rnorm = u(u(u(a + u(mask >> one)) + u(u(a & lsb) != zero)) & nmask)
    elif mode == RNA:
        rnorm = u(u(a + u(u(mask >> one) + one)) & nmask)
    elif mode == RTZ:
        rnorm = u(a & nmask)
    elif mode == UP:
        rnorm = u(u(a + u(mask & u(negb - one))) & nmask)     # away when positive
    else:
        rnorm = u(u(a + u(mask & u(zero - negb))) & nmask)    # away when negative
    # ---- target subnormal range: float32 arithmetic ----
    if mode == UP or mode == DOWN:
        # signed value: rn = x rounded to nearest even multiple of unit (cadd = 1.5 *
        # 2**(emin-man+23) keeps x + cadd inside one binade for |x| < 2**emin), then
        # step toward +inf (UP) or -inf (DOWN) when inexact; |rs| is the magnitude.
        xs = bitcast(v, fz)
        rn = f(f(xs + cadd) - cadd)
        d = f(xs - rn)
        if mode == UP:
            rs = f(rn + (unit if d > fz else fz))
        else:
            rs = f(rn - (unit if d < fz else fz))
        rsub = u(bitcast(rs, zero) & u(0x7FFFFFFF))
    else:
        ax = bitcast(a, fz)
        rn = f(f(ax + cadd) - cadd)
        if mode == RNE:
            rs = rn
        else:
            d = f(ax - rn)
            if mode == RNA:
                rs = f(rn + (unit if d == half_unit else fz))
            else:  # RTZ
                rs = f(rn - (unit if d < fz else fz))
        rsub = bitcast(rs, zero)
    r = sel(u(a < emin_bits), rsub, rnorm)
    # ---- specials, overflow, sign ----
    is_nan = u(a > u(0x7F800000))
    notnan = u(is_nan ^ one)
    over = u(u(r > maxb) & notnan)
    if mode == RNE or mode == RNA:
        r_over = ro
    else:
        notinf = u(a != u(0x7F800000))
        if mode == RTZ:
            to_max = notinf
        elif mode == UP:
            to_max = u(notinf & negb)
        else:
            to_max = u(notinf & posb)
        r_over = sel(to_max, maxb, ro)
    r = sel(over, r_over, r)
    r = sel(is_nan, nanb, r)
    if signed:
        if fnuz:
            sign_out = u(sgn & u(~u(zero - u(r == zero))))   # a zero result is +0
        else:  # NaN into a format without NaN gives +0
            sign_out = u(sgn & u(~u(zero - u(is_nan & nan0))))
        bad = u(over | u(is_nan & nan0))
    else:
        # unsigned: a negative nonzero result is out of range (NaN or 0), counted
        below = u(u(negb & u(r != zero)) & notnan)
        r = sel(below, below_val, r)
        sign_out = zero
        bad = u(u(over | below) | u(is_nan & nan0))
    return u(r | sign_out), bad


_BLK = 16384  # counting kernels: a uint32 tally per block keeps the inner loop 8 x i32


@numba.njit(**_PJIT)
def _kernel(xb, outb, mode, signed, fnuz, c, codes, cc):  # pragma: no cover - jitted
    """Every element of ``xb`` through :func:`elem`, written as float32 bits or (``codes``)
    as codes (:func:`_code_of`, constants ``cc``); returns the number of bad elements.
    Each (mode, signed, fnuz, codes) gets its own compiled loop (:func:`_fast_entry`)."""
    n = xb.size
    bad = 0
    lb, eb, ca, un, hu, mx, ro, nb, bv, n0 = c  # scalars into the loop (see _common)
    sh, of, i1, i2, ic, nm, sb = cc
    for blk in prange((n + _BLK - 1) // _BLK):
        lo = blk * _BLK
        hi = min(lo + _BLK, n)
        cnt = np.uint32(0)
        for i in range(lo, hi):
            j = np.uint64(i)
            r, b = elem(xb[j], mode, signed, fnuz,
                        F32Consts(lb, eb, ca, un, hu, mx, ro, nb, bv, n0))
            if codes:
                outb[j] = _code_of(r, signed, fnuz, eb, CodeConsts(sh, of, i1, i2, ic, nm, sb))
            else:
                outb[j] = r
            cnt = np.uint32(cnt + b)
        bad += cnt
    return bad


@numba.njit(**_INLINE)
def _code_of(r, signed, fnuz, eb, cc):  # pragma: no cover - jitted
    """The code of a quantized value given as float32 bits ``r`` (branch-free); ``eb``
    the float32 bits of 2**emin, ``cc`` a :class:`CodeConsts`."""
    u = np.uint32
    shift, offset, inv1, inv2, inf_code, nan_mag, sbit = cc
    a = u(r & u(0x7FFFFFFF))
    neg = u(r >> u(31))
    normal = u(u(a >> shift) - offset)
    sub = u(np.float32(np.float32(bitcast(a, np.float32(0.0)) * inv1) * inv2))
    mag = sel(u(a >= eb), normal, sub)
    mag = sel(u(a == u(0x7F800000)), inf_code, mag)
    is_nan = u(a > u(0x7F800000))
    mag = sel(is_nan, nan_mag, mag)
    if signed:
        if fnuz:
            # NaN is the negative-zero code; a zero result is +0
            neg = u(sel(is_nan, u(1), u(neg & u(mag != u(0)))))
        return u(mag | u(neg << sbit))
    return mag


@functools.cache
def _fast_entry(mode, kind, codes):
    """The fast-path kernel for one rounding mode, sign kind (0 signed, 1 fnuz, 2
    unsigned) and output (float32 bits or codes): a closure whose constants numba folds,
    compiled (and cached on disk) on first use, so that each is one straight-line loop."""
    signed = kind != 2
    fnuz = kind == 1

    @numba.njit(**_JIT)
    def entry(xb, outb, c, cc):  # pragma: no cover - jitted
        return _kernel(xb, outb, mode, signed, fnuz, c, codes, cc)

    return entry


def fast_consts(man: int, emin: int, max_bits: int, inf_bits: int, nan_bits: int,
                policy: int) -> F32Consts:
    """The :class:`F32Consts` of a minifloat (``max_bits``/``inf_bits``/``nan_bits``: the
    float32 bits of its largest value, Inf and NaN, 0 where absent) under ``policy``."""
    if not (0 <= man <= 22 and -126 <= emin and emin - man + 23 <= 127):
        raise ValueError("format not representable by the float32 fast path")
    u = np.uint32
    ro = inf_bits if policy == OINF else (nan_bits if policy == ONAN else max_bits)
    return F32Consts(
        u(1 << (23 - man)), u((emin + 127) << 23),
        np.float32(math.ldexp(1.5, emin - man + 23)),
        np.float32(math.ldexp(1.0, emin - man)), np.float32(math.ldexp(1.0, emin - man - 1)),
        u(max_bits), u(ro), u(nan_bits), u(nan_bits if policy == ONAN else 0),
        u(1 if nan_bits == 0 else 0),
    )


def code_consts(man: int, emin: int, inf_code: int, nan_mag: int, nbits: int) -> CodeConsts:
    """The :class:`CodeConsts` of a minifloat (``inf_code``/``nan_mag``: magnitude codes
    of Inf and NaN, 0 where absent; ``nbits`` the code width)."""
    return CodeConsts(
        np.uint32(23 - man), np.uint32(((emin + 127 - 1) << man) & 0xFFFFFFFF),
        np.float32(math.ldexp(1.0, (man - emin) // 2)),
        np.float32(math.ldexp(1.0, man - emin - (man - emin) // 2)),
        np.uint32(inf_code), np.uint32(nan_mag), np.uint32(nbits - 1),
    )


def _kind(signed: bool, fnuz: bool) -> int:
    return (1 if fnuz else 0) if signed else 2


def quantize_f32(xb: np.ndarray, outb: np.ndarray, c: F32Consts, signed: bool, fnuz: bool,
                 mode: int) -> int:
    """Fused float32 -> minifloat -> float32 for deterministic modes (uint32 views).

    Valid for formats with subnormals, 1 <= man <= 22 and emin >= -126 whose values are
    float32 numbers (``Minifloat._fast_f32``). Returns the number of bad elements
    (overflowed, out-of-range negatives of unsigned formats, NaN into a format without
    NaN).
    """
    entry = _fast_entry(int(mode), _kind(signed, fnuz), False)
    return int(entry(xb.reshape(-1), outb.reshape(-1), c, _NO_CODES))


def encode_f32(xb: np.ndarray, out: np.ndarray, c: F32Consts, cc: CodeConsts, signed: bool,
               fnuz: bool, mode: int) -> int:
    """Codes from float32 bits: the fast quantizer, then the value's fields re-packed
    (``cc``, :func:`code_consts`). Same validity as :func:`quantize_f32`."""
    entry = _fast_entry(int(mode), _kind(signed, fnuz), True)
    return int(entry(xb.reshape(-1), out.reshape(-1), c, cc))
