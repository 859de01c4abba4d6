"""Triton kernels of the GEMM simulator: ``simulator.gemm`` on CUDA tensors. Private:
:mod:`simulator._gemm_gpu` validates, chooses the tier and launches.

One kernel, a transcription of :func:`simulator._kernels.make_gemm` (named beside each
step), with every accumulator setting a compile-time constant. Each program owns a
``BM x BN`` tile of outputs and walks K in the CPU kernel's order: per output element the
same operations on the same values in the same order, so the results are the CPU's bit
for bit (signed zeros included; the same counter-based random stream,
:func:`formats.stream.rand62`, keyed by the same (element, step) counter).

Two working precisions (``F32``):

- float64 (general): the CPU kernel's own arithmetic, every setting.
- float32 (fast): chosen by the host only where it provably gives the float64 result:
  every product, scaled addend and aligned fused sum is exact in float32 (decided from
  the operands' formats and data), the accumulator has at most 22 significant bits
  (rounding to odd in float32 then once into it equals one rounding of the exact sum,
  as float64 to odd does on the CPU: Boldo & Melquiond 2008) or is float32 itself with
  nearest-even and Inf on overflow (IEEE's own float32 addition), and no sum can leave
  float32's range. See :func:`simulator._gemm_gpu.f32_tier` for the full condition.

GPU numerics hazards avoided: every launch passes ``enable_fp_fusion=False`` (no
multiply-add contraction); no division outside float64 (whose ``/`` is IEEE's); rounding
to an integer is built from ``floor``/``ceil`` with the signs of zero numpy's ``rint``,
``trunc`` and ``ceil`` give; float32 subnormals are kept (no flush-to-zero).
"""

from __future__ import annotations

import triton
import triton.language as tl

from formats.gpu import triton_rand62

# the stochastic stream's element function, a global the kernels call by name
_rand62 = triton_rand62()

# the kernels' integer codes (formats.Rounding.code, formats.Overflow.code; OINF_ALL:
# the accumulator's inf_on_overflow) -- simulator._kernels holds the same numbers
RNE: tl.constexpr = tl.constexpr(0)
RNA: tl.constexpr = tl.constexpr(1)
RTZ: tl.constexpr = tl.constexpr(2)
UP: tl.constexpr = tl.constexpr(3)
STOCH: tl.constexpr = tl.constexpr(5)
SAT: tl.constexpr = tl.constexpr(0)
OINF: tl.constexpr = tl.constexpr(1)
WRAP: tl.constexpr = tl.constexpr(3)
OERR: tl.constexpr = tl.constexpr(4)
OINF_ALL: tl.constexpr = tl.constexpr(5)


# --- bits of the working float --------------------------------------------------------
@triton.jit
def _neg(x, F32: tl.constexpr):
    """Sign bit set (-0.0 included)."""
    if F32:
        return x.to(tl.int32, bitcast=True) < 0
    else:
        return x.to(tl.int64, bitcast=True) < 0


@triton.jit
def _expo(x, F32: tl.constexpr):
    """_kernels.expo: floor(log2|x|) of a normal x from its bits (subnormals and 0: the
    format's bias below 1, Inf/NaN: one above the largest exponent)."""
    if F32:
        return (((x.to(tl.int32, bitcast=True) >> 23) & 255) - 127).to(tl.int64)
    else:
        return ((x.to(tl.int64, bitcast=True) >> 52) & 2047) - 1023


@triton.jit
def _pow2(e, F32: tl.constexpr):
    """2.0**e: float64 for -1022 <= e <= 1023 (_kernels.pow2); float32 for
    -149 <= e <= 127 (subnormal powers included)."""
    if F32:
        e = e.to(tl.int32)
        b = tl.where(e >= -126, (e + 127) << 23, 1 << tl.maximum(e + 149, 0))
        return b.to(tl.float32, bitcast=True)
    else:
        return ((e.to(tl.int64) + 1023) << 52).to(tl.float64, bitcast=True)


