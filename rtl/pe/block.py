"""The block dot-product PE for MX / NVFP4 / BFP operands: :class:`BlockDot`."""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from formats import BlockScaled, FixedBase, Minifloat, parse

from .. import _hw
from .._hw import Term
from ._common import (
    _accumulate,
    _delay,
    _minifloat,
    _Pe,
    _register_term,
    _rounding,
    _stages,
    _tree_sum,
)

__all__ = ["BlockDot"]


# --- 4. block dot product --------------------------------------------------------------

def _block(value: Any, parameter: str) -> BlockScaled:
    f = parse(value, parameter=parameter)
    if not isinstance(f, BlockScaled):
        raise TypeError(f"{parameter} must be a block format (mxfp8_e4m3, mxfp4, mxint8, nvfp4, "
                        f"bfp8_b16, ...), not {f} ({type(f).__name__})")
    if not isinstance(f.block_size, int):
        raise ValueError(f"{parameter}: BlockDot takes 1-D blocks, not tiles {f.block_size}")
    if f.zero_point:
        raise ValueError(f"{parameter}: zero points ({f}) are not supported by BlockDot")
    if not isinstance(f.element, (Minifloat, FixedBase)):
        raise TypeError(f"{parameter}: BlockDot elements must be minifloats or integers, not "
                        f"{f.element}")
    if not isinstance(f.scale, Minifloat):
        raise TypeError(f"{parameter}: BlockDot scales must be minifloats (E8M0, E4M3, ...), "
                        f"not {f.scale}")
    return f


def _fixed_products(m: Module, ta: list[Term], tb: list[Term], name: str) -> tuple[
        list[Any], int, Any, Any, Any]:
    """Each product as a two's-complement integer on the common grid 2**lsb0; the NaN
    flag and the +Inf / -Inf flags of the products."""
    out = []
    qa, qb = (ta[0].lsb_range, tb[0].lsb_range)
    lsb0 = qa[0] + qb[0]
    span = (qa[1] - qa[0]) + (qb[1] - qb[0])
    pw = ta[0].width + tb[0].width
    width = pw + span + 1
    nan = Const(0, 1)
    pinf = Const(0, 1)
    ninf = Const(0, 1)
    for i, (x, y) in enumerate(zip(ta, tb)):
        p = _hw.multiply(m, x, y, f"{name}{i}")
        shift = Signal(range(span + 1), name=f"{name}{i}_sh")
        m.d.comb += shift.eq((p.lsb - lsb0)[: len(shift)] if span else 0)
        v = Signal(signed(width), name=f"{name}{i}_fx")
        mag = (p.mag << shift) if span else p.mag
        m.d.comb += v.eq(Mux(p.inf | p.nan, 0, Mux(p.sign, -mag, mag)))
        out.append(v)
        nan = _hw._bit(m, nan | p.nan, f"{name}{i}_anynan")
        pinf = _hw._bit(m, pinf | (p.inf & ~p.sign), f"{name}{i}_anypinf")
        ninf = _hw._bit(m, ninf | (p.inf & p.sign), f"{name}{i}_anyninf")
    return out, lsb0, nan, pinf, ninf


