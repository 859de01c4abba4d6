"""numba kernels of the GEMM simulator. Private: :mod:`simulator.gemm` validates and calls.

Every value lives in a float64 (or, for integer accumulators, an int64 on the
accumulator's grid). A sum ``acc + x`` of two float64 numbers is rounded to odd in float64
(:func:`formats.odd.add_odd`: TwoSum, then the odd fix-up) and from there to the target
format: for a target of at most 51 significant bits (two fewer than float64) this double
rounding equals one rounding of the exact sum, in every mode (Boldo & Melquiond, "Emulation
of FMA and correctly rounded sums: proved algorithms using rounding to odd", IEEE TC 2008).
"""

from __future__ import annotations

import contextlib
import hashlib
import math

import numba
import numpy as np
from numba import prange
from numba.core.dispatcher import Dispatcher

from formats import Overflow, Rounding
from formats.odd import add_odd
from formats.stream import rand62

# the kernels' integer codes of the modes and policies (Rounding.code, Overflow.code)
RNE, RNA, RTZ, UP, DOWN, _STOCH = (m.code for m in Rounding)
SAT, OINF, _ONAN, WRAP, OERR = (m.code for m in Overflow)
#: the accumulator's inf_on_overflow: +-Inf beyond the range in every rounding mode
OINF_ALL = max(m.code for m in Overflow) + 1

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_PJIT = {**_JIT, "parallel": True}
_INLINE = {"cache": True, "inline": "always", "error_model": "numpy"}

MAG = np.int64(0x7FFFFFFFFFFFFFFF)
FRAC = np.int64((1 << 52) - 1)


def _stable(fn):
    """``fn`` (a jitted closure) with an identity numba's on-disk cache finds again in
    the next process.

    numba keys a closure's cache entry by a pickle of its closure variables; a jitted
    function pickles with its dispatcher's uuid, random per process, so every process
    compiled every accumulator configuration afresh (7-13 s each) and appended one more
    entry to the cache. Here each dispatcher reachable from ``fn`` gets a uuid derived
    from what it computes: a module-level function its module and name, a closure its
    code and its closure variables' values (dispatchers by their uuids). Two closures
    with one uuid compute the same thing, so numba's in-process memo of uuids is
    unaffected. Without these numba internals (another numba), nothing changes but the
    cache misses."""
    with contextlib.suppress(AttributeError, AssertionError, TypeError):
        _name(fn)  # (another numba's internals: left unnamed, its cache misses)
    return fn


def _name(d):
    if getattr(d, "_MemoMixin__uuid", None) is not None:
        return d._uuid
    f = d.py_func
    parts = [f.__module__, f.__qualname__]
    if f.__closure__:
        parts.append(hashlib.sha256(f.__code__.co_code).hexdigest())
        for cell in f.__closure__:
            v = cell.cell_contents
            parts.append(_name(v) if isinstance(v, Dispatcher) else repr(v))
    for g in f.__code__.co_names:  # the module-level functions it calls
        v = f.__globals__.get(g)
        if isinstance(v, Dispatcher):
            _name(v)
    u = "numfab:" + hashlib.sha256("|".join(parts).encode()).hexdigest()
    d._set_uuid(u)
    return u
@numba.njit(**_INLINE)
def pow2(e):  # pragma: no cover - jitted
    """2.0**e for -1022 <= e <= 1023, built from its bits."""
    return np.int64((e + 1023) << 52).view(np.float64)


@numba.njit(**_INLINE)
def round_int(v, mode):  # pragma: no cover - jitted
    """The float64 ``v`` rounded to an integer by the deterministic ``mode``."""
    if mode == RNE:
        return np.rint(v)
    if mode == RNA:
        t = np.trunc(v)
        return t + (math.copysign(1.0, v) if abs(v - t) >= 0.5 else 0.0)
    if mode == RTZ:
        return np.trunc(v)
    if mode == UP:
        return np.ceil(v)
    return np.floor(v)


