"""The format converter PE: :class:`Quantizer`."""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib.wiring import In, Out

from formats import FixedBase, Minifloat, Overflow, Rounding, parse

from .. import _hw
from .._hw import Term
from ._common import (
    _delay,
    _Pe,
    _rounding,
    _stages,
)

__all__ = ["Quantizer"]


# --- 5. quantizer ----------------------------------------------------------------------

class Quantizer(_Pe):
    """Format converter ``y = round(x)``: minifloat or integer/fixed point in, minifloat
    (signed, with subnormals) or integer/fixed point out, one rounding, the output
    format's overflow policy (minifloats: its default or ``overflow``; integers:
    saturate or wrap)."""

    kind = "Quantizer"

    def __init__(self, in_format: Any = "float32", out_format: Any = "e4m3fn",
                 rounding: Any = "nearest_even", *, overflow: Any = None,
                 stages: int = 0) -> None:
        fi = parse(in_format, parameter="in_format")
        fo = parse(out_format, parameter="out_format")
        for f, p in ((fi, "in_format"), (fo, "out_format")):
            if not isinstance(f, (Minifloat, FixedBase)):
                raise TypeError(f"{p} must be a minifloat, integer or fixed-point format, not "
                                f"{f} ({type(f).__name__})")
        if isinstance(fo, Minifloat):
            _hw.check_output_float(fo, "out_format")
            self.overflow = _hw.hw_overflow(fo, overflow, "overflow")
        else:
            pol = Overflow.SATURATE if overflow is None else Overflow.coerce(overflow, "overflow")
            if pol not in fo.allowed_overflow or pol is Overflow.ERROR:
                raise ValueError(f"overflow must be 'saturate' or 'wrap' for {fo}, not "
                                 f"{overflow!r}")
            self.overflow = pol
        self.in_format, self.out_format = fi, fo
        self.rounding = _rounding(rounding)
        self.stages = _stages(stages)
        self.latency = self.stages
        if self.stages:
            self.interface = "pipelined"
        super().__init__({"x": In(_hw.layout_of(fi)), "y": Out(_hw.layout_of(fo))})

    @property
    def formats(self) -> dict[str, str]:
        return {"x": str(self.in_format), "y": str(self.out_format)}

    @property
    def parameters(self) -> dict[str, Any]:
        return {"rounding": self.rounding.value, "overflow": self.overflow.value,
                "stages": self.stages}

    @property
    def datapath(self) -> Any:
        """The :class:`simulator.Datapath` this PE computes: a conversion (no ``b``; one
        value of ``a`` per output, ``terms=1``), rounded once to ``out`` (``out_rounding``,
        ``out_overflow``). Integer outputs take NaN to 0 and Inf to the saturated end
        (or 0 when wrapping), as ``formats`` encodes them."""
        from simulator import Datapath

        return Datapath(self.in_format, None, None, terms=1, out=self.out_format,
                        out_rounding=self.rounding, out_overflow=self.overflow)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        t = _hw.unpack(m, self.in_format, self.x.as_value(), "x")
        if isinstance(self.out_format, Minifloat):
            code = _hw.round_to(m, self.out_format, t, self.rounding, self.overflow, "y")
        else:
            code = _round_int(m, self.out_format, t, self.rounding, self.overflow)
        m.d.comb += self.y.as_value().eq(_delay(m, code, self.stages, "y"))
        return m


def _round_int(m: Module, fmt: FixedBase, t: Term, mode: Rounding, policy: Overflow) -> Any:
    """Round a Term onto fmt's integer grid; saturate or wrap; NaN -> 0, Inf saturates."""
    ulp = fmt.ulp_exp
    lo, hi = t.lsb_range
    W = t.width
    pos_max, neg_max = fmt.max_int, fmt.max_neg_int
    # value / 2**ulp = mag * 2**(lsb - ulp): left shift by lsb - ulp, or right shift
    up_max = max(0, hi - ulp)
    dn_max = max(0, ulp - lo)
    XW = W + min(up_max, fmt.bits + 1) + 1
    left = Signal(range(up_max + 1), name="y_left")
    right = Signal(range(dn_max + 2), name="y_right")
    d = Signal(signed(_hw.signed_width(lo - ulp, hi - ulp)), name="y_d")
    m.d.comb += d.eq(t.lsb - ulp)
    if up_max:
        m.d.comb += left.eq(Mux(d > 0, d[: len(left)], 0))
    if dn_max:
        m.d.comb += right.eq(Mux(d < 0, Mux(-d > W + 1, W + 1, (-d)[: len(right)]), 0))
    # shifted left: exact; anything reaching 2**(bits+1) is an overflow anyway
    big = Signal(name="y_big")
    if up_max:
        m.d.comb += big.eq((left > fmt.bits + 1) & (t.mag != 0))
    X = Cat(Const(0, 1), t.mag)  # one guard position below
    shifted = Signal(XW + 1, name="y_sh")
    clamped_left = Signal(range(min(up_max, fmt.bits + 1) + 1), name="y_lc")
    if up_max:
        m.d.comb += clamped_left.eq(Mux(big, 0, left[: len(clamped_left)]))
    m.d.comb += shifted.eq((X << clamped_left) >> right)
    q = shifted[1:]
    guard = shifted[0]
    ones = Const((1 << (W + 1)) - 1, W + 1)
    below = ~(ones << right)[: W + 1]
    sticky = (X & below).any()
    inc = _hw._round_increment(mode, t.sign, q[0], guard, sticky)
    mag = Signal(XW + 1, name="y_mag")
    m.d.comb += mag.eq(q + inc)
    val = Signal(signed(XW + 2), name="y_val")
    m.d.comb += val.eq(Mux(t.sign, -mag, mag))
    code = Signal(fmt.bits, name="y_code")
    over_pos = (val > pos_max) | (big & ~t.sign) | (t.inf & ~t.sign)
    over_neg = (val < -neg_max) | (big & t.sign) | (t.inf & t.sign)
    if policy is Overflow.SATURATE:
        with m.If(t.nan):
            m.d.comb += code.eq(0)
        with m.Elif(over_pos):
            m.d.comb += code.eq(pos_max)
        with m.Elif(over_neg):
            m.d.comb += code.eq(Const(-neg_max, signed(fmt.bits + 1))[: fmt.bits])
        with m.Else():
            m.d.comb += code.eq(val[: fmt.bits])
    else:  # wrap: the low bits of the (exact while below 2**(bits+1)) rounded integer
        m.d.comb += code.eq(Mux(t.nan | t.inf | big, 0, val[: fmt.bits]))
    return code
