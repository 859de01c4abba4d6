"""numba kernels behind formats/. Private: the public API validates and dispatches.

Every kernel takes flat, contiguous arrays and plain ints/floats. Floating-point inputs
arrive as their IEEE bit patterns (an unsigned-integer view) together with the input
format's mantissa width and bias, so float16, float32 and float64 share one kernel and
rounding is done on integers: exact, branch-light, and independent of the FPU's mode.
No kernel uses fastmath.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import prange

from ._enums import Overflow, Rounding
from ._jit import INLINE as _INLINE
from ._jit import PJIT as _PJIT
from ._jit import bitcast as _bitcast
from .odd import odd_bits32, to_float32_odd

# Rounding-mode codes (Rounding.code); overflow-policy codes (Overflow.code): ERROR runs
# as SATURATE and counts.
RNE, RNA, RTZ, UP, DOWN, STOCH = (m.code for m in Rounding)
SAT, OINF, ONAN, WRAP, OERR = (m.code for m in Overflow)

TWO_M62 = 2.0**-62


@numba.njit(**_INLINE)
def round_right(sig, shift, neg, mode, rnd, rbits, par):  # pragma: no cover - jitted
    """Round the non-negative integer ``sig / 2**shift`` (shift >= 0) to an integer.

    ``rnd`` is a uniform random integer in [0, 2**62) used only by STOCH; ``rbits`` > 0
    limits stochastic rounding to that many random bits (hardware-style truncation).
    ``par`` is added to ``q`` before the nearest-even parity test, for formats whose code
    parity is not the significand's (no mantissa bits: the exponent field decides).
    """
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

    ``fin`` describes the input float: (stored mantissa width, bias, all-ones exponent
    field, sign-bit position).
    """
    imb, ibias, iemax, isign = fin
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
def mf_encode1(
    v, fin, man, emin, nosub, signed, fnuz, maxmag, infmag, nancode, nbits,
    policy, mode, rnd, rbits,
):  # pragma: no cover - jitted
    """Encode one IEEE bit pattern into a minifloat code. Returns (code, overflowed)."""
    neg, is_nan, is_inf, sig, ex = split_float(v, fin)
    if sig != 0 and sig < (np.int64(1) << fin[0]):
        # a subnormal input: normalise so the leading one sits at bit imb
        lz = fin[0] + 1 - math.frexp(float(sig))[1]
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
    q = round_right(sig, e_eff - man - ex + fin[0], neg, mode, rnd, rbits, par)
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
def mf_encode(
    xb, out, table, rnd, fin, man, emin, nosub, signed, fnuz, maxmag, infmag,
    nancode, nbits, policy, mode, rbits,
):  # pragma: no cover - jitted
    """Encode every element; with a non-empty ``table`` (the value of each code, formats
    of at most 16 bits) write the decoded values instead: fused fake-quantization."""
    n = xb.size
    use_table = table.size > 0
    bad = 0
    for i in prange(n):
        r = rnd[i] if mode == STOCH else np.int64(0)
        code, over = mf_encode1(
            np.int64(xb[i]), fin, man, emin, nosub, signed, fnuz, maxmag,
            infmag, nancode, nbits, policy, mode, r, rbits,
        )
        if use_table:
            out[i] = table[code]
        else:
            out[i] = code
        bad += np.int64(over)
    return bad


@numba.njit(**_INLINE)
def mf_decode1(
    c, man, bias, emin, nosub, signed, fnuz, maxmag, infmag, nancode, nbits,
):  # pragma: no cover - jitted
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
def mf_decode(
    codes, out, man, bias, emin, nosub, signed, fnuz, maxmag, infmag, nancode, nbits,
):  # pragma: no cover - jitted
    for i in prange(codes.size):
        out[i] = mf_decode1(
            np.int64(codes[i]), man, bias, emin, nosub, signed, fnuz, maxmag, infmag,
            nancode, nbits,
        )


@numba.njit(**_PJIT)
def table_decode(codes, out, table):  # pragma: no cover - jitted
    for i in prange(codes.size):
        out[i] = table[codes[i]]