@triton.jit
def _scale32(x, s):
    """x * 2**s in float32, exact whenever the result is (two factors, each a normal
    power of two, the first keeping the intermediate in range)."""
    s = s.to(tl.int32)
    s1 = tl.minimum(tl.maximum(s, -126), 127)
    return x * _pow2(s1, True) * _pow2(s - s1, True)


@triton.jit
def _round_int(v, MODE: tl.constexpr, F32: tl.constexpr):
    """_kernels.round_int: v rounded to an integer by the deterministic MODE, with the
    signed zeros of numpy's rint / nearest-away formula / trunc / ceil / floor."""
    if MODE == 4:
        return tl.floor(v)
    neg = _neg(v, F32)
    av = tl.abs(v)
    f = tl.floor(av)
    if MODE == 0:
        d = av - f
        odd = (f - 2.0 * tl.floor(0.5 * f)) != 0.0
        m = tl.where((d > 0.5) | ((d == 0.5) & odd), f + 1.0, f)
        return tl.where(neg, -m, m)
    elif MODE == 1:
        t = tl.where(neg, -f, f)
        one = tl.where(neg, -1.0, 1.0)
        return t + tl.where(tl.abs(v - t) >= 0.5, one, 0.0)
    elif MODE == 2:
        return tl.where(neg, -f, f)
    else:
        return tl.where(neg, -f, tl.ceil(av))


@triton.jit
def _round_float(y, r, MAN: tl.constexpr, EMIN: tl.constexpr, MAXV: tl.constexpr,
                 MODE: tl.constexpr, POLICY: tl.constexpr, RBITS: tl.constexpr,
                 F32: tl.constexpr):
    """_kernels.round_float: y (exact, or rounded to odd with >= 2 spare bits) rounded
    to a minifloat with MAN mantissa bits, smallest normal exponent EMIN, largest finite
    MAXV. Returns (value, overflowed)."""
    if F32:
        ee = tl.maximum(_expo(y, True), EMIN)
        v = _scale32(y, MAN - ee)
        q = _round_int(v, MODE, True)
        res = q * _pow2(ee - MAN, True)
    else:
        ex = (y.to(tl.int64, bitcast=True) >> 52) & 2047
        e_eff = tl.maximum(ex, EMIN + 1023)
        inv = ((2046 + MAN - e_eff) << 52).to(tl.float64, bitcast=True)
        ulp = ((e_eff - MAN) << 52).to(tl.float64, bitcast=True)
        v = y * inv
        if MODE != 5:
            q = _round_int(v, MODE, False)
        else:
            av = tl.abs(v)
            fl = tl.floor(av)
            top = tl.floor((av - fl) * (1 << RBITS))
            u = ((1023 << 52) | ((r >> (62 - RBITS)) << (52 - RBITS))).to(
                tl.float64, bitcast=True) - 1.0
            up = fl + tl.where(top * (1.0 / (1 << RBITS)) > u, 1.0, 0.0)
            q = tl.where(_neg(v, False), -up, up)
        res = q * ulp
    if (POLICY == 1 and (MODE == 0 or MODE == 1)) or POLICY == 5:
        big = tl.abs(res) > MAXV
        inf = float("inf")
        return tl.where(big, tl.where(res < 0, -inf, inf), res), big & (tl.abs(y) != inf)
    else:
        neg = y < 0.0
        isinf = tl.abs(y) == float("inf")
        over = (tl.abs(res) > MAXV) & (isinf == 0)
        if POLICY == 0 or POLICY == 4 or MODE == 2:
            to_max = neg == neg
        elif MODE == 4:
            to_max = neg == 0
        elif MODE == 3:
            to_max = neg
        else:
            to_max = neg != neg
        if POLICY == 1:
            big = tl.where(to_max, MAXV, float("inf"))
            inf_to = float("inf")
        elif POLICY == 0 or POLICY == 4:
            big = tl.where(to_max, MAXV, MAXV)
            inf_to = MAXV
        else:
            big = tl.where(to_max, MAXV, float("nan"))
            inf_to = float("nan")
        mag = tl.where(over, big, tl.where(isinf, inf_to, tl.abs(res)))
        return tl.where(neg, -mag, mag), over


