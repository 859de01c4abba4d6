"""Infer how a matrix multiply accumulates, from its answers to chosen dot products.

:func:`probe_accumulator` runs probe dot products (FPRev's idea: inputs whose result
reveals one property of the summation at a time) through a black-box ``dot`` and
returns the datapath of the fused multi-term adder family (:class:`~simulator.Order`
``FUSED``) that explains them, then checks that model on random and adversarial dot
products. The family: per step the accumulator and the next ``n`` products aligned to
the largest exponent within a ``w``-bit window (bits below shifted out by truncation or
a rounding), summed, rounded into the accumulator; optionally the partial sum promoted
every ``chunk`` products into a float32 register (as cuBLAS does for FP8).

``dot(a, b)`` takes two float64 arrays (P, K) whose values the operand formats hold
exactly and returns the P dot products ``sum_k a[p, k] * b[p, k]`` as the target
computes them (K in the given order), as float64. :func:`gemm_dot` embeds them in one
matrix multiply (probe p in row p of A and column p of B: the diagonal), as the GPU
targets do; :func:`simulated_dot` runs a known :class:`Accumulator` through
:func:`simulator.gemm`, so the probe can be checked against known answers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from formats import Format, Minifloat, Rounding, parse

from .accumulator import Accumulator, Order

__all__ = ["TARGETS", "ProbeResult", "gemm_dot", "gpu_dot", "gpu_matmul", "probe_accumulator",
           "simulated_dot", "validation_set"]

Dot = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: (x + 0.75 ulp, -x - 0.75 ulp, x + 0.5 ulp) in ulps above x (below -x), per rounding
_MODES: dict[tuple[int, ...], Rounding] = {
    (0, 0, 0): Rounding.TOWARD_ZERO, (0, -1, 0): Rounding.DOWN, (1, 0, 1): Rounding.UP,
    (1, -1, 0): Rounding.NEAREST_EVEN, (1, -1, 1): Rounding.NEAREST_AWAY}


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """What :func:`probe_accumulator` inferred (None: not observable through this
    target's output, the model's value then a documented default)."""

    accumulator: Accumulator  #: the inferred model
    out_format: Format  #: the call's output format (one nearest-even rounding at the end)
    terms: int  #: products per fused step (n)
    window: int | None  #: aligned window width w below the largest exponent
    align_rounding: Rounding | None  #: how shifted-out bits go
    align_acc: bool | None  #: the accumulator aligned with the step's products
    acc_rounding: Rounding | None  #: rounding of each step's sum into the accumulator
    chunk: int | None  #: promotion interval into float32 (None: none up to k_max)
    align_from: str | None  #: a product aligned by its own exponent or its operands' sum
    probes: int  #: probe dot products run
    checked: int  #: random/adversarial dot products compared with the model
    mismatches: int  #: of those, how many the model does not reproduce bit for bit
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        def show(v: Any, unit: str = "") -> str:
            if v is None:
                return "not observable (default used)"
            return (v.value if isinstance(v, Rounding) else str(v)) + unit
        lines = [
            f"terms fused per step:  {self.terms}",
            f"alignment window:      {show(self.window, ' bits below the largest exponent')}",
            f"shifted-out bits:      {show(self.align_rounding)}",
            f"accumulator aligned:   {show(self.align_acc)}",
            "product exponent:      "
            + ("its operands' exponents added" if self.align_from == "exponents"
               else show(self.align_from and "its own")),
            f"step sum rounding:     {show(self.acc_rounding)}",
            "promotion interval:    "
            + (f"every {self.chunk} products into float32" if self.chunk else "none seen"),
            f"model:                 {self.accumulator}  (output {self.out_format})",
            f"checked:               {self.checked - self.mismatches} of {self.checked} "
            f"random/adversarial dot products reproduced bit for bit "
            f"({self.probes} probes)",
        ]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


# --- making products ------------------------------------------------------------------
class _Maker:
    """Realises wanted product values as (a, b) pairs of the operand formats."""

    def __init__(self, fa: Minifloat, fb: Minifloat, out: Minifloat) -> None:
        self.fa, self.fb, self.out = fa, fb, out

    def holds(self, f: Minifloat, v: float) -> bool:
        return bool(np.isfinite(v) and float(f.quantize(np.float64(v))) == v)

    def pair(self, v: float) -> tuple[float, float]:
        if v == 0.0:
            return 0.0, 0.0
        e0 = math.frexp(abs(v))[1] - 1
        # b a power of two, as near 1 as lets a hold the rest
        for d in sorted(range(self.fb.lsb_exp_min, self.fb.emax + 1), key=abs):
            a = v / 2.0**d
            if self.holds(self.fa, a) and self.holds(self.fb, 2.0**d):
                return a, 2.0**d
        raise ValueError(f"no product of {self.fa} x {self.fb} equals {v!r} "
                         f"(2**{e0})")

    def ok(self, v: float) -> bool:
        try:
            self.pair(v)
        except ValueError:
            return False
        return True

    def rows(self, wanted: list[list[Any]], K: int) -> tuple[np.ndarray, np.ndarray]:
        a = np.zeros((len(wanted), K))
        b = np.zeros((len(wanted), K))
        memo: dict[float, tuple[float, float]] = {}
        for p, row in enumerate(wanted):
            for k, v in enumerate(row):
                if isinstance(v, tuple):  # an explicit (a, b) pair
                    a[p, k], b[p, k] = v
                elif v != 0.0:
                    if v not in memo:
                        memo[v] = self.pair(v)
                    a[p, k], b[p, k] = memo[v]
        return a, b


def _scalar(f: Any, name: str) -> Minifloat:
    fmt = parse(f, parameter=name)
    if not isinstance(fmt, Minifloat):
        raise ValueError(f"{name} must be a floating-point scalar format (the probe builds "
                         f"powers of two), not {fmt}")
    return fmt


def probe_accumulator(dot: Dot, a_format: Any, b_format: Any = None, *,
                      out_format: Any = "float32", acc_format: Any = "float32",
                      k_max: int = 1024, n_max: int = 256, checks: int = 4096,
                      seed: int = 0) -> ProbeResult:
    """Infer the accumulation datapath of ``dot`` (see the module docstring).

    Parameters
    ----------
    dot : ``dot(a, b) -> (P,)`` float64 dot products of the (P, K) rows
    a_format, b_format : the operand formats (b: as a)
    out_format : the format ``dot`` returns (its values are rounded once, nearest-even,
        from the accumulator at the end)
    acc_format : the accumulator register's format (float32 on every tensor core)
    k_max : the longest probe; promotion intervals up to it are found
    n_max : the most products per fused step looked for
    checks : random and adversarial dot products the inferred model must reproduce
    """
    fa = _scalar(a_format, "a_format")
    fb = _scalar(b_format if b_format is not None else a_format, "b_format")
    out = _scalar(out_format, "out_format")
    acc_f = _scalar(acc_format, "acc_format")
    for v, name, lo in ((k_max, "k_max", 8), (n_max, "n_max", 2), (checks, "checks", 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, not {v!r}")
    if not callable(dot):
        raise TypeError(f"dot must be a callable dot(a, b) -> dot products, not "
                        f"{type(dot).__name__}")
    mk = _Maker(fa, fb, out)
    notes: list[str] = []
    count = [0]

    def run(wanted: list[list[Any]], K: int) -> np.ndarray:
        a, b = mk.rows(wanted, K)
        got = np.asarray(dot(a, b), np.float64).reshape(-1)
        if got.shape != (len(wanted),):
            raise ValueError(f"dot returned {got.shape[0]} values for {len(wanted)} dot "
                             "products")
        count[0] += len(wanted)
        return got

    # the big term B = 2**E and the depth S: 2**(E - S) the smallest power of two both a
    # product and an output value
    pmax = fa.emax + fb.emax
    E = min(pmax, out.emax - 3, acc_f.emax - 3)
    while E > -1000 and not mk.ok(2.0**E):
        E -= 1
    lo = max(fa.lsb_exp_min + fb.lsb_exp_min, out.lsb_exp_min, acc_f.lsb_exp_min)
    S = E - lo
    while S > 0 and not mk.ok(2.0**(E - S)):
        S -= 1
    B = 2.0**E

    # 1. terms per step: [B, 0.., -B at i, t at i+1]: t survives iff i+1 starts a step
    #    after B and -B cancelled (t shifted out whenever it shares a step with them)
    t = 2.0**(E - S)
    K = n_max + 2
    wanted = []
    for i in range(1, n_max + 1):
        row = [0.0] * K
        row[0], row[i], row[i + 1] = B, -B, t
        wanted.append(row)
    got = run(wanted, K)
    alive = [i + 1 for i, g in zip(range(1, n_max + 1), got, strict=True) if g == t]
    # survivors at i + 1 = n, 2n, ... (n = 1: every i)
    n = (alive[1] - alive[0] if len(alive) > 1 else alive[0]) if alive else None
    if n is None:
        raise ValueError(f"no probe's small term survived: this dot product does not fit "
                         f"the fused-adder family up to n_max={n_max} terms (got "
                         f"{sorted(set(got.tolist()))[:5]} where {t!r} or 0 was expected)")
    if any(g not in (0.0, t) for g in got):
        notes.append("terms probe: values other than 0 or the small term")

    # 2. window: [B, -B, 2**(E-j)] in one step (n >= 3): kept iff j <= w
    w: int | None = None
    if n >= 3:
        js = list(range(1, S + 1))
        got = run([[B, -B, 2.0**(E - j)] for j in js], 3)
        kept = [j for j, g in zip(js, got, strict=True) if g == 2.0**(E - j)]
        w = max(kept) if kept else 0
        if w >= S:
            notes.append(f"the window is at least {S} bits, all this format pair can probe")
            w = None
    else:
        # two terms per step: [B, 2**(E-j)] shows the window only below the output's
        # precision
        js = list(range(1, min(S, out.precision + 2) + 1))
        got = run([[B, 2.0**(E - j)] for j in js], 2)
        kept = [j for j, g in zip(js, got, strict=True) if g == B + 2.0**(E - j)]
        w = max(kept) if kept and max(kept) < out.precision - 1 else None

    # 2b. the register a step's sum goes into: [B, B, 2**(E-j)] sums to 2**(E+1) +
    #     2**(E-j) (one carry above the window): kept iff the register holds j + 2
    #     significant bits
    reg_bits: int | None = None
    # (the output must show 2**(E+1) + 2**(E-j): else the validation set chooses between
    # the given register and one of w + 1 bits, the tensor cores' design)
    reg_opts = [acc_f]
    if n >= 3 and w is not None and w + 2 < acc_f.precision and w + 2 >= out.precision:
        reg_opts.append(_scalar(f"e{acc_f.exp_bits}m{w}", "acc_format"))
    elif n >= 3 and w is not None and w + 2 < acc_f.precision:
        js = list(range(1, w + 1))
        got = run([[B, B, 2.0**(E - j)] for j in js], 3)
        kept = [j for j, g in zip(js, got, strict=True) if g == 2 * B + 2.0**(E - j)]
        if kept and max(kept) < w:
            reg_bits = max(kept) + 2
            acc_f = _scalar(f"e{acc_f.exp_bits}m{reg_bits - 1}", "acc_format")
            reg_opts = [acc_f]
            notes.append(f"a step's sum is kept to {reg_bits} significant bits "
                         f"(accumulator {acc_f})")

    # 3. how shifted-out bits go: +-0.75 and +0.5 of the window's last place
    align_mode: Rounding | None = None
    if n >= 3 and w is not None and mk.ok(1.5 * 2.0**(E - w - 1)) and w + 2 <= S:
        q = 2.0**(E - w)
        got = run([[B, -B, 0.75 * q], [B, -B, -0.75 * q], [B, -B, 0.5 * q]], 3)
        sig: tuple[int, ...] = tuple(int(round(g / q)) for g in got)
        align_mode = _MODES.get(sig)
        if align_mode is None:
            notes.append(f"shifted-out bits: pattern {sig} is none of the rounding modes")

    # 4. promotion and accumulator alignment: B, then a small t2 alone at step start p
    #    (p = n, 2n, ...), then -B far later: t2 survives where the accumulator was
    #    promoted (reset) before p (B and t2 then sit in the wide register), or at every p
    #    if the accumulator is not aligned with the products
    chunk: int | None = None
    align_acc: bool | None = None
    t2 = 2.0**(E - (w or 0) - 2)
    wide = _scalar(acc_format, "acc_format")  # the register promoted into
    if w is not None and w + 2 < wide.precision and w + 2 <= S and mk.ok(t2):
        ps = list(range(n, k_max, n))
        Kp = 2 * k_max + n
        wanted = []
        for p in ps:
            row = [0.0] * Kp
            row[0], row[p], row[Kp - 1] = B, t2, -B
            wanted.append(row)
        got = run(wanted, Kp) if ps else np.zeros(0)
        surv = [p for p, g in zip(ps, got, strict=True) if g == t2]
        if ps and len(surv) == len(ps):
            align_acc = False
        else:
            align_acc = True
            if surv:
                chunk = surv[0]
                # after the first promotion the inner accumulator restarts from 0 with
                # B gone to the wide one: every later step start keeps t2
                if surv != [p for p in ps if p >= chunk]:
                    notes.append(f"promotion: survivors {surv[:8]}... are not the multiples "
                                 f"of one interval")
    elif w is None:
        notes.append("promotion and accumulator alignment: not observable (the window is "
                     "as wide as the accumulator)")

    # 4b. a product's alignment exponent: its own, or its operands' exponents added (a
    #     product 1.5 x 1.5 = 2.25 then aligns as 2**0, keeping one bit more)
    align_from: str | None = None
    if n >= 3 and w is not None:
        pair = _wide_pair(fa, fb, E - 2)
        if pair is not None and mk.ok(2.0**(E - 2 - w)):
            x, y = pair
            es = math.frexp(x)[1] + math.frexp(y)[1] - 2
            tt = 2.0**(es - w)
            g = run([[(x, y), (-x, y), tt]], 3)[0]
            align_from = "exponents" if g == tt else "value" if g == 0.0 else None
            if align_from is None:
                notes.append(f"alignment exponent: {g!r} is neither {tt!r} nor 0")

    # 5. rounding of a step's sum into the accumulator: observable where the aligned sum
    #    holds more bits than the accumulator
    acc_mode: Rounding | None = None
    pa = acc_f.precision
    # (observable where the aligned sum holds more bits than the register and the
    # output shows the register's last place)
    if (w is None or w >= pa + 1) and pa <= out.precision:
        u = 2.0**(E - pa + 1)  # the accumulator's ulp at B
        cand = [[B, 0.75 * u], [-B, -0.75 * u], [B, 0.5 * u]]
        if all(mk.ok(v) for r in cand for v in r):
            got = run(cand, 2)
            sig = tuple(int(round(d / u)) for d in (got[0] - B, got[1] + B, got[2] - B))
            acc_mode = _MODES.get(sig)
            if acc_mode is None:
                notes.append(f"step sum rounding: pattern {sig} is none of the modes")

    top = 52 - math.ceil(math.log2(2 * (n + 1) + 1))  # valid for either align_from
    # 6. overflow: two products of 2**emax each sum beyond the accumulator: +Inf (a
    #    tensor core, in every rounding mode) or its largest value (IEEE, directed); a
    #    later step's -2**emax tells them apart through any output format
    inf_over = False
    xo = 2.0**acc_f.emax
    if mk.ok(xo):
        kk = max(n, 2)
        row = [0.0] * (kk + 1)
        row[0], row[1], row[kk] = xo, xo, -xo
        inf_over = bool(run([row], kk + 1)[0] == math.inf)

    def build(acc_r: Rounding, al_r: Rounding, al_acc: bool, reg: Minifloat) -> Accumulator:
        # IEEE's nearest modes overflow to Inf already: the flag only says so for others
        inf = inf_over and acc_r not in (Rounding.NEAREST_EVEN, Rounding.NEAREST_AWAY)
        if n == 1 and w is None:  # one product per step, no narrower window: sequential
            return Accumulator(reg, rounding=acc_r, chunk=chunk, inf_on_overflow=inf)
        return Accumulator(reg, rounding=acc_r, order=Order.FUSED, tree_width=n,
                           align_bits=min(w if w is not None else top, top),
                           align_rounding=al_r, align_acc=al_acc, chunk=chunk,
                           align_from=align_from or "value", inf_on_overflow=inf)

    # what the probes could not see is chosen by a set of random/adversarial dot
    # products (another seed than the reported check)
    both = [Rounding.TOWARD_ZERO, Rounding.NEAREST_EVEN]
    o_acc = [acc_mode] if acc_mode else both
    o_al = [align_mode] if align_mode else both
    o_aa = [align_acc] if align_acc is not None else [True, False]
    cands = list(dict.fromkeys(build(x, y, z, g) for x in o_acc for y in o_al for z in o_aa
                               for g in reg_opts))
    model = cands[0]
    if len(cands) > 1 and checks:
        a, b = validation_set(fa, fb, max(256, checks // 4), seed=seed + 1,
                              k_max=min(k_max, 512))
        got = np.asarray(dot(a, b), np.float64).reshape(-1)
        count[0] += len(got)
        miss = []
        for c in cands:
            want = model_dot(c, fa, fb, out)(a, b)
            miss.append(int((~((got == want) | (np.isnan(got) & np.isnan(want)))).sum()))
        model = cands[int(np.argmin(miss))]
        notes.append(f"chosen among {len(cands)} models the probes could not tell apart, "
                     f"by {len(got)} other dot products (mismatches {miss})")
    checked = mism = 0
    if checks:
        a, b = validation_set(fa, fb, checks, seed=seed, k_max=min(k_max, 512))
        want = model_dot(model, fa, fb, out)(a, b)
        got = np.asarray(dot(a, b), np.float64).reshape(-1)
        same = (got == want) | (np.isnan(got) & np.isnan(want))
        checked, mism = len(got), int((~same).sum())
    return ProbeResult(model, out, n, w, align_mode, align_acc, acc_mode, chunk, align_from,
                       count[0], checked, mism, tuple(notes))


def _wide_pair(fa: Minifloat, fb: Minifloat, es: int) -> tuple[float, float] | None:
    """(1.5 * 2**ea, 1.5 * 2**eb), normal values of the formats with ea + eb = es."""
    for ea in range(fa.emin, fa.emax + 1):
        eb = es - ea
        x, y = 1.5 * 2.0**ea, 1.5 * 2.0**eb
        if fb.emin <= eb <= fb.emax and x <= fa.max and y <= fb.max \
                and float(fa.quantize(np.float64(x))) == x \
                and float(fb.quantize(np.float64(y))) == y:
            return x, y
    return None


# --- dot products through simulator.gemm, and test sets ----------------------------------
def model_dot(acc: Accumulator, a_format: Any, b_format: Any = None,
              out_format: Any = "float32") -> Dot:
    """``dot(a, b)`` of :func:`simulator.gemm` with ``acc`` (rows as independent dot
    products, output rounded once to ``out_format``)."""
    from .gemm import gemm

    fb = b_format if b_format is not None else a_format

    def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        r = gemm(np.asarray(a, np.float64)[:, None, :], np.asarray(b, np.float64)[:, :, None],
                 a_format=a_format, b_format=fb, accumulator=acc, out_format=out_format)
        return np.asarray(r).reshape(-1)
    return dot


simulated_dot = model_dot


def gemm_dot(matmul: Callable[[np.ndarray, np.ndarray], np.ndarray], *, multiple: int = 16,
             min_size: int = 64) -> Dot:
    """``dot(a, b)`` through one matrix multiply ``matmul(A, B) -> C`` (float64 arrays in
    and out, A (M, K), B (K, N)): probe p is row p of A and column p of B, its answer
    C[p, p]; M = N and K padded with zeros to a multiple of ``multiple`` (at least
    ``min_size``), as tensor-core kernels want. Zero products change no sum; an all-zero
    step can still re-align (truncate) the accumulator where the window is narrower
    than the register (not so on the H100's models: window + 1 >= register bits)."""
    def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        P, K = a.shape
        M = max(min_size, -(-P // multiple) * multiple)
        Kp = max(multiple, -(-K // multiple) * multiple)
        A = np.zeros((M, Kp))
        Bm = np.zeros((Kp, M))
        A[:P, :K] = a
        Bm[:K, :P] = b.T
        C = np.asarray(matmul(A, Bm), np.float64)
        return np.diagonal(C)[:P].copy()
    return dot


def validation_set(a_format: Any, b_format: Any = None, count: int = 4096, *, seed: int = 0,
                   k_max: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Random and adversarial dot products (rows of a, b: float64 values of the formats,
    K up to ``k_max`` with trailing zeros): a spread of exponents, cancellation (pairs
    that cancel exactly, leaving small terms), subnormal products, one huge term among
    small ones, lengths that are not a multiple of any tile."""
    fa = _scalar(a_format, "a_format")
    fb = _scalar(b_format if b_format is not None else a_format, "b_format")
    rng = np.random.default_rng(seed)
    K = k_max
    a = np.zeros((count, K))
    b = np.zeros((count, K))
    for p in range(count):
        kind = p % 5
        k = int(rng.integers(1, K + 1))
        if kind == 0:  # normal values, moderate spread
            x = rng.standard_normal(k) * np.exp2(rng.integers(-4, 5, k))
            y = rng.standard_normal(k) * np.exp2(rng.integers(-4, 5, k))
        elif kind == 1:  # wide exponent spread, full range of both formats
            x = rng.choice([-1, 1], k) * np.exp2(rng.uniform(fa.lsb_exp_min, fa.emax + 1, k))
            y = rng.choice([-1, 1], k) * np.exp2(rng.uniform(fb.lsb_exp_min, fb.emax + 1, k))
        elif kind == 2:  # cancellation: pairs +v, -v and small leftovers
            x = rng.standard_normal(k) * np.exp2(rng.integers(0, 6, k))
            y = rng.standard_normal(k)
            h = k // 2
            x[h:2 * h] = -x[:h]
            y[h:2 * h] = y[:h]
            x[2 * h:] *= 2.0**-10
        elif kind == 3:  # subnormal and tiny products
            x = rng.standard_normal(k) * 2.0**fa.emin * np.exp2(-rng.integers(0, 4, k))
            y = rng.standard_normal(k) * np.exp2(rng.integers(-3, 1, k))
        else:  # one huge term among small ones, anywhere
            x = rng.standard_normal(k) * np.exp2(rng.integers(-8, 0, k))
            y = rng.standard_normal(k)
            x[rng.integers(0, k)] = fa.max * rng.choice([-1, 1])
        a[p, :k] = np.asarray(fa.quantize(np.clip(x, -fa.max, fa.max)), np.float64)
        b[p, :k] = np.asarray(fb.quantize(np.clip(y, -fb.max, fb.max)), np.float64)
    return a, b


# --- GPU targets ----------------------------------------------------------------------
#: the matmul calls :func:`gpu_dot` probes: name -> what it runs
TARGETS = {
    "scaled_mm": "torch._scaled_mm on float8 operands (unit scales), float32 or bfloat16 "
                 "output (use_fast_accum: fast_accum=True)",
    "matmul": "torch.matmul in the operands' dtype (bfloat16/float16: cuBLAS, float32 "
              "accumulation, output in that dtype)",
    "triton": "a Triton kernel's tl.dot with a float32 accumulator (64x64 tiles, K step "
              "64), float32 output",
}

_TORCH_DTYPES = {"float8_e4m3fn": "float8_e4m3fn", "float8_e5m2": "float8_e5m2",
                 "bfloat16": "bfloat16", "float16": "float16", "float32": "float32"}


def gpu_dot(target: str, a_format: Any, b_format: Any = None, *, out_format: Any = None,
            device: str = "cuda", fast_accum: bool = False, size: int = 128) -> Dot:
    """``dot(a, b)`` through a GPU matmul call (:data:`TARGETS`), probes embedded in one
    matrix multiply of at least ``size`` x ``size`` outputs (:func:`gemm_dot`)."""
    return gemm_dot(gpu_matmul(target, a_format, b_format, out_format=out_format,
                               device=device, fast_accum=fast_accum), min_size=size)


def gpu_matmul(target: str, a_format: Any, b_format: Any = None, *, out_format: Any = None,
               device: str = "cuda", fast_accum: bool = False
               ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``matmul(A, B) -> C`` (float64 numpy in and out) through a GPU matmul call
    (:data:`TARGETS`); A's and B's values must be the formats' (they are cast)."""
    import torch

    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    fa = _scalar(a_format, "a_format")
    fb = _scalar(b_format if b_format is not None else a_format, "b_format")
    names = []
    for f, what in ((fa, "a_format"), (fb, "b_format")):
        if str(f) not in _TORCH_DTYPES:
            raise ValueError(f"{what} {f} has no torch dtype on the GPU; use one of "
                             f"{', '.join(_TORCH_DTYPES)}")
        names.append(getattr(torch, _TORCH_DTYPES[str(f)]))
    ta, tb = names
    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        raise ValueError(f"device must be a CUDA device with a GPU present, not {device!r}"
                         f" (CUDA available: {torch.cuda.is_available()})")
    out = _scalar(out_format, "out_format") if out_format is not None else None
    if target == "scaled_mm":
        od = getattr(torch, str(out or "float32"))
        one = torch.ones((), dtype=torch.float32, device=dev)

        def mm(A: np.ndarray, B: np.ndarray) -> np.ndarray:
            pad = -A.shape[1] % 16  # _scaled_mm takes K in multiples of 16: zeros after
            if pad:
                A = np.pad(A, ((0, 0), (0, pad)))
                B = np.pad(B, ((0, pad), (0, 0)))
            x = torch.from_numpy(A).to(dev).to(ta)
            y = torch.from_numpy(np.ascontiguousarray(B.T)).to(dev).to(tb).t()
            c = torch._scaled_mm(x, y, scale_a=one, scale_b=one, out_dtype=od,
                                 use_fast_accum=fast_accum)
            return c.double().cpu().numpy()
    elif target == "matmul":
        if ta != tb:
            raise ValueError("matmul takes operands of one dtype")

        def mm(A: np.ndarray, B: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(A).to(dev).to(ta)
            y = torch.from_numpy(B).to(dev).to(tb)
            return torch.matmul(x, y).double().cpu().numpy()
    else:
        from . import _triton_dot

        def mm(A: np.ndarray, B: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(A).to(dev).to(ta)
            y = torch.from_numpy(B).to(dev).to(tb)
            return _triton_dot.matmul(x, y).double().cpu().numpy()
    return mm