@numba.njit(**_PJIT)
def max_code(codes):  # pragma: no cover - jitted
    m = np.int64(0)
    for i in prange(codes.size):
        c = np.int64(codes[i])
        m = max(m, c)
    return m


@numba.njit(**_INLINE)
def fixed_round1(v, fin, ulp_exp, mode, rnd, rbits):  # pragma: no cover
    """Round one IEEE bit pattern to a multiple of 2**ulp_exp.

    Returns (negative, is_nan, is_inf, magnitude in ulps, huge) where ``huge`` flags a
    magnitude of 2**62 ulps or more (then the magnitude returned is exact mod 2**64).
    """
    neg, is_nan, is_inf, sig, ex = split_float(v, fin)
    shift = ulp_exp - ex + fin[0]
    huge = False
    if shift >= 0:
        q = round_right(sig, shift, neg, mode, rnd, rbits, 0)
    else:
        left = -shift
        huge = ex - ulp_exp >= 62
        q = sig << left if left < 64 else np.int64(0)
    return neg, is_nan, is_inf, q, huge


@numba.njit(**_INLINE)
def int_value1(v, fin, ulp_exp, pos_max, neg_max, policy, mode, rnd, rbits):  # pragma: no cover
    """Round one IEEE bit pattern to a signed integer count of 2**ulp_exp, saturating (or,
    under WRAP, keeping the exact integer for the caller to wrap). Returns (value,
    overflowed, wrappable) where wrappable is false for NaN and Inf."""
    neg, is_nan, is_inf, q, huge = fixed_round1(v, fin, ulp_exp, mode, rnd, rbits)
    if is_nan:
        return np.int64(0), True, False
    limit = neg_max if neg != 0 else pos_max
    over = is_inf or huge or q > limit
    mag = q if (not over or (policy == WRAP and not is_inf)) else limit
    return (-mag if neg != 0 else mag), over, not is_inf


@numba.njit(**_PJIT)
def int_encode(
    xb, out, rnd, fin, ulp_exp, nbits, pos_max, neg_max, policy, mode, rbits,
):  # pragma: no cover - jitted
    """Two's-complement encode of x / 2**ulp_exp; neg_max is the largest negative magnitude."""
    mask = (np.int64(1) << nbits) - 1 if nbits < 64 else np.int64(-1)
    bad = 0
    for i in prange(xb.size):
        r = rnd[i] if mode == STOCH else np.int64(0)
        val, over, _ = int_value1(
            np.int64(xb[i]), fin, ulp_exp, pos_max, neg_max, policy, mode, r, rbits
        )
        out[i] = val & mask
        bad += np.int64(over)
    return bad


@numba.njit(**_PJIT)
def int_quantize(
    xb, out, rnd, fin, ulp_exp, nbits, pos_max, neg_max, policy, mode, rbits,
):  # pragma: no cover - jitted
    """Fused encode + decode of a fixed-point format (value = integer * 2**ulp_exp)."""
    mask = (np.int64(1) << nbits) - 1
    half = np.int64(1) << (nbits - 1)
    bad = 0
    for i in prange(xb.size):
        r = rnd[i] if mode == STOCH else np.int64(0)
        val, over, finite = int_value1(
            np.int64(xb[i]), fin, ulp_exp, pos_max, neg_max, policy, mode, r, rbits
        )
        if policy == WRAP and over and finite:
            val = val & mask
            if neg_max > 0 and val >= half:
                val -= np.int64(1) << nbits
        out[i] = math.ldexp(float(val), ulp_exp)
        bad += np.int64(over)
    return bad