@triton.jit
def _round_fixed(y, FBITS: tl.constexpr, LO: tl.constexpr, HI: tl.constexpr,
                 MODE: tl.constexpr, POLICY: tl.constexpr):
    """_kernels.round_fixed (float64): y on the grid 2**-FBITS within [LO, HI] (grid
    integers). Returns (the value on the real line, overflowed)."""
    v = y * _pow2(tl.full(y.shape, FBITS, tl.int64), False)
    fl = tl.floor(v)
    rem = v - fl
    if MODE == 0:
        inc = (rem > 0.5) | ((rem == 0.5) & ((fl - 2.0 * tl.floor(0.5 * fl)) != 0.0))
    elif MODE == 1:
        inc = (rem > 0.5) | ((rem == 0.5) & (v > 0))
    elif MODE == 2:
        inc = (rem != 0.0) & (v < 0)
    elif MODE == 3:
        inc = rem != 0.0
    else:
        inc = rem != rem
    q = fl + tl.where(inc, 1.0, 0.0)
    over = (q > HI) | (q < LO)
    if POLICY == 3:
        span = HI - LO + 1.0
        q = tl.where(over, q - span * tl.floor((q - LO) / span), q)
    else:
        q = tl.minimum(tl.maximum(q, LO), HI)
    return q * _pow2(tl.full(y.shape, -FBITS, tl.int64), False), over


@triton.jit
def _rounder(y, r, KIND: tl.constexpr, MAN: tl.constexpr, EMIN: tl.constexpr,
             MAXV: tl.constexpr, MODE: tl.constexpr, POLICY: tl.constexpr,
             RBITS: tl.constexpr, FBITS: tl.constexpr, F32: tl.constexpr):
    """_kernels.make_rounder: KIND 0 identity, 1 minifloat, 2 fixed point (float64; its
    grid-integer bounds lo / hi given as EMIN / MAXV). Returns (value, overflowed)."""
    if KIND == 0:
        return y, y < y
    elif KIND == 1:
        return _round_float(y, r, MAN, EMIN, MAXV, MODE, POLICY, RBITS, F32)
    else:
        return _round_fixed(y, FBITS, EMIN, MAXV, MODE, POLICY)


