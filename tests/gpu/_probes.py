"""Triton kernels that run single functions of formats/_gpu/f32.py over a flat tensor, for
tests/gpu/ to compare with their numba twins. Imported inside ``formats._gpu.emulate()``
(Triton reads its interpreter switch when a kernel is defined)."""

from __future__ import annotations

import triton
import triton.language as tl

from formats._gpu import f32 as F


@triton.jit
def elem_kernel(x_ptr, out_ptr, bad_ptr, n, MODE: tl.constexpr, SIGNED: tl.constexpr,
                FNUZ: tl.constexpr, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9,
                BLOCK: tl.constexpr):
    """F.elem on every element of int32 float32 bits, the constants as runtime scalars."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    v = tl.load(x_ptr + i, mask=m, other=0).to(tl.uint32, bitcast=True)
    r, bad = F.elem(v, MODE, SIGNED, FNUZ, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9)
    tl.store(out_ptr + i, r.to(tl.int32, bitcast=True), mask=m)
    tl.store(bad_ptr + i, bad.to(tl.int32), mask=m)


@triton.jit
def odd_kernel(q_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """F.to_float32_odd of every float64 element."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    q = tl.load(q_ptr + i, mask=m, other=0.0)
    tl.store(out_ptr + i, F.to_float32_odd(q).to(tl.int32, bitcast=True), mask=m)


@triton.jit
def pow2_kernel(a_ptr, out_ptr, n, RULE: tl.constexpr, EMAX_ELEM: tl.constexpr,
                ELEM_MAX: tl.constexpr, MAN_ELEM: tl.constexpr, LO: tl.constexpr,
                HI: tl.constexpr, BLOCK: tl.constexpr):
    """F.pow2_scale of every float64 element (each a float32 value >= 0)."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    a = tl.load(a_ptr + i, mask=m, other=0.0)
    s = F.pow2_scale(a, RULE, EMAX_ELEM, tl.full([], ELEM_MAX, tl.float64), MAN_ELEM, LO, HI)
    tl.store(out_ptr + i, s, mask=m)
