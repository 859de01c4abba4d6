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

import formats.reference as fr
from formats import FixedBase, Overflow, Rounding

from .accumulator import Accumulator, Order
from .gemm import Operand

__all__ = ["rand62", "ref_accumulate", "ref_gemm_operands", "ref_round"]

#: the one random stream (formats.stream), exactly
rand62 = fr.ref_rand62


def ref_round(x: Fraction | float, fmt: Any, mode: Rounding, overflow: Overflow | None = None,
              r: int = 0, rbits: int = 0) -> Fraction | float:
    """Round the exact ``x`` to ``fmt`` (a signed Minifloat with subnormals, or a
    fixed-point format), returning the value (float ``inf``/``nan`` where it is one):
    :func:`formats.reference.ref_round`, with the accumulator's default overflow (wrap
    for fixed point) and its stochastic rounding: the magnitude rounds up iff the top
    ``rbits`` of its discarded fraction exceed those of the random ``r`` (as the kernel)."""
    if overflow is None and isinstance(fmt, FixedBase):
        overflow = Overflow.WRAP
    if mode is not Rounding.STOCHASTIC:
        return fr.ref_round(x, fmt, mode, overflow)
    if isinstance(x, float) and not math.isfinite(x):
        return fr.ref_round(x, fmt, Rounding.NEAREST_EVEN, overflow)  # the policy decides
    x = Fraction(x)
    ax = abs(x)
    ulp = fr.ref_ulp(fmt, ax)
    q = math.floor(ax / ulp)
    rem = ax / ulp - q
    up = rem != 0 and (r >> (62 - rbits)) < math.floor(rem * 2**rbits)
    val = (q + int(up)) * ulp * (-1 if x < 0 else 1)
    # on the grid now: rounding it changes nothing in range, and beyond the range the
    # policy decides (no directed mode carries it to the largest value)
    return fr.ref_round(val, fmt, Rounding.NEAREST_EVEN, overflow)


def _round_acc(x: Any, acc: Accumulator, r: int) -> Any:
    """``x`` rounded into the (minifloat) accumulator; with ``inf_on_overflow`` a value
    rounded (in its mode, the exponent unbounded) beyond the largest finite one is
    +-Inf, as the kernel's rounder."""
    fmt = acc.format
    out = ref_round(x, fmt, acc.rounding, acc.overflow, r, acc.rand_bits or 0)
    if acc.inf_on_overflow and not isinstance(x, float) and x != 0:
        # the top binade's grid continued upward: the rounded magnitude exceeds max iff
        # it reaches max + ulp there
        ulp = Fraction(2) ** (fmt.emax - fmt.man_bits)
        v = abs(x) / ulp
        mode = acc.rounding
        neg = x < 0
        if mode is Rounding.TOWARD_ZERO or (mode is Rounding.DOWN and not neg) or (
                mode is Rounding.UP and neg):
            q = math.floor(v)
        elif mode in (Rounding.UP, Rounding.DOWN):
            q = math.ceil(v)
        else:
            q = math.floor(v + Fraction(1, 2))  # ties: beyond max either way
        if q * ulp > Fraction(fmt.max):
            return -math.inf if neg else math.inf
    return out


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
            out = _round_acc(s, acc, r)
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


def _ref_align(x: Fraction, q: Fraction, mode: Rounding) -> Fraction:
    """``x`` on the grid ``q`` by ``mode`` (exact rationals)."""
    v = x / q
    fl = math.floor(v)
    rem = v - fl
    if mode is Rounding.TOWARD_ZERO:
        n = fl if v >= 0 else math.ceil(v)
    elif mode is Rounding.DOWN:
        n = fl
    elif mode is Rounding.UP:
        n = math.ceil(v)
    elif mode is Rounding.NEAREST_AWAY:
        n = fl + (1 if (rem > Fraction(1, 2) or (rem == Fraction(1, 2) and v > 0)) else 0)
        if rem == Fraction(1, 2) and v < 0:
            n = fl
    else:
        n = fl + (1 if (rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2)) else 0)
    return n * q


