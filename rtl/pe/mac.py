"""Multiply and multiply-accumulate PEs on scalar operands: :class:`IntMac`,
:class:`FloatMul`, :class:`FloatMac`."""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib.wiring import In, Out

from formats import Overflow, Rounding

from .. import _hw
from ._common import (
    _accumulate,
    _accumulator_options,
    _delay,
    _extra_formats,
    _extra_parameters,
    _integer,
    _minifloat,
    _Pe,
    _product_rounding,
    _promotion,
    _register_term,
    _round_by,
    _rounding,
    _scalar,
    _stages,
)

__all__ = ["FloatMac", "FloatMul", "IntMac"]


# --- 1. integer MAC --------------------------------------------------------------------

class IntMac(_Pe):
    """``acc <= acc + a * b`` in a signed ``acc_bits`` register, wrapping or saturating."""

    kind = "IntMac"
    interface = "accumulate"

    def __init__(self, a: Any = "int8", b: Any = "int8", acc_bits: int = 32, *,
                 overflow: str = "wrap", stages: int = 0) -> None:
        self.a_format, self.b_format = _integer(a, "a"), _integer(b, "b")
        if isinstance(acc_bits, bool) or not isinstance(acc_bits, int) or not 2 <= acc_bits <= 64:
            raise ValueError(f"acc_bits must be an int in 2..64, not {acc_bits!r}")
        self.acc_bits = acc_bits
        if overflow not in ("wrap", "saturate", Overflow.WRAP, Overflow.SATURATE):
            raise ValueError(f"overflow must be 'wrap' or 'saturate', not {overflow!r}")
        self.overflow = Overflow.coerce(overflow, "overflow")
        self.stages = _stages(stages, 1)
        self.latency = 1 + self.stages
        super().__init__({
            "a": In(_hw.layout_of(self.a_format)), "b": In(_hw.layout_of(self.b_format)),
            "en": In(1), "clear": In(1), "acc": Out(signed(acc_bits)),
        })

    @property
    def formats(self) -> dict[str, str]:
        return {"a": str(self.a_format), "b": str(self.b_format), "acc": f"int{self.acc_bits}"}

    @property
    def datapath(self) -> Any:
        """The :class:`simulator.Datapath` this PE computes (sequential, one product per
        step, wrapping or saturating ``int<acc_bits>``)."""
        from simulator import Accumulator, Datapath

        return Datapath(self.a_format, self.b_format,
                        Accumulator(f"int{self.acc_bits}", overflow=self.overflow))

    @property
    def parameters(self) -> dict[str, Any]:
        return {"acc_bits": self.acc_bits, "overflow": self.overflow.value,
                "stages": self.stages}

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        av = self.a.value if self.a_format.signed else self.a.value.as_unsigned()
        bv = self.b.value if self.b_format.signed else self.b.value.as_unsigned()
        pw = self.a_format.bits + self.b_format.bits + 1
        prod = Signal(signed(pw))
        m.d.comb += prod.eq(av * bv)
        en, clear = self.en, self.clear
        if self.stages:
            prod, en, clear = (_delay(m, prod, 1, "prod"), _delay(m, en, 1, "en"),
                               _delay(m, clear, 1, "clear"))
        n = self.acc_bits
        base = Mux(clear, 0, self.acc)
        total = Signal(signed(max(n, pw) + 1))
        m.d.comb += total.eq(base + prod)
        if self.overflow is Overflow.SATURATE:
            hi, lo = (1 << (n - 1)) - 1, -(1 << (n - 1))
            nxt = Mux(total > hi, hi, Mux(total < lo, lo, total))
        else:
            nxt = total[:n].as_signed()
        with m.If(en):
            m.d.sync += self.acc.eq(nxt)
        with m.Elif(clear):
            m.d.sync += self.acc.eq(0)
        return m


# --- 2. float multiplier ---------------------------------------------------------------

