"""Golden test vectors: operand codes per clock cycle and the codes each output must show,
computed by the reference models (:mod:`rtl.reference`). The same vectors drive
Amaranth's simulator (:mod:`rtl.sim`), cocotb on Icarus (:mod:`rtl.verify`) and a
user's own RTL (:meth:`Vectors.to_csv`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from formats import Integer, Minifloat, Overflow, Rounding

from . import reference as R
from .outputs import check_output_file, write_text
from .pe import (
    PE_KINDS,
    BipolarPe,
    BlockDot,
    FloatMac,
    FloatMul,
    FusedDot,
    IntMac,
    LutPe,
    Quantizer,
    ShiftAddPe,
    _Pe,
)

__all__ = ["MAX_N", "Vectors", "make_vectors", "corner_codes"]

#: the most random operations make_vectors draws (as many as the exhaustive limit)
MAX_N = 1 << 20


@dataclasses.dataclass
class Vectors:
    """Per-cycle input codes and expected output codes (``None``: not checked).

    ``clocked``: one row per clock edge (inputs applied before the edge, outputs read
    after it); otherwise one row per combinational evaluation. Expected rows are already
    shifted by the component's latency.
    """

    pe: str
    clocked: bool
    latency: int
    inputs: dict[str, list[int]]
    expected: dict[str, list[int | None]]
    header: dict[str, Any]

    @property
    def cycles(self) -> int:
        return len(next(iter(self.inputs.values())))

    @property
    def checks(self) -> int:
        return sum(v is not None for col in self.expected.values() for v in col)

    def to_json(self) -> str:
        return json.dumps({"pe": self.pe, "clocked": self.clocked, "latency": self.latency,
                           "inputs": {k: [format(v, "x") for v in col]
                                      for k, col in self.inputs.items()},
                           "expected": {k: [None if v is None else format(v, "x") for v in col]
                                        for k, col in self.expected.items()},
                           "header": self.header})

    def to_csv(self, path: str | Path) -> None:
        """Hex codes, one row per cycle; ``#`` header lines state the PE, formats,
        rounding, latency and protocol. Written atomically; ``path``'s directory must
        exist (ValueError naming it otherwise)."""
        check_output_file(path, "path")
        lines = [f"# numfab golden vectors for {self.pe}"]
        for k, v in self.header.items():
            lines.append(f"# {k}: {json.dumps(v) if not isinstance(v, str) else v}")
        lines.append("# protocol: " + (
            "one row per rising clock edge: drive the inputs, clock once, then compare the "
            "outputs (expected values already delayed by the latency; empty = don't care)"
            if self.clocked else "combinational: drive the inputs, settle, compare"))
        cols = list(self.inputs) + [f"expected_{k}" for k in self.expected]
        lines.append("cycle," + ",".join(cols))
        for t in range(self.cycles):
            row = [format(self.inputs[k][t], "x") for k in self.inputs]
            row += ["" if self.expected[k][t] is None else format(self.expected[k][t], "x")
                    for k in self.expected]
            lines.append(f"{t}," + ",".join(row))
        write_text(path, "\n".join(lines) + "\n")


def _align(logical: dict[str, np.ndarray], inputs: dict[str, np.ndarray], latency: int,
           clocked: bool, idle: dict[str, int]) -> tuple[dict[str, list[int]],
                                                       dict[str, list[int | None]]]:
    T = len(next(iter(inputs.values())))
    pad = max(latency - 1, 0) if clocked else 0
    ins = {k: [int(x) for x in v] + [idle.get(k, 0)] * pad for k, v in inputs.items()}
    exp: dict[str, list[int | None]] = {}
    for k, v in logical.items():
        col: list[int | None] = [None] * (T + pad)
        for t in range(T):
            if v[t] is not None and v[t] >= 0:
                col[t + pad] = int(v[t])
        exp[k] = col
    return ins, exp


def corner_codes(fmt: Any) -> np.ndarray:
    """Zeros, smallest subnormal/normal, one, max, NaN/Inf, and their negatives."""
    if not isinstance(fmt, Minifloat):
        hi = (1 << fmt.bits) - 1
        c = np.unique(np.array([0, 1, 2, hi, hi - 1, hi >> 1, (hi >> 1) + 1], np.int64))
        c = c[(c >= 0) & (c <= hi)]
        if getattr(fmt, "narrow", False):
            c = c[c != 1 << (fmt.bits - 1)]
        return c
    vals = [0.0, fmt.smallest_subnormal, fmt.smallest_normal, 1.0, fmt.max, 1.5,
            fmt.smallest_normal - fmt.smallest_subnormal, fmt.max / 2]
    codes = [int(c) for c in np.asarray(fmt.encode(np.array(vals, np.float64),
                                                   overflow="saturate")).astype(np.int64)]
    if fmt.signed:
        codes += [c | (1 << (fmt.bits - 1)) for c in codes]
    if fmt.has_nan:
        codes.append(int(fmt.nan_code))  # type: ignore[arg-type]
    if fmt.has_inf:
        codes += [fmt._infmag, fmt._infmag | (1 << (fmt.bits - 1))]
    return np.unique(np.array(codes, np.int64) & ((1 << fmt.bits) - 1))


def _random_codes(fmt: Any, n: int, rng: np.random.Generator, finite: bool = False) -> np.ndarray:
    codes = rng.integers(0, 1 << fmt.bits, n, dtype=np.int64) if fmt.bits < 63 else \
        rng.integers(0, 1 << 62, n, dtype=np.int64)
    if getattr(fmt, "narrow", False):
        codes = np.where(codes == 1 << (fmt.bits - 1), 0, codes)
    if finite and isinstance(fmt, Minifloat):
        v = R.decode(fmt, codes)
        codes = np.where(np.isfinite(v), codes, 0)
    return codes


def _mix(codes: np.ndarray, corners: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = codes.copy()
    sel = rng.random(len(out)) < 0.15
    out[sel] = rng.choice(corners, int(sel.sum()))
    return out


def _clears(T: int, max_len: int, rng: np.random.Generator) -> np.ndarray:
    clear = np.zeros(T, np.int64)
    t = 0
    while t < T:
        clear[t] = 1
        t += int(rng.integers(1, max_len + 1))
    return clear


def make_vectors(pe: Any, *, n: int = 256, seed: int = 0, exhaustive: bool = False) -> Vectors:
    """Vectors for a component: ``n`` random operations (mixed with corner cases) or,
    with ``exhaustive``, every operand pair / input code (8-bit-sized operands only)."""
    if not isinstance(pe, _Pe):
        raise TypeError(f"pe must be a PE built by rtl ({', '.join(PE_KINDS)}), not "
                        f"{type(pe).__name__}")
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int in 1..{MAX_N}, not {type(n).__name__}")
    if not 1 <= n <= MAX_N:
        raise ValueError(f"n must be an int in 1..{MAX_N}, not {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int >= 0, not {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be an int >= 0, not {seed!r}")
    if not isinstance(exhaustive, bool):
        raise TypeError(f"exhaustive must be a bool, not {type(exhaustive).__name__}")
    rng = np.random.default_rng(seed)
    wide = [f for f in pe.formats.values() if _bits_of(f) > 32]
    if wide:
        raise ValueError(f"golden vectors take formats of at most 32 bits, not {wide[0]} "
                         f"(the PE itself is built for it; verify a 32-bit instance)")
    if isinstance(pe, IntMac) and pe.acc_bits > 53:
        raise ValueError(f"golden vectors take IntMac accumulators of at most 53 bits, not "
                         f"{pe.acc_bits}")
    if isinstance(pe, FloatMul):
        fa, fb, fo = pe.a_format, pe.b_format, pe.out_format
        if exhaustive:
            if fa.bits + fb.bits > 20:
                raise ValueError(f"exhaustive needs at most 2**20 pairs, not "
                                 f"2**{fa.bits + fb.bits}")
            a = np.repeat(np.arange(1 << fa.bits, dtype=np.int64), 1 << fb.bits)
            b = np.tile(np.arange(1 << fb.bits, dtype=np.int64), 1 << fa.bits)
        else:
            ca, cb = corner_codes(fa), corner_codes(fb)
            grid_a, grid_b = np.repeat(ca, len(cb)), np.tile(cb, len(ca))
            a = np.concatenate([grid_a, _mix(_random_codes(fa, n, rng), ca, rng)])
            b = np.concatenate([grid_b, _mix(_random_codes(fb, n, rng), cb, rng)])
            if fo.bits < fa.bits + fb.bits:  # products near the output's rounding points
                ta, tb = _near_ties(fa, fb, fo, n, rng)
                a, b = np.concatenate([a, ta]), np.concatenate([b, tb])
        p, ref = R.mul_ref(fa, fb, fo, a, b, pe.rounding, pe.overflow)
        inputs = {"a": a, "b": b}
        logical = {"p": p}
        header = {"reference": ref}
    elif isinstance(pe, Quantizer):
        fi, fo = pe.in_format, pe.out_format
        if exhaustive:
            if fi.bits > 20:
                raise ValueError(f"exhaustive needs an input of at most 20 bits, not {fi.bits}")
            x = np.arange(1 << fi.bits, dtype=np.int64)
        else:
            x = _mix(_random_codes(fi, n, rng), corner_codes(fi), rng)
            if isinstance(fi, Minifloat) and isinstance(fo, (Minifloat, Integer)):
                x = np.concatenate([corner_codes(fi), x, _near_out(fi, fo, n, rng)])
        y, ref = R.quantize_ref(fi, fo, x, pe.rounding, pe.overflow)
        inputs, logical, header = {"x": x}, {"y": y}, {"reference": ref}
    elif isinstance(pe, IntMac):
        a = _mix(_random_codes(pe.a_format, n, rng), corner_codes(pe.a_format), rng)
        b = _mix(_random_codes(pe.b_format, n, rng), corner_codes(pe.b_format), rng)
        clear = _clears(n, 40, rng)
        acc = R.mac_ref(pe.a_format, pe.b_format, pe.acc_bits, pe.overflow, a, b, clear)
        accm = pe.datapath.accumulator
        if not np.array_equal(acc, R.int_mac_sim(pe.a_format, pe.b_format, accm, a, b, clear)):
            raise AssertionError(f"torch and simulator.gemm references disagree for {accm}")
        inputs = {"a": a, "b": b, "en": np.ones(n, np.int64), "clear": clear}
        logical = {"acc": acc}
        header = {"reference": "torch + simulator.gemm (agree)", "accumulator": str(accm)}
    elif isinstance(pe, FloatMac):
        sa, sb = pe.a_format, pe.b_format  # minifloats, integers or fixed point
        a = _mix(_random_codes(sa, n, rng, finite=True), corner_codes(sa), rng)
        b = _mix(_random_codes(sb, n, rng, finite=True), corner_codes(sb), rng)
        clear = _clears(n, 24, rng)
        accm = pe.datapath.accumulator
        acc = R.float_mac_ref(sa, sb, accm, a, b, clear)
        inputs = {"a": a, "b": b, "en": np.ones(n, np.int64), "clear": clear}
        logical, header = {"acc": acc}, {"reference": "simulator.gemm", "accumulator": str(accm)}
    elif isinstance(pe, BlockDot):
        inputs, logical, header = _block_vectors(pe, n, rng)
    elif isinstance(pe, FusedDot):
        inputs, logical, header = _fused_vectors(pe, n, rng)
    elif isinstance(pe, BipolarPe):
        inputs, logical, header = _serial_vectors(pe, n, rng)
    elif isinstance(pe, LutPe):
        inputs, logical, header = _serial_vectors(pe, n, rng)
    elif isinstance(pe, ShiftAddPe):
        inputs, logical, header = _shift_add_vectors(pe, n, rng)
    else:
        raise TypeError(f"no vectors for {type(pe).__name__}")
    clocked = pe.latency > 0
    header = {"pe": pe.kind, "formats": pe.formats, "parameters": pe.parameters,
              "latency": pe.latency, "interface": pe.interface, **header}
    idle: dict[str, int] = {}
    ins, exp = _align({k: np.asarray(v) for k, v in logical.items()},
                      {k: np.asarray(v) for k, v in inputs.items()}, pe.latency, clocked, idle)
    return Vectors(pe.kind, clocked, pe.latency, ins, exp, header)


def _bits_of(name: str) -> int:
    from formats import BlockScaled, parse

    f = parse(name)
    return f.element.bits if isinstance(f, BlockScaled) else f.bits


def _near_ties(fa: Minifloat, fb: Minifloat, fo: Minifloat, n: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Operand pairs whose products lie on or next to ``fo``'s rounding midpoints."""
    a = _random_codes(fa, 8 * n, rng, finite=True)
    b = _random_codes(fb, 8 * n, rng, finite=True)
    p = R.decode(fa, a) * R.decode(fb, b)
    lo = np.abs(np.asarray(fo.quantize(p, rounding="toward_zero", overflow="saturate"), np.float64))
    frac = np.where(p != 0, np.abs(p) - lo, 0.0)
    nxt = np.asarray(fo.quantize(np.nextafter(lo, np.inf), rounding="up",
                                 overflow="saturate"), np.float64)
    gap = np.where(nxt > lo, nxt - lo, 1.0)
    tie = np.isclose(frac / gap, 0.5, atol=0.13)
    idx = np.flatnonzero(tie)[:n]
    return a[idx], b[idx]


