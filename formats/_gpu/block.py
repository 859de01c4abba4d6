"""Block-scaled formats on torch tensors on the GPU: the backend of :mod:`formats.block`.

:meth:`BlockScaled.quantize` of a float32 or bfloat16 tensor blocked along its last axis
runs as the CPU does it, as one fused Triton kernel per tensor (block maxima on the bits,
the scale, the division by it rounded to odd, the element's float32 fast quantizer, the
multiplication back, and for bfloat16 the rounding of the float32 result to bfloat16):
the twin of :func:`formats._kernels.block._block_entry`, built from the ports in
:mod:`formats._gpu.f32`. Formats with a tensor scale (NVFP4) take one more pass for the
tensor's largest magnitude. Everything else (encode with its statistics, dequantize,
zero points, tiles, other axes, MSE scales, element formats without a float32 fast path)
is composed of torch operations on the device and the scalar formats' own encode /
decode / quantize, following the numpy code of :mod:`formats.block` operation for
operation (torch's float64 ``+ - * /``, ``round``, comparisons and casts are IEEE on CPU
and GPU alike), so that the results equal the CPU path's bit for bit.

No step of this module copies data to the host or waits for the device (the tensor
scale stays a 0-d float64 tensor there); the scalar formats' methods it calls run on the
device by their own backend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import triton
import triton.language as tl

from .. import _kernels as K
from .._enums import Rounding, Special
from ..block import _POW2_RULES, BlockEncoded, BlockScaled, ScaleRule
from ..minifloat import Minifloat
from . import f32 as F
from .launch import launch

__all__ = ["dequantize", "encode", "quantize"]

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: elements per program of the fused kernels on a GPU, and their warps (timed against
#: other choices by benchmarks/gpu_block_check.py --sweep)
TILE = 4096
WARPS = 4
#: ... and for rows that compute a scale in float64 from the block maximum (SRC 5:
#: NVFP4-like; fewer rows per program keep the per-row float64 work in registers: 4096
#: ran at half the speed on an H100), warps by input dtype (float32, bfloat16)
TILE_SRC5 = 1024
WARPS_SRC5 = (4, 2)
#: elements per program under Triton's interpreter (it runs programs one by one)
_TILE_INTERPRETED = 1 << 15
#: the widest block the fused kernels hold whole in one program; wider blocks get their
#: scales from a separate pass
_MAX_CHUNK = 4096
_LAUNCH = {"enable_fp_fusion": False}
#: the tensor scale format the fused kernel computes itself (NVFP4's)
_FLOAT32 = Minifloat(8, 23)


# --- kernels ------------------------------------------------------------------------------
@triton.jit
def _load_bits(ptr, offs, m, IN16: tl.constexpr):
    """float32 bits (uint32) of float32 (int32 view) or bfloat16 (int16 view) input."""
    if IN16:
        xb = tl.load(ptr + offs, mask=m, other=0).to(tl.uint16, bitcast=True).to(
            tl.uint32) << 16
    else:
        xb = tl.load(ptr + offs, mask=m, other=0).to(tl.uint32, bitcast=True)
    return xb


@triton.jit
def _amax_kernel(x_ptr, amax_ptr, bad_ptr, nrows, ntotal, BS: tl.constexpr,
                 ROWS: tl.constexpr, CHUNK: tl.constexpr, IN16: tl.constexpr,
                 PER_PROGRAM: tl.constexpr):
    """Per row of BS elements: the largest finite magnitude (float32 bits, int32) and
    whether the row holds NaN or Inf (int8); with PER_PROGRAM, the tensor's largest
    finite magnitude, into ``amax_ptr[0]`` (zeroed before)."""
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * ROWS + tl.arange(0, ROWS)
    rmask = rows < nrows
    acc = tl.zeros([ROWS], tl.uint32)
    nonfinite = tl.zeros([ROWS], tl.int1)
    for c0 in tl.range(0, BS, CHUNK):
        cols = c0 + tl.arange(0, CHUNK)
        offs = rows[:, None] * BS + cols[None, :]
        if PER_PROGRAM:  # a flat tensor seen as rows: the last one may be partial
            m = offs < ntotal
        else:
            m = rmask[:, None] & (cols[None, :] < BS)
        amax, nf = F.block_amax_bits(_load_bits(x_ptr, offs, m, IN16))
        acc = tl.maximum(acc, amax)
        nonfinite = nonfinite | nf
    if PER_PROGRAM:
        # non-negative float32 bits order as int32: one atomic maximum per program
        tl.atomic_max(amax_ptr, tl.max(acc, axis=0).to(tl.int32, bitcast=True))
    else:
        tl.store(amax_ptr + rows, acc.to(tl.int32, bitcast=True), mask=rmask)
        tl.store(bad_ptr + rows, nonfinite.to(tl.int8), mask=rmask)


@triton.jit
def _fused_kernel(x_ptr, out_ptr, scale_ptr, ts_ptr, nrows,
                  BS: tl.constexpr, ROWS: tl.constexpr, CHUNK: tl.constexpr,
                  IN16: tl.constexpr, EK: tl.constexpr, SRC: tl.constexpr, DIV: tl.constexpr,
                  SIGNED: tl.constexpr, FNUZ: tl.constexpr,
                  E0: tl.constexpr, E1: tl.constexpr, E2: tl.constexpr, E3: tl.constexpr,
                  E4: tl.constexpr, E5: tl.constexpr, E6: tl.constexpr, E7: tl.constexpr,
                  E8: tl.constexpr, E9: tl.constexpr,
                  G_SCALE: tl.constexpr, G_INV: tl.constexpr, G_LO: tl.constexpr,
                  G_HI: tl.constexpr,
                  EMAX_ELEM: tl.constexpr, ELEM_MAX: tl.constexpr, MAN_ELEM: tl.constexpr,
                  S_LO: tl.constexpr, S_HI: tl.constexpr, BAD_SCALE: tl.constexpr,
                  S_MODE: tl.constexpr, S_SIGNED: tl.constexpr, S_FNUZ: tl.constexpr,
                  S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, S3: tl.constexpr,
                  S4: tl.constexpr, S5: tl.constexpr, S6: tl.constexpr, S7: tl.constexpr,
                  S8: tl.constexpr, S9: tl.constexpr, TS: tl.constexpr,
                  TS_DEN: tl.constexpr):
    """:func:`formats._kernels.block._block_entry` on rows of BS elements (see there for
    EK, DIV and the constants; E0..E9 the element's F32Consts, G_* its integer grid):
    SRC 0 reads each row's scale (times the tensor scale) from ``scale_ptr``; 1..4
    computes the power-of-two rule FLOOR/CEIL/EVEN/RCEIL from the row's maximum; 5
    rounds ``amax / ts / ELEM_MAX`` to odd in float32 and then into the scale format
    (S_MODE, S0..S9 its F32Consts) as ``BlockScaled._block_scales`` does. A row whose
    scale is 0 gives +0. Writes float32 bits, or (IN16) their bfloat16 rounding. The
    tensor scale: TS 0 none (1.0); 1 a float32 one, computed here from the tensor's
    largest finite magnitude (float32 bits at ``ts_ptr``) as ``_tensor_scale`` does
    (``TS_DEN`` = elem_max * the scale format's max); 2 its float64 value at ``ts_ptr``."""
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * ROWS + tl.arange(0, ROWS)
    cols = tl.program_id(1) * CHUNK + tl.arange(0, CHUNK)
    rmask = rows < nrows
    m = rmask[:, None] & (cols[None, :] < BS)
    offs = rows[:, None] * BS + cols[None, :]
    xb = _load_bits(x_ptr, offs, m, IN16)
    elem_max = tl.full([], ELEM_MAX, tl.float64)
    if TS == 1:
        ideal = tl.load(ts_ptr).to(tl.float32, bitcast=True).to(tl.float64) / TS_DEN
        tsv = ideal.to(tl.float32).to(tl.float64)  # float32 nearest-even, subnormals kept
        tsv = tl.where((ideal > 0.0) & (tsv != 0.0), tsv, 1.0)
    elif TS == 2:
        tsv = tl.load(ts_ptr)
    else:
        tsv = tl.full([], 1.0, tl.float64)
    if SRC == 0:
        s = tl.load(scale_ptr + rows, mask=rmask, other=1.0)
    else:
        amax_b, nonfinite = F.block_amax_bits(xb)
        amax = amax_b.to(tl.float32, bitcast=True).to(tl.float64)
        bad_scale = tl.full([], BAD_SCALE, tl.float64)
        if SRC == 5:
            tb = F.to_float32_odd(amax / tsv / elem_max)
            vb, _ = F.elem(tb, S_MODE, S_SIGNED, S_FNUZ, S0, S1, S2, S3, S4, S5, S6, S7, S8,
                           S9)
            sv32 = tl.where(nonfinite, BAD_SCALE, vb.to(tl.float32, bitcast=True))
            sv = sv32.to(tl.float64)
            s = sv * tsv  # exact: the scale's and the tensor scale's significands fit
        else:
            s = tl.where(nonfinite, bad_scale,
                         F.pow2_scale(amax, SRC - 1, EMAX_ELEM, elem_max, MAN_ELEM, S_LO, S_HI))
    s2 = s[:, None]
    x32 = xb.to(tl.float32, bitcast=True)
    if DIV == 0:
        # a power-of-two scale: float32 products round the exact product once
        inv32 = (1.0 / s).to(tl.float32)
        yb = (x32 * inv32[:, None]).to(tl.uint32, bitcast=True)
    elif DIV == 1:
        yb = F.to_float32_odd(x32.to(tl.float64) / s2)
    else:
        # no division: t = x * (1/s) in float32 is the quotient's neighbour toward zero or
        # away; t * s is exact, so the sign of x - t * s says which (see _block_entry)
        xv = x32.to(tl.float64)
        if SRC == 5:
            # any approximation of 1/s within 2**-40 gives the same neighbours t (the
            # residual below decides), so no float64 division per row: the float32
            # reciprocal of the scale's significand (in [1, 2): no overflow) times
            # 2**-e (float32's IEEE division), one Newton step in float64 (error ~2**-44),
            # times 1/tsv
            sb = sv.to(tl.uint64, bitcast=True)
            sig = ((sb & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000).to(tl.float64, bitcast=True)
            r0 = tl.math.div_rn(1.0, sig.to(tl.float32)).to(tl.float64) * (
                (2046 - ((sb >> 52) & 0x7FF)) << 52).to(tl.float64, bitcast=True)
            inv = (r0 + r0 * (1.0 - sv * r0)) * (1.0 / tsv)
        else:
            inv = 1.0 / s
        t = (xv * inv[:, None]).to(tl.float32)
        tsx = t.to(tl.float64) * s2
        r = xv - tsx
        inexact = (r != 0.0) & (r == r)
        yb = F.odd_bits32(t, inexact, inexact & (tl.abs(tsx) > tl.abs(xv)))
    if EK == 3:
        z = yb.to(tl.float32, bitcast=True).to(tl.float64) * tl.full([], G_SCALE, tl.float64)
        # np.rint: below 2**52, adding and subtracting 2**52 rounds to nearest even
        az = tl.abs(z)
        rz = ((az + 4503599627370496.0) - 4503599627370496.0).to(tl.uint64, bitcast=True)
        rz = (rz | (z.to(tl.uint64, bitcast=True) & 0x8000000000000000)).to(tl.float64,
                                                                             bitcast=True)
        rz = tl.where(az >= 4503599627370496.0, z, rz)
        lo = tl.full([], G_LO, tl.float64)
        hi = tl.full([], G_HI, tl.float64)
        rz = tl.where(lo > rz, lo, rz)  # numba's max(r, lo), min(., hi): ties keep r
        rz = tl.where(hi < rz, hi, rz)
        val = (tl.where(z != z, 0.0, rz) * tl.full([], G_INV, tl.float64)).to(tl.float32)
    else:
        rb, _ = F.elem(yb, F.RNE, SIGNED, FNUZ, E0, E1, E2, E3, E4, E5, E6, E7, E8, E9)
        val = rb.to(tl.float32, bitcast=True)
    if DIV == 0:
        o = val * s.to(tl.float32)[:, None]
    elif DIV == 3:
        if SRC == 5:
            o = (val * sv32[:, None]) * tsv.to(tl.float32)  # s / tsv is sv exactly
        else:
            o = (val * (s / tsv).to(tl.float32)[:, None]) * tsv.to(tl.float32)
    else:
        o = (val.to(tl.float64) * s2).to(tl.float32)
    ob = tl.where(s2 == 0.0, 0, o.to(tl.uint32, bitcast=True))
    if IN16:
        # float32 -> bfloat16 nearest-even on the bits (torch's cast; NaN as 0x7FC0)
        hb = (ob + 0x7FFF + ((ob >> 16) & 1)) >> 16
        hb = tl.where((ob & 0x7FFFFFFF) > 0x7F800000, 0x7FC0, hb)
        tl.store(out_ptr + offs, hb.to(tl.uint16).to(tl.int16, bitcast=True), mask=m)
    else:
        tl.store(out_ptr + offs, ob.to(tl.int32, bitcast=True), mask=m)


# --- launching ----------------------------------------------------------------------------
@contextlib.contextmanager
def _on(t: torch.Tensor) -> Iterator[None]:
    """Launch on ``t``'s device (Triton launches on the current one), with numpy's
    floating-point warnings off: the interpreter computes with numpy, and the kernels'
    discarded lanes (a division by a zero scale) would warn."""
    with np.errstate(all="ignore"):
        if t.is_cuda:
            with torch.cuda.device(t.device):
                yield
        else:
            yield


def _bits_view(t: torch.Tensor) -> torch.Tensor:
    """The int32 (float32) or int16 (bfloat16) view the kernels read and write."""
    return t.view(torch.int16 if t.dtype == torch.bfloat16 else torch.int32)


def _tiles(t: torch.Tensor, chunk: int, tile: int | None = None) -> int:
    """Rows per program for blocks of ``chunk`` (a power of two) elements, ``tile``
    elements per program on a GPU (default TILE)."""
    return max(1, ((tile or TILE) if t.is_cuda else _TILE_INTERPRETED) // chunk)


def _amax_rows(x: torch.Tensor, nrows: int, bs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 largest finite magnitude of each row of ``bs`` elements of float32 or
    bfloat16 ``x`` (contiguous), and whether the row holds NaN or Inf."""
    chunk = min(triton.next_power_of_2(bs), _MAX_CHUNK)
    rows = _tiles(x, chunk)
    amax = torch.empty(nrows, dtype=torch.int32, device=x.device)
    bad = torch.empty(nrows, dtype=torch.int8, device=x.device)
    with _on(x):
        _amax_kernel[(triton.cdiv(nrows, rows),)](
            _bits_view(x), amax, bad, nrows, x.numel(), BS=bs, ROWS=rows, CHUNK=chunk,
            IN16=x.dtype == torch.bfloat16, PER_PROGRAM=False, num_warps=WARPS, **_LAUNCH)
    return amax.view(torch.float32).to(torch.float64), bad.bool()


def _tensor_amax_bits(x: torch.Tensor) -> torch.Tensor:
    """The largest finite magnitude of float32 or bfloat16 ``x`` (nonempty, contiguous):
    its float32 bits, a 1-element int32 tensor on x's device."""
    n = x.numel()
    chunk = 1024
    rows = _tiles(x, chunk)
    nprog = triton.cdiv(n, rows * chunk)
    res = torch.zeros(1, dtype=torch.int32, device=x.device)
    in16 = x.dtype == torch.bfloat16
    with _on(x):
        launch(_amax_kernel, (nprog,), (_bits_view(x), res, res, triton.cdiv(n, chunk), n),
               (chunk, rows, in16),
               lambda: dict(BS=chunk, ROWS=rows, CHUNK=chunk, IN16=in16, PER_PROGRAM=True),
               num_warps=WARPS, **_LAUNCH)
    return res


def _tensor_amax(x: torch.Tensor) -> torch.Tensor:
    """The largest finite magnitude of float32 or bfloat16 ``x`` (nonempty, contiguous),
    a 0-d float64 tensor on its device."""
    return _tensor_amax_bits(x).view(torch.float32)[0].to(torch.float64)


@functools.lru_cache(maxsize=256)
def _fused_constants(fmt: BlockScaled) -> dict[str, Any]:
    """The fused kernel's constexprs for ``fmt`` (its ``_fused`` element constants, grid,
    power-of-two rule and fast scale format)."""
    fused = fmt._fused
    assert fused is not None
    ek, econsts, grid = fused
    kw: dict[str, Any] = {"EK": ek, "SIGNED": ek != 2, "FNUZ": ek == 1,
                          "TS_DEN": fmt.elem_max * float(fmt.scale.max)}
    kw.update({f"E{i}": _py(v) for i, v in enumerate(econsts)})
    kw.update(G_SCALE=grid.scale, G_INV=grid.inv_scale, G_LO=grid.lo, G_HI=grid.hi)
    sc = fmt.scale
    if fmt.pow2_scale:
        p = fmt._pow2
        kw.update(EMAX_ELEM=p.emax_elem, ELEM_MAX=p.elem_max, MAN_ELEM=p.man_elem,
                  S_LO=p.lo, S_HI=p.hi, BAD_SCALE=p.nan_scale)
    else:
        kw.update(EMAX_ELEM=0, ELEM_MAX=fmt.elem_max, MAN_ELEM=0, S_LO=0, S_HI=0,
                  BAD_SCALE=math.nan if sc.has_nan else float(sc.max))
    if _fast_scale(fmt):
        assert isinstance(sc, Minifloat)
        mode = Rounding.UP if fmt.scale_rule is ScaleRule.RCEIL else fmt.scale_rounding
        kw.update(S_MODE=mode.code, S_SIGNED=sc.signed, S_FNUZ=sc.special is Special.FNUZ)
        kw.update({f"S{i}": _py(v) for i, v in enumerate(sc._f32_consts[K.SAT])})
    else:
        kw.update(S_MODE=0, S_SIGNED=True, S_FNUZ=False)
        kw.update({f"S{i}": 0 for i in range(10)})
    return kw


def _py(v: Any) -> int | float:
    """A numpy constant as the Python number a constexpr takes."""
    return int(v) if isinstance(v, np.integer) else float(v)


def _fast_scale(fmt: BlockScaled) -> bool:
    """Whether ``BlockScaled._block_scales`` rounds scales through the scale format's
    float32 fast path (the condition of its first branch)."""
    sc = fmt.scale
    return (not fmt.pow2_scale and isinstance(sc, Minifloat) and sc._fast_f32
            and sc.precision <= 22
            and fmt.scale_rule in (ScaleRule.NEAREST, ScaleRule.RCEIL)
            and fmt.scale_rounding is not Rounding.STOCHASTIC)


def _fused_launch(fmt: BlockScaled, x: torch.Tensor, out: torch.Tensor, src: int, div: int,
                  scale: torch.Tensor | None, ts: torch.Tensor | None, ts_kind: int) -> None:
    """The fused kernel on ``x`` into ``out``: scale source ``src``, division kind ``div``,
    tensor scale ``ts`` of kind ``ts_kind`` (the kernel's SRC, DIV, TS)."""
    bs = fmt.block_numel
    nrows = x.numel() // bs
    chunk = min(triton.next_power_of_2(bs), _MAX_CHUNK)
    in16 = x.dtype == torch.bfloat16
    rows = _tiles(x, chunk, TILE_SRC5 if src == 5 else TILE)
    xv = _bits_view(x)
    with _on(x):
        launch(_fused_kernel, (triton.cdiv(nrows, rows), triton.cdiv(bs, chunk)),
               (xv, _bits_view(out), xv if scale is None else scale,
                xv if ts is None else ts, nrows),
               (fmt, bs, rows, chunk, in16, src, div, ts_kind),
               lambda: dict(BS=bs, ROWS=rows, CHUNK=chunk, IN16=in16, SRC=src, DIV=div,
                            TS=ts_kind, **_fused_constants(fmt)),
               num_warps=WARPS_SRC5[in16] if src == 5 else WARPS, **_LAUNCH)


# --- torch mirrors of formats.block's numpy code ---------------------------------------------
def _pow2(k: torch.Tensor) -> torch.Tensor:
    """2.0**k (float64) for an int64 tensor ``k``, from its bits: exact in -1074..1023,
    0 below, Inf above."""
    k = k.clamp(-1075, 1024)
    normal = (k + 1023).clamp(1, 2047) << 52
    sub = torch.ones_like(k) << (k + 1074).clamp(0, 51)
    bits = torch.where(k >= -1022, normal, torch.where(k >= -1074, sub, 0))
    return bits.view(torch.float64)


def _ldexp(x: float, k: torch.Tensor) -> torch.Tensor:
    """C's ``ldexp(x, k)`` (one rounding) for a float ``x`` of moderate exponent (below
    2**400 in magnitude, as an element format's largest value is) and int64 ``k``."""
    return torch.where(k < -1022, (x * _pow2(k + 600)) * 2.0**-600,
                       torch.where(k > 1023, (x * _pow2(k - 600)) * 2.0**600, x * _pow2(k)))


def _frexp(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """C's ``frexp`` of float64 ``a`` >= 0 (numba's ``math.frexp``): (m, e) with ``a = m *
    2**e``, 0.5 <= m < 1; 0, Inf and NaN give (a, 0) as glibc does."""
    a = a.contiguous()
    field = (a.view(torch.int64) >> 52) & 0x7FF
    sub = (field == 0) & (a != 0)
    a2 = torch.where(sub, a * 2.0**64, a)  # subnormals: exact, into the normal range
    b2 = a2.view(torch.int64)
    e = ((b2 >> 52) & 0x7FF) - 1022 - torch.where(sub, 64, 0)
    m = ((b2 & 0xFFFFFFFFFFFFF) | (1022 << 52)).view(torch.float64)
    ordinary = (field != 0x7FF) & (a != 0)
    return torch.where(ordinary, m, a), torch.where(ordinary, e, 0)


def _pow2_scales(fmt: BlockScaled, a: torch.Tensor) -> torch.Tensor:
    """``K.pow2_scales``: each block's power-of-two scale under fmt's rule (FLOOR, CEIL,
    EVEN, RCEIL) from float64 ``a``, following ``_pow2_scale1`` step by step."""
    p = fmt._pow2
    rule = _POW2_RULES[fmt.scale_rule]
    m, e = _frexp(a)
    if rule == 0:
        k = e - 1 - p.emax_elem
    elif rule == 1:
        k = e - 1 + (m != 0.5).long() - p.emax_elem
    elif rule == 2:
        r = torch.floor(m * math.ldexp(1.0, p.man_elem + 1) + 0.5)
        k = e - 1 + (r >= float(1 << (p.man_elem + 1))).long() - p.emax_elem
    else:
        _, e2 = _frexp(a / p.elem_max)
        k = e2 - 1
        k = torch.where(_ldexp(p.elem_max, k) < a, k + 1, k)
        k = torch.where(_ldexp(p.elem_max, k - 1) >= a, k - 1, k)
    k = k.clamp(p.lo, p.hi)
    return torch.where(a > 0.0, _pow2(k), math.ldexp(1.0, p.lo))


def _to_float32_odd(q: torch.Tensor) -> torch.Tensor:
    """:func:`formats.odd.to_float32_odd` of float64 ``q``, as a float32 tensor."""
    t = q.to(torch.float32)
    back = t.to(torch.float64)
    inexact = (back != q) & (q.abs() < math.inf)
    away = inexact & (back.abs() > q.abs())
    return ((t.view(torch.int32) - away.int()) | inexact.int()).view(torch.float32)


def _pairwise_sum(v: torch.Tensor) -> torch.Tensor:
    """numpy's ``v.sum(axis=1)`` of a float64 (rows, n) tensor, in numpy's order:
    pairwise summation with 8 running sums over runs of at most 128 (numpy's
    ``pairwise_sum``), so that the rounding errors are numpy's."""
    n = v.shape[1]
    if n < 8:
        res = torch.full_like(v[:, 0], -0.0) if n == 0 else v[:, 0] + -0.0
        for i in range(1, n):
            res = res + v[:, i]
        return res
    if n <= 128:
        r = v[:, :8].clone()
        i = 8
        while i < n - n % 8:
            r = r + v[:, i:i + 8]
            i += 8
        res = ((r[:, 0] + r[:, 1]) + (r[:, 2] + r[:, 3])) + ((r[:, 4] + r[:, 5])
                                                            + (r[:, 6] + r[:, 7]))
        for j in range(i, n):
            res = res + v[:, j]
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(v[:, :n2]) + _pairwise_sum(v[:, n2:])


def _tensor_scale(fmt: BlockScaled, tmax: torch.Tensor) -> torch.Tensor:
    """The tensor scale (a 0-d float64 tensor; 1.0 without one) from the largest finite
    block maximum ``tmax``, as ``BlockScaled._block_scales``."""
    if fmt.tensor_scale is None:
        return torch.ones((), dtype=torch.float64, device=tmax.device)
    ideal = tmax / (fmt.elem_max * float(fmt.scale.max))
    ts = fmt.tensor_scale.quantize(ideal, overflow="saturate")
    ts = torch.where(ideal > 0, ts, 1.0)
    return torch.where(ts == 0, 1.0, ts)


def _block_scales(fmt: BlockScaled, amax: torch.Tensor, bad: torch.Tensor,
                  rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``BlockScaled._block_scales``: the scale values per block (float64) and the tensor
    scale (0-d float64; 1.0 without one); ``rows`` are the blocks, for the MSE rule."""
    tmax = amax.max() if amax.numel() else torch.zeros((), dtype=torch.float64,
                                                        device=amax.device)
    ts = _tensor_scale(fmt, tmax)
    sc = fmt.scale
    bad_value = math.nan if sc.has_nan else float(sc.max)
    if _fast_scale(fmt):
        mode = Rounding.UP if fmt.scale_rule is ScaleRule.RCEIL else fmt.scale_rounding
        v32 = sc.quantize(_to_float32_odd(amax / ts / fmt.elem_max), mode, "saturate")
        return torch.where(bad, bad_value, v32.to(torch.float64)), ts
    return torch.where(bad, bad_value, _scale_values(fmt, amax, ts, rows)), ts


def _scale_values(fmt: BlockScaled, amax: torch.Tensor, ts: torch.Tensor,
                  rows: torch.Tensor) -> torch.Tensor:
    """``BlockScaled._scale_values``."""
    target = amax / ts
    if fmt.scale_rule is ScaleRule.MSE:
        return _mse_scales(fmt, target, ts, rows)
    if fmt.pow2_scale:
        return _pow2_scales(fmt, target)
    mode = Rounding.UP if fmt.scale_rule is ScaleRule.RCEIL else fmt.scale_rounding
    return fmt.scale.quantize(target / fmt.elem_max, mode, "saturate").to(torch.float64)


def _mse_scales(fmt: BlockScaled, target: torch.Tensor, ts: torch.Tensor,
                rows: torch.Tensor) -> torch.Tensor:
    """``BlockScaled._mse_scales``."""
    sc = fmt.scale
    if fmt.pow2_scale:
        base = _pow2_scales(dataclasses.replace(fmt, scale_rule=ScaleRule.FLOOR),
                            target * ts / ts)
        lo, hi = sc.smallest_normal, sc.max
        cands = [(base * f).clamp(lo, hi) for f in (1.0, 2.0, 0.5)]
    else:
        cands = [sc.quantize(target / fmt.elem_max * float(c), fmt.scale_rounding,
                             "saturate").to(torch.float64)
                 for c in np.linspace(1.0, 0.5, 11)]
    x = torch.where(torch.isfinite(rows), rows, 0.0).to(torch.float64)
    best = cands[0]
    best_err = torch.full_like(best, math.inf)
    for cand in cands:
        s_all = (cand * ts)[:, None]
        y = torch.where(s_all > 0, x / s_all, 0.0)
        q = fmt.element.quantize(y, overflow="saturate") * s_all
        d = q - x
        err = _pairwise_sum(d * d)
        better = err < best_err
        best = torch.where(better, cand, best)
        best_err = torch.where(better, err, best_err)
    return best


def _blocks(fmt: BlockScaled, x: torch.Tensor) -> tuple[
        torch.Tensor, Callable[[torch.Tensor], torch.Tensor], tuple[int, ...]]:
    """``BlockScaled._blocks``: ``x`` as (nblocks, block_numel) rows padded with zeros,
    the function putting such rows back into x's shape, and the block grid."""
    shape = tuple(x.shape)
    grid = fmt.block_grid(shape)
    bsz = fmt.block_size
    if isinstance(bsz, tuple):
        *lead, m, n = shape
        mb, nb = grid[-2:]
        br, bc = max(1, min(bsz[0], m)), max(1, min(bsz[1], n))
        mp, np_ = mb * br, nb * bc
        xp = x.new_zeros((*lead, mp, np_))
        xp[..., :m, :n] = x
        k = len(lead)
        t = xp.reshape(*lead, mb, br, nb, bc).movedim(k + 1, k + 2)
        rows = t.reshape(-1, br * bc)

        def back(r: torch.Tensor) -> torch.Tensor:
            u = r.reshape(*grid, br, bc).movedim(k + 2, k + 1)
            return u.reshape(*lead, mp, np_)[..., :m, :n].contiguous()

        return rows, back, grid
    xm = x.movedim(fmt.axis, -1)
    *lead, n = xm.shape
    bs = max(1, min(bsz, n))
    npad = grid[-1] * bs
    xp = x.new_zeros((*lead, npad))
    xp[..., :n] = xm
    axis = fmt.axis

    def back1(r: torch.Tensor) -> torch.Tensor:
        return r.reshape(*lead, npad)[..., :n].movedim(-1, axis).contiguous()

    return xp.reshape(-1, bs), back1, grid


def _code_dtype(fmt: Any) -> torch.dtype:
    """The torch dtype of ``fmt``'s codes, as its encode gives torch tensors back (uint8
    and uint16 kept, wider codes as int64)."""
    return {np.dtype(np.uint8): torch.uint8,
            np.dtype(np.uint16): torch.uint16}.get(fmt.code_dtype, torch.int64)


def _input(x: Any) -> torch.Tensor:
    t = x.detach()
    if t.dtype not in _FLOATS:
        raise TypeError(f"x must be a float16, bfloat16, float32 or float64 tensor for a "
                        f"block format on the GPU, not {t.dtype}")
    return t


# --- the public operations ---------------------------------------------------------------------
def encode(fmt: BlockScaled, x: Any) -> BlockEncoded:
    """``BlockScaled.encode`` of a torch tensor on the device: the fields of the result
    are torch tensors on x's device (the tensor scale a 0-d float64 tensor)."""
    t = _input(x)
    rows, back, grid = _blocks(fmt, t.to(torch.float64))
    finite = torch.isfinite(rows)
    bad_block = ~finite.all(dim=1)
    if fmt.zero_point:
        return _encode_asym(fmt, rows, finite, bad_block, back, grid, x)
    amax = torch.where(finite, rows.abs(), 0.0).amax(dim=1)
    svals, ts = _block_scales(fmt, amax, bad_block, rows)
    s_all = (svals * ts)[:, None]
    scaled = torch.where(s_all > 0, rows / s_all, 0.0)
    scaled = torch.where(finite, scaled, rows)
    codes = fmt.element.encode(scaled, overflow="saturate")
    vals = fmt.element.decode(codes)
    saturated = (scaled.abs() > fmt.elem_max) & finite
    flushed = (vals == 0) & (rows != 0) & finite
    return BlockEncoded(
        format=fmt,
        codes=back(codes),
        scales=fmt.scale.encode(svals, overflow="saturate").reshape(grid),
        tensor_scale=ts if fmt.tensor_scale is not None else None,
        saturated=saturated.sum(dim=1).reshape(grid),
        flushed=flushed.sum(dim=1).reshape(grid),
        torch_like=x,
    )


def _encode_asym(fmt: BlockScaled, rows: torch.Tensor, finite: torch.Tensor,
                 bad: torch.Tensor, back: Callable[[torch.Tensor], torch.Tensor],
                 grid: tuple[int, ...], x: Any) -> BlockEncoded:
    """``BlockScaled._encode_asym``. numpy's minimum/maximum against 0.0 give the 0.0
    on ties (its SIMD loops), so a zero block end is +0 here too."""
    q = float(fmt.element.max)
    fin = torch.where(finite, rows, 0.0)
    lo = fin.amin(dim=1)
    hi = fin.amax(dim=1)
    lo = torch.where(lo < 0, lo, 0.0)
    hi = torch.where(hi > 0, hi, 0.0)
    svals, _ = _block_scales(fmt, hi - lo, bad, rows)
    ok = svals > 0
    z = torch.where(ok, torch.round(-lo / svals).clamp(0.0, q), 0.0)
    r = torch.where(ok[:, None], torch.round(rows / svals[:, None]), 0.0) + z[:, None]
    r = torch.where(finite, r, 0.0)
    saturated = ((r < 0) | (r > q)) & finite
    codes = r.clamp(0.0, q)
    vals = (codes - z[:, None]) * svals[:, None]
    flushed = (vals == 0) & (rows != 0) & finite
    dt = _code_dtype(fmt.element)
    return BlockEncoded(
        format=fmt,
        codes=back(codes).to(torch.int64).to(dt),
        scales=fmt.scale.encode(svals, overflow="saturate").reshape(grid),
        tensor_scale=None,
        saturated=saturated.sum(dim=1).reshape(grid),
        flushed=flushed.sum(dim=1).reshape(grid),
        zeros=z.to(torch.int64).to(dt).reshape(grid),
        torch_like=x,
    )


def dequantize(enc: BlockEncoded) -> torch.Tensor:
    """``BlockEncoded.dequantize`` of torch fields: float64 values on their device."""
    f = enc.format
    ev = f.element.decode(enc.codes)
    sv = f.scale.decode(enc.scales)
    if enc.tensor_scale is not None:
        sv = sv * enc.tensor_scale
    rows, back, _ = _blocks(f, ev)
    if enc.zeros is not None:
        rows = rows - enc.zeros.reshape(-1)[:, None].to(torch.float64)
    return back(rows * sv.reshape(-1)[:, None])


def quantize(fmt: BlockScaled, x: Any, out: Any = None) -> torch.Tensor:
    """``BlockScaled.quantize`` of a torch tensor on the device, same shape and dtype;
    ``out`` (a tensor of x's shape, dtype and device) receives the result."""
    t = _input(x)
    if out is not None and not (isinstance(out, torch.Tensor) and out.shape == t.shape
                                and out.dtype == t.dtype and out.device == t.device):
        raise ValueError(
            f"out must be a torch tensor of shape {tuple(t.shape)}, dtype {t.dtype} on "
            f"{t.device} (x's), not {getattr(out, 'shape', type(out).__name__)} "
            f"{getattr(out, 'dtype', '')} {getattr(out, 'device', '')}")
    bs = fmt.block_size
    if (t.dtype in (torch.float32, torch.bfloat16) and isinstance(bs, int) and t.ndim >= 1
            and fmt.axis in (-1, t.ndim - 1) and t.shape[-1] % bs == 0 and t.numel()
            and fmt.element.bits < 24 and not fmt.zero_point):
        res = _quantize_rows(fmt, t.contiguous(), out)
    else:
        res = _cast(encode(fmt, t).dequantize(), t.dtype)
    if out is not None and res is not out:
        out.copy_(res)
        return out
    return res


def _cast(vals: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """float64 values into ``dtype`` as the CPU path does it: numpy's float64 -> float16
    cast (one rounding: through float32 rounded to odd, as torch's own cast rounds
    twice), float32 otherwise, and torch's float32 -> bfloat16 cast from there."""
    if dtype == torch.float64:
        return vals
    if dtype == torch.float16:
        return _to_float32_odd(vals).to(torch.float16)
    return vals.to(torch.float32).to(dtype)


def _quantize_rows(fmt: BlockScaled, x: torch.Tensor, out: torch.Tensor | None
                   ) -> torch.Tensor:
    """``BlockScaled._quantize_rows_f32`` of float32 or bfloat16 ``x`` (contiguous,
    last axis a multiple of the block size), in x's dtype."""
    bs = fmt.block_numel
    nrows = x.numel() // bs
    fused = fmt._fused
    if fused is None:
        return _quantize_rows_composite(fmt, x.view(nrows, bs)).view(x.shape).to(x.dtype)
    res = out if out is not None and out.is_contiguous() else torch.empty_like(x)
    whole = triton.next_power_of_2(bs) <= _MAX_CHUNK
    no_ts = fmt.tensor_scale is None
    if fmt.pow2_scale and no_ts and fmt.scale_rule in _POW2_RULES:
        p = fmt._pow2
        if whole and -1022 <= p.lo and p.hi <= 1023:
            _fused_launch(fmt, x, res, 1 + _POW2_RULES[fmt.scale_rule], 0, None, None, 0)
            return res
        amax, bad = _amax_rows(x, nrows, bs)
        s_all = torch.where(bad, p.nan_scale, _pow2_scales(fmt, amax))
        _fused_launch(fmt, x, res, 0, 0, s_all, None, 0)
        return res
    div = 0 if fmt.pow2_scale and no_ts else fmt._div_kind
    if _fast_scale(fmt) and whole:
        if no_ts:
            _fused_launch(fmt, x, res, 5, div, None, None, 0)
        elif fmt.tensor_scale == _FLOAT32:
            # the tensor scale computed in the kernel: no small ops (and their launch
            # latency on the host) between the two passes
            _fused_launch(fmt, x, res, 5, div, None, _tensor_amax_bits(x), 1)
        else:
            _fused_launch(fmt, x, res, 5, div, None,
                          _tensor_scale(fmt, _tensor_amax(x)).reshape(1), 2)
        return res
    amax, bad = _amax_rows(x, nrows, bs)
    svals, ts = _block_scales(fmt, amax, bad, x.view(nrows, bs))
    _fused_launch(fmt, x, res, 0, div, svals * ts, ts.reshape(1), 2)
    return res


def _quantize_rows_composite(fmt: BlockScaled, rows: torch.Tensor) -> torch.Tensor:
    """The non-fused branch of ``_quantize_rows_f32`` (element formats without a fused
    kernel): float32 rows in and out."""
    amax, bad = _amax_rows(rows, rows.shape[0], rows.shape[1])
    svals, ts = _block_scales(fmt, amax, bad, rows)
    s_all = (svals * ts)[:, None]
    r64 = rows.to(torch.float64)
    if fmt.pow2_scale and fmt.tensor_scale is None:
        y = (r64 * (1.0 / s_all)).to(torch.float32)
    else:
        y = _to_float32_odd(torch.where(s_all != 0.0, r64 / s_all, 0.0))
    q = fmt.element.quantize(y, overflow="saturate")
    return (q.to(torch.float64) * s_all).to(torch.float32)
