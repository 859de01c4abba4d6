"""Reference models of the processing elements: PyTorch code where torch has the formats
(float8 / bfloat16 / float16 / float32 dtypes, integer tensors), formats/ + simulator/
where it does not. Every function maps operand codes to the codes the hardware must
produce; none of them uses rtl/'s own arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from formats import FixedBase, Integer, Minifloat, Overflow, Rounding, Special, parse
from simulator import Accumulator, gemm
from simulator.hardware import bipolar_gemm, lut_gemm

__all__ = ["TORCH_DTYPES", "decode", "encode", "mul_ref", "quantize_ref", "mac_ref", "int_mac_sim",
           "float_mac_ref", "fused_dot_ref", "block_dot_ref", "bipolar_ref", "lut_ref",
           "shift_add_ref"]

#: formats torch has as dtypes (canonical numfab names)
TORCH_DTYPES: dict[str, torch.dtype] = {
    "float8_e4m3fn": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2,
    "float8_e4m3fnuz": torch.float8_e4m3fnuz, "float8_e5m2fnuz": torch.float8_e5m2fnuz,
    "float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
    "float64": torch.float64,
}
_INT_VIEW = {8: torch.uint8, 16: torch.int16, 32: torch.int32, 64: torch.int64}


def canonical(fmt: Any, codes: np.ndarray) -> np.ndarray:
    """Codes with every NaN replaced by the format's canonical NaN code (the hardware
    emits one NaN; torch keeps NaN signs and payloads)."""
    codes = np.asarray(codes, np.int64)
    if isinstance(fmt, Minifloat) and fmt.has_nan:
        nan = np.isnan(np.asarray(fmt.decode(codes.astype(fmt.code_dtype)), np.float64))
        codes = np.where(nan, int(fmt.nan_code or 0), codes)
    return codes


def decode(fmt: Any, codes: Any) -> np.ndarray:
    """float64 values of codes (bipolar and integers included)."""
    c = np.asarray(codes, np.int64)
    if isinstance(fmt, FixedBase) and fmt.signed:
        c = np.where(c >= 1 << (fmt.bits - 1), c - (1 << fmt.bits), c)
        return c.astype(np.float64) * 2.0 ** fmt.ulp_exp
    return np.asarray(fmt.decode(c.astype(fmt.code_dtype)), np.float64)


def encode(fmt: Any, values: Any, rounding: Rounding = Rounding.NEAREST_EVEN,
           overflow: Overflow | None = None) -> np.ndarray:
    """Codes as non-negative int64 (two's complement masked to the format's width)."""
    codes = np.asarray(fmt.encode(np.asarray(values, np.float64), rounding=rounding,
                                  overflow=overflow)).astype(np.int64)
    return canonical(fmt, codes & ((1 << fmt.bits) - 1))


def _torch_values(fmt: Any, codes: np.ndarray) -> torch.Tensor:
    c = np.asarray(codes, np.int64)
    if fmt.bits > 8:  # signed views: codes >= 2**(n-1) are negative integers
        c = np.where(c >= 1 << (fmt.bits - 1), c - (1 << fmt.bits), c)
    return torch.tensor(c, dtype=_INT_VIEW[fmt.bits]).view(TORCH_DTYPES[str(fmt)])


def _torch_codes(fmt: Any, t: torch.Tensor) -> np.ndarray:
    bits = t.view(_INT_VIEW[fmt.bits]).to(torch.int64).numpy()
    return canonical(fmt, bits & ((1 << fmt.bits) - 1))


def _torch_cast_ok(fmt: Minifloat, mode: Rounding, policy: Overflow) -> bool:
    """torch's casts round nearest-even; float8_e4m3fn saturates (Inf too), the fnuz
    types give NaN, IEEE dtypes overflow to Inf."""
    if str(fmt) not in TORCH_DTYPES or mode is not Rounding.NEAREST_EVEN:
        return False
    if fmt.special is Special.IEEE:
        return policy is Overflow.INF
    if fmt.special is Special.FNUZ:
        return policy is Overflow.NAN
    return policy is Overflow.SATURATE


def _fits_f32(fa: Minifloat, fb: Minifloat) -> bool:
    """Every product of fa and fb is a float32 number: its significand fits float32's
    precision, its quantum lies on float32's grid and its top binade is a float32 one."""
    f32 = parse("float32")
    return (fa.precision + fb.precision <= f32.precision
            and fa.lsb_exp_min + fb.lsb_exp_min >= f32.lsb_exp_min
            and fa.emax + fb.emax + 1 <= f32.emax)