@numba.njit(**_INLINE)
def round_float(y, r, man, emin_b, maxv, mode, policy, rbits):  # pragma: no cover
    """Round the float64 ``y`` to a minifloat (``man`` mantissa bits, biased float64
    exponent of its smallest normal ``emin_b``, largest finite ``maxv``).

    ``y`` is exact or rounded to odd with >= 2 spare bits. Returns (value, overflowed).
    Branch-free float arithmetic (vectorises): ``y`` scaled by its ulp in the target is an
    exact float64, rounded to an integer by rint/trunc/ceil/floor, scaled back exactly.
    """
    ex = (np.float64(y).view(np.int64) >> 52) & 2047
    e_eff = max(ex, emin_b)
    inv = np.int64((2046 + man - e_eff) << 52).view(np.float64)
    ulp = np.int64((e_eff - man) << 52).view(np.float64)
    v = y * inv
    if mode != _STOCH:
        q = round_int(v, mode)
    else:
        # round the magnitude up iff the top rbits of its discarded fraction exceed the
        # random number's top rbits (u below is those bits / 2**rbits, built from bits)
        av = abs(v)
        fl = np.floor(av)
        top = np.floor((av - fl) * (1 << rbits))
        u = np.int64((np.int64(1023) << 52) | ((r >> (62 - rbits)) << (52 - rbits))).view(
            np.float64) - 1.0
        q = math.copysign(fl + (1.0 if top * (1.0 / (1 << rbits)) > u else 0.0), v)
    res = q * ulp
    if (policy == OINF and (mode == RNE or mode == RNA)) or policy == OINF_ALL:
        # IEEE overflow of a nearest mode: +-Inf, which Inf and NaN inputs already are
        big = abs(res) > maxv
        return (np.copysign(np.inf, res) if big else res), big & (abs(y) != np.inf)
    neg = y < 0.0
    isinf = abs(y) == np.inf
    over = (abs(res) > maxv) & (not isinf)
    to_max = (policy == SAT) | (policy == OERR) | (mode == RTZ) | (
        (mode == DOWN) & (not neg)) | ((mode == UP) & neg)
    big = maxv if to_max else (np.inf if policy == OINF else np.nan)
    inf_to = maxv if (policy == SAT) | (policy == OERR) else (
        np.inf if policy == OINF else np.nan)
    mag = big if over else (inf_to if isinf else abs(res))
    return (-mag if neg else mag), over


@numba.njit(**_INLINE)
def round_fixed(y, fbits, lo, hi, mode, policy):  # pragma: no cover - jitted
    """Round the exact float64 ``y`` to the grid 2**-fbits within [lo, hi] (integers
    of the grid). Returns (grid integer as float64, overflowed)."""
    v = y * pow2(fbits)
    fl = np.floor(v)
    rem = v - fl
    if mode == RNE:
        inc = (rem > 0.5) | ((rem == 0.5) & (fl - 2.0 * np.floor(0.5 * fl) != 0.0))
    elif mode == RNA:
        inc = (rem > 0.5) | ((rem == 0.5) & (v > 0))
    elif mode == RTZ:
        inc = (rem != 0.0) & (v < 0)
    elif mode == UP:
        inc = rem != 0.0
    else:
        inc = False
    q = fl + (1.0 if inc else 0.0)
    over = (q > hi) | (q < lo)
    if policy == WRAP:
        span = hi - lo + 1.0
        q = q - span * np.floor((q - lo) / span) if over else q
    else:
        q = min(max(q, lo), hi)
    return q, over


def make_rounder(kind, consts):
    """A jitted ``f(y, r) -> (value, overflowed)`` rounding exact/odd float64 values.

    kind 0: none (identity); 1: minifloat, consts = (man, emin_b, maxv, mode, policy,
    rbits); 2: fixed point (value returned on the real line), consts = (fbits, lo, hi,
    mode, policy).
    """
    if kind == 0:
        @numba.njit(**_INLINE)
        def ident(y, r):  # pragma: no cover - jitted
            return y, False
        return _stable(ident)
    if kind == 1:
        man, emin_b, maxv, mode, policy, rbits = consts
        man, emin_b = np.int64(man), np.int64(emin_b)

        @numba.njit(**_INLINE)
        def rf(y, r):  # pragma: no cover - jitted
            return round_float(y, r, man, emin_b, maxv, mode, policy, rbits)
        return _stable(rf)
    fbits, lo, hi, mode, policy = consts
    fbits = np.int64(fbits)
    back = 2.0 ** -int(fbits)

    @numba.njit(**_INLINE)
    def rx(y, r):  # pragma: no cover - jitted
        q, over = round_fixed(y, fbits, lo, hi, mode, policy)
        return q * back, over
    return _stable(rx)


