"""Triton kernels of the scalar formats: encode, decode and quantize on CUDA tensors.

Each kernel is a transcription of its numba twin in formats/_kernels/ (named beside it),
element-wise and branch-free: the same integer rounding of the input's IEEE bits (the
input dtype's layout, so float16, bfloat16, float32 and float64 are read directly), the
same random stream (:mod:`formats.stream`: the element's flat index is its counter), the
same float64 steps. Rounding mode, overflow policy and the format's shape are
compile-time constants, so each case compiles to straight-line code.

GPU numerics hazards and what avoids them (see the module notes in formats/_gpu): every
launch passes ``enable_fp_fusion=False`` (no multiply-add contraction); there is no
float32 division; float64 products by powers of two are exact or rounded once, as
``ldexp`` is; shift amounts stay below the operand's width.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import triton
import triton.language as tl

from .. import _kernels as K
from .. import stream
from .._enums import Overflow, Rounding, Special
from .f32 import elem
from .launch import launch

__all__ = ["decode", "encode", "quantize"]

_BLOCK = 1024
#: the sign bit of a float64, as an int64
SIGN64 = tl.constexpr(-(1 << 63))
_LAUNCH = {"enable_fp_fusion": False}

#: the bit layout of each input dtype: (view dtype, mantissa bits, bias, all-ones
#: exponent, sign bit, mask of the bits)
_LAYOUT: dict[torch.dtype, tuple[torch.dtype, int, int, int, int, int]] = {
    torch.float16: (torch.int16, 10, 15, 31, 15, 0xFFFF),
    torch.bfloat16: (torch.int16, 7, 127, 255, 15, 0xFFFF),
    torch.float32: (torch.int32, 23, 127, 255, 31, 0xFFFFFFFF),
    torch.float64: (torch.int64, 52, 1023, 2047, 63, -1),
}


# --- shared element functions (formats/_kernels/_common.py, formats/stream.py) ----------
@triton.jit
def _rand62(k, idx):
    """formats.stream.rand62: SplitMix64's output function of k + idx * gamma, >> 2."""
    z = tl.cast(k, tl.uint64) + idx.to(tl.uint64) * 0x9E3779B97F4A7C15
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB
    z = z ^ (z >> 31)
    return (z >> 2).to(tl.int64)


@triton.jit
def _pow2(e):
    """2.0**e (float64) for integer e in -1022..1023, from its bits."""
    return ((e.to(tl.int64) + 1023) << 52).to(tl.float64, bitcast=True)


@triton.jit
def _ldexp(v, e):
    """math.ldexp(v, e) for a float64 v holding an integer below 2**53 in magnitude and
    an integer tensor e: the exact product rounded once (an in-range first factor keeps
    the intermediate exact)."""
    e = e.to(tl.int64)
    e1 = tl.minimum(tl.maximum(e, -1022), 960)
    e2 = tl.minimum(tl.maximum(e - e1, -1022), 1023)
    return v * _pow2(e1) * _pow2(e2)


@triton.jit
def _split_float(v, FMAN: tl.constexpr, FBIAS: tl.constexpr, FONES: tl.constexpr,
                 FSIGN: tl.constexpr):
    """_common.split_float: IEEE bits (int64) -> (neg, is_nan, is_inf, sig, exponent)."""
    e_field = (v >> FMAN) & FONES
    frac = v & ((1 << FMAN) - 1)
    neg = (v >> FSIGN) & 1
    nonfinite = e_field == FONES
    is_nan = nonfinite & (frac != 0)
    is_inf = nonfinite & (frac == 0)
    sig = frac | ((e_field != 0).to(tl.int64) << FMAN)
    ex = tl.maximum(e_field, 1) - FBIAS
    return neg, is_nan, is_inf, sig, ex