def mul_ref(fa: Minifloat, fb: Minifloat, fo: Minifloat, a: np.ndarray, b: np.ndarray,
            mode: Rounding, policy: Overflow) -> tuple[np.ndarray, str]:
    """Codes of round(a * b) in fo; which reference ran."""
    if str(fa) in TORCH_DTYPES and str(fb) in TORCH_DTYPES and _fits_f32(fa, fb) \
            and _torch_cast_ok(fo, mode, policy):
        x = _torch_values(fa, a).to(torch.float32)
        y = _torch_values(fb, b).to(torch.float32)
        return _torch_codes(fo, (x * y).to(TORCH_DTYPES[str(fo)])), "torch"
    # exact float64 products (at most 2 * 24 significant bits in the supported formats)
    with np.errstate(invalid="ignore", over="ignore"):
        p = decode(fa, a) * decode(fb, b)
    return encode(fo, p, mode, policy), "formats"


def quantize_ref(fi: Any, fo: Any, x: np.ndarray, mode: Rounding,
                 policy: Overflow) -> tuple[np.ndarray, str]:
    if isinstance(fi, Minifloat) and str(fi) in TORCH_DTYPES:
        xv = _torch_values(fi, x)
        if isinstance(fo, Minifloat) and _torch_cast_ok(fo, mode, policy):
            return _torch_codes(fo, xv.to(TORCH_DTYPES[str(fo)])), "torch"
        if isinstance(fo, Integer) and mode is Rounding.NEAREST_EVEN \
                and policy is Overflow.SATURATE:
            v = xv.to(torch.float64)
            r = torch.round(torch.nan_to_num(v, nan=0.0))  # half to even
            ri = r.clamp(-fo.max_neg_int, fo.max_int).to(torch.int64).numpy()
            return ri & ((1 << fo.bits) - 1), "torch"
    vals = decode(fi, x)
    if isinstance(fo, FixedBase):
        if policy is Overflow.WRAP:
            vals = np.where(np.isfinite(vals), vals, 0.0)
        else:
            vals = np.where(np.isnan(vals), 0.0, vals)
    return encode(fo, vals, mode, policy), "formats"


def mac_ref(fa: Any, fb: Any, acc_bits: int, policy: Overflow, a: np.ndarray, b: np.ndarray,
            clear: np.ndarray) -> np.ndarray:
    """IntMac: the register after each enabled step (torch int64 products, wrap/saturate
    per add); codes of ``int<acc_bits>``."""
    p = (torch.tensor(decode(fa, a)).to(torch.int64)
         * torch.tensor(decode(fb, b)).to(torch.int64)).tolist()
    hi, lo = (1 << (acc_bits - 1)) - 1, -(1 << (acc_bits - 1))
    acc, out = 0, []
    for pi, c in zip(p, clear):
        acc = (0 if c else acc) + pi
        if policy is Overflow.SATURATE:
            acc = min(max(acc, lo), hi)
        else:
            acc = ((acc - lo) % (1 << acc_bits)) + lo
        out.append(acc & ((1 << acc_bits) - 1))
    return np.array(out, np.int64)