@numba.njit(**_PJIT)
def sorted_encode(
    x, out, rnd, keys, vals, mid, mid_exact, order, mode, nan_code,
):  # pragma: no cover - jitted
    """Nearest/directed/stochastic rounding onto a sorted table of finite values.

    ``keys`` are total-order integer keys of ``vals`` (so -0 sorts below +0); ``mid[j]``
    is the float64 midpoint between vals[j] and vals[j+1], rounded down, and
    ``mid_exact[j]`` says whether that rounding was exact. Ties go to the entry whose
    code (``order``, the entry's index in the user's table) is even for RNE, away from
    zero for RNA. Returns the count of NaN inputs (mapped to the entry nearest 0).
    """
    n = x.size
    last = vals.size - 1
    bad = 0
    for i in prange(n):
        xv = x[i]
        if xv != xv:
            bad += 1
            out[i] = nan_code
            continue
        b = _key(xv)
        # largest j with keys[j] <= b
        lo = 0
        hi = last + 1
        while lo < hi:
            m = (lo + hi) >> 1
            if keys[m] <= b:
                lo = m + 1
            else:
                hi = m
        j = lo - 1
        if j < 0:
            out[i] = order[0]
            continue
        if j >= last or keys[j] == b:
            out[i] = order[j]
            continue
        if vals[j + 1] == xv:  # -0.0 against a table holding only +0.0
            out[i] = order[j + 1]
            continue
        a = vals[j]
        c = vals[j + 1]
        # xv lies strictly between a and c
        xneg = _key(xv) < 0
        if mode == RTZ:
            pick_hi = abs(c) < abs(a) or (abs(c) == abs(a) and not xneg)
        elif mode == UP:
            pick_hi = True
        elif mode == DOWN:
            pick_hi = False
        elif mode == STOCH:
            pick_hi = rnd[i] * TWO_M62 < (xv - a) / (c - a)
        else:
            md = mid[j]
            if xv > md:
                pick_hi = True
            elif xv < md or not mid_exact[j]:
                pick_hi = False
            elif mode == RNA:
                pick_hi = abs(c) > abs(a) or (abs(c) == abs(a) and not xneg)
            elif abs(c) == abs(a):  # a tie at zero between -v and +v: the sign of x
                pick_hi = not xneg
            else:
                ca = order[j]
                cb = order[j + 1]
                pick_hi = (cb & 1) < (ca & 1) or ((cb & 1) == (ca & 1) and cb < ca)
        out[i] = order[j + 1] if pick_hi else order[j]
    return bad


@numba.njit(**_INLINE)
def _key(xv):  # pragma: no cover - jitted
    """Total-order key of a float64 (monotone in value, -0 below +0)."""
    k = _bitcast(np.float64(xv), np.int64(0))
    return k if k >= 0 else -(k & np.int64(0x7FFFFFFFFFFFFFFF)) - 1


