"""Exact-rational reference GEMM: slow, obviously correct, small shapes only.

Every product, sum and rounding is done on :class:`fractions.Fraction` values, following
the semantics documented on :class:`~simulator.Accumulator` and :func:`~simulator.gemm`,
with the same counter-based random stream for stochastic rounding (:func:`rand62`).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from formats import FixedBase, Overflow, Rounding

from .accumulator import Accumulator, Order
from .gemm import Operand

__all__ = ["rand62", "ref_accumulate", "ref_gemm_operands", "ref_round"]

_M64 = (1 << 64) - 1


def rand62(seed: int, idx: int) -> int:
    """splitmix64(seed + idx * 0x9E3779B97F4A7C15) >> 2: the stochastic-rounding stream."""
    z = (seed + idx * 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    z ^= z >> 31
    return z >> 2


def _floor_log2(x: Fraction) -> int:
    """floor(log2(x)) for x > 0, exactly."""
    e = x.numerator.bit_length() - x.denominator.bit_length()
    if Fraction(2) ** e > x:
        e -= 1
    return e


def ref_round(x: Fraction | float, fmt: Any, mode: Rounding, overflow: Overflow | None = None,
              r: int = 0, rbits: int = 0) -> Fraction | float:
    """Round the exact ``x`` to ``fmt`` (a signed Minifloat with subnormals, or a
    fixed-point format), returning the value (float ``inf``/``nan`` where it is one)."""
    if isinstance(x, float):
        if math.isnan(x):
            return math.nan
        if math.isinf(x):
            return _inf_to(x, fmt, overflow)
    x = Fraction(x)
    policy = overflow or (Overflow.WRAP if isinstance(fmt, FixedBase) else fmt.default_overflow)
    neg = x < 0
    ax = -x if neg else x
    if isinstance(fmt, FixedBase):
        ulp = Fraction(2) ** fmt.ulp_exp
    elif ax == 0:
        return Fraction(0)
    else:
        # the LSB of ax's binade (leading one at floor(log2 ax)), not below the format's
        ulp = Fraction(2) ** max(_floor_log2(ax) - fmt.precision + 1, fmt.lsb_exp_min)
    v = x / ulp
    q = math.floor(v)
    rem = v - q
    if mode is Rounding.NEAREST_EVEN:
        inc = rem > Fraction(1, 2) or (rem == Fraction(1, 2) and q % 2 == 1)
    elif mode is Rounding.NEAREST_AWAY:
        inc = rem > Fraction(1, 2) or (rem == Fraction(1, 2) and not neg)
    elif mode is Rounding.TOWARD_ZERO:
        inc = rem != 0 and neg
    elif mode is Rounding.UP:
        inc = rem != 0
    elif mode is Rounding.DOWN:
        inc = False
    else:
        # the kernel rounds the magnitude: round up |x| iff the top rbits of its
        # discarded fraction exceed the random number's top rbits
        mag_rem = rem if not neg or rem == 0 else 1 - rem
        top = math.floor(mag_rem * 2**rbits)
        up = (r >> (62 - rbits)) < top
        inc = (up if not neg else not up) if rem != 0 else False
    val = (q + int(inc)) * ulp
    if isinstance(fmt, FixedBase):
        lo, hi = -fmt.max_neg_int * ulp, fmt.max_int * ulp
        if lo <= val <= hi:
            return val
        if policy is Overflow.WRAP:
            span = Fraction(2) ** fmt.bits * ulp
            return (val - lo) % span + lo
        return min(max(val, lo), hi)
    mx = Fraction(fmt.max)
    if abs(val) <= mx:
        return val
    to_max = policy in (Overflow.SATURATE, Overflow.ERROR) or mode is Rounding.TOWARD_ZERO or (
        mode is Rounding.DOWN and not neg) or (mode is Rounding.UP and neg)
    if to_max:
        return -mx if neg else mx
    if policy is Overflow.INF:
        return -math.inf if neg else math.inf
    return math.nan


def _inf_to(x: float, fmt: Any, overflow: Overflow | None) -> float | Fraction:
    policy = overflow or fmt.default_overflow
    if policy in (Overflow.SATURATE, Overflow.ERROR):
        return Fraction(fmt.max) * (-1 if x < 0 else 1)
    return x if policy is Overflow.INF else math.nan


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, float) or isinstance(b, float):
        return float(a) + float(b)
    return a + b


def ref_accumulate(addends: list[Any], acc: Accumulator, seed_index: int) -> Any:
    """Sum one output element's addends as ``acc`` does (``seed_index`` = the output's
    flat index times the number of addends, the base of its random stream)."""
    fmt = acc.format
    J = len(addends)
    W = acc.tree_width if acc.order is Order.TREE else 1
    assert W is not None
    cj = acc.chunk // W if acc.chunk else J
    step = 0

    def rnd(s: Any) -> Any:
        nonlocal step
        if fmt is None:
            out = s
        elif isinstance(fmt, FixedBase):
            out = ref_round(s, fmt, Rounding.NEAREST_EVEN, acc.overflow)
        elif str(fmt) == "float64":
            out = float(s)
        else:
            r = rand62(acc.seed or 0, seed_index + step)
            out = ref_round(s, fmt, acc.rounding, acc.overflow, r, acc.rand_bits or 0)
        step += 1
        return out

    wide: Any = Fraction(0)
    part: Any = Fraction(0)
    for c0 in range(0, J, cj):
        chunk = addends[c0:c0 + cj]
        if acc.order is Order.PAIRWISE:
            level = list(chunk)
            while len(level) > 1:
                nxt = [rnd(_add(level[2 * i], level[2 * i + 1])) for i in range(len(level) // 2)]
                if len(level) % 2:
                    nxt.append(level[-1])
                level = nxt
            part = level[0]
        else:
            part = Fraction(0)
            for x in chunk:
                part = rnd(_add(part, x))
        if acc.chunk:
            wide = ref_round(_add(wide, part), acc.chunk_format, Rounding.NEAREST_EVEN)
    return wide if acc.chunk else part


def ref_gemm_operands(opa: Operand, opb: Operand, acc: Accumulator) -> list[list[Any]]:
    """The accumulator's value of every output element of ``opa @ opb.T`` (2-D operands
    with K last), before the tensor scales, as exact Fractions (or float inf/nan)."""
    A, B = np.asarray(opa.elements, np.float64), np.asarray(opb.elements, np.float64)
    M, Kd = A.shape
    N = B.shape[0]
    W = acc.tree_width if acc.order is Order.TREE else 1
    assert W is not None
    J = -(-Kd // W)
    out = []
    for m in range(M):
        row = []
        for n in range(N):
            adds = []
            for j in range(J):
                k0, k1 = j * W, min(j * W + W, Kd)
                g: Any = Fraction(0)
                for k in range(k0, k1):
                    p = _mul(A[m, k], B[n, k])
                    if acc.product_format is not None:
                        p = ref_round(p, acc.product_format, acc.product_rounding)
                    g = _add(g, p)
                if W > 1 and acc.tree_format is not None:
                    g = ref_round(g, acc.tree_format, acc.tree_rounding)
                sa = opa.scales[m, k0 // opa.block] if opa.scales is not None else 1.0
                sb = opb.scales[n, k0 // opb.block] if opb.scales is not None else 1.0
                adds.append(_mul(_mul(g, sa), sb))
            row.append(ref_accumulate(adds, acc, (m * N + n) * J))
        out.append(row)
    return out


def _mul(a: Any, b: Any) -> Any:
    fa = float(a)
    fb = float(b)
    if not (math.isfinite(fa) and math.isfinite(fb)):
        return fa * fb
    return Fraction(a) * Fraction(b)


def as_float(v: Any) -> float:
    """A reference value as float64 (nearest-even; inf/nan as they are)."""
    return float(v)