@triton.jit
def _add_odd(a, b, F32: tl.constexpr):
    """formats.odd.add_odd: a + b rounded to odd (TwoSum, then an even sum with a
    nonzero error steps one ulp toward the exact value; Inf and NaN stay)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    if F32:
        hb = s.to(tl.int32, bitcast=True)
        fix = (e != 0.0) & ((hb & 1) == 0) & (((hb >> 23) & 255) != 255)
        step = tl.where((e > 0.0) == (s > 0.0), 1, -1)
        return (hb + tl.where(fix, step, 0)).to(tl.float32, bitcast=True)
    else:
        hb = s.to(tl.int64, bitcast=True)
        fix = (e != 0.0) & ((hb & 1) == 0) & (((hb >> 52) & 2047) != 2047)
        step = tl.where((e > 0.0) == (s > 0.0), 1, -1).to(tl.int64)
        return (hb + tl.where(fix, step, 0)).to(tl.float64, bitcast=True)


@triton.jit
def _add(a, x, r, KIND: tl.constexpr, MAN: tl.constexpr, EMIN: tl.constexpr,
         MAXV: tl.constexpr, MODE: tl.constexpr, POLICY: tl.constexpr,
         RBITS: tl.constexpr, F32: tl.constexpr):
    """_kernels.make_adder: KIND 0 the working float's own addition (float64, or
    float32 nearest-even with Inf on overflow), 1 to odd then the minifloat rounder,
    2 to odd in float32 then the hardware's nearest-even conversion to float16 (IEEE,
    subnormals kept, Inf on overflow). Returns (sum, overflowed)."""
    if KIND == 0:
        s = a + x
        return s, s < s
    elif KIND == 1:
        return _round_float(_add_odd(a, x, F32), r, MAN, EMIN, MAXV, MODE, POLICY, RBITS,
                            F32)
    else:
        s = _add_odd(a, x, True).to(tl.float16).to(tl.float32)
        return s, s < s


@triton.jit
def _add_int(a, x, BITS: tl.constexpr, LO: tl.constexpr, HI: tl.constexpr,
             WRAPS: tl.constexpr):
    """_kernels.make_int_adder on int64 grid integers (BITS = 0: unbounded)."""
    s = a + x
    if BITS == 0:
        return s, s < s
    else:
        over = (s > HI) | (s < LO)
        if WRAPS:
            s = ((s + (1 << (BITS - 1))) & ((1 << BITS) - 1)) - (1 << (BITS - 1))
        else:
            s = tl.minimum(tl.maximum(s, LO), HI)
        return s, over


@triton.jit
def _load_ab(a_base, b_base, k, rm, rn, M, N, mm, nm, K: tl.constexpr):
    """Column k of A (BM, 1) and row k of B (1, BN); 0 beyond K (int64 offsets: M, N
    are int64 here)."""
    ok = k < K
    a = tl.load(a_base + k * M + rm[:, None], mask=mm[:, None] & ok, other=0.0)
    b = tl.load(b_base + k * N + rn[None, :], mask=nm[None, :] & ok, other=0.0)
    return a, b


@triton.jit
def _scale_of(sa_base, sb_base, k, rm, rn, N, nba, nbb, bsa, bsb, mm, nm, K: tl.constexpr):
    """The block scales' product of the blocks holding K index k (a: (BM, 1), b: (1, BN));
    1 beyond K (a padded term of a last, partial step reads no scale)."""
    ok = k < K
    sa = tl.load(sa_base + rm[:, None] * nba + k // bsa, mask=mm[:, None] & ok, other=1.0)
    sb = tl.load(sb_base + (k // bsb) * N + rn[None, :], mask=nm[None, :] & ok, other=1.0)
    return sa * sb


@triton.jit
def _term(a_base, b_base, sa_base, sb_base, k, rm, rn, M, N, nba, nbb, bsa, bsb, mm, nm,
          K: tl.constexpr, HAS_SCALE: tl.constexpr, PK: tl.constexpr, P_MAN: tl.constexpr,
          P_EMIN: tl.constexpr, P_MAXV: tl.constexpr, P_MODE: tl.constexpr,
          P_POL: tl.constexpr, P_FB: tl.constexpr, F32: tl.constexpr):
    """The operands at K index k and their product (rounded to the product format, times
    the block scales): one fused-step term, as make_gemm's pbuf holds it."""
    a, b = _load_ab(a_base, b_base, k, rm, rn, M, N, mm, nm, K)
    p = _rounder(a * b, 0, PK, P_MAN, P_EMIN, P_MAXV, P_MODE, P_POL, 0, P_FB, F32)[0]
    if HAS_SCALE:
        p = p * _scale_of(sa_base, sb_base, k, rm, rn, N, nba, nbb, bsa, bsb, mm, nm, K)
    return a, b, p


@triton.jit
def _align(x, eq, q, inv, MODE: tl.constexpr, F32: tl.constexpr):
    """_kernels.align: x on the grid q = 2**eq (inv = 1/q; float32: scaled in two exact
    steps, 2**-eq may exceed float32's range) by the deterministic MODE."""
    if F32:
        return _round_int(_scale32(x, -eq), MODE, True) * q
    else:
        return _round_int(x * inv, MODE, False) * q


