"""Kernels of formats given by a table of values (Lut, BipolarInt; small minifloats
decode through their table too)."""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .._jit import PJIT as _PJIT
from ._common import DOWN, RNA, RTZ, STOCH, TWO_M62, UP, bitcast, key

__all__ = ["sorted_encode", "table_decode", "table_nearest"]


@numba.njit(**_PJIT)
def table_decode(codes, out, table):  # pragma: no cover - jitted
    """out[i] = table[codes[i]]: decoding by a table of every code's value."""
    for i in prange(codes.size):
        out[i] = table[codes[i]]


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
        b = key(xv)
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
        if vals[j] == xv:  # +0.0 against a table holding only -0.0
            out[i] = order[j]
            continue
        a = vals[j]
        c = vals[j + 1]
        # xv lies strictly between a and c
        xneg = key(xv) < 0
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
        up = tie and (rule == 1 or (rule == 2 and bitcast(xv, np.int64(0)) >= 0))
        nan = xv != xv
        out[i] = nan_code if nan else order[pos + np.int64(up)]
        bad += np.int64(nan)
    return bad