def make_adder(kind, rounder):
    """``add(acc, x, r) -> (sum, overflowed)``: kind 0 float64 (plain add), 1 minifloat
    (TwoSum, round to odd, round to the format), 2 minifloat where ``acc + x`` is known to
    be exact in float64 (round the float64 sum directly)."""
    if kind == 0:
        @numba.njit(**_INLINE)
        def add64(a, x, r):  # pragma: no cover - jitted
            return a + x, False
        return _stable(add64)

    if kind == 2:
        @numba.njit(**_INLINE)
        def add_exact(a, x, r):  # pragma: no cover - jitted
            return rounder(a + x, r)
        return _stable(add_exact)

    @numba.njit(**_INLINE)
    def addf(a, x, r):  # pragma: no cover - jitted
        return rounder(add_odd(a, x), r)
    return _stable(addf)


def make_int_adder(bits, lo, hi, policy):
    """``add(acc, x) -> (sum, overflowed)`` on int64 grid integers of a ``bits``-bit
    two's-complement accumulator holding [lo, hi] (bits = 0: unbounded, the exact
    accumulator). Wrap keeps the low ``bits`` bits; saturate and error clamp."""
    bits = int(bits)
    if bits == 0:
        @numba.njit(**_INLINE)
        def addx(a, x):  # pragma: no cover - jitted
            return a + x, False
        return _stable(addx)
    lo = np.int64(lo)
    hi = np.int64(hi)
    mask = np.int64((1 << bits) - 1)
    half = np.int64(1 << (bits - 1))
    wrap = policy not in (SAT, OERR)

    @numba.njit(**_INLINE)
    def addi(a, x):  # pragma: no cover - jitted
        s = a + x
        over = (s > hi) | (s < lo)
        if wrap:
            s = ((s + half) & mask) - half
        else:
            s = min(max(s, lo), hi)
        return s, over
    return _stable(addi)


@numba.njit(**_INLINE)
def expo(x):  # pragma: no cover - jitted
    """floor(log2|x|) of a nonzero normal float64 (-1023 for 0 and subnormals, 1024 for
    Inf/NaN), from its bits."""
    return ((np.float64(x).view(np.int64) >> 52) & 2047) - 1023


@numba.njit(**_INLINE)
def align(x, inv, q, mode):  # pragma: no cover - jitted
    """``x`` on the grid ``q`` (a power of two, ``inv`` = 1/q) by the deterministic
    ``mode``: exact float64 arithmetic (x/q is exact, its integer part too)."""
    return round_int(x * inv, mode) * q


