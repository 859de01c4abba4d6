"""Triton ports of the float32 fast path's per-element and per-block numerics.

Each function here is a ``@triton.jit`` twin of a numba function, written operation for
operation so that the two agree bit for bit (cross-tested in tests/gpu/):

* :func:`elem`: :func:`formats._kernels.minifloat_f32.elem`, a float32 rounded to a
  minifloat (nearest-even or directed, every overflow policy through its constants);
* :func:`odd_bits32`, :func:`to_float32_odd`: :mod:`formats.odd`'s rounding to odd;
* :func:`block_amax_bits`, :func:`pow2_scale`, :func:`frexp_bits`, :func:`pow2_f64`: the
  block maxima and power-of-two scale rules of :mod:`formats._kernels.block`.

Rules every kernel calling them keeps (they are what makes the GPU's code generation
agree with IEEE arithmetic): launch with ``enable_fp_fusion=False`` (no contraction of a
product and a sum into an FMA); float64 ``/`` only (it lowers to the IEEE ``div.rn.f64``;
float32 ``/`` lowers to an approximation); integer work on bit patterns, with ``x ^
0xFFFFFFFF`` for ``~x`` (Triton 3.6's interpreter rejects ``~`` on unsigned tensors) and
shift amounts below the operand width; bit casts by ``.to(dtype, bitcast=True)``.

Constants may be given as ``tl.constexpr`` values or as scalar kernel arguments of any
integer (or, for the float fields, float) type: each is cast to its field's type here.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .._kernels import _common as _C

__all__ = ["block_amax_bits", "elem", "frexp_bits", "odd_bits32", "pow2_f64", "pow2_scale",
           "to_float32_odd"]

# rounding-mode codes, as constexprs (a jitted function reads only constexpr globals)
RNE = tl.constexpr(_C.RNE)
RNA = tl.constexpr(_C.RNA)
RTZ = tl.constexpr(_C.RTZ)
UP = tl.constexpr(_C.UP)
DOWN = tl.constexpr(_C.DOWN)
_INF = tl.constexpr(float("inf"))


@triton.jit
def elem(v, MODE: tl.constexpr, SIGNED: tl.constexpr, FNUZ: tl.constexpr, lsb, emin_bits,
         cadd, unit, half_unit, max_bits, over_bits, nan_bits, below_bits, nan_bad):
    """Float32 bits ``v`` (uint32) rounded to a minifloat: returns (uint32 float32 bits of
    the result, uint32 1 where the element is bad (overflowed; a negative nonzero into an
    unsigned format; NaN into a format without NaN) else 0). ``MODE`` a deterministic
    rounding-mode code, ``SIGNED``/``FNUZ`` the sign kind; the other arguments are the
    fields of :class:`formats._kernels.minifloat_f32.F32Consts` in order (``max_bits`` is
    its ``max_bits``, ``over_bits`` its ``over_bits``, ...)."""
    lsb = tl.cast(lsb, tl.uint32)
    emin_bits = tl.cast(emin_bits, tl.uint32)
    cadd = tl.cast(cadd, tl.float32)
    unit = tl.cast(unit, tl.float32)
    half_unit = tl.cast(half_unit, tl.float32)
    max_bits = tl.cast(max_bits, tl.uint32)
    over_bits = tl.cast(over_bits, tl.uint32)
    nan_bits = tl.cast(nan_bits, tl.uint32)
    below_bits = tl.cast(below_bits, tl.uint32)
    nan_bad = tl.cast(nan_bad, tl.uint32)
    v = tl.cast(v, tl.uint32)
    a = v & 0x7FFFFFFF
    sgn = v & 0x80000000
    negb = v >> 31
    mask = lsb - 1
    nmask = mask ^ 0xFFFFFFFF
    # ---- normal binades: integer rounding at the kept LSB ----
    if MODE == RNE:
        rnorm = (a + (mask >> 1) + ((a & lsb) != 0).to(tl.uint32)) & nmask
    elif MODE == RNA:
        rnorm = (a + ((mask >> 1) + 1)) & nmask
    elif MODE == RTZ:
        rnorm = a & nmask
    elif MODE == UP:
        rnorm = (a + (mask & (negb - 1))) & nmask  # away when positive
    else:
        rnorm = (a + (mask & (0 - negb))) & nmask  # away when negative
    # ---- the target's subnormal range: float32 arithmetic (see the numba original) ----
    if MODE == UP or MODE == DOWN:
        xs = v.to(tl.float32, bitcast=True)
        rn = (xs + cadd) - cadd
        d = xs - rn
        if MODE == UP:
            rs = rn + tl.where(d > 0.0, unit, 0.0)
        else:
            rs = rn - tl.where(d < 0.0, unit, 0.0)
        rsub = rs.to(tl.uint32, bitcast=True) & 0x7FFFFFFF
    else:
        ax = a.to(tl.float32, bitcast=True)
        rn = (ax + cadd) - cadd
        if MODE == RNE:
            rs = rn
        elif MODE == RNA:
            rs = rn + tl.where((ax - rn) == half_unit, unit, 0.0)
        else:
            rs = rn - tl.where((ax - rn) < 0.0, unit, 0.0)
        rsub = rs.to(tl.uint32, bitcast=True)
    r = tl.where(a < emin_bits, rsub, rnorm)
    # ---- specials, overflow, sign ----
    is_nan = a > 0x7F800000
    over = (r > max_bits) & (a <= 0x7F800000)
    if MODE == RNE or MODE == RNA:
        r_over = over_bits
    else:
        notinf = a != 0x7F800000
        if MODE == RTZ:
            to_max = notinf
        elif MODE == UP:
            to_max = notinf & (negb != 0)
        else:
            to_max = notinf & (negb == 0)
        r_over = tl.where(to_max, max_bits, over_bits)
    r = tl.where(over, r_over, r)
    r = tl.where(is_nan, nan_bits, r)
    nan_to_zero = is_nan & (nan_bad != 0)
    if SIGNED:
        if FNUZ:
            sign_out = tl.where(r == 0, 0, sgn)  # a zero result is +0
        else:
            sign_out = tl.where(nan_to_zero, 0, sgn)  # NaN into a format without NaN: +0
        bad = over | nan_to_zero
    else:
        # unsigned: a negative nonzero result is out of range (NaN or 0), counted
        below = (negb != 0) & (r != 0) & (a <= 0x7F800000)
        r = tl.where(below, below_bits, r)
        sign_out = tl.zeros_like(r)
        bad = over | below | nan_to_zero
    return r | sign_out.to(tl.uint32), bad.to(tl.uint32)


@triton.jit
def odd_bits32(t, inexact, away):
    """:func:`formats.odd.odd_bits32`: the uint32 bits of the float32 rounding to odd of
    ``y``, from float32 ``t`` (``y`` truncated, or the next float32 away from zero),
    ``inexact`` (``y != t``) and ``away`` (``|t| > |y|``), both int1 or 0/1."""
    return (t.to(tl.uint32, bitcast=True) - away.to(tl.uint32)) | inexact.to(tl.uint32)


@triton.jit
def to_float32_odd(q):
    """:func:`formats.odd.to_float32_odd`: uint32 bits of float64 ``q`` rounded to odd in
    float32 (beyond float32's range: the largest finite float32; Inf and NaN stay)."""
    t = q.to(tl.float32)  # round to nearest even (Triton's default float downcast)
    back = t.to(tl.float64)
    inexact = (back != q) & (tl.abs(q) < _INF)
    return odd_bits32(t, inexact, inexact & (tl.abs(back) > tl.abs(q)))


@triton.jit
def block_amax_bits(xb):
    """Per row of the uint32 float32 bits ``xb`` (rows, cols): the largest finite
    magnitude's bits (uint32) and whether the row holds NaN or Inf (int1), as
    :func:`formats._kernels.block.block_amax_bits`."""
    a = xb & 0x7FFFFFFF
    fin = a < 0x7F800000
    amax = tl.max(tl.where(fin, a, 0), axis=1)
    nonfinite = tl.max(tl.where(fin, 0, 1), axis=1)
    return amax.to(tl.uint32), nonfinite != 0


@triton.jit
def pow2_f64(k):
    """2**k as float64 for integer ``k`` (int32 or int64) in -1022..1023, built from
    its bits (exact)."""
    return ((k.to(tl.int64) + 1023) << 52).to(tl.float64, bitcast=True)


@triton.jit
def frexp_bits(a):
    """``math.frexp`` of a positive normal float64 ``a``: (the exponent e (int32) with
    ``a = m * 2**e``, 0.5 <= m < 1; the 52 fraction bits of ``m`` (uint64))."""
    b = a.to(tl.uint64, bitcast=True)
    e = ((b >> 52) & 0x7FF).to(tl.int32) - 1022
    return e, b & 0xFFFFFFFFFFFFF


@triton.jit
def pow2_scale(a, RULE: tl.constexpr, emax_elem, elem_max, man_elem, lo, hi):
    """:func:`formats._kernels.block._pow2_scale1`: each block's power-of-two scale
    2**k (float64) from its largest magnitude ``a`` (float64, a float32 value), ``k``
    clamped to lo..hi. RULE 0 FLOOR, 1 CEIL, 2 EVEN, 3 RCEIL; ``elem_max`` float64."""
    pos = a > 0.0
    aa = tl.where(pos, a, 1.0)  # a float32 value > 0 is a normal float64
    e, frac = frexp_bits(aa)
    if RULE == 0:
        k = e - 1 - emax_elem
    elif RULE == 1:
        k = e - 1 + (frac != 0).to(tl.int32) - emax_elem
    elif RULE == 2:
        # floor(ldexp(m, man_elem + 1) + 0.5) >= 2**(man_elem + 1), m = (2**52 + frac) /
        # 2**53, holds exactly when frac + 2**(51 - man_elem) >= 2**52 (man_elem <= 22)
        carry = (frac + (tl.full([], 1, tl.uint64) << (51 - man_elem))) >= (1 << 52)
        k = e - 1 + carry.to(tl.int32) - emax_elem
    else:
        e2, _ = frexp_bits(aa / elem_max)  # float64 division: IEEE
        k = e2 - 1
        k = tl.where(elem_max * pow2_f64(k) < aa, k + 1, k)
        k = tl.where(elem_max * pow2_f64(k - 1) >= aa, k - 1, k)
    k = tl.minimum(tl.maximum(k, lo), hi)
    return tl.where(pos, pow2_f64(k), pow2_f64(tl.zeros_like(k) + lo))