@numba.njit(**_PJIT)
def pack_bits(codes, out, bits):  # pragma: no cover - jitted
    """Little-endian bit stream: code i occupies bits [i*bits, (i+1)*bits)."""
    nbytes = out.size
    for byte in prange(nbytes):
        acc = np.int64(0)
        start = byte * 8
        first = start // bits
        last = min((start + 7) // bits, codes.size - 1)
        for k in range(first, last + 1):
            off = k * bits - start
            c = np.int64(codes[k]) & ((np.int64(1) << bits) - 1)
            acc |= (c << off) if off >= 0 else (c >> -off)
        out[byte] = acc & 0xFF


@numba.njit(**_PJIT)
def unpack_bits(data, out, bits):  # pragma: no cover - jitted
    for k in prange(out.size):
        start = k * bits
        acc = np.int64(0)
        b0 = start >> 3
        b1 = (start + bits - 1) >> 3
        for b in range(b0, b1 + 1):
            off = b * 8 - start
            v = np.int64(data[b])
            acc |= (v << off) if off >= 0 else (v >> -off)
        out[k] = acc & ((np.int64(1) << bits) - 1)


# --- fast float32 fake-quantization --------------------------------------------------
# The general kernels above round through int64 and run at ~0.2-0.5 G elem/s. For the
# common case (float32 in and out, a minifloat whose values are float32 numbers) the
# kernels below reach memory speed: numba widens every uint32 operation to 64 bits, so
# each intermediate is narrowed back with np.uint32(...) (keeping LLVM's vectors at 8 x
# i32), rounding mode and signedness are compile-time constants (closure constants in
# _fast_entry: one straight-line loop each), the target's subnormal range rounds
# in float32 arithmetic (magic-number add, exact, then one correction step for the
# directed modes), and the bad-element count is a uint32 tally per block.


@numba.njit(**_INLINE)
def _sel(c, x, y):  # pragma: no cover - jitted
    """Branch-free select on uint32: c is 0 or 1."""
    m = np.uint32(np.uint32(0) - c)
    return np.uint32(np.uint32(x & m) | np.uint32(y & np.uint32(~m)))


@numba.njit(**_INLINE)
def _elem(v, mode, signed, fnuz, lsb, emin_bits, cadd, unit, half_unit, maxb, ro, nanb,
          below_val, nan0):  # pragma: no cover - jitted
    """One element. ``mode``, ``signed``, ``fnuz`` are literals at every call site (so
    each kernel compiles to straight-line code for its case). Returns (bits, bad 0/1).

    numba widens every uint32 operation to 64 bits, so each intermediate is narrowed
    back with u(...); that keeps LLVM's vectors at 8 x i32.
    """
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
        xs = _bitcast(v, fz)
        rn = f(f(xs + cadd) - cadd)
        d = f(xs - rn)
        if mode == UP:
            rs = f(rn + (unit if d > fz else fz))
        else:
            rs = f(rn - (unit if d < fz else fz))
        rsub = u(_bitcast(rs, zero) & u(0x7FFFFFFF))
    else:
        ax = _bitcast(a, fz)
        rn = f(f(ax + cadd) - cadd)
        if mode == RNE:
            rs = rn
        else:
            d = f(ax - rn)
            if mode == RNA:
                rs = f(rn + (unit if d == half_unit else fz))
            else:  # RTZ
                rs = f(rn - (unit if d < fz else fz))
        rsub = _bitcast(rs, zero)
    r = _sel(u(a < emin_bits), rsub, rnorm)
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
        r_over = _sel(to_max, maxb, ro)
    r = _sel(over, r_over, r)
    r = _sel(is_nan, nanb, r)
    if signed:
        if fnuz:
            sign_out = u(sgn & u(~u(zero - u(r == zero))))   # a zero result is +0
        else:  # NaN into a format without NaN gives +0
            sign_out = u(sgn & u(~u(zero - u(is_nan & nan0))))
        bad = u(over | u(is_nan & nan0))
    else:
        # unsigned: a negative nonzero result is out of range (NaN or 0), counted
        below = u(u(negb & u(r != zero)) & notnan)
        r = _sel(below, below_val, r)
        sign_out = zero
        bad = u(u(over | below) | u(is_nan & nan0))
    return u(r | sign_out), bad


_BLK = 16384  # counting kernels: a uint32 tally per block keeps the inner loop 8 x i32

# Kernels: one per (mode, sign kind, counting), generated by _gen_kernels_source() below
# (literal arguments to _elem make each one straight-line code). Kind s = signed,
# z = signed fnuz, u = unsigned. Counting kernels return the number of bad elements.
@numba.njit(**_PJIT)
def _kernel(
    xb, outb, mode, signed, fnuz, lb, eb, c, un, hu, mx, ro, nb, bv, n0, codes, cc
):  # pragma: no cover
    n = xb.size
    bad = 0
    for blk in prange((n + _BLK - 1) // _BLK):
        lo = blk * _BLK
        hi = min(lo + _BLK, n)
        cnt = np.uint32(0)
        for i in range(lo, hi):
            j = np.uint64(i)
            r, b = _elem(xb[j], mode, signed, fnuz, lb, eb, c, un, hu, mx, ro, nb, bv, n0)
            if codes:
                outb[j] = _code_of(r, signed, fnuz, eb, cc)
            else:
                outb[j] = r
            cnt = np.uint32(cnt + b)
        bad += cnt
    return bad


@numba.njit(**_INLINE)
def _code_of(r, signed, fnuz, eb, cc):  # pragma: no cover - jitted
    """The code of a quantized value given as float32 bits ``r`` (branch-free).

    ``cc`` = (shift 23 - man, offset of the exponent field, 2**-(emin - man) split into
    two float32 factors, code of +Inf, NaN magnitude code, sign-bit position of the code).
    """
    u = np.uint32
    shift, offset, inv1, inv2, inf_code, nan_mag, sbit = cc
    a = u(r & u(0x7FFFFFFF))
    neg = u(r >> u(31))
    normal = u(u(a >> shift) - offset)
    sub = u(np.float32(np.float32(_bitcast(a, np.float32(0.0)) * inv1) * inv2))
    mag = _sel(u(a >= eb), normal, sub)
    mag = _sel(u(a == u(0x7F800000)), inf_code, mag)
    is_nan = u(a > u(0x7F800000))
    mag = _sel(is_nan, nan_mag, mag)
    if signed:
        if fnuz:
            # NaN is the negative-zero code; a zero result is +0
            neg = u(_sel(is_nan, u(1), u(neg & u(mag != u(0)))))
        return u(mag | u(neg << sbit))
    return mag


@functools.cache
def _fast_entry(mode, kind, codes):
    """The fast-path kernel for one rounding mode, sign kind (0 signed, 1 fnuz, 2
    unsigned) and output (float32 bits or codes): a closure whose constants numba folds,
    compiled (and cached on disk) on first use, so that each is one straight-line loop."""
    signed = kind != 2
    fnuz = kind == 1

    @numba.njit(cache=True, nogil=True)
    def entry(xb, outb, lb, eb, c, un, hu, mx, ro, nb, bv, n0, cc):  # pragma: no cover
        return _kernel(
            xb, outb, mode, signed, fnuz, lb, eb, c, un, hu, mx, ro, nb, bv, n0, codes, cc
        )

    return entry


def _consts(man, emin, signed, fnuz, max_bits, inf_bits, nan_bits, policy):
    if not (0 <= man <= 22 and -126 <= emin and emin - man + 23 <= 127):
        raise ValueError("format not representable by the float32 fast path")
    u = np.uint32
    ro = inf_bits if policy == OINF else (nan_bits if policy == ONAN else max_bits)
    return (
        u(1 << (23 - man)),                                    # lsb of the kept bits
        u((emin + 127) << 23),                                 # bits of 2**emin
        np.float32(math.ldexp(1.5, emin - man + 23)),          # magic add (1.5 * 2**k)
        np.float32(math.ldexp(1.0, emin - man)),               # subnormal unit
        np.float32(math.ldexp(1.0, emin - man - 1)),           # half unit
        u(max_bits), u(ro), u(nan_bits),
        u(nan_bits if policy == ONAN else 0),                  # unsigned below-range value
        u(1 if nan_bits == 0 else 0),                          # NaN input counts as bad
    )


def quantize_f32(xb, outb, man, emin, signed, fnuz, max_bits, inf_bits, nan_bits,
                 policy, mode):
    """Fused float32 -> minifloat -> float32 for deterministic modes (uint32 views).

    Valid for formats with subnormals, 1 <= man <= 22 and emin >= -126 whose values are
    float32 numbers (``fast_f32_ok``). Returns the number of bad elements (overflowed,
    out-of-range negatives of unsigned formats, NaN into a format without NaN).
    """
    c = _consts(man, emin, signed, fnuz, max_bits, inf_bits, nan_bits, policy)
    kind = (1 if fnuz else 0) if signed else 2
    f0, u0 = np.float32(0.0), np.uint32(0)
    cc = (u0, u0, f0, f0, u0, u0, u0)
    return int(_fast_entry(int(mode), kind, False)(xb.reshape(-1), outb.reshape(-1), *c, cc))


def encode_f32(xb, out, man, emin, signed, fnuz, max_bits, inf_bits, nan_bits, policy, mode,
               inf_code, nan_mag, nbits):
    """Codes from float32 bits: the fast quantizer, then the value's fields re-packed.

    Same validity as :func:`quantize_f32`; ``inf_code``/``nan_mag`` are the magnitude codes
    of Inf and NaN (0 where absent) and ``nbits`` the code width.
    """
    c = _consts(man, emin, signed, fnuz, max_bits, inf_bits, nan_bits, policy)
    cc = (
        np.uint32(23 - man),
        np.uint32(((emin + 127 - 1) << man) & 0xFFFFFFFF),
        np.float32(math.ldexp(1.0, (man - emin) // 2)),
        np.float32(math.ldexp(1.0, man - emin - (man - emin) // 2)),
        np.uint32(inf_code), np.uint32(nan_mag), np.uint32(nbits - 1),
    )
    kind = (1 if fnuz else 0) if signed else 2
    return int(_fast_entry(int(mode), kind, True)(xb.reshape(-1), out.reshape(-1), *c, cc))


@numba.njit(**_PJIT)
def fixed_quantize_fast(x, out, scale, inv_scale, lo, hi, mode):  # pragma: no cover
    """Fused quantize of float32/float64 input to integer * 2**-f (deterministic modes,
    saturating). float64 arithmetic throughout: scaling by a power of two is exact, the
    rounding functions are exact, and the clamp bounds are integers. NaN gives 0. Returns
    the number of out-of-range (or NaN) elements."""
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


@numba.njit(**_PJIT)
def table_nearest(x, out, mids, exact, tie_rule, order, npad, nan_code):  # pragma: no cover
    """Nearest rounding onto a sorted table by counting (small tables) or a branch-free
    binary search over the midpoints (``mids``: float64 midpoints rounded down, padded
    with +Inf to ``npad``, a power of two; ``exact``: whether each was exact). A tie at
    an exact midpoint follows ``tie_rule`` per gap: 0 the lower entry, 1 the upper, 2 the
    sign of x. Writes codes; NaN gets ``nan_code``. Returns the number of NaN inputs."""
    bad = 0
    nmid = exact.size
    for i in prange(x.size):
        xv = np.float64(x[i])
        pos = 0
        if npad <= 64:
            # small tables: count the midpoints below x (vectorizes; 7x the search)
            for k in range(npad):
                pos += xv > mids[k]
        else:
            step = npad >> 1
            while step > 0:
                pos += step if xv > mids[pos + step - 1] else 0
                step >>= 1
        j = min(pos, nmid - 1)
        tie = pos < nmid and exact[j] and xv == mids[j]
        rule = tie_rule[j]
        up = tie and (rule == 1 or (rule == 2 and _bitcast(xv, np.int64(0)) >= 0))
        nan = xv != xv
        out[i] = nan_code if nan else order[pos + np.int64(up)]
        bad += np.int64(nan)
    return bad


# --- block-scaled fake-quantization ---------------------------------------------------
@numba.njit(**_PJIT)
def block_amax(rows, amax, bad):  # pragma: no cover - jitted
    """Per row of ``rows`` (nblocks, bs): the largest finite magnitude, and whether the
    row holds NaN or Inf."""
    for b in prange(rows.shape[0]):
        m = 0.0
        nonfinite = False
        for j in range(rows.shape[1]):
            v = abs(np.float64(rows[b, j]))
            nonfinite |= not (v < np.inf)
            m = max(m, v if v < np.inf else 0.0)
        amax[b] = m
        bad[b] = nonfinite


@numba.njit(**_PJIT)
def block_divide_odd(rows, scale, out):  # pragma: no cover - jitted
    """out = rows / scale (per row) rounded to float32 *to odd* (:mod:`formats.odd`), so
    that one later rounding to a format of at most 22 significand bits equals rounding
    the exact quotient once. A zero scale gives 0; a NaN scale NaN."""
    for b in prange(rows.shape[0]):
        s = scale[b]
        for j in range(rows.shape[1]):
            q = np.float64(rows[b, j]) / s if s != 0.0 else 0.0
            out[b, j] = _bitcast(to_float32_odd(q), np.float32(0.0))


@numba.njit(**_PJIT)
def block_multiply(vals, scale, out):  # pragma: no cover - jitted
    """out = vals * scale per row (float64 product, one rounding to out's dtype)."""
    for b in prange(vals.shape[0]):
        s = scale[b]
        for j in range(vals.shape[1]):
            out[b, j] = np.float64(vals[b, j]) * s


@numba.njit(**_INLINE)
def _pow2_scale1(a, rule, emax_elem, elem_max, man_elem, lo, hi):  # pragma: no cover
    """One block's power-of-two scale (the rules of :func:`pow2_scales`)."""
    if not a > 0.0:
        return math.ldexp(1.0, lo)
    m, e = math.frexp(a)
    if rule == 0:
        k = e - 1 - emax_elem
    elif rule == 1:
        k = e - 1 + (1 if m != 0.5 else 0) - emax_elem
    elif rule == 2:
        r = math.floor(math.ldexp(m, man_elem + 1) + 0.5)
        k = e - 1 + (1 if r >= (1 << (man_elem + 1)) else 0) - emax_elem
    else:
        k = math.frexp(a / elem_max)[1] - 1
        if math.ldexp(elem_max, k) < a:
            k += 1
        if math.ldexp(elem_max, k - 1) >= a:
            k -= 1
    return math.ldexp(1.0, min(max(k, lo), hi))


@numba.njit(**_PJIT)
def pow2_scales(amax, rule, emax_elem, elem_max, man_elem, lo, hi, out):
    """Each block's power-of-two scale 2**k (k clamped to lo..hi), exactly.

    rule 0 FLOOR: floor(log2 amax) - emax_elem; 1 CEIL: ceil(log2 amax) - emax_elem;
    2 EVEN: FLOOR of amax rounded (ties away) to man_elem + 1 significant bits;
    3 RCEIL: least k with elem_max * 2**k >= amax. amax == 0 gives lo.
    """  # pragma: no cover - jitted
    for b in prange(amax.size):
        out[b] = _pow2_scale1(amax[b], rule, emax_elem, elem_max, man_elem, lo, hi)


@numba.njit(**_PJIT)
def block_amax_bits(rows, amax, bad):  # pragma: no cover - jitted
    """:func:`block_amax` for float32 rows given as uint32 bits (integer max: vectorizes)."""
    for b in prange(rows.shape[0]):
        m = np.uint32(0)
        nf = np.uint32(0)
        for j in range(rows.shape[1]):
            a = np.uint32(rows[b, j] & np.uint32(0x7FFFFFFF))
            fin = np.uint32(a < np.uint32(0x7F800000))
            nf = np.uint32(nf | np.uint32(fin ^ np.uint32(1)))
            m = max(m, _sel(fin, a, np.uint32(0)))
        amax[b] = np.float64(_bitcast(m, np.float32(0.0)))
        bad[b] = nf != 0


@functools.cache
def _block_entry(ek, src, div):
    """Fused block fake-quantization of float32 rows (uint32 bits in, float32 bits out):
    per block, the scale (``src`` 0: given per block; 1..4: the power-of-two rule
    FLOOR/CEIL/EVEN/RCEIL, computed here from the block's max), the division (``div`` 0:
    multiplication by the exact power-of-two reciprocal; 1: division rounded to odd, as
    :func:`block_divide_odd`), the element's nearest-even saturating quantization (``ek``
    0/1/2: minifloat signed/fnuz/unsigned through ``_elem``; 3: integer grid
    ``rint(y * escale)`` clamped to lo..hi), and the multiplication back, in one pass."""
    signed = ek != 2
    fnuz = ek == 1
    rule = src - 1

    @numba.njit(parallel=True, cache=True, nogil=True)
    def entry(rows, out, scale, lb, eb, c, un, hu, mx, ro, nb, bv, n0,
              escale, einv, elo, ehi, emax_elem, elem_max, man_elem, slo, shi, nan_scale, tsv):
        u = np.uint32
        f32 = np.float32
        bs = rows.shape[1]
        for b in prange(rows.shape[0]):
            if src != 0:
                m = u(0)
                nf = u(0)
                for j in range(bs):
                    a = u(rows[b, j] & u(0x7FFFFFFF))
                    fin = u(a < u(0x7F800000))
                    nf = u(nf | u(fin ^ u(1)))
                    m = max(m, _sel(fin, a, u(0)))
                amax = np.float64(_bitcast(m, f32(0.0)))
                if nf != 0:
                    s = nan_scale
                else:
                    s = _pow2_scale1(amax, rule, emax_elem, elem_max, man_elem, slo, shi)
                scale[b] = s
            else:
                s = scale[b]
            if s == 0.0:
                for j in range(bs):
                    out[b, j] = u(0)
                continue
            # power-of-two scales (div 0) are float32 numbers: float32 products round
            # the exact product once, as float64 ones rounded to float32 would
            inv = 1.0 / s
            inv32 = f32(inv)
            s32 = f32(s)
            sv32 = f32(s / tsv)  # s = scale * tensor scale exactly, so this is exact
            ts32 = f32(tsv)
            for j in range(bs):
                if div == 0:
                    yb = _bitcast(f32(_bitcast(u(rows[b, j]), f32(0.0)) * inv32), u(0))
                elif div == 1:
                    yb = to_float32_odd(np.float64(_bitcast(u(rows[b, j]), f32(0.0))) / s)
                else:  # div 2 or 3
                    # no division: t = x * (1/s) rounded to float32 is the exact quotient's
                    # float32 neighbour toward zero or away; t * s is exact (s has at most
                    # 29 significant bits), so the sign of x - t * s says which (and
                    # whether x / s was exact): round to odd from there
                    xv = np.float64(_bitcast(u(rows[b, j]), f32(0.0)))
                    t = f32(xv * inv)
                    ts_ = np.float64(t) * s
                    r = xv - ts_
                    inexact = u((r != 0.0) & (r == r))
                    yb = odd_bits32(t, inexact, u(inexact & u(abs(ts_) > abs(xv))))
                if ek == 3:
                    z = np.float64(_bitcast(yb, f32(0.0))) * escale
                    r = min(max(np.rint(z), elo), ehi)
                    val = f32((0.0 if z != z else r) * einv)
                else:
                    rb, _ = _elem(yb, RNE, signed, fnuz, lb, eb, c, un, hu, mx, ro, nb, bv, n0)
                    val = _bitcast(rb, f32(0.0))
                if div == 0:
                    out[b, j] = _bitcast(f32(val * s32), u(0))
                elif div == 3:
                    out[b, j] = _bitcast(f32(f32(val * sv32) * ts32), u(0))
                else:
                    out[b, j] = _bitcast(f32(np.float64(val) * s), u(0))

    return entry


def block_quantize_f32(rows, out, scale, ek, src, div, elem_consts, fixed_consts,
                       pow2_consts, ts=1.0):
    """Run the fused kernel of :func:`_block_entry` on uint32 views ``rows``/``out``
    (nblocks, bs); ``scale`` (float64, nblocks) is read (src 0) or written."""
    _block_entry(ek, src, div)(rows, out, scale, *elem_consts, *fixed_consts, *pow2_consts,
                               float(ts))



@numba.njit(**_PJIT)
def scale_targets_odd(amax, ts, elem_max, out):  # pragma: no cover - jitted
    """``amax / ts / elem_max`` (float64) rounded to odd in float32 (bits, see
    :func:`formats.odd.to_float32_odd`): one later rounding to a format of at most 22
    significand bits equals rounding the float64 value once; values beyond float32's
    range become its largest finite value, odd."""
    for i in prange(amax.size):
        out[i] = to_float32_odd(amax[i] / ts / elem_max)


@numba.njit(**_PJIT)
def scale_finish(vals, bad, bad_value, ts, svals, s_all):  # pragma: no cover - jitted
    """Scale values (float32 ``vals``, or ``bad_value`` for blocks flagged ``bad``) as
    float64 ``svals``, and ``s_all`` = svals * ts."""
    for i in prange(vals.size):
        v = bad_value if bad[i] else np.float64(vals[i])
        svals[i] = v
        s_all[i] = v * ts