class FloatMul(_Pe):
    """``p = a * b`` for any two minifloats: exact (``out=None``: the result format is
    :func:`rtl._hw.exact_product_format`, which holds every product; ``rounding`` and
    ``overflow`` then have nothing to act on and must stay unset) or rounded once to
    ``out`` with ``rounding`` and ``out``'s overflow policy (``overflow``)."""

    kind = "FloatMul"

    def __init__(self, a: Any = "e4m3fn", b: Any = "e4m3fn", out: Any = None, *,
                 rounding: Any = "nearest_even", overflow: Any = None, stages: int = 0) -> None:
        self.a_format, self.b_format = _minifloat(a, "a"), _minifloat(b, "b")
        if out is None:
            try:
                self.out_format = _hw.exact_product_format(self.a_format, self.b_format)
            except ValueError as exc:
                raise ValueError(f"out must be given for {self.a_format} x {self.b_format}: "
                                 f"no minifloat holds every product exactly ({exc})") from None
            self.exact = True
        else:
            self.out_format = _minifloat(out, "out")
            self.exact = False
        _hw.check_output_float(self.out_format, "out")
        self.rounding = _rounding(rounding)
        self.overflow = _hw.hw_overflow(self.out_format, overflow, "overflow")
        if self.exact and (self.rounding is not Rounding.NEAREST_EVEN or overflow is not None):
            raise ValueError("rounding and overflow apply to out: the exact product "
                             "(out=None) is never rounded; give out= or leave them unset")
        self.stages = _stages(stages)
        self.latency = self.stages
        if self.stages:
            self.interface = "pipelined"
        super().__init__({
            "a": In(_hw.float_layout(self.a_format)), "b": In(_hw.float_layout(self.b_format)),
            "p": Out(_hw.float_layout(self.out_format)),
        })

    @property
    def formats(self) -> dict[str, str]:
        return {"a": str(self.a_format), "b": str(self.b_format), "p": str(self.out_format)}

    @property
    def parameters(self) -> dict[str, Any]:
        return {"rounding": self.rounding.value, "overflow": self.overflow.value,
                "exact": self.exact, "stages": self.stages}

    @property
    def datapath(self) -> Any:
        """The :class:`simulator.Datapath` this PE computes: one product per output
        (``terms=1``, no running sum, the exact accumulator), rounded once to ``out``
        (``out_rounding``, ``out_overflow``), or exact (``out=None``)."""
        from simulator import Datapath

        if self.exact:
            return Datapath(self.a_format, self.b_format, None, terms=1)
        return Datapath(self.a_format, self.b_format, None, terms=1, out=self.out_format,
                        out_rounding=self.rounding, out_overflow=self.overflow)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        ta = _hw.unpack(m, self.a_format, self.a.as_value(), "a")
        tb = _hw.unpack(m, self.b_format, self.b.as_value(), "b")
        prod = _hw.multiply(m, ta, tb, "prod")
        code = _hw.round_to(m, self.out_format, prod, self.rounding, self.overflow, "p")
        m.d.comb += self.p.as_value().eq(_delay(m, code, self.stages, "p"))
        return m


# --- 3. float MAC ----------------------------------------------------------------------