@triton.jit
def _round_right(sig, shift, neg, rnd, rbits, par, MODE: tl.constexpr):
    """_common.round_right: the non-negative integer sig / 2**shift rounded to an integer
    (a negative shift is an exact left shift)."""
    s = tl.minimum(tl.maximum(shift, 0), 62)
    q = sig >> s
    rem = sig - (q << s)
    full = tl.full(sig.shape, 1, tl.int64) << s
    twice = rem << 1
    if MODE == 0:  # nearest-even
        inc = (twice > full) | ((twice == full) & (((q + par) & 1) == 1))
    elif MODE == 1:  # nearest-away
        inc = (twice >= full) & (rem != 0)
    elif MODE == 2:  # toward zero
        inc = rem != rem
    elif MODE == 3:  # up
        inc = (rem != 0) & (neg == 0)
    elif MODE == 4:  # down
        inc = (rem != 0) & (neg != 0)
    else:  # stochastic
        # shift > 62: compare in float64, as the CPU does (rnd * 2**-62 is exact)
        a = tl.minimum(shift, 1022)
        y = sig.to(tl.float64) * _pow2(-a) * _pow2(-tl.minimum(shift - a, 1022))
        far = (rnd.to(tl.float64) * 2.168404344971009e-19) < y
        sb = tl.maximum(s - rbits, 0)
        trunc = (rnd >> (62 - rbits)) < (rem >> sb)
        full_bits = (rnd >> (62 - s)) < rem
        inc = tl.where(shift > 62, far, tl.where((rbits > 0) & (s > rbits), trunc, full_bits))
    left = (sig << tl.minimum(tl.maximum(-shift, 0), 62))
    return tl.where(shift < 0, left, q + inc.to(tl.int64))


@triton.jit
def _load_bits(x_ptr, offs, mask, BITMASK: tl.constexpr):
    """The input's IEEE bits as a non-negative int64 (float64: its int64 view)."""
    v = tl.load(x_ptr + offs, mask=mask, other=0).to(tl.int64)
    if BITMASK != -1:
        v = v & BITMASK
    return v