def _near_out(fi: Minifloat, fo: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    """Inputs at and next to the output's midpoints and its overflow threshold."""
    if fo.bits > 16:  # every value of a wide output would not fit in memory
        return np.zeros(0, np.int64)
    vals = np.asarray(fo.values() if hasattr(fo, "values") else [], np.float64)
    vals = vals[np.isfinite(vals)]
    if vals.size < 2:
        return np.zeros(0, np.int64)
    vals = np.unique(vals)
    mids = (vals[:-1] + vals[1:]) / 2
    top = vals[-1] + (vals[-1] - vals[-2]) / 2
    cand = np.concatenate([mids, [top, -top], -mids])
    cand = rng.choice(cand, min(n, cand.size), replace=False)
    codes = R.encode(fi, cand, Rounding.NEAREST_EVEN, Overflow.SATURATE if not fi.has_inf
                     else Overflow.INF)
    return np.concatenate([codes, codes + 1, np.maximum(codes - 1, 0)]) & ((1 << fi.bits) - 1)


def _block_codes(fmt: Any, rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(rows, block_size) random finite element codes and (rows,) random finite scale
    codes: the reference multiplies these codes themselves (``simulator.gemm`` on the
    encoded operands), so no block needs to re-derive its scale under the format's rule."""
    el, bs = fmt.element, fmt.block_size
    codes = _random_codes(el, rows * bs, rng, finite=True).reshape(rows, bs)
    if isinstance(el, Minifloat) and el.emax - el.emin > 16:
        # wide element ranges (E5M2): keep elements within 16 binades of the top, as
        # quantized blocks are, so the simulator's exact adder tree fits float64
        v = np.abs(R.decode(el, codes))
        codes = np.where((v != 0) & (v < 2.0 ** (el.emax - 16)), 0, codes)
    codes[rng.random(codes.shape) < 0.1] = 0  # zeros are common
    return codes, rng.choice(_scale_codes(fmt.scale), rows)


def _scale_codes(sc: Any) -> np.ndarray:
    """Codes of the finite positive scales (E8M0: within 2**+-60, so that products of
    scaled blocks stay inside float64 for the simulator's reference)."""
    svals = R.decode(sc, np.arange(1 << sc.bits))
    ok = np.flatnonzero(np.isfinite(svals) & (svals > 0))
    if sc.bits == 8 and not sc.subnormals:
        ok = ok[(ok > 127 - 60) & (ok < 127 + 60)]
    return ok


def _block_vectors(pe: BlockDot, n: int, rng: np.random.Generator) -> tuple[Any, Any, Any]:
    fa, fb, k = pe.a_format, pe.b_format, pe.k
    bs = fa.block_size
    assert isinstance(bs, int)
    per = bs // k
    blocks = max(1, n // per)
    a, sa = _block_codes(fa, blocks, rng)
    b, sb = _block_codes(fb, blocks, rng)
    steps = blocks * per
    clear = np.zeros(steps, np.int64)
    t = 0
    while t < steps:
        clear[t] = 1
        t += per * int(rng.integers(1, 5))
    a2, b2 = a.reshape(steps, k), b.reshape(steps, k)
    sa2, sb2 = np.repeat(sa, per), np.repeat(sb, per)
    accm = pe.datapath.accumulator
    acc = R.block_dot_ref(fa, fb, accm, a2, b2, sa2, sb2, clear, k)
    acc = np.where(_checked_steps(clear, per), acc, -1)
    inputs = {"a": _pack(a2, fa.element.bits), "b": _pack(b2, fb.element.bits), "sa": sa2,
              "sb": sb2, "en": np.ones(steps, np.int64), "clear": clear}
    return inputs, {"acc": acc}, {"reference": "simulator.gemm", "accumulator": str(accm)}


def _code_classes(fmt: Minifloat, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Codes of ``fmt`` by kind (every code of a format of up to 16 bits, else a random
    sample and the corners): finite, zero, subnormal, tiny (the lowest binades), big
    (within a factor 4 of the largest), nan, inf."""
    if fmt.bits <= 16:
        pool = np.arange(1 << fmt.bits, dtype=np.int64)
    else:
        pool = np.unique(np.concatenate([_random_codes(fmt, 1 << 16, rng), corner_codes(fmt)]))
    v = R.decode(fmt, pool)
    fin = np.isfinite(v)
    av = np.where(fin, np.abs(v), 0.0)
    out = {"finite": pool[fin], "zero": pool[fin & (av == 0)],
           "subnormal": pool[fin & (av > 0) & (av < fmt.smallest_normal)],
           "tiny": pool[fin & (av > 0) & (av < 4 * fmt.smallest_normal)],
           "big": pool[fin & (av >= fmt.max / 4)], "nan": pool[np.isnan(v)],
           "inf": pool[np.isinf(v)]}
    return {k: c for k, c in out.items() if c.size}


def _fused_step(ca: dict[str, np.ndarray], cb: dict[str, np.ndarray], lanes: int,
                sign_a: int, sign_b: int, rng: np.random.Generator) -> tuple[Any, Any]:
    """One step's operand codes, random or one of the fused adder's hard cases:
    cancelling pairs of products, one large product over small ones (shifted out of the
    window), subnormal and tiny operands, large products (overflow), NaN / Inf, all-zero
    steps of mixed or negative signs."""
    def pick(c: dict[str, np.ndarray], kind: str, size: int) -> np.ndarray:
        return rng.choice(c.get(kind, c["finite"]), size)

    a, b = pick(ca, "finite", lanes), pick(cb, "finite", lanes)
    case = int(rng.integers(0, 10))
    if case == 1 and lanes > 1:  # cancellation: products pairwise opposite
        half = lanes // 2
        a[half:2 * half] = a[:half]
        b[half:2 * half] = b[:half] ^ sign_b
    elif case == 2:  # exponent spread: one large product, the rest small
        i = int(rng.integers(0, lanes))
        a, b = pick(ca, "tiny", lanes), pick(cb, "finite", lanes)
        a[i], b[i] = pick(ca, "big", 1)[0], pick(cb, "big", 1)[0]
    elif case == 3:  # subnormal operands; both: products of one sign below most sums' ulp
        a = pick(ca, "subnormal", lanes)
        if rng.random() < 0.5:
            a, b = a & ~sign_a, pick(cb, "subnormal", lanes) & ~sign_b
            if rng.random() < 0.5:
                a |= sign_a
    elif case == 4:  # large products of one sign: overflow
        a, b = pick(ca, "big", lanes) & ~sign_a, pick(cb, "big", lanes) & ~sign_b
        if rng.random() < 0.5:
            a |= sign_a
    elif case == 5:  # NaN, Inf, Inf - Inf, Inf x 0
        i = int(rng.integers(0, lanes))
        kinds = [k for k in ("nan", "inf") if k in ca or k in cb]
        kind = kinds[int(rng.integers(0, len(kinds)))] if kinds else "finite"
        if kind in ca:
            a[i] = pick(ca, kind, 1)[0]
        else:
            b[i] = pick(cb, kind, 1)[0]
        if rng.random() < 0.3:
            j = (i + 1) % lanes
            a[j], b[j] = a[i] ^ sign_a, b[i]
        elif rng.random() < 0.3:
            b[i] = pick(cb, "zero", 1)[0]
    elif case == 6:  # all-zero products, of mixed or all-negative signs
        a = pick(ca, "zero", lanes)
        if rng.random() < 0.5:
            b = b & ~sign_b
            a = a | sign_a
    return a, b


def _fused_vectors(pe: FusedDot, n: int, rng: np.random.Generator) -> tuple[Any, Any, Any]:
    """``n`` steps of ``pe.n`` operand pairs each (random, with the fused adder's hard
    cases: :func:`_fused_step`), cleared every 1 to 6 steps."""
    fa, fb, lanes = pe.a_format, pe.b_format, pe.n
    ca, cb = _code_classes(fa, rng), _code_classes(fb, rng)
    sign_a, sign_b = 1 << (fa.bits - 1), 1 << (fb.bits - 1)
    a = np.zeros((n, lanes), np.int64)
    b = np.zeros((n, lanes), np.int64)
    for t in range(n):
        a[t], b[t] = _fused_step(ca, cb, lanes, sign_a, sign_b, rng)
    clear = _clears(n, 6, rng)
    # first, fixed steps for the signs of zero: from +0, one negative product of the
    # smallest subnormals and -0 products (a tiny negative sum: -0 where the accumulator
    # rounds it to zero), then -0 products only (the IEEE sum keeps -0), then a new sum
    # of pairs that cancel exactly (+0)
    tiny_a, tiny_b = int(ca.get("subnormal", ca["finite"]).min()), \
        int(cb.get("subnormal", cb["finite"]).min())
    one_a, one_b = int(ca["finite"][len(ca["finite"]) // 2]), int(cb["finite"][-1]) & ~sign_b
    cancel_b = np.full(lanes, one_b)
    cancel_b[lanes // 2: 2 * (lanes // 2)] ^= sign_b
    neg_zeros = np.full(lanes, int(ca["zero"].min()) | sign_a)
    tiny = neg_zeros.copy()
    tiny[0] = tiny_a | sign_a
    fixed = [(tiny, np.full(lanes, tiny_b & ~sign_b), 1), (neg_zeros, np.full(lanes, one_b), 0),
             (np.full(lanes, one_a), cancel_b, 1)]
    for t, (fa_codes, fb_codes, c) in enumerate(fixed[:n]):
        a[t], b[t], clear[t] = fa_codes, fb_codes, c
    accm = pe.datapath.accumulator
    acc = R.fused_dot_ref(fa, fb, accm, a, b, clear)
    inputs = {"a": _pack(a, fa.bits), "b": _pack(b, fb.bits), "en": np.ones(n, np.int64),
              "clear": clear}
    return inputs, {"acc": acc}, {"reference": "simulator.gemm", "accumulator": str(accm)}


def _checked_steps(clear: np.ndarray, per: int) -> np.ndarray:
    out = np.zeros(len(clear), bool)
    start = 0
    for t in range(len(clear)):
        if clear[t]:
            start = t
        out[t] = (t + 1 - start) % per == 0
    return out


def _pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """Rows of element codes as one integer each, element 0 in the low bits (object
    array: Python ints of any width)."""
    out = np.empty(codes.shape[0], object)
    for r in range(codes.shape[0]):
        v = 0
        for i, c in enumerate(codes[r]):
            v |= (int(c) & ((1 << bits) - 1)) << (i * bits)
        out[r] = v
    return out


def _serial_vectors(pe: Any, n: int, rng: np.random.Generator) -> tuple[Any, Any, Any]:
    """Start, then idle until done, for each of n operations (bipolar / LUT PEs)."""
    if isinstance(pe, BipolarPe):
        fa, fb, names = pe.a_format, pe.b_format, ("a", "b")
    else:
        fa, fb, names = pe.x_format, pe.w_format, ("x", "w")
    k = pe.k
    ops = max(1, n // 8)
    ca = _mix(_random_codes(fa, ops * k, rng), corner_codes(fa), rng).reshape(ops, k)
    cb = _mix(_random_codes(fb, ops * k, rng), corner_codes(fb), rng).reshape(ops, k)
    if isinstance(pe, BipolarPe):
        dots, sim = R.bipolar_ref(fa, fb, ca, cb)
    else:
        dots, sim = R.lut_ref(fb, fa, cb, ca, pe.group)
    if not np.array_equal(dots, sim):
        raise AssertionError(f"torch and simulator references disagree for {pe.kind}")
    L = pe.latency
    steps = ops * L
    ins = {names[0]: np.zeros(steps, object), names[1]: np.zeros(steps, object),
           "start": np.zeros(steps, np.int64)}
    res = np.full(steps, -1, np.int64)
    done = np.full(steps, -1, np.int64)
    for o in range(ops):
        t = o * L
        ins[names[0]][t] = _pack(ca[o:o + 1], fa.bits)[0]
        ins[names[1]][t] = _pack(cb[o:o + 1], fb.bits)[0]
        ins["start"][t] = 1
        res[t] = int(dots[o]) & ((1 << pe.result_bits) - 1)
        done[t] = 1
    return ins, {"result": res, "done": done}, {"reference": "torch + simulator (agree)"}


def _shift_add_vectors(pe: ShiftAddPe, n: int, rng: np.random.Generator) -> tuple[Any, Any, Any]:
    fx, fw, lanes = pe.x_format, pe.w_format, pe.lanes
    gs = fw.block_size
    assert isinstance(gs, int)
    per = gs // lanes
    groups = max(1, n // per)
    el: Any = fw.element
    w = _random_codes(el, groups * gs, rng).reshape(groups, gs)
    if el.narrow:
        w = np.where(w == 1 << (el.bits - 1), 0, w)
    # one +-max element per group, so the format re-derives the scale
    pos = rng.integers(0, gs, groups)
    top = int(el.max_int)
    w[np.arange(groups), pos] = np.where(rng.random(groups) < 0.5, top,
                                         (-top) & ((1 << el.bits) - 1))
    x = _mix(_random_codes(fx, groups * gs, rng), corner_codes(fx), rng)
    scale = rng.choice(_scale_codes(fw.scale), groups)
    steps = groups * per
    last = np.zeros(steps, np.int64)
    last[per - 1::per] = 1
    clear = np.zeros(steps, np.int64)
    t = 0
    while t < steps:
        clear[t] = 1
        t += per * int(rng.integers(1, 4))
    accm = pe.datapath.accumulator
    x2 = x.reshape(steps, lanes)
    w2 = w.reshape(steps, lanes)
    s2 = np.repeat(scale, per)
    acc = R.shift_add_ref(fx, fw, accm, x2, w2, s2, last, clear, lanes)
    inputs = {"x": _pack(x2, fx.bits), "w": _pack(w2, el.bits), "scale": s2,
              "en": np.ones(steps, np.int64), "clear": clear, "last": last}
    return inputs, {"acc": acc}, {"reference": "simulator.gemm", "accumulator": str(accm)}