class BlockDot(_Pe):
    """Block dot-product unit for MX / NVFP4 / BFP: ``k`` element pairs and their two
    scales per cycle. The k products sum exactly in an adder tree (on the grid of the
    smallest product), the sum is multiplied by both scales exactly and added into the
    accumulator with one rounding: ``simulator.Accumulator(acc, order="tree",
    tree_width=k)``. NVFP4's per-tensor FP32 scale is applied once per output, outside
    the unit."""

    kind = "BlockDot"
    interface = "accumulate"

    def __init__(self, a: Any = "mxfp8_e4m3", acc: Any = "float32", *, b: Any = None,
                 k: int | None = None, rounding: Any = "nearest_even", overflow: Any = None,
                 stages: int = 0) -> None:
        self.a_format = _block(a, "a")
        self.b_format = _block(b, "b") if b is not None else self.a_format
        bs = self.a_format.block_size
        if self.b_format.block_size != bs:
            raise ValueError(f"a and b need the same block size, not {bs} and "
                             f"{self.b_format.block_size}")
        if k is None:
            k = bs  # type: ignore[assignment]
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 256:
            raise ValueError(f"k must be an int in 1..256, not {k!r}")
        assert isinstance(bs, int)
        if bs % k:
            raise ValueError(f"k ({k}) must divide the block size ({bs})")
        self.k = k
        self.acc_format = _minifloat(acc, "acc")
        _hw.check_output_float(self.acc_format, "acc")
        self.rounding = _rounding(rounding)
        self.overflow = _hw.hw_overflow(self.acc_format, overflow, "overflow")
        self.stages = _stages(stages, 1)
        self.latency = 1 + self.stages
        ea, eb = self.a_format.element, self.b_format.element
        super().__init__({
            "a": In(data.ArrayLayout(_hw.layout_of(ea), k)),
            "b": In(data.ArrayLayout(_hw.layout_of(eb), k)),
            "sa": In(_hw.layout_of(self.a_format.scale)),
            "sb": In(_hw.layout_of(self.b_format.scale)),
            "en": In(1), "clear": In(1), "acc": Out(_hw.float_layout(self.acc_format)),
        })

    @property
    def formats(self) -> dict[str, str]:
        return {"a": str(self.a_format), "b": str(self.b_format), "acc": str(self.acc_format),
                "a_element": str(self.a_format.element), "b_element": str(self.b_format.element),
                "sa": str(self.a_format.scale), "sb": str(self.b_format.scale)}

    @property
    def datapath(self) -> Any:
        """The :class:`simulator.Datapath` this PE computes: ``k`` element pairs per cycle
        summed exactly (an adder tree of width ``k``; ``k = 1`` is sequential), scaled,
        one rounding into the accumulator."""
        from simulator import Accumulator, Datapath

        tree = self.k > 1
        return Datapath(self.a_format, self.b_format,
                        Accumulator(self.acc_format, rounding=self.rounding,
                                    overflow=self.overflow,
                                    order="tree" if tree else "sequential",
                                    tree_width=self.k if tree else None))

    @property
    def parameters(self) -> dict[str, Any]:
        return {"k": self.k, "rounding": self.rounding.value, "overflow": self.overflow.value,
                "stages": self.stages}

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        ea, eb = self.a_format.element, self.b_format.element
        ta = [_hw.unpack(m, ea, self.a[i].as_value(), f"a{i}") for i in range(self.k)]
        tb = [_hw.unpack(m, eb, self.b[i].as_value(), f"b{i}") for i in range(self.k)]
        fixed, lsb0, nan, pinf, ninf = _fixed_products(m, ta, tb, "p")
        total = _tree_sum(m, fixed, "tree")
        neg = total < 0
        mag = Signal(len(total), name="block_mag")
        m.d.comb += mag.eq(Mux(neg, -total, total))
        both = pinf & ninf
        block = Term(Mux(pinf | ninf, ninf, neg), mag, Const(lsb0, signed(
            _hw.signed_width(lsb0, lsb0))), (lsb0, lsb0), nan | both, (pinf | ninf) & ~both)
        sa = _hw.unpack(m, self.a_format.scale, self.sa.as_value(), "sa")
        sb = _hw.unpack(m, self.b_format.scale, self.sb.as_value(), "sb")
        term = _hw.multiply(m, _hw.multiply(m, block, sa, "bsa"), sb, "bsab")
        en, clear = self.en, self.clear
        if self.stages:
            term = _register_term(m, term, "term_r")
            en, clear = _delay(m, en, 1, "en"), _delay(m, clear, 1, "clear")
        _accumulate(m, self.acc_format, self.acc.as_value(), term, en, clear, self.rounding,
                    self.overflow)
        return m