@triton.jit
def _block_inputs(x_ptr, n, key, BITMASK: tl.constexpr, MODE: tl.constexpr,
                  BLOCK: tl.constexpr):
    """This program's element indices, their mask, input bits and stream integers (0
    unless stochastic)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    v = _load_bits(x_ptr, offs, mask, BITMASK)
    if MODE == 5:
        rnd = _rand62(key, offs)
    else:
        rnd = offs * 0
    return offs, mask, v, rnd


# --- minifloats (formats/_kernels/minifloat.py) ---------------------------------------
# The format's fields are run-time arguments, not specialised (one compiled kernel serves
# every minifloat; Triton compiles per rounding mode, policy and input dtype only):
# ``man, emin, bias, nbits, maxmag, infmag, nancode`` as in MinifloatParams, ``nosub,
# signed, fnuz`` 0/1.
@triton.jit
def _mf_encode1(v, rnd, rbits, man, emin, nosub, signed, fnuz, maxmag, infmag, nancode,
                nbits, FMAN: tl.constexpr, FBIAS: tl.constexpr, FONES: tl.constexpr,
                FSIGN: tl.constexpr, POLICY: tl.constexpr, MODE: tl.constexpr):
    """minifloat.mf_encode1 on a tensor: (code, bad)."""
    neg, is_nan, is_inf, sig, ex = _split_float(v, FMAN, FBIAS, FONES, FSIGN)
    # a subnormal input: normalise so the leading one sits at bit FMAN
    sub_in = (sig != 0) & (sig < (1 << FMAN))
    lead = ((sig.to(tl.float64).to(tl.int64, bitcast=True) >> 52) & 2047) - 1023
    lz = tl.where(sub_in, FMAN - lead, 0)
    sig = sig << lz
    ex = ex - lz
    man = tl.cast(man, tl.int64)
    emin = tl.cast(emin, tl.int64)
    sign_bit = tl.full(sig.shape, 1, tl.int64) << (tl.cast(nbits, tl.int64) - 1)
    e_eff = tl.maximum(ex, emin)
    # with no mantissa bits a normal code's parity is its exponent field's
    par = tl.where((man == 0) & (ex >= emin), (e_eff - emin + (1 - nosub) + 1) & 1, 0)
    q = _round_right(sig, e_eff - man - ex + FMAN, neg, rnd, rbits, par, MODE)
    one = tl.full(sig.shape, 1, tl.int64) << man
    mag = tl.where(nosub != 0,
                   tl.where((ex < emin) | (sig == 0), 0, ((e_eff - emin) << man) + q - one),
                   tl.where(sig == 0, 0, ((e_eff - emin) << man) + q))
    mag = tl.where(is_inf, maxmag + 1, mag)
    negative = (neg != 0) & ((mag != 0) | ((nosub != 0) & (is_inf == 0)))
    # an overflow: saturate, Inf or NaN, or the largest value for directed roundings
    over = mag > maxmag
    if MODE == 2:
        to_max = is_inf == 0
    elif MODE == 3:
        to_max = (is_inf == 0) & (neg != 0)
    elif MODE == 4:
        to_max = (is_inf == 0) & (neg == 0)
    else:
        to_max = is_inf != is_inf
    signed_nan = nancode | tl.where((neg != 0) & (signed != 0) & (fnuz == 0), sign_bit, 0)
    if POLICY == 1:  # inf
        res = tl.where(over, tl.where(to_max, maxmag, infmag), mag)
    else:
        res = tl.where(over, maxmag, mag)
    sgn = (signed != 0) & (neg != 0) & ((fnuz == 0) | (res != 0))
    res = tl.where(sgn, res | sign_bit, res)
    if POLICY == 2:  # nan
        res = tl.where(over & (to_max == 0), signed_nan, res)
    bad = over & (POLICY == 4)
    # exact zero in a format without zero; negatives below an unsigned range: 0, or NaN
    # under policy nan where the format has NaN
    if POLICY == 2:
        low = tl.where(nancode >= 0, nancode, 0)
        low_bad = bad & False
    else:
        low = tl.zeros_like(res)
        low_bad = (bad | True) & (POLICY == 4)
    zero_in = (nosub != 0) & (sig == 0) & (is_inf == 0)
    below = (signed == 0) & negative
    res = tl.where(zero_in | below, low, res)
    bad = tl.where(zero_in | below, low_bad, bad)
    res = tl.where(is_nan, tl.where(nancode >= 0, signed_nan, 0), res)
    bad = tl.where(is_nan, (nancode < 0) & (POLICY == 4), bad)
    return res, bad


@triton.jit
def _mf_decode1(c, man, bias, emin, nosub, signed, fnuz, maxmag, infmag, nancode, nbits):
    """minifloat.mf_decode1 on a tensor of int64 codes: float64 values."""
    man = tl.cast(man, tl.int64)
    sign_bit = tl.full(c.shape, 1, tl.int64) << (tl.cast(nbits, tl.int64) - 1)
    neg = (signed != 0) & ((c & sign_bit) != 0)
    mag = tl.where(signed != 0, c & (sign_bit - 1), c)
    f = mag >> man
    one = tl.full(c.shape, 1, tl.int64) << man
    m = mag & (one - 1)
    normal = _ldexp((m + one).to(tl.float64), f - bias - man)
    sub = _ldexp(m.to(tl.float64), emin - man + f * 0)
    val = tl.where((f == 0) & (nosub == 0), sub, normal)
    # the sign as a bit (Triton's -x is 0 - x, which loses -0.0); NaN stays positive
    val = tl.where(neg, (val.to(tl.int64, bitcast=True) | SIGN64).to(tl.float64, bitcast=True),
                   val)
    inf = tl.where(neg, float("-inf"), float("inf"))
    special = tl.where(mag == infmag, inf, float("nan"))
    val = tl.where(mag > maxmag, special, val)
    val = tl.where((fnuz != 0) & (c == nancode), float("nan"), val)
    return val


@triton.jit(do_not_specialize=["n", "key", "rbits", "man", "emin", "nosub", "signed", "fnuz",
                            "maxmag", "infmag", "nancode", "nbits", "bias"])
def _mf_encode_kernel(x_ptr, out_ptr, table_ptr, bad_ptr, n, key, rbits, man, emin, nosub,
                      signed, fnuz, maxmag, infmag, nancode, nbits, bias,
                      BITMASK: tl.constexpr, FMAN: tl.constexpr, FBIAS: tl.constexpr,
                      FONES: tl.constexpr, FSIGN: tl.constexpr, POLICY: tl.constexpr,
                      MODE: tl.constexpr, OUT: tl.constexpr, BLOCK: tl.constexpr):
    """minifloat.mf_encode: codes (OUT 0), values by the table (OUT 1) or values by
    mf_decode1 (OUT 2) of every element; the bad count into bad_ptr (policy error)."""
    offs, mask, v, rnd = _block_inputs(x_ptr, n, key, BITMASK, MODE, BLOCK)
    code, bad = _mf_encode1(v, rnd, rbits, man, emin, nosub, signed, fnuz, maxmag, infmag,
                            nancode, nbits, FMAN, FBIAS, FONES, FSIGN, POLICY, MODE)
    if OUT == 0:
        tl.store(out_ptr + offs, code, mask=mask)
    elif OUT == 1:
        tl.store(out_ptr + offs, tl.load(table_ptr + code, mask=mask, other=0), mask=mask)
    else:
        tl.store(out_ptr + offs, _mf_decode1(code, man, bias, emin, nosub, signed, fnuz,
                                             maxmag, infmag, nancode, nbits), mask=mask)
    if POLICY == 4:
        tl.atomic_add(bad_ptr, tl.sum((bad & mask).to(tl.int64)))


@triton.jit(do_not_specialize=["n", "man", "bias", "emin", "nosub", "signed", "fnuz", "maxmag",
                            "infmag", "nancode", "nbits"])
def _mf_decode_kernel(c_ptr, out_ptr, n, man, bias, emin, nosub, signed, fnuz, maxmag,
                      infmag, nancode, nbits, CMASK: tl.constexpr, BLOCK: tl.constexpr):
    """minifloat.mf_decode of every code (int64 values into out's dtype)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    c = tl.load(c_ptr + offs, mask=mask, other=0).to(tl.int64) & CMASK
    tl.store(out_ptr + offs, _mf_decode1(c, man, bias, emin, nosub, signed, fnuz, maxmag,
                                         infmag, nancode, nbits), mask=mask)


@triton.jit(do_not_specialize=["n"])
def _table_decode_kernel(c_ptr, out_ptr, table_ptr, n, CMASK: tl.constexpr,
                         BLOCK: tl.constexpr):
    """table.table_decode: out[i] = table[codes[i]]."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    c = tl.load(c_ptr + offs, mask=mask, other=0).to(tl.int64) & CMASK
    tl.store(out_ptr + offs, tl.load(table_ptr + c, mask=mask, other=0), mask=mask)


@triton.jit(do_not_specialize=["n", "lsb", "emin_bits", "cadd", "unit", "half_unit", "max_bits",
                            "over_bits", "nan_bits", "below_bits", "nan_bad"])
def _f32_kernel(x_ptr, out_ptr, bad_ptr, n, lsb, emin_bits, cadd, unit, half_unit, max_bits,
                over_bits, nan_bits, below_bits, nan_bad, MODE: tl.constexpr,
                SIGNED: tl.constexpr, FNUZ: tl.constexpr, COUNT: tl.constexpr,
                BLOCK: tl.constexpr):
    """minifloat_f32.quantize_f32: the float32 fast path (deterministic modes), 16-bit
    inputs widened to float32 exactly as the CPU path does."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    v = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32).to(tl.uint32, bitcast=True)
    r, bad = elem(v, MODE, SIGNED, FNUZ, lsb, emin_bits, cadd, unit, half_unit, max_bits,
                  over_bits, nan_bits, below_bits, nan_bad)
    tl.store(out_ptr + offs, r.to(tl.float32, bitcast=True), mask=mask)
    if COUNT:
        tl.atomic_add(bad_ptr, tl.sum(tl.where(mask, bad, 0).to(tl.int64)))


# --- integers and fixed point (formats/_kernels/fixed.py) ----------------------------
@triton.jit(do_not_specialize=["n", "key", "rbits", "ulp", "nbits", "pos_max", "neg_max"])
def _int_kernel(x_ptr, out_ptr, bad_ptr, n, key, rbits, ulp, nbits, pos_max, neg_max,
                BITMASK: tl.constexpr, FMAN: tl.constexpr, FBIAS: tl.constexpr,
                FONES: tl.constexpr, FSIGN: tl.constexpr, POLICY: tl.constexpr,
                MODE: tl.constexpr, VALUES: tl.constexpr, BLOCK: tl.constexpr):
    """fixed.int_encode (VALUES 0: two's-complement codes) and fixed.int_quantize
    (VALUES 1: the values) of every element; the format's fields at run time."""
    offs, mask, v, rnd = _block_inputs(x_ptr, n, key, BITMASK, MODE, BLOCK)
    # fixed_round1
    neg, is_nan, is_inf, sig, ex = _split_float(v, FMAN, FBIAS, FONES, FSIGN)
    shift = ulp - ex + FMAN
    q = _round_right(sig, shift, neg, rnd, rbits, sig * 0, MODE)
    huge = (shift < 0) & (ex - ulp >= 62)
    q = tl.where((shift < 0) & (-shift >= 64), 0, q)
    # int_value1
    limit = tl.where(neg != 0, neg_max, pos_max).to(tl.int64)
    over = is_inf | huge | (q > limit)
    if POLICY == 3:  # wrap keeps the exact integer, except for Inf
        mag = tl.where(over & is_inf, limit, q)
    else:
        mag = tl.where(over, limit, q)
    val = tl.where(neg != 0, -mag, mag)
    val = tl.where(is_nan, 0, val)
    over = over | is_nan
    width = tl.full(val.shape, 1, tl.int64) << tl.cast(nbits, tl.int64)
    if VALUES == 0:
        tl.store(out_ptr + offs, val & (width - 1), mask=mask)
    else:
        if POLICY == 3:
            w = val & (width - 1)
            w = tl.where((neg_max > 0) & (w >= (width >> 1)), w - width, w)
            val = tl.where(over & (is_nan == 0) & (is_inf == 0), w, val)
        tl.store(out_ptr + offs, _ldexp(val.to(tl.float64), ulp + val * 0), mask=mask)
    if POLICY == 4:
        tl.atomic_add(bad_ptr, tl.sum((over & mask).to(tl.int64)))


@triton.jit(do_not_specialize=["n", "ulp", "nbits", "signed"])
def _int_decode_kernel(c_ptr, out_ptr, n, ulp, nbits, signed, CMASK: tl.constexpr,
                       BLOCK: tl.constexpr):
    """FixedBase._decode_flat: two's-complement codes times 2**ulp."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    c = tl.load(c_ptr + offs, mask=mask, other=0).to(tl.int64) & CMASK
    width = tl.full(c.shape, 1, tl.int64) << tl.cast(nbits, tl.int64)
    c = tl.where((signed != 0) & (c >= (width >> 1)), c - width, c)
    tl.store(out_ptr + offs, _ldexp(c.to(tl.float64), ulp + c * 0), mask=mask)


# --- tables: Lut, BipolarInt (formats/_kernels/table.py) ------------------------------
@triton.jit
def _key(x):
    """_common.key: total-order int64 key of float64 x."""
    k = x.to(tl.int64, bitcast=True)
    return tl.where(k >= 0, k, -(k & 0x7FFFFFFFFFFFFFFF) - 1)


@triton.jit(do_not_specialize=["n", "key"])
def _sorted_encode_kernel(x_ptr, out_ptr, bad_ptr, keys_ptr, vals_ptr, mid_ptr, exact_ptr,
                          order_ptr, n, key, NVALS: tl.constexpr, STEPS: tl.constexpr,
                          NAN_CODE: tl.constexpr, MODE: tl.constexpr,
                          COUNT: tl.constexpr, BLOCK: tl.constexpr):
    """table.sorted_encode (every mode; for RNE/RNA it equals table_nearest, which the CPU
    uses for speed) of float64 inputs: codes, and the NaN count (COUNT) into bad_ptr."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    xv = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float64)
    b = _key(xv)
    last: tl.constexpr = NVALS - 1
    # the largest j with keys[j] <= b, by a binary search of STEPS fixed steps
    lo = offs * 0
    hi = lo + NVALS
    for _ in tl.static_range(STEPS):
        m = (lo + hi) >> 1
        go = lo < hi
        km = tl.load(keys_ptr + tl.minimum(m, last), mask=mask & go, other=0)
        right = go & (km <= b)
        lo = tl.where(right, m + 1, lo)
        hi = tl.where(go & (right == 0), m, hi)
    j = lo - 1
    jc = tl.minimum(tl.maximum(j, 0), last)
    jn = tl.minimum(jc + 1, last)
    kj = tl.load(keys_ptr + jc, mask=mask, other=0)
    a = tl.load(vals_ptr + jc, mask=mask, other=0.0)
    c = tl.load(vals_ptr + jn, mask=mask, other=0.0)
    oa = tl.load(order_ptr + jc, mask=mask, other=0)
    oc = tl.load(order_ptr + jn, mask=mask, other=0)
    xneg = b < 0
    if MODE == 2:
        pick_hi = (tl.abs(c) < tl.abs(a)) | ((tl.abs(c) == tl.abs(a)) & (xneg == 0))
    elif MODE == 3:
        pick_hi = xneg == xneg
    elif MODE == 4:
        pick_hi = xneg != xneg
    elif MODE == 5:
        rnd = _rand62(key, offs)
        pick_hi = (rnd.to(tl.float64) * 2.168404344971009e-19) < ((xv - a) / (c - a))
    else:
        md = tl.load(mid_ptr + jc, mask=mask, other=0.0)
        mex = tl.load(exact_ptr + jc, mask=mask, other=0) != 0
        if MODE == 1:
            tie = (tl.abs(c) > tl.abs(a)) | ((tl.abs(c) == tl.abs(a)) & (xneg == 0))
        else:
            tie = tl.where(tl.abs(c) == tl.abs(a), xneg == 0,
                           ((oc & 1) < (oa & 1)) | (((oc & 1) == (oa & 1)) & (oc < oa)))
        pick_hi = tl.where(xv > md, True, tl.where((xv < md) | (mex == 0), False, tie))
    res = tl.where(pick_hi, oc, oa)
    res = tl.where(xv == a, oa, res)    # +0.0 against a table holding only -0.0
    res = tl.where(xv == c, oc, res)    # -0.0 against a table holding only +0.0
    res = tl.where((j >= last) | (kj == b), oa, res)
    o0 = tl.load(order_ptr + lo * 0, mask=mask, other=0)
    res = tl.where(j < 0, o0, res)
    is_nan = xv != xv
    res = tl.where(is_nan, NAN_CODE, res)
    tl.store(out_ptr + offs, res, mask=mask)
    if COUNT:
        tl.atomic_add(bad_ptr, tl.sum((is_nan & mask).to(tl.int64)))


# --- host side --------------------------------------------------------------------------
def _grid(n: int) -> tuple[int]:
    return (max(1, triton.cdiv(n, _BLOCK)),)


_MODES = {m: i for i, m in enumerate(Rounding)}
_POLICIES = {Overflow.SATURATE: K.SAT, Overflow.INF: K.OINF, Overflow.NAN: K.ONAN,
             Overflow.WRAP: K.WRAP, Overflow.ERROR: K.OERR}


def _scalar(v: Any) -> Any:
    """A numpy scalar as the Python number Triton takes (uint32 fields stay in range)."""
    return float(v) if isinstance(v, (float, np.floating)) else int(v)


def _on_device(fn: Any) -> Any:
    """Run ``fn(fmt, x, ...)`` with x's CUDA device current (Triton launches there)."""
    @functools.wraps(fn)
    def run(fmt: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.is_cuda:
            with torch.cuda.device(x.device):
                return fn(fmt, x, *args, **kwargs)
        return fn(fmt, x, *args, **kwargs)
    return run


def code_dtype(bits: int) -> torch.dtype:
    """The torch dtype of codes (what the CPU path gives back for torch input)."""
    return torch.uint8 if bits <= 8 else torch.uint16 if bits <= 16 else torch.int64


def _store_view(t: torch.Tensor) -> torch.Tensor:
    """A view Triton stores into (unsigned 16-bit as int16)."""
    return t.view(torch.int16) if t.dtype == torch.uint16 else t


@functools.cache
def _device_table(fmt: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The value of every code (formats of at most 16 bits), as the CPU tables are."""
    table = fmt._table32 if dtype == torch.float32 else fmt._table64
    return torch.from_numpy(np.ascontiguousarray(table)).to(device)


@functools.cache
def _device_sorted(fmt: Any, device: torch.device) -> tuple[torch.Tensor, ...]:
    keys, vals, mid, exact, order = fmt._sorted
    return tuple(torch.from_numpy(np.ascontiguousarray(a)).to(device)
                 for a in (keys, vals, mid, exact.astype(np.int8), order))


def _inputs(x: torch.Tensor, parameter: str = "x") -> torch.Tensor:
    """x as a contiguous float tensor the kernels read (small integer dtypes become
    float64 exactly, on the device)."""
    if x.dtype in _LAYOUT:
        return x.detach().contiguous()
    if x.dtype in (torch.int8, torch.uint8, torch.int16, torch.int32):
        return x.detach().to(torch.float64).contiguous()
    raise TypeError(f"{parameter} on the GPU must be a float16, bfloat16, float32 or "
                    f"float64 tensor (or int8/16/32), not {x.dtype}; convert it on the "
                    "device first (int64 values may exceed float64's integers)")


def _key_of(mode: Rounding, seed: Any) -> int:
    return stream.key(seed) if mode is Rounding.STOCHASTIC else 0


def _mf_args(fmt: Any) -> tuple[int, ...]:
    """The minifloat's fields in the kernels' argument order (man .. nbits, bias)."""
    p = fmt._params
    return (p.man, p.emin, int(p.nosub), int(p.signed), int(p.fnuz), p.maxmag, p.infmag,
            p.nancode, p.nbits, fmt.bias)


def _layout(x: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
    view, man, bias, ones, sign, bitmask = _LAYOUT[x.dtype]
    return x.view(view), {"BITMASK": bitmask, "FMAN": man, "FBIAS": bias, "FONES": ones,
                          "FSIGN": sign}


def _check_out(out: Any, shape: torch.Size, dtype: torch.dtype, device: torch.device,
               what: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a torch.Tensor for a tensor on {device}, not "
                        f"{type(out).__name__}")
    if out.shape != shape or out.dtype != dtype or out.device != device:
        raise ValueError(f"out must be a {dtype} tensor of shape {tuple(shape)} on {device} "
                         f"({what}), not {out.dtype} {tuple(out.shape)} on {out.device}")
    if not out.is_contiguous():
        raise ValueError("out must be contiguous")
    return out


def _run_encode(fmt: Any, x: torch.Tensor, out: torch.Tensor, mode: Rounding,
                policy: Overflow, key: int, rbits: int, values: int) -> torch.Tensor:
    """Launch the format's kernel: codes (values 0) or quantized values (1: by the
    table, 2: computed) into ``out``; returns the bad count (a device scalar)."""
    from ..integer import FixedBase
    from ..lut import _Table
    from ..minifloat import Minifloat

    n = x.numel()
    bad = torch.zeros(1, dtype=torch.int64, device=x.device)
    m, pol = _MODES[mode], _POLICIES[policy]
    if isinstance(fmt, Minifloat):
        xv, lay = _layout(x)
        table = (_device_table(fmt, out.dtype, x.device) if values == 1 else bad)
        _mf_encode_kernel[_grid(n)](
            xv, _store_view(out), table, bad, n, key, rbits, *_mf_args(fmt),
            **lay, POLICY=pol, MODE=m, OUT=values, BLOCK=_BLOCK, **_LAUNCH)
    elif isinstance(fmt, FixedBase):
        if pol == K.WRAP and not bool(torch.isfinite(x).all()):  # one scalar to the host
            raise ValueError(f"x holds NaN or Inf, which cannot wrap into {fmt}")
        xv, lay = _layout(x)
        p = fmt._params
        _int_kernel[_grid(n)](
            xv, _store_view(out), bad, n, key, rbits, p.ulp_exp, p.nbits,
            p.pos_max, p.neg_max, **lay, POLICY=pol, MODE=m, VALUES=min(values, 1),
            BLOCK=_BLOCK, **_LAUNCH)
    elif isinstance(fmt, _Table):
        keys, vals, mid, exact, order = _device_sorted(fmt, x.device)
        x64 = x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float64)
        codes = out if values == 0 else torch.empty(x.shape, dtype=code_dtype(fmt.bits),
                                                     device=x.device)
        nv = int(vals.numel())
        _sorted_encode_kernel[_grid(n)](
            x64, _store_view(codes), bad, keys, vals, mid, exact, order, n, key,
            NVALS=nv, STEPS=nv.bit_length(), NAN_CODE=fmt._nan_code, MODE=m,
            COUNT=pol == K.OERR, BLOCK=_BLOCK, **_LAUNCH)
        if pol == K.OERR:
            bad += ((x64 > float(fmt._sorted[1][-1])) | (x64 < float(fmt._sorted[1][0]))
                    | torch.isinf(x64)).sum()
        if values:
            _decode_into(fmt, codes, out)  # codes just made: valid, no range check
    else:  # pragma: no cover - every scalar format is one of the three
        raise TypeError(f"no GPU kernel for {type(fmt).__name__}")
    return bad


def _raise_if_bad(fmt: Any, bad: torch.Tensor, policy: Overflow) -> None:
    if policy is Overflow.ERROR:
        count = int(bad.item())  # one scalar: the error needs it on the host
        fmt._raise_if_bad(count, policy, None)


@_on_device
def encode(fmt: Any, x: torch.Tensor, mode: Rounding, policy: Overflow, seed: Any,
           rand_bits: int | None, out: Any) -> torch.Tensor:
    """``fmt.encode`` of a tensor, on its device."""
    xc = _inputs(x)
    dt = code_dtype(fmt.bits)
    res = (torch.empty(xc.shape, dtype=dt, device=xc.device) if out is None
           else _check_out(out, xc.shape, dt, xc.device, "codes"))
    bad = _run_encode(fmt, xc, res, mode, policy, _key_of(mode, seed), int(rand_bits or 0), 0)
    _raise_if_bad(fmt, bad, policy)
    return res


@_on_device
def quantize(fmt: Any, x: torch.Tensor, mode: Rounding, policy: Overflow, seed: Any,
             rand_bits: int | None, out: Any) -> torch.Tensor:
    """``fmt.quantize`` of a tensor, on its device: values in the input's float dtype
    (computed in float32 for 16-bit inputs and rounded once more into them, as the CPU
    path does)."""
    from ..minifloat import Minifloat

    xc = _inputs(x)
    want = xc.dtype if x.dtype in _LAYOUT else torch.float64
    res = (torch.empty(xc.shape, dtype=want, device=xc.device) if out is None
           else _check_out(out, xc.shape, want, xc.device, "values"))
    work = res if want in (torch.float32, torch.float64) else torch.empty(
        xc.shape, dtype=torch.float32, device=xc.device)
    if (isinstance(fmt, Minifloat) and fmt._fast_f32 and work.dtype == torch.float32
            and mode is not Rounding.STOCHASTIC and xc.dtype != torch.float64):
        # the CPU's float32 fast path (it differs from decode(encode()) only in the sign
        # of NaN, which it keeps)
        bad = torch.zeros(1, dtype=torch.int64, device=xc.device)
        c = fmt._f32_consts[_POLICIES[policy]]
        n = xc.numel()
        consts = dict(MODE=_MODES[mode], SIGNED=bool(fmt.signed),
                      FNUZ=fmt.special is Special.FNUZ, COUNT=policy is Overflow.ERROR,
                      BLOCK=_BLOCK)
        launch(_f32_kernel, _grid(n), (xc, work, bad, n, *(_scalar(v) for v in c)),
               tuple(consts.values()), lambda: consts, **_LAUNCH)
        _raise_if_bad(fmt, bad, policy)
        if work is not res:
            res.copy_(work)
        return res
    values = 1 if isinstance(fmt, Minifloat) and fmt.bits <= 16 else 2
    bad = _run_encode(fmt, xc, work, mode, policy, _key_of(mode, seed), int(rand_bits or 0),
                      values)
    _raise_if_bad(fmt, bad, policy)
    if work is not res:
        res.copy_(work)
    return res


@_on_device
def decode(fmt: Any, codes: torch.Tensor, dtype: Any = torch.float64,
           out: Any = None) -> torch.Tensor:
    """``fmt.decode`` of a tensor of codes, on its device."""
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise TypeError(f"codes must be integers, not {codes.dtype}")
    if dtype in (np.float32, np.dtype(np.float32), "float32", torch.float32):
        tdt = torch.float32
    elif dtype in (np.float64, np.dtype(np.float64), "float64", torch.float64):
        tdt = torch.float64
    else:
        raise ValueError(f"dtype must be float32 or float64, not {dtype}")
    c = codes.detach().contiguous()
    if c.numel():
        lo, hi = (int(v) for v in torch.aminmax(c.to(torch.int64)))  # two scalars to the host
        if lo < 0 or hi >= fmt.valid_codes:
            raise ValueError(f"codes for {fmt} must be in 0..{fmt.valid_codes - 1}, got "
                             f"values in {lo}..{hi}")
    res = (torch.empty(c.shape, dtype=tdt, device=c.device) if out is None
           else _check_out(out, c.shape, tdt, c.device, "values"))
    _decode_into(fmt, c, res)
    return res


def _decode_into(fmt: Any, c: torch.Tensor, res: torch.Tensor) -> None:
    """Decode the valid, contiguous codes ``c`` into ``res`` (float32 or float64)."""
    from ..integer import FixedBase
    from ..minifloat import Minifloat

    tdt = res.dtype
    n = c.numel()
    cv = c.view(torch.int16) if c.dtype == torch.uint16 else c
    cmask = {1: 0xFF, 2: 0xFFFF}.get(c.element_size(), -1)
    if isinstance(fmt, Minifloat) and fmt.bits > 16:
        man, emin, nosub, signed, fnuz, maxmag, infmag, nancode, nbits, bias = _mf_args(fmt)
        _mf_decode_kernel[_grid(n)](cv, res, n, man, bias, emin, nosub, signed, fnuz,
                                    maxmag, infmag, nancode, nbits, CMASK=cmask,
                                    BLOCK=_BLOCK, **_LAUNCH)
    elif isinstance(fmt, FixedBase):
        _int_decode_kernel[_grid(n)](cv, res, n, fmt.ulp_exp, fmt.bits, int(fmt.signed),
                                     CMASK=cmask, BLOCK=_BLOCK, **_LAUNCH)
    else:
        table = (_device_table(fmt, tdt, c.device) if isinstance(fmt, Minifloat)
                 else _device_decode_table(fmt, tdt, c.device))
        _table_decode_kernel[_grid(n)](cv, res, table, n, CMASK=cmask, BLOCK=_BLOCK,
                                       **_LAUNCH)


@functools.cache
def _device_decode_table(fmt: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Every code's value of a table format (Lut, BipolarInt), as its CPU decode has it."""
    npdt = np.float32 if dtype == torch.float32 else np.float64
    table = np.empty(fmt.valid_codes, npdt)
    fmt._decode_flat(np.arange(fmt.valid_codes, dtype=np.int64), table)
    return torch.from_numpy(table).to(device)