@triton.jit
def _tile(At, Bk, ia, ib, sA, sB, M, N, nba, nbb, K: tl.constexpr, BM: tl.constexpr,
          BN: tl.constexpr):
    """This program's output tile: program_id(0) = batch element * row tiles + row tile
    (the batch folded into axis 0: axes 1 and 2 hold at most 65535 programs),
    program_id(1) the column tile. Returns M, N as int64, the tile's rows and columns,
    their masks, the operand and scale base pointers of its batch element, and its
    global output rows t."""
    n_pm = tl.cdiv(M, BM)
    pid = tl.program_id(0)
    bi = (pid // n_pm).to(tl.int64)
    pm = pid % n_pm
    pn = tl.program_id(1)
    M = tl.cast(M, tl.int64)  # (tl.cast: an argument equal to 1 arrives as a constexpr)
    N = tl.cast(N, tl.int64)
    rm = pm.to(tl.int64) * BM + tl.arange(0, BM)
    rn = pn.to(tl.int64) * BN + tl.arange(0, BN)
    xa = tl.load(ia + bi).to(tl.int64)
    xb = tl.load(ib + bi).to(tl.int64)
    return (M, N, rm, rn, rm < M, rn < N, At + xa * K * M, Bk + xb * K * N,
            sA + xa * M * nba, sB + xb * nbb * N, bi * M + rm)


@triton.jit
def _to_grid(tmp, GRID_SCALE: tl.constexpr, j, off):
    """An addend of step j as an integer of the accumulator's grid (tmp * GRID_SCALE,
    float64), and ``off`` set to (j + 1) * 4 + kind where it is not one: kind 1 off the
    grid or beyond int64, 2 NaN / Inf (one definition for gemm_kernel and
    addends_kernel)."""
    g = tmp * GRID_SCALE
    ok = tl.abs(g) < 4.6e18
    gi = tl.where(ok, g, 0.0).to(tl.int64)
    offk = (ok == 0) | (gi.to(tl.float64) != g)
    kind = tl.where((g != g) | (tl.abs(g) == float("inf")), 2, 1)
    return gi, tl.where(offk, (j + 1) * 4 + kind, off)


@triton.jit
def gemm_kernel(
    At, Bk, ia, ib, sA, sB, out, lo_out, bad_out, off_out, M, N, nba, nbb, bsa, bsb,
    seed,
    K: tl.constexpr, W: tl.constexpr, F32: tl.constexpr, BM: tl.constexpr,
    BN: tl.constexpr, HAS_SCALE: tl.constexpr, CHUNK_J: tl.constexpr,
    STOCHASTIC: tl.constexpr, ERR: tl.constexpr,
    PK: tl.constexpr, P_MAN: tl.constexpr, P_EMIN: tl.constexpr, P_MAXV: tl.constexpr,
    P_MODE: tl.constexpr, P_POL: tl.constexpr, P_FB: tl.constexpr,
    TK: tl.constexpr, T_MAN: tl.constexpr, T_EMIN: tl.constexpr, T_MAXV: tl.constexpr,
    T_MODE: tl.constexpr, T_POL: tl.constexpr,
    AK: tl.constexpr, A_MAN: tl.constexpr, A_EMIN: tl.constexpr, A_MAXV: tl.constexpr,
    A_MODE: tl.constexpr, A_POL: tl.constexpr, A_RBITS: tl.constexpr,
    ACC_INT: tl.constexpr, I_BITS: tl.constexpr, I_LO: tl.constexpr, I_HI: tl.constexpr,
    I_WRAP: tl.constexpr, GRID_SCALE: tl.constexpr,
    CK: tl.constexpr, C_MAN: tl.constexpr, C_EMIN: tl.constexpr, C_MAXV: tl.constexpr,
    C_POL: tl.constexpr,
    FUSE_W: tl.constexpr, FUSE_MODE: tl.constexpr, FUSE_ACC: tl.constexpr,
    BY_OPS: tl.constexpr, EMIN_OA: tl.constexpr, EMIN_OB: tl.constexpr,
):  # pragma: no cover - compiled or interpreted by Triton
    """_kernels.make_gemm's kern for one (BM, BN) output tile of batch element
    program_id(2). At (nA, K, M) and Bk (nB, K, N) hold the operands' element values
    in the working float, sA (nA, M, nba) and sB (nB, nbb, N) the block scales (ones
    when none), ia / ib each batch element's operand index. Writes out (rows, N)
    float64 (integer accumulators: hi, and lo into lo_out), the first overflowing step
    per element into bad_out (ERR) and, for integer accumulators, (step + 1) * 4 + kind
    of the element's last addend off the grid (kind 1) or NaN / Inf (kind 2) into
    off_out (0: none), from which the host reports what the CPU kernel reports."""
    DT: tl.constexpr = tl.float32 if F32 else tl.float64
    J: tl.constexpr = (K + W - 1) // W
    EMAXW: tl.constexpr = 127 if F32 else 1023
    PAD: tl.constexpr = K % W != 0
    M, N, rm, rn, mm, nm, a_base, b_base, sa_base, sb_base, t = _tile(
        At, Bk, ia, ib, sA, sB, M, N, nba, nbb, K, BM, BN)
    ridx = (t[:, None] * N + rn[None, :]) * J
    accf = tl.zeros((BM, BN), DT)
    acci = tl.zeros((BM, BN), tl.int64)
    widef = tl.zeros((BM, BN), DT)
    bad = tl.full((BM, BN), -1, tl.int32)
    off = tl.zeros((BM, BN), tl.int32)
    for j in range(J):
        k0 = j * W
        if STOCHASTIC:
            r = _rand62(seed, ridx + j)
        else:
            r = ridx * 0
        if FUSE_W > 0:
            # one fused step: exponents, then the terms aligned to the largest
            if FUSE_ACC:
                emx = tl.where(accf != 0.0, _expo(accf, F32), -2000)
            else:
                emx = tl.full((BM, BN), -2000, tl.int64)
            for kk in range(W):
                a, b, p = _term(a_base, b_base, sa_base, sb_base, k0 + kk, rm, rn, M, N, nba,
                                nbb, bsa, bsb, mm, nm, K, HAS_SCALE, PK, P_MAN, P_EMIN,
                                P_MAXV, P_MODE, P_POL, P_FB, F32)
                if BY_OPS:
                    ep = tl.maximum(_expo(a, F32), EMIN_OA) + tl.maximum(_expo(b, F32),
                                                                         EMIN_OB)
                else:
                    ep = _expo(p, F32)
                emx = tl.where(p != 0.0, tl.maximum(emx, ep), emx)
            special = (emx > EMAXW) | (emx < -1500)
            eq = tl.maximum(emx - FUSE_W, -1022)
            eq = tl.where(special, 0, eq)
            q = _pow2(eq, F32)
            if F32:
                inv = q
            else:
                inv = _pow2(-eq, False)
            if FUSE_ACC:
                plain = accf
                tot = _align(accf, eq, q, inv, FUSE_MODE, F32)
            else:
                plain = tl.zeros((BM, BN), DT)
                tot = tl.zeros((BM, BN), DT)
            for kk in range(W):
                a, b, p = _term(a_base, b_base, sa_base, sb_base, k0 + kk, rm, rn, M, N, nba,
                                nbb, bsa, bsb, mm, nm, K, HAS_SCALE, PK, P_MAN, P_EMIN,
                                P_MAXV, P_MODE, P_POL, P_FB, F32)
                al = _align(p, eq, q, inv, FUSE_MODE, F32)
                if PAD:
                    ok = (k0 + kk) < K
                    plain = tl.where(ok, plain + p, plain)
                    tot = tl.where(ok, tot + al, tot)
                else:
                    plain = plain + p
                    tot = tot + al
            tot = tl.where(special, plain, tot)
            if FUSE_ACC:
                s, o = _rounder(tot, r, 1, A_MAN, A_EMIN, A_MAXV, A_MODE, A_POL, A_RBITS, 0,
                                F32)
            else:
                s, o = _add(accf, tot, r, AK, A_MAN, A_EMIN, A_MAXV, A_MODE, A_POL, A_RBITS,
                            F32)
            accf = s
            if ERR:
                bad = tl.where(o & (bad < 0), j, bad)
        else:
            if W == 1:
                a, b = _load_ab(a_base, b_base, k0, rm, rn, M, N, mm, nm, K)
                tmp = _rounder(a * b, 0, PK, P_MAN, P_EMIN, P_MAXV, P_MODE, P_POL, 0, P_FB,
                               F32)[0]
            else:
                tmp = tl.zeros((BM, BN), DT)
                for kk in range(W):
                    a, b = _load_ab(a_base, b_base, k0 + kk, rm, rn, M, N, mm, nm, K)
                    tmp = tmp + _rounder(a * b, 0, PK, P_MAN, P_EMIN, P_MAXV, P_MODE, P_POL,
                                         0, P_FB, F32)[0]
                tmp = _rounder(tmp, 0, TK, T_MAN, T_EMIN, T_MAXV, T_MODE, T_POL, 0, 0,
                               F32)[0]
            if HAS_SCALE:
                tmp = tmp * _scale_of(sa_base, sb_base, k0, rm, rn, N, nba, nbb, bsa, bsb,
                                      mm, nm, K)
            if ACC_INT:
                gi, off = _to_grid(tmp, GRID_SCALE, j, off)
                acci, o = _add_int(acci, gi, I_BITS, I_LO, I_HI, I_WRAP)
            else:
                accf, o = _add(accf, tmp, r, AK, A_MAN, A_EMIN, A_MAXV, A_MODE, A_POL,
                               A_RBITS, F32)
            if ERR:
                bad = tl.where(o & (bad < 0), j, bad)
        if CHUNK_J > 0:
            if ((j % CHUNK_J) == CHUNK_J - 1) | (j == J - 1):
                widef = _add(widef, accf, r, CK, C_MAN, C_EMIN, C_MAXV, 0, C_POL, 0, F32)[0]
                accf = tl.zeros((BM, BN), DT)
    rows = t[:, None] * N + rn[None, :]
    msk = mm[:, None] & nm[None, :]
    if ACC_INT:
        hi = acci.to(tl.float64)
        tl.store(out + rows, hi, mask=msk)
        tl.store(lo_out + rows, (acci - hi.to(tl.int64)).to(tl.float64), mask=msk)
        tl.store(off_out + rows, off, mask=msk)
    elif CHUNK_J > 0:
        tl.store(out + rows, widef.to(tl.float64), mask=msk)
    else:
        tl.store(out + rows, accf.to(tl.float64), mask=msk)
    if ERR:
        tl.store(bad_out + rows, bad, mask=msk)


# --- pairwise order (Order.PAIRWISE): the addends, then the tree level by level --------
@triton.jit
def addends_kernel(
    At, Bk, ia, ib, sA, sB, buf, off_out, M, N, nba, nbb, bsa, bsb,
    K: tl.constexpr, F32: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
    HAS_SCALE: tl.constexpr,
    PK: tl.constexpr, P_MAN: tl.constexpr, P_EMIN: tl.constexpr, P_MAXV: tl.constexpr,
    P_MODE: tl.constexpr, P_POL: tl.constexpr, P_FB: tl.constexpr,
    ACC_INT: tl.constexpr, GRID_SCALE: tl.constexpr,
):  # pragma: no cover - compiled or interpreted by Triton
    """The addends of the pairwise order (make_gemm's W == 1 addend: the product,
    rounded to the product format, times the block scales; integer accumulators: on the
    grid, off-grid flags into off_out) into buf (rows, N, K), K last."""
    M, N, rm, rn, mm, nm, a_base, b_base, sa_base, sb_base, t = _tile(
        At, Bk, ia, ib, sA, sB, M, N, nba, nbb, K, BM, BN)
    rows = t[:, None] * N + rn[None, :]
    msk = mm[:, None] & nm[None, :]
    off = tl.zeros((BM, BN), tl.int32)
    for j in range(K):
        a, b = _load_ab(a_base, b_base, j, rm, rn, M, N, mm, nm, K)
        tmp = _rounder(a * b, 0, PK, P_MAN, P_EMIN, P_MAXV, P_MODE, P_POL, 0, P_FB, F32)[0]
        if HAS_SCALE:
            tmp = tmp * _scale_of(sa_base, sb_base, j, rm, rn, N, nba, nbb, bsa, bsb, mm, nm, K)
        if ACC_INT:
            gi, off = _to_grid(tmp, GRID_SCALE, j, off)
            tl.store(buf + rows * K + j, gi, mask=msk)
        else:
            tl.store(buf + rows * K + j, tmp, mask=msk)
    if ACC_INT:
        tl.store(off_out + rows, off, mask=msk)


@triton.jit
def pair_kernel(
    src, dst, bad, n_el, src_stride, src_off, dst_stride, cnt, step_base, J, seed,
    BLOCK: tl.constexpr, HALF: tl.constexpr, F32: tl.constexpr, STOCHASTIC: tl.constexpr,
    ERR: tl.constexpr,
    AK: tl.constexpr, A_MAN: tl.constexpr, A_EMIN: tl.constexpr, A_MAXV: tl.constexpr,
    A_MODE: tl.constexpr, A_POL: tl.constexpr, A_RBITS: tl.constexpr,
    ACC_INT: tl.constexpr, I_BITS: tl.constexpr, I_LO: tl.constexpr, I_HI: tl.constexpr,
    I_WRAP: tl.constexpr,
):  # pragma: no cover - compiled or interpreted by Triton
    """One level of make_gemm's pairwise tree for every element: dst[e, i] =
    add(src[e, 2i], src[e, 2i + 1]) for i < HALF = cnt // 2 (step step_base + i), and an
    odd last addend moved up unchanged to dst[e, HALF]. Elements e are output elements
    (row * N + n); the first overflowing step of each goes to bad (atomic minimum)."""
    PAIRS: tl.constexpr = HALF + 1
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    e = idx // PAIRS
    i = idx - e * PAIRS
    live = (e < n_el) & ((i < HALF) | ((i == HALF) & ((cnt % 2) == 1)))
    pair = live & (i < HALF)
    base = src + e * src_stride + src_off
    x = tl.load(base + 2 * i, mask=live, other=0)
    y = tl.load(base + 2 * i + 1, mask=pair, other=0)
    step = step_base + i
    if STOCHASTIC:
        r = _rand62(seed, e * J + step)
    else:
        r = idx * 0
    if ACC_INT:
        s, o = _add_int(x, y, I_BITS, I_LO, I_HI, I_WRAP)
    else:
        s, o = _add(x, y, r, AK, A_MAN, A_EMIN, A_MAXV, A_MODE, A_POL, A_RBITS, F32)
    s = tl.where(pair, s, x)
    tl.store(dst + e * dst_stride + i, s, mask=live)
    if ERR:
        tl.atomic_min(bad + e, step.to(tl.int32), mask=pair & o)


@triton.jit
def promote_kernel(
    wide, acc, n_el, acc_stride, BLOCK: tl.constexpr, F32: tl.constexpr,
    CK: tl.constexpr, C_MAN: tl.constexpr, C_EMIN: tl.constexpr, C_MAXV: tl.constexpr,
    C_POL: tl.constexpr,
):  # pragma: no cover - compiled or interpreted by Triton
    """Chunked promotion after a pairwise chunk: wide[e] = round(wide[e] + acc[e, 0])."""
    e = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = e < n_el
    w = tl.load(wide + e, mask=ok, other=0.0)
    x = tl.load(acc + e * acc_stride, mask=ok, other=0.0)
    s = _add(w, x, e * 0, CK, C_MAN, C_EMIN, C_MAXV, 0, C_POL, 0, F32)[0]
    tl.store(wide + e, s, mask=ok)
