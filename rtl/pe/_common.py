"""What every processing element shares: option validation, the ``_Pe`` base,
registers and delays, the adder tree and the float accumulator register."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from amaranth.hdl import Module, Mux, Signal, Value, signed
from amaranth.lib import wiring

from formats import BipolarInt, FixedBase, Integer, Minifloat, Overflow, Rounding, parse

from .. import _hw
from .._hw import Term


def _minifloat(value: Any, parameter: str) -> Minifloat:
    f = parse(value, parameter=parameter)
    if not isinstance(f, Minifloat):
        raise TypeError(f"{parameter} must be a minifloat format (e.g. e4m3fn, float16), not "
                        f"{f} ({type(f).__name__})")
    return f


def _scalar(value: Any, parameter: str) -> Minifloat | FixedBase:
    """A scalar operand the exact multiplier takes: a minifloat, or an integer or
    fixed-point format (its code a significand with the fixed exponent ``ulp_exp``)."""
    f = parse(value, parameter=parameter)
    if not isinstance(f, (Minifloat, FixedBase)):
        raise TypeError(f"{parameter} must be a minifloat, integer or fixed-point format (e.g. "
                        f"e4m3fn, int8, fixed<4,4>), not {f} ({type(f).__name__})")
    return f


def _integer(value: Any, parameter: str, bipolar: bool = False) -> Any:
    f = parse(value, parameter=parameter)
    ok = (Integer, BipolarInt) if bipolar else (Integer,)
    if not isinstance(f, ok):
        kinds = "an integer (int<n>/uint<n>) or bipolar<n>" if bipolar else "an integer (int<n>)"
        raise TypeError(f"{parameter} must be {kinds} format, not {f} ({type(f).__name__})")
    if f.bits > 32:
        raise ValueError(f"{parameter} must have at most 32 bits, not {f.bits}")
    return f


def _stages(stages: Any, hi: int = 4) -> int:
    if isinstance(stages, bool) or not isinstance(stages, int) or not 0 <= stages <= hi:
        raise ValueError(f"stages must be an int in 0..{hi}, not {stages!r}")
    return stages


def _rounding(value: Any, parameter: str = "rounding") -> Rounding:
    mode = Rounding.coerce(value, parameter)
    if mode is Rounding.STOCHASTIC:
        raise ValueError(f"{parameter} must be deterministic in hardware (nearest_even, "
                         "nearest_away, toward_zero, up, down), not 'stochastic'")
    return mode


def _delay(m: Module, value: Any, n: int, name: str) -> Any:
    for i in range(n):
        r = Signal.like(value, name=f"{name}_d{i}")
        m.d.sync += r.eq(value)
        value = r
    return value


def _register_term(m: Module, t: Term, name: str) -> Term:
    regs = [Signal(1, name=f"{name}_sign"), Signal(len(t.mag), name=f"{name}_mag"),
            Signal(t.lsb.shape(), name=f"{name}_lsb"), Signal(1, name=f"{name}_nan"),
            Signal(1, name=f"{name}_inf")]
    m.d.sync += [r.eq(v) for r, v in zip(regs, (t.sign, t.mag, t.lsb, t.nan, t.inf))]
    return Term(regs[0], regs[1], regs[2], t.lsb_range, regs[3], regs[4])


class _Pe(wiring.Component):
    kind: str = ""
    latency: int = 0
    interface: str = "combinational"

    @property
    def formats(self) -> dict[str, str]:
        return {}

    @property
    def parameters(self) -> dict[str, Any]:
        return {}


@dataclasses.dataclass(frozen=True)
class Promotion:
    """Chunked promotion of a PE: after every ``chunk`` products (``steps`` enabled
    cycles of ``chunk / steps`` products each) the narrow accumulator's partial sum is
    added, rounded nearest-even, into the wide register of format ``fmt`` (overflow
    ``policy``: ``fmt``'s default, as ``simulator.Accumulator``)."""

    chunk: int
    steps: int
    fmt: Minifloat
    policy: Overflow


def _promotion(chunk: Any, chunk_format: Any, per_step: int) -> Promotion | None:
    """The PE's chunked promotion, or None (``chunk=None``); ``per_step`` products enter
    per enabled cycle, so ``chunk`` must be a multiple of it."""
    if chunk is None:
        if chunk_format is not None:
            raise ValueError(f"chunk_format ({chunk_format}) needs chunk (the products per "
                             "promotion into it)")
        return None
    if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= 1 << 20 \
            or chunk % per_step:
        what = f"a multiple of k={per_step} " if per_step > 1 else ""
        raise ValueError(f"chunk must be an int in 1..{1 << 20} {what}(products per "
                         f"promotion into the wide register), not {chunk!r}")
    if chunk_format is None:
        from simulator import Accumulator

        chunk_format = Accumulator().chunk_format  # the simulator's default wide format
    fmt = _minifloat(chunk_format, "chunk_format")
    _hw.check_output_float(fmt, "chunk_format")
    return Promotion(chunk, chunk // per_step, fmt, _hw.hw_overflow(fmt, None, "chunk_format"))


@dataclasses.dataclass(frozen=True)
class Rounder:
    """One rounding of an exact value to ``fmt`` (``rounding``, overflow ``policy``:
    ``fmt``'s default, as ``simulator.Accumulator`` rounds products and tree sums)."""

    fmt: Any
    rounding: Rounding
    policy: Overflow


def _product_rounding(product_format: Any, product_rounding: Any) -> Rounder | None:
    """The PE's product rounding to a minifloat (signed, with subnormals), or None
    (fused: exact products)."""
    mode = _rounding(product_rounding, "product_rounding")
    if product_format is None:
        return None
    fmt = parse(product_format, parameter="product_format")
    if not isinstance(fmt, Minifloat):
        raise TypeError(f"product_format must be a minifloat format for a floating-point "
                        f"accumulator, not {fmt} ({type(fmt).__name__})")
    _hw.check_output_float(fmt, "product_format")
    return Rounder(fmt, mode, _hw.hw_overflow(fmt, None, "product_format"))


def _tree_rounding(tree_format: Any, tree_rounding: Any, k: int) -> Rounder | None:
    """Rounding of an adder tree's sum (``Accumulator(tree_format=, tree_rounding=)``),
    or None (an exact tree sum)."""
    mode = _rounding(tree_rounding, "tree_rounding")
    if tree_format is None:
        return None
    if k == 1:
        raise ValueError(f"tree_format ({tree_format}) needs k > 1: a tree of one product "
                         "has no sum to round")
    fmt = _minifloat(tree_format, "tree_format")
    _hw.check_output_float(fmt, "tree_format")
    return Rounder(fmt, mode, _hw.hw_overflow(fmt, None, "tree_format"))


def _extra_formats(pr: Promotion | None, products: Rounder | None) -> dict[str, str]:
    """The chunk and product formats of a PE (only those it has)."""
    out = {}
    if pr is not None:
        out["chunk_format"] = str(pr.fmt)
    if products is not None:
        out["product_format"] = str(products.fmt)
    return out


def _extra_parameters(pr: Promotion | None,
                      products: Rounder | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if pr is not None:
        out["chunk"] = pr.chunk
    if products is not None:
        out["product_rounding"] = products.rounding.value
    return out


def _accumulator_options(pr: Promotion | None,
                         products: Rounder | None) -> dict[str, Any]:
    """The ``simulator.Accumulator`` settings of a PE's promotion and product rounding."""
    out: dict[str, Any] = {}
    if pr is not None:
        out.update(chunk=pr.chunk, chunk_format=pr.fmt)
    if products is not None:
        out.update(product_format=products.fmt, product_rounding=products.rounding)
    return out


def _round_by(m: Module, pr: Rounder | None, t: Term, name: str) -> Term:
    """``t`` rounded by ``pr`` (``t`` itself for None: fused, exact)."""
    if pr is None:
        return t
    return _hw.round_term(m, pr.fmt, t, pr.rounding, pr.policy, name)


#: one accumulation step: ``step(m, base)`` is the next accumulator code from the code
#: ``base`` (the register, or +0 where a sum restarts)
Step = Callable[[Module, Value], Value]


def _step(fmt: Minifloat, term: Term, mode: Rounding, policy: Overflow,
          step: Step | None) -> Step:
    """``step``, or by default ``round(base + term)`` (:func:`rtl._hw.add_round`)."""
    if step is not None:
        return step
    return lambda m, base: _hw.add_round(m, fmt, base, term, mode, policy, "sum")


def _accumulate(m: Module, fmt: Minifloat, acc: Any, term: Term, en: Any, clear: Any,
                mode: Rounding, policy: Overflow, promotion: Promotion | None = None,
                step: Step | None = None) -> None:
    """The accumulator register. A format without NaN (E2M1, E3M2, ...) gets a sticky
    invalid flag: once a NaN arises the output reads +0 (formats' encoding of NaN there)
    until ``clear``, as simulator.Accumulator, which keeps the NaN internally.

    Each enabled step adds ``term`` with one rounding, or computes ``step`` (a PE's own
    adder, e.g. the fused multi-term adder; ``term.nan`` then flags a step whose result
    is NaN whatever the accumulator held). With ``promotion`` the output ``acc`` is the
    wide format's: see :func:`_promote`."""
    if promotion is not None:
        _promote(m, fmt, acc, term, en, clear, mode, policy, promotion, step)
        return
    reg = Signal(fmt.bits, name="acc_r")
    base = Signal(fmt.bits, name="acc_base")
    m.d.comb += base.eq(Mux(clear, 0, reg))
    nxt = _step(fmt, term, mode, policy, step)(m, base)
    with m.If(en):
        m.d.sync += reg.eq(nxt)
    with m.Elif(clear):
        m.d.sync += reg.eq(0)
    if fmt.has_nan:
        m.d.comb += acc.eq(reg)
        return
    invalid = Signal(name="acc_invalid")
    with m.If(en):
        m.d.sync += invalid.eq((invalid & ~clear) | term.nan)
    with m.Elif(clear):
        m.d.sync += invalid.eq(0)
    m.d.comb += acc.eq(Mux(invalid, 0, reg))


def _with_nan(m: Module, t: Term, flag: Any, name: str) -> Term:
    return dataclasses.replace(t, nan=_hw._bit(m, t.nan | flag, name))


def _promote(m: Module, fmt: Minifloat, acc: Any, term: Term, en: Any, clear: Any,
             mode: Rounding, policy: Overflow, pr: Promotion,
             step: Step | None = None) -> None:
    """Chunked promotion (``simulator.Accumulator(chunk=..., chunk_format=...)``).

    Registers: the narrow partial sum ``acc_r`` of the current chunk (``fmt``), the wide
    sum ``wide_r`` of the chunks before it (``pr.fmt``) and the count of steps in the
    current chunk. One promotion adder computes ``round_wide(wide_r + acc_r)``
    (nearest-even): it drives the output ``acc`` -- at every step the sum of all
    products so far with the unfinished chunk promoted, which is what the simulator
    returns at the end of K -- and is what ``wide_r`` takes when the next chunk starts
    (the step after the count reached ``pr.steps``), while ``acc_r`` restarts from +0.
    """
    reg = Signal(fmt.bits, name="acc_r")
    wide = Signal(pr.fmt.bits, name="wide_r")
    count = Signal(range(pr.steps + 1), name="chunk_count")
    narrow = _hw.unpack(m, fmt, reg, "narrow")
    held = _hw.unpack(m, pr.fmt, wide, "wide")
    # a NaN kept where the format has no NaN code (the simulator keeps it in float64)
    invalid = Signal(name="acc_invalid") if not fmt.has_nan else None
    wide_invalid = Signal(name="wide_invalid") if not pr.fmt.has_nan else None
    if invalid is not None:
        narrow = _with_nan(m, narrow, invalid, "narrow_isnan")
    if wide_invalid is not None:
        held = _with_nan(m, held, wide_invalid, "wide_isnan")
    total = _hw.add_terms(m, held, narrow, Rounding.NEAREST_EVEN, pr.fmt.precision,
                          "promote")
    promoted = _hw.round_to(m, pr.fmt, total, Rounding.NEAREST_EVEN, pr.policy,
                            "promote_rnd")
    full = Signal(name="chunk_full")
    restart = Signal(name="chunk_restart")
    m.d.comb += [full.eq(count == pr.steps), restart.eq(clear | full)]
    base = Signal(fmt.bits, name="acc_base")
    m.d.comb += base.eq(Mux(restart, 0, reg))
    nxt = _step(fmt, term, mode, policy, step)(m, base)
    with m.If(en):
        m.d.sync += [reg.eq(nxt), count.eq(Mux(restart, 1, count + 1))]
        if invalid is not None:
            m.d.sync += invalid.eq((invalid & ~restart) | term.nan)
        with m.If(clear):
            m.d.sync += wide.eq(0)
            if wide_invalid is not None:
                m.d.sync += wide_invalid.eq(0)
        with m.Elif(full):
            m.d.sync += wide.eq(promoted)
            if wide_invalid is not None:
                m.d.sync += wide_invalid.eq(total.nan)
    with m.Elif(clear):
        m.d.sync += [reg.eq(0), wide.eq(0), count.eq(0)]
        if invalid is not None:
            m.d.sync += invalid.eq(0)
        if wide_invalid is not None:
            m.d.sync += wide_invalid.eq(0)
    m.d.comb += acc.eq(promoted)


def _tree_sum(m: Module, values: list[Any], name: str, signed_: bool = True) -> Any:
    level = 0
    while len(values) > 1:
        nxt = []
        for i in range(0, len(values) - 1, 2):
            w = max(len(values[i]), len(values[i + 1])) + 1
            s = Signal(signed(w) if signed_ else w, name=f"{name}_l{level}_{i // 2}")
            m.d.comb += s.eq(values[i] + values[i + 1])
            nxt.append(s)
        if len(values) % 2:
            nxt.append(values[-1])
        values = nxt
        level += 1
    return values[0]