def int_mac_sim(fa: Any, fb: Any, acc: Accumulator, a: np.ndarray, b: np.ndarray,
                clear: np.ndarray) -> np.ndarray:
    """IntMac from ``simulator.gemm``: the register after step t is the product of the
    segment's prefix up to t, all prefixes in one batched call (each padded with zero
    products, which leave an integer accumulator as it is, wrapping or saturating);
    codes of the accumulator."""
    av, bv = decode(fa, a), decode(fb, b)
    n = len(a)
    starts = np.zeros(n, np.int64)
    for s, e in _segments(clear):
        starts[s:e] = s
    width = int((np.arange(n) - starts).max(initial=0)) + 1
    x, y = np.zeros((n, 1, width)), np.zeros((n, width, 1))
    for t in range(n):
        m = t + 1 - starts[t]
        x[t, 0, :m], y[t, :m, 0] = av[starts[t]:t + 1], bv[starts[t]:t + 1]
    r = gemm(x, y, a_format=fa, b_format=fb, accumulator=acc)
    return _acc_codes(acc, np.asarray(r).reshape(n))


def _segments(clear: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run beginning at a clear."""
    starts = list(np.flatnonzero(clear)) + [len(clear)]
    return [(int(s), int(e)) for s, e in zip(starts[:-1], starts[1:])]


def _acc_codes(acc: Accumulator, values: np.ndarray) -> np.ndarray:
    """Codes of the accumulator's result: in its format, or with chunked promotion in
    the wide chunk format the result ends in."""
    return encode(acc.chunk_format if acc.chunk is not None else acc.format, values)


def float_mac_ref(fa: Any, fb: Any, acc: Accumulator, a: np.ndarray, b: np.ndarray,
                  clear: np.ndarray) -> np.ndarray:
    """FloatMac: the accumulator after each step, from ``simulator.gemm`` of the datapath
    on the same codes (:class:`simulator.Codes` of ``fa`` / ``fb``: minifloats, integers
    or fixed point) for every prefix of each segment. The prefixes of one length form one
    batched call (a batch of 1 x m by m x 1 products with the sequential accumulator),
    so there are as many calls as the longest segment has steps."""
    from simulator import Codes

    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    segs = _segments(clear)
    out = np.zeros(len(a), np.int64)
    for m in range(1, max((e - s for s, e in segs), default=0) + 1):
        starts = [s for s, e in segs if e - s >= m]
        rows = np.array([np.arange(s, s + m) for s in starts])
        r = gemm(Codes(a[rows][:, None, :], fa), Codes(b[rows][:, :, None], fb),
                 accumulator=acc)
        out[np.array(starts) + m - 1] = _acc_codes(acc, np.asarray(r).reshape(len(starts)))
    return out


def fused_dot_ref(fa: Any, fb: Any, acc: Accumulator, a: np.ndarray, b: np.ndarray,
                  clear: np.ndarray) -> np.ndarray:
    """FusedDot: the accumulator after each step, from ``simulator.gemm`` of the datapath
    (the fused adder, ``tree_width`` = the ``n`` products of a step) on the same codes
    (:class:`simulator.Codes`) for every prefix of each segment, the prefixes of one
    length in one batched call. a, b: (steps, n) codes."""
    from simulator import Codes

    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    n = a.shape[1]
    segs = _segments(clear)
    out = np.zeros(len(a), np.int64)
    for m in range(1, max((e - s for s, e in segs), default=0) + 1):
        starts = [s for s, e in segs if e - s >= m]
        rows = np.array([np.arange(s, s + m) for s in starts])
        x = a[rows].reshape(len(starts), 1, m * n)
        y = b[rows].reshape(len(starts), m * n, 1)
        r = gemm(Codes(x, fa), Codes(y, fb), accumulator=acc)
        out[np.array(starts) + m - 1] = _acc_codes(acc, np.asarray(r).reshape(len(starts)))
    return out


def _encoded(fmt: Any, codes: np.ndarray, scales: np.ndarray, axis: int) -> Any:
    """Codes and scale codes as the BlockEncoded ``fmt`` (blocked along ``axis``) gives."""
    import dataclasses

    from formats import BlockEncoded

    none = np.zeros(scales.shape, np.int64)
    return BlockEncoded(dataclasses.replace(fmt, axis=axis), codes, scales, None, none, none)


def block_dot_ref(fa: Any, fb: Any, acc: Accumulator, a: np.ndarray, b: np.ndarray,
                  sa: np.ndarray, sb: np.ndarray, clear: np.ndarray, k: int) -> np.ndarray:
    """BlockDot: ``simulator.gemm`` of the blocks so far (blocks along K, accumulator with
    an exact adder tree of width k). a, b: (steps, k) codes; sa, sb: (steps,) scales,
    repeated for the block_size / k steps of each block."""
    import dataclasses

    # the PE accumulates without the per-tensor scale (applied once per output outside)
    fa = dataclasses.replace(fa, tensor_scale=None)
    fb = dataclasses.replace(fb, tensor_scale=None)
    out = np.zeros(len(a), np.int64)
    bs = fa.block_size
    per = bs // k
    for s, e in _segments(clear):
        for t in range(s, e):
            n = t + 1 - s
            if n % per:
                continue  # the scale pairs with whole blocks; mid-block sums are checked
            nb = n // per
            # the codes and scale codes themselves go to the simulator: no scale rule is
            # inverted, so every rule (floor, ceil, even, rceil, nearest) is checked
            x = _encoded(fa, a[s:t + 1].reshape(1, nb * bs), sa[s:t + 1:per].reshape(1, nb),
                         axis=-1)
            y = _encoded(fb, b[s:t + 1].reshape(nb * bs, 1), sb[s:t + 1:per].reshape(1, nb),
                         axis=-2)
            r = gemm(x, y, accumulator=acc)
            out[t] = _acc_codes(acc, np.asarray(r).reshape(1))[0]
    return out


def bipolar_ref(fa: Any, fb: Any, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """(torch int64 dot products, simulator.bipolar_gemm) for rows of codes a, b (n, k)."""
    av = torch.tensor(decode(fa, a)).to(torch.int64)
    bv = torch.tensor(decode(fb, b)).to(torch.int64)
    dots = (av * bv).sum(1).numpy()
    sim = np.array([bipolar_gemm(decode(fa, a[i])[None], decode(fb, b[i])[:, None],
                                 a_format=fa, b_format=fb, method="pairs").out[0, 0]
                    for i in range(len(a))], np.int64)
    return dots, sim


def lut_ref(fw: Any, fx: Any, w: np.ndarray, x: np.ndarray, group: int) -> tuple[np.ndarray,
                                                                                  np.ndarray]:
    """(torch int64 dot products, simulator.lut_gemm with exact symmetric tables)."""
    wv = torch.tensor(decode(fw, w)).to(torch.int64)
    xv = torch.tensor(decode(fx, x)).to(torch.int64)
    dots = (wv * xv).sum(1).numpy()
    sim = np.array([lut_gemm(decode(fx, x[i])[None], decode(fw, w[i])[:, None], w_format=fw,
                             x_format=fx, group=group, method="lookup").out[0, 0]
                    for i in range(len(w))])
    return dots, np.asarray(np.rint(sim), np.int64)


def shift_add_ref(fx: Any, fw: Any, acc: Accumulator, x: np.ndarray, w: np.ndarray,
                  scale: np.ndarray, last: np.ndarray, clear: np.ndarray,
                  lanes: int) -> np.ndarray:
    """ShiftAddPe: ``simulator.gemm`` of the groups so far on the same codes (x as
    :class:`simulator.Codes`, w as the grouped format's encoding with its scale codes;
    ``acc`` sums each group as one exact tree, as ``simulator.grouped_gemm``). x, w:
    (steps, lanes) codes; scale: (steps,) codes; the accumulator changes on ``last``
    steps."""
    import dataclasses

    from simulator import Codes

    fw = dataclasses.replace(fw, tensor_scale=None)
    gs = fw.block_size
    per = gs // lanes
    out = np.zeros(len(x), np.int64)
    for s, e in _segments(clear):
        prev = 0
        for t in range(s, e):
            n = t + 1 - s
            if not last[t]:
                out[t] = prev
                continue
            ng = n // per
            xs = Codes(x[s:t + 1].reshape(1, ng * gs), fx)
            ws = _encoded(fw, w[s:t + 1].reshape(ng * gs, 1),
                          scale[s:t + 1:per][:ng].reshape(1, ng), axis=-2)
            r = gemm(xs, ws, accumulator=acc)
            prev = out[t] = _acc_codes(acc, np.asarray(r).reshape(1))[0]
    return out