def make_gemm(W, has_scale, pairwise, chunk_j, stoch, err, prod, tree, add, wide, acc_int,
              add_int, grid, fuse_w=0, fuse_mode=RTZ, fuse_acc=True, fround=None,
              fuse_emin=None):
    """The GEMM kernel for one accumulator configuration (all arguments are constants).

    W: products per addend (1, or the adder-tree width); has_scale: block scales;
    pairwise: pairwise order within each chunk; chunk_j: addends per chunk (0: none);
    stoch: stochastic accumulator rounding; err: record the first overflow;
    prod / tree: rounders of products and tree sums; add: float accumulator adder;
    wide: chunk-promotion adder; acc_int: integer accumulator (add_int, grid 2**grid);
    fuse_w > 0: the fused multi-term adder (Order.FUSED): window fuse_w bits, shifted-out
    bits rounded by fuse_mode, the accumulator aligned too (fuse_acc), each step's exact
    sum rounded by fround (fuse_acc) or added by add; fuse_emin = (emin_a, emin_b): a
    product's exponent is its operands' exponents added (each at least its format's
    emin), not its own.
    """
    W = int(W)
    fuse_w = int(fuse_w)
    fuse = fuse_w > 0
    by_ops = fuse_emin is not None
    emin_a, emin_b = (np.int64(fuse_emin[0]), np.int64(fuse_emin[1])) if by_ops else (
        np.int64(0), np.int64(0))
    if fround is None:
        fround = make_rounder(0, ())
    chunk_j = int(chunk_j)
    scale_grid = 2.0 ** int(grid)

    @numba.njit(**_PJIT)
    def kern(A, B, ia, ib, sA, sB, bsA, bsB, out, lo, seed, bad_out, offgrid):  # pragma: no cover
        nbat = ia.size
        M = A.shape[1]
        K = A.shape[2]
        N = B.shape[2]
        J = (K + W - 1) // W
        CJ = chunk_j if chunk_j > 0 else J
        for t in prange(nbat * M):
            bi = t // M
            m = t - bi * M
            xa = ia[bi]
            xb = ib[bi]
            tmp = np.zeros(N)
            accf = np.zeros(N)
            acci = np.zeros(N, np.int64)
            widef = np.zeros(N)
            pbuf = np.zeros((W if fuse else 1, N))
            emx = np.zeros(N, np.int64)
            buf = np.zeros((CJ if pairwise else 1, N))
            bufi = np.zeros((CJ if pairwise else 1, N), np.int64)
            step = 0
            bad = np.int64(-1)
            for j in range(J):
                k0 = j * W
                k1 = min(k0 + W, K)
                jj = j % CJ
                if fuse:
                    # one fused step: exponents, then the terms aligned to the largest
                    for n in range(N):
                        emx[n] = expo(accf[n]) if (fuse_acc and accf[n] != 0.0) else -2000
                    for k in range(k0, k1):
                        a = A[xa, m, k]
                        sa = sA[xa, m, k // bsA] if has_scale else 1.0
                        for n in range(N):
                            p = prod(a * B[xb, k, n], 0)[0]
                            if has_scale:
                                p = p * (sa * sB[xb, k // bsB, n])
                            pbuf[k - k0, n] = p
                            if p != 0.0:
                                if by_ops:
                                    ep = max(expo(a), emin_a) + max(expo(B[xb, k, n]), emin_b)
                                else:
                                    ep = expo(p)
                                emx[n] = max(emx[n], ep)
                    for n in range(N):
                        e = emx[n]
                        if e > 1023 or e < -1500:
                            # Inf or NaN among the terms, or every term zero: the IEEE sum
                            tot = accf[n] if fuse_acc else 0.0
                            for i in range(k1 - k0):
                                tot += pbuf[i, n]
                        else:
                            eq = max(e - fuse_w, np.int64(-1022))
                            q = pow2(eq)
                            inv = pow2(-eq)
                            tot = align(accf[n], inv, q, fuse_mode) if fuse_acc else 0.0
                            for i in range(k1 - k0):
                                tot += align(pbuf[i, n], inv, q, fuse_mode)
                        r = rand62(seed, (np.int64(t) * N + n) * J + step) if stoch else 0
                        if fuse_acc:
                            s, o = fround(tot, r)
                        else:
                            s, o = add(accf[n], tot, r)
                        accf[n] = s
                        if err and o and bad < 0:
                            bad = np.int64(step) * N + n
                    step += 1
                    if chunk_j > 0 and (jj == CJ - 1 or j == J - 1):
                        for n in range(N):
                            widef[n] = wide(widef[n], accf[n], 0)[0]
                            accf[n] = 0.0
                    continue
                if W == 1 and not has_scale and not acc_int and not pairwise:
                    # the common case, fused: acc = round(acc + product)
                    a = A[xa, m, k0]
                    for n in range(N):
                        r = rand62(seed, (np.int64(t) * N + n) * J + step) if stoch else 0
                        s, o = add(accf[n], prod(a * B[xb, k0, n], 0)[0], r)
                        accf[n] = s
                        if err and o and bad < 0:
                            bad = np.int64(step) * N + n
                    step += 1
                    if chunk_j > 0 and (jj == CJ - 1 or j == J - 1):
                        for n in range(N):
                            widef[n] = wide(widef[n], accf[n], 0)[0]
                            accf[n] = 0.0
                    continue
                if W == 1:
                    a = A[xa, m, k0]
                    for n in range(N):
                        tmp[n] = prod(a * B[xb, k0, n], 0)[0]
                else:
                    for n in range(N):
                        tmp[n] = 0.0
                    for k in range(k0, k1):
                        a = A[xa, m, k]
                        for n in range(N):
                            tmp[n] += prod(a * B[xb, k, n], 0)[0]
                    for n in range(N):
                        tmp[n] = tree(tmp[n], 0)[0]
                if has_scale:
                    sa = sA[xa, m, k0 // bsA]
                    for n in range(N):
                        tmp[n] = tmp[n] * (sa * sB[xb, k0 // bsB, n])
                if acc_int:
                    for n in range(N):
                        g = tmp[n] * scale_grid
                        ok = abs(g) < 4.6e18
                        gi = np.int64(g) if ok else np.int64(0)
                        if not ok or float(gi) != g:
                            offgrid[t] = 2 if g != g or abs(g) == np.inf else 1
                        if pairwise:
                            bufi[jj, n] = gi
                        else:
                            s, o = add_int(acci[n], gi)
                            acci[n] = s
                            if err and o and bad < 0:
                                bad = np.int64(step) * N + n
                    if not pairwise:
                        step += 1
                elif pairwise:
                    for n in range(N):
                        buf[jj, n] = tmp[n]
                else:
                    for n in range(N):
                        r = rand62(seed, (np.int64(t) * N + n) * J + step) if stoch else 0
                        s, o = add(accf[n], tmp[n], r)
                        accf[n] = s
                        if err and o and bad < 0:
                            bad = np.int64(step) * N + n
                    step += 1
                if jj == CJ - 1 or j == J - 1:
                    if pairwise:
                        cnt = jj + 1
                        while cnt > 1:
                            half = cnt // 2
                            for i in range(half):
                                if acc_int:
                                    for n in range(N):
                                        s, o = add_int(bufi[2 * i, n], bufi[2 * i + 1, n])
                                        bufi[i, n] = s
                                        if err and o and bad < 0:
                                            bad = np.int64(step) * N + n
                                else:
                                    for n in range(N):
                                        r = rand62(seed, (np.int64(t) * N + n) * J + step) \
                                            if stoch else 0
                                        s, o = add(buf[2 * i, n], buf[2 * i + 1, n], r)
                                        buf[i, n] = s
                                        if err and o and bad < 0:
                                            bad = np.int64(step) * N + n
                                step += 1
                            if cnt % 2:
                                for n in range(N):
                                    buf[half, n] = buf[cnt - 1, n]
                                    bufi[half, n] = bufi[cnt - 1, n]
                            cnt = half + cnt % 2
                        for n in range(N):
                            accf[n] = buf[0, n]
                            acci[n] = bufi[0, n]
                    if chunk_j > 0:
                        for n in range(N):
                            widef[n] = wide(widef[n], accf[n], 0)[0]
                            accf[n] = 0.0
            if acc_int:
                for n in range(N):
                    hi = float(acci[n])
                    out[t, n] = hi
                    lo[t, n] = float(acci[n] - np.int64(hi))
            else:
                for n in range(N):
                    out[t, n] = widef[n] if chunk_j > 0 else accf[n]
            bad_out[t] = bad
    return _stable(kern)


@numba.njit(**_PJIT)
def data_stats(x):  # pragma: no cover - jitted
    """(largest magnitude, exponent of the smallest power of two dividing every nonzero
    value, count of non-finite values) of a flat float64 array, in one pass."""
    mx = 0.0
    lowe = np.int64(4096)
    bad = 0
    for i in prange(x.size):
        b = np.float64(x[i]).view(np.int64)
        ex = (b >> 52) & 2047
        frac = b & FRAC
        sig = frac | (np.int64(ex > 0) << 52)
        low = sig & -sig
        # the lowest set bit's exponent, read off the bits of the power of two float(low)
        el = ((np.float64(low).view(np.int64) >> 52) & 2047) - 1023
        e = max(ex, np.int64(1)) - 1075 + el
        ok = ex != 2047
        nz = sig != 0
        lowe = min(lowe, e if (ok and nz) else np.int64(4096))
        mx = max(mx, abs(x[i]) if ok else 0.0)
        bad += 0 if ok else 1
    return mx, lowe, bad


@numba.njit(**_PJIT)
def lut_lookup(table, idx, out, plane_weight):  # pragma: no cover - jitted
    """out[m, n] += plane_weight * sum_g table[m, g, idx[g, n]] (one weight bit-plane)."""
    M, G, _ = table.shape
    N = idx.shape[1]
    for m in prange(M):
        acc = np.zeros(N)
        for g in range(G):
            for n in range(N):
                acc[n] += table[m, g, idx[g, n]]
        for n in range(N):
            out[m, n] += plane_weight * acc[n]


INF_BITS = np.int64(0x7FF0000000000000)


@numba.njit(**_JIT)
def mag_stats(x):  # pragma: no cover - jitted
    """(largest finite magnitude, smallest nonzero finite magnitude (inf if none), count
    of non-finite values) of a flat float64 array, in one cheap pass: the magnitudes of
    floats order like their bit patterns, and integer min/max vectorises."""
    mx = np.int64(0)
    mn = INF_BITS
    bad = 0
    for i in range(x.size):
        b = np.float64(x[i]).view(np.int64) & MAG
        fin = b < INF_BITS
        bm = b if fin else np.int64(0)
        mx = max(mx, bm)
        mn = min(mn, bm if bm != 0 else INF_BITS)
        bad += 0 if fin else 1
    return np.int64(mx).view(np.float64), np.int64(mn).view(np.float64), bad


@numba.njit(**_PJIT)
def lut_weights(codes, nb, group, symmetric, out):  # pragma: no cover - jitted
    """The weights that turn bit-serial table lookups into one matrix product.

    ``codes`` (G, group, N): the weights' unsigned codes (bit j set: plane j is +1) per
    group of K. Plane j of column n reads pattern ``p_j = sum_i bit_j(code_i) << i`` of
    group g's table and adds ``2**j T[p_j]``; so ``out[g, p, n] = sum_j 2**j [p_j == p]``
    and the output is ``T (M, G*P) @ out (G*P, N)``. ``symmetric``: P = 2**(group-1)
    stored patterns (last sign +1); a pattern with last sign -1 reads the negated entry
    of its complement."""
    G = codes.shape[0]
    N = codes.shape[2]
    half = 1 << (group - 1)
    full = (1 << group) - 1
    for g in prange(G):
        pat = np.zeros((nb, N), np.int64)
        for i in range(group):
            for j in range(nb):
                for n in range(N):
                    pat[j, n] |= ((codes[g, i, n] >> j) & 1) << i
        for j in range(nb):
            w = float(1 << j)
            for n in range(N):
                p = pat[j, n]
                if symmetric:
                    if p >= half:
                        out[g, p - half, n] += w
                    else:
                        out[g, (full - p) - half, n] -= w
                else:
                    out[g, p, n] += w


@numba.njit(**_PJIT)
def lut_table(xg, symmetric, out):  # pragma: no cover - jitted
    """out[m, g, p] = sum_i sign_i(p) xg[m, g, i] (sign_i(p) = +1 where bit i of p is
    set), summed in order i = 0, 1, ... by doubling the table a bit at a time; with
    ``symmetric`` only the stored half, patterns whose last sign is +1 (out[..., p]
    holds pattern p + 2**(group-1))."""
    M, G, group = xg.shape
    for m in prange(M):
        for g in range(G):
            out[m, g, 0] = -xg[m, g, 0]
            if group > 1 or not symmetric:
                out[m, g, 1] = xg[m, g, 0]
            else:
                out[m, g, 0] = xg[m, g, 0]
            size = 2
            for i in range(1, group):
                xi = xg[m, g, i]
                if symmetric and i == group - 1:
                    for p in range(size):
                        out[m, g, p] = out[m, g, p] + xi
                else:
                    for p in range(size):
                        out[m, g, size + p] = out[m, g, p] + xi
                        out[m, g, p] = out[m, g, p] - xi
                    size *= 2