def ref_fused(groups: list[list[Any]], acc: Accumulator, seed_index: int) -> Any:
    """One output element through the fused multi-term adder (Order.FUSED): per step,
    the accumulator (``align_acc``) and the step's products aligned to the largest
    exponent within ``align_bits``, summed exactly, rounded once into the accumulator.
    ``groups``: per step, (product, its alignment exponent or None: its own)."""
    w = acc.align_bits
    assert w is not None
    wide: Any = Fraction(0)
    part: Any = Fraction(0)
    per_chunk = acc.chunk // acc.tree_width if acc.chunk else len(groups)  # type: ignore
    for j, g in enumerate(groups):
        terms = ([part] if acc.align_acc else []) + [v for v, _ in g]
        exps = ([_floor_log2(abs(part))] if acc.align_acc and not isinstance(part, float)
                and part != 0 else []) + [
            (_floor_log2(abs(v)) if ex is None else ex) for v, ex in g
            if not isinstance(v, float) and v != 0]
        if any(isinstance(x, float) for x in terms):  # Inf/NaN: the IEEE sum
            tot: Any = sum(float(x) for x in terms)
        else:
            if exps:
                e = max(exps)
                q = Fraction(2) ** max(e - w, -1022)
                tot = sum(_ref_align(x, q, acc.align_rounding) for x in terms)
            else:
                tot = Fraction(0)
        r = rand62(acc.seed or 0, seed_index + j)
        part = _round_acc(tot if acc.align_acc else _add(part, tot), acc, r)
        if acc.chunk and ((j + 1) % per_chunk == 0 or j == len(groups) - 1):
            wide = ref_round(_add(wide, part), acc.chunk_format, Rounding.NEAREST_EVEN)
            part = Fraction(0)
    return wide if acc.chunk else part


def _floor_log2(x: Fraction) -> int:
    """floor(log2 x) of a positive rational, exactly."""
    e = x.numerator.bit_length() - x.denominator.bit_length()
    return e if Fraction(2) ** e <= x else e - 1


def ref_gemm_operands(opa: Operand, opb: Operand, acc: Accumulator) -> list[list[Any]]:
    """The accumulator's value of every output element of ``opa @ opb.T`` (2-D operands
    with K last), before the tensor scales, as exact Fractions (or float inf/nan)."""
    A, B = np.asarray(opa.elements, np.float64), np.asarray(opb.elements, np.float64)
    M, Kd = A.shape
    N = B.shape[0]
    W = acc.tree_width if acc.order in (Order.TREE, Order.FUSED) else 1
    assert W is not None
    J = -(-Kd // W)
    out = []
    if acc.order is Order.FUSED:
        for m in range(M):
            row = []
            for n in range(N):
                groups = []
                for j in range(J):
                    terms: list[Any] = []
                    for k in range(j * W, min(j * W + W, Kd)):
                        p = _mul(A[m, k], B[n, k])
                        if acc.product_format is not None:
                            pf = acc.product_format
                            p = ref_round(p, pf, acc.product_rounding, pf.default_overflow)
                        sa = opa.scales[m, k // opa.block] if opa.scales is not None else 1.0
                        sb = opb.scales[n, k // opb.block] if opb.scales is not None else 1.0
                        ex = None
                        if acc.align_from == "exponents" and A[m, k] != 0 and B[n, k] != 0 \
                                and math.isfinite(A[m, k] * B[n, k]):
                            ex = max(_floor_log2(abs(Fraction(A[m, k]))), opa.fmt.emin) + \
                                max(_floor_log2(abs(Fraction(B[n, k]))), opb.fmt.emin)
                        terms.append((_mul(_mul(p, sa), sb), ex))
                    groups.append(terms)
                row.append(ref_fused(groups, acc, (m * N + n) * J))
            out.append(row)
        return out
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
                        # the product format's own overflow, as the kernel's rounder
                        pf = acc.product_format
                        p = ref_round(p, pf, acc.product_rounding, pf.default_overflow)
                    g = _add(g, p)
                if W > 1 and acc.tree_format is not None:
                    tf = acc.tree_format
                    g = ref_round(g, tf, acc.tree_rounding, tf.default_overflow)
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