class FloatMac(_Pe):
    """``acc <= round(acc + a * b)``: the exact product added with one rounding
    (``rounding``, default nearest-even) into an accumulator of any signed minifloat
    format with subnormals: ``simulator.Accumulator(acc)``'s sequential numerics.

    Operands are minifloats, integers or fixed point, in any pairing (int8 x int8,
    bfloat16 x int4 for weight-only integer quantization, ...): an integer or
    fixed-point code is a two's-complement (or unsigned) significand with the fixed
    exponent ``ulp_exp``, so the product is exact whatever the pairing and the one
    rounding is the accumulator's (or ``product_format``'s).

    Parameters
    ----------
    a, b : operand formats: minifloats, integers (int<n>, uint<n>) or fixed point
    acc : the accumulator's format (a signed minifloat with subnormals)
    rounding, overflow : of every accumulator addition (``overflow``: ``acc``'s default)
    stages : 1 registers the product first (latency 2)
    chunk, chunk_format : chunked promotion (``Accumulator(chunk=, chunk_format=)``):
        after every ``chunk`` products the narrow ``acc`` partial sum is added
        nearest-even into a wide register of ``chunk_format`` (default the simulator's,
        float32) and restarts from +0; a step counter marks the chunks
    product_format, product_rounding : each product first rounded once to this
        minifloat (``Accumulator(product_format=, product_rounding=)``; overflow:
        ``product_format``'s default); ``None``: fused (exact) products

    Attributes
    ----------
    a, b : In, the operand codes (a minifloat's fields, an integer's ``value``)
    en, clear : In(1); ``clear`` with ``en`` starts a new sum, ``clear`` alone empties it
    acc : Out, a code of ``acc`` -- or, with ``chunk``, of ``chunk_format``: the wide
        sum with the unfinished chunk promoted into it (``round(wide + partial)``), i.e.
        ``simulator.gemm`` of the products so far
    """

    kind = "FloatMac"
    interface = "accumulate"

    def __init__(self, a: Any = "e4m3fn", b: Any = "e4m3fn", acc: Any = "float32", *,
                 rounding: Any = "nearest_even", overflow: Any = None, stages: int = 0,
                 chunk: int | None = None, chunk_format: Any = None,
                 product_format: Any = None, product_rounding: Any = "nearest_even") -> None:
        self.a_format, self.b_format = _scalar(a, "a"), _scalar(b, "b")
        self.acc_format = _minifloat(acc, "acc")
        _hw.check_output_float(self.acc_format, "acc")
        self.rounding = _rounding(rounding)
        self.overflow = _hw.hw_overflow(self.acc_format, overflow, "overflow")
        self.stages = _stages(stages, 1)
        self.promotion = _promotion(chunk, chunk_format, 1)
        self.products = _product_rounding(product_format, product_rounding)
        self.latency = 1 + self.stages
        out = self.promotion.fmt if self.promotion else self.acc_format
        super().__init__({
            "a": In(_hw.layout_of(self.a_format)), "b": In(_hw.layout_of(self.b_format)),
            "en": In(1), "clear": In(1), "acc": Out(_hw.float_layout(out)),
        })

    @property
    def formats(self) -> dict[str, str]:
        return {"a": str(self.a_format), "b": str(self.b_format), "acc": str(self.acc_format),
                **_extra_formats(self.promotion, self.products)}

    @property
    def parameters(self) -> dict[str, Any]:
        return {"rounding": self.rounding.value, "overflow": self.overflow.value,
                "stages": self.stages, **_extra_parameters(self.promotion, self.products)}

    @property
    def datapath(self) -> Any:
        """The :class:`simulator.Datapath` this PE computes (the product, exact or rounded
        to ``product_format``, one rounding per step into the accumulator, chunks
        promoted into ``chunk_format``)."""
        from simulator import Accumulator, Datapath

        return Datapath(self.a_format, self.b_format,
                        Accumulator(self.acc_format, rounding=self.rounding,
                                    overflow=self.overflow,
                                    **_accumulator_options(self.promotion, self.products)))

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        ta = _hw.unpack(m, self.a_format, self.a.as_value(), "a")
        tb = _hw.unpack(m, self.b_format, self.b.as_value(), "b")
        prod = _round_by(m, self.products, _hw.multiply(m, ta, tb, "prod"), "prod_rnd")
        en, clear = self.en, self.clear
        if self.stages:
            prod = _register_term(m, prod, "prod_r")
            en, clear = _delay(m, en, 1, "en"), _delay(m, clear, 1, "clear")
        _accumulate(m, self.acc_format, self.acc.as_value(), prod, en, clear, self.rounding,
                    self.overflow, self.promotion)
        return m
