"""What every processing element shares: option validation, the ``_Pe`` base,
registers and delays, the adder tree and the float accumulator register."""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring

from formats import BipolarInt, Integer, Minifloat, Overflow, Rounding, parse

from .. import _hw
from .._hw import Term


def _minifloat(value: Any, parameter: str) -> Minifloat:
    f = parse(value, parameter=parameter)
    if not isinstance(f, Minifloat):
        raise TypeError(f"{parameter} must be a minifloat format (e.g. e4m3fn, float16), not "
                        f"{f} ({type(f).__name__})")
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


def _rounding(value: Any) -> Rounding:
    mode = Rounding.coerce(value, "rounding")
    if mode is Rounding.STOCHASTIC:
        raise ValueError("rounding must be deterministic in hardware (nearest_even, "
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


def _accumulate(m: Module, fmt: Minifloat, acc: Any, term: Term, en: Any, clear: Any,
                mode: Rounding, policy: Overflow) -> None:
    """The accumulator register. A format without NaN (E2M1, E3M2, ...) gets a sticky
    invalid flag: once a NaN arises the output reads +0 (formats' encoding of NaN there)
    until ``clear``, as simulator.Accumulator, which keeps the NaN internally."""
    reg = Signal(fmt.bits, name="acc_r")
    base = Signal(fmt.bits, name="acc_base")
    m.d.comb += base.eq(Mux(clear, 0, reg))
    nxt = _hw.add_round(m, fmt, base, term, mode, policy, "sum")
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
