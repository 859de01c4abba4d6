"""Block-scaled fake quantization: block maxima, scales, the division by the scale
(rounded to odd, :mod:`formats.odd`), and the fused float32 kernel doing it all at once."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from .._jit import INLINE as _INLINE
from .._jit import PJIT as _PJIT
from ..odd import odd_bits32, to_float32_odd
from ._common import RNE, bitcast, sel
from .fixed import GridConsts
from .minifloat_f32 import F32Consts, elem

__all__ = ["NO_GRID", "NO_POW2", "Pow2Params", "block_amax", "block_amax_bits",
           "block_divide_odd", "block_multiply", "block_quantize_f32", "pow2_scales",
           "scale_finish", "scale_targets_odd"]


class Pow2Params(NamedTuple):
    """A power-of-two scale rule's constants (:func:`pow2_scales`, the fused kernel)."""

    #: exponent of the element format's largest value (OCP MX's emax_elem)
    emax_elem: int
    #: the element format's largest value
    elem_max: float
    #: the element's mantissa bits (rule EVEN rounds amax to man_elem + 1 bits)
    man_elem: int
    #: the scale format's least exponent (scales clamp to 2**lo..2**hi)
    lo: int
    #: the scale format's largest exponent
    hi: int
    #: the scale of a block holding NaN or Inf (NaN, or the largest scale)
    nan_scale: float


#: Placeholders where the fused kernel takes constants its case does not use.
NO_GRID = GridConsts(1.0, 1.0, 0.0, 0.0)
NO_POW2 = Pow2Params(0, 1.0, 0, 0, 0, 0.0)


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
            out[b, j] = bitcast(to_float32_odd(q), np.float32(0.0))


@numba.njit(**_PJIT)
def block_multiply(vals, scale, out):  # pragma: no cover - jitted
    """out = vals * scale per row (float64 product, one rounding to out's dtype)."""
    for b in prange(vals.shape[0]):
        s = scale[b]
        for j in range(vals.shape[1]):
            out[b, j] = np.float64(vals[b, j]) * s


@numba.njit(**_INLINE)
def _pow2_scale1(a, rule, p):  # pragma: no cover - jitted
    """One block's power-of-two scale (the rules of :func:`pow2_scales`)."""
    emax_elem, elem_max, man_elem, lo, hi = p.emax_elem, p.elem_max, p.man_elem, p.lo, p.hi
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
def pow2_scales(amax, rule, p, out):  # pragma: no cover - jitted
    """Each block's power-of-two scale 2**k (k clamped to p.lo..p.hi; ``p`` a
    :class:`Pow2Params`), exactly.

    rule 0 FLOOR: floor(log2 amax) - emax_elem; 1 CEIL: ceil(log2 amax) - emax_elem;
    2 EVEN: FLOOR of amax rounded (ties away) to man_elem + 1 significant bits;
    3 RCEIL: least k with elem_max * 2**k >= amax. amax == 0 gives 2**lo.
    """
    emax_elem, elem_max, man_elem, lo, hi, nan_scale = p  # see _common
    for b in prange(amax.size):
        out[b] = _pow2_scale1(amax[b], rule,
                              Pow2Params(emax_elem, elem_max, man_elem, lo, hi, nan_scale))


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
            m = max(m, sel(fin, a, np.uint32(0)))
        amax[b] = np.float64(bitcast(m, np.float32(0.0)))
        bad[b] = nf != 0


@functools.cache
def _block_entry(ek, src, div):
    """Fused block fake-quantization of float32 rows (uint32 bits in, float32 bits out):
    per block, the scale (``src`` 0: given per block; 1..4: the power-of-two rule
    FLOOR/CEIL/EVEN/RCEIL, computed here from the block's max), the division (``div`` 0:
    multiplication by the exact power-of-two reciprocal; 1: division rounded to odd, as
    :func:`block_divide_odd`), the element's nearest-even saturating quantization (``ek``
    0/1/2: minifloat signed/fnuz/unsigned through :func:`.minifloat_f32.elem` with
    constants ``ec``; 3: the integer grid ``gc``, ``rint(y * scale)`` clamped to lo..hi),
    and the multiplication back, in one pass; ``pc`` the power-of-two rule's constants,
    ``tsv`` the tensor scale."""
    signed = ek != 2
    fnuz = ek == 1
    rule = src - 1

    @numba.njit(**_PJIT)
    def entry(rows, out, scale, ec, gc, pc, tsv):  # pragma: no cover - jitted
        # scalars into the loop, tuples rebuilt inside it (see _common)
        escale, einv, elo, ehi = gc
        lb, eb, ca, un, hu, mx, ro, nb, bv, n0 = ec
        emax_elem, elem_max, man_elem, slo, shi, nan_scale = pc
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
                    m = max(m, sel(fin, a, u(0)))
                amax = np.float64(bitcast(m, f32(0.0)))
                if nf != 0:
                    s = nan_scale
                else:
                    s = _pow2_scale1(amax, rule, Pow2Params(emax_elem, elem_max, man_elem,
                                                            slo, shi, nan_scale))
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
                    yb = bitcast(f32(bitcast(u(rows[b, j]), f32(0.0)) * inv32), u(0))
                elif div == 1:
                    yb = to_float32_odd(np.float64(bitcast(u(rows[b, j]), f32(0.0))) / s)
                else:  # div 2 or 3
                    # no division: t = x * (1/s) rounded to float32 is the exact quotient's
                    # float32 neighbour toward zero or away; t * s is exact (s has at most
                    # 29 significant bits), so the sign of x - t * s says which (and
                    # whether x / s was exact): round to odd from there
                    xv = np.float64(bitcast(u(rows[b, j]), f32(0.0)))
                    t = f32(xv * inv)
                    ts_ = np.float64(t) * s
                    r = xv - ts_
                    inexact = u((r != 0.0) & (r == r))
                    yb = odd_bits32(t, inexact, u(inexact & u(abs(ts_) > abs(xv))))
                if ek == 3:
                    z = np.float64(bitcast(yb, f32(0.0))) * escale
                    r = min(max(np.rint(z), elo), ehi)
                    val = f32((0.0 if z != z else r) * einv)
                else:
                    rb, _ = elem(yb, RNE, signed, fnuz,
                                 F32Consts(lb, eb, ca, un, hu, mx, ro, nb, bv, n0))
                    val = bitcast(rb, f32(0.0))
                if div == 0:
                    out[b, j] = bitcast(f32(val * s32), u(0))
                elif div == 3:
                    out[b, j] = bitcast(f32(f32(val * sv32) * ts32), u(0))
                else:
                    out[b, j] = bitcast(f32(np.float64(val) * s), u(0))

    return entry


def block_quantize_f32(rows: np.ndarray, out: np.ndarray, scale: np.ndarray, ek: int,
                       src: int, div: int, elem_consts: F32Consts, grid: GridConsts,
                       pow2: Pow2Params, ts: float = 1.0) -> None:
    """Run the fused kernel of :func:`_block_entry` on uint32 views ``rows``/``out``
    (nblocks, bs); ``scale`` (float64, nblocks) is read (src 0) or written. Constants the
    case does not use may be the placeholders NO_F32, NO_GRID, NO_POW2."""
    _block_entry(ek, src, div)(rows, out, scale, elem_consts, grid, pow2, float(ts))



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
