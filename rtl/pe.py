"""Processing elements: Amaranth ``wiring.Component``s parameterised by formats/ objects.

Interfaces (every component has ``latency``, ``kind`` and ``formats`` attributes):

* combinational units (:class:`FloatMul`, :class:`Quantizer`): operands in, result out;
  ``stages`` adds output registers (a clock domain ``sync``), ``latency = stages`` clock
  edges from operands to result.
* accumulating units (:class:`IntMac`, :class:`FloatMac`, :class:`BlockDot`,
  :class:`ShiftAddPe`): fixed-latency enable. On a clock edge with ``en`` the operands are
  taken; ``clear`` with ``en`` starts a new sum from +0 (``clear`` alone empties the
  accumulator). ``acc`` shows the sum ``latency`` edges after the operands were applied
  (``latency = 1 + stages``; ``stages=1`` registers the products first).
* bit-serial units (:class:`BipolarPe`, :class:`LutPe`): ``start`` with the operands
  begins a computation; ``busy`` while it runs; ``done`` and ``result`` valid
  ``latency`` edges after the start edge (``result`` holds until the next start).

Codes enter and leave in the formats' own bit layouts (``rtl._hw.layout_of``); arrays of
elements are ``data.ArrayLayout``s, element 0 in the low bits.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from formats import (
    BipolarInt,
    BlockScaled,
    FixedBase,
    FixedPoint,
    Integer,
    Minifloat,
    Overflow,
    Rounding,
    parse,
)

from . import _hw
from ._hw import Term

__all__ = ["BipolarPe", "BlockDot", "FloatMac", "FloatMul", "IntMac", "LutPe", "Quantizer",
           "ShiftAddPe", "PE_KINDS"]


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
    :func:`rtl._hw.exact_product_format`, which holds every product) or rounded once to
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
    format with subnormals: ``simulator.Accumulator(acc)``'s sequential numerics."""

    kind = "FloatMac"
    interface = "accumulate"

    def __init__(self, a: Any = "e4m3fn", b: Any = "e4m3fn", acc: Any = "float32", *,
                 rounding: Any = "nearest_even", overflow: Any = None, stages: int = 0) -> None:
        self.a_format, self.b_format = _minifloat(a, "a"), _minifloat(b, "b")
        self.acc_format = _minifloat(acc, "acc")
        _hw.check_output_float(self.acc_format, "acc")
        self.rounding = _rounding(rounding)
        self.overflow = _hw.hw_overflow(self.acc_format, overflow, "overflow")
        self.stages = _stages(stages, 1)
        self.latency = 1 + self.stages
        super().__init__({
            "a": In(_hw.float_layout(self.a_format)), "b": In(_hw.float_layout(self.b_format)),
            "en": In(1), "clear": In(1), "acc": Out(_hw.float_layout(self.acc_format)),
        })

    @property
    def formats(self) -> dict[str, str]:
        return {"a": str(self.a_format), "b": str(self.b_format), "acc": str(self.acc_format)}

    @property
    def parameters(self) -> dict[str, Any]:
        return {"rounding": self.rounding.value, "overflow": self.overflow.value,
                "stages": self.stages}

    @property
    def datapath(self) -> Any:
        """The :class:`simulator.Datapath` this PE computes (exact product, one rounding
        per step into the accumulator)."""
        from simulator import Accumulator, Datapath

        return Datapath(self.a_format, self.b_format,
                        Accumulator(self.acc_format, rounding=self.rounding,
                                    overflow=self.overflow))

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        ta = _hw.unpack(m, self.a_format, self.a.as_value(), "a")
        tb = _hw.unpack(m, self.b_format, self.b.as_value(), "b")
        prod = _hw.multiply(m, ta, tb, "prod")
        en, clear = self.en, self.clear
        if self.stages:
            prod = _register_term(m, prod, "prod_r")
            en, clear = _delay(m, en, 1, "en"), _delay(m, clear, 1, "clear")
        _accumulate(m, self.acc_format, self.acc.as_value(), prod, en, clear, self.rounding,
                    self.overflow)
        return m


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


def _elem_range(fmt: Any) -> tuple[int, int]:
    """(lowest, highest) exponent of an element significand's LSB."""
    if isinstance(fmt, Minifloat):
        lo = (1 if fmt.subnormals else 0) - fmt.bias - fmt.man_bits
        return lo, (1 << fmt.exp_bits) - 1 - fmt.bias - fmt.man_bits
    return fmt.ulp_exp, fmt.ulp_exp


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


# --- 6. bipolar-INT bit-serial PE --------------------------------------------------------

def _offset_bits(fmt: Any, code: Any) -> Any:
    """+-1 plane bits (1: +1): bipolar codes as they are; two's complement with the top
    bit inverted (v = 2s + 1 in bipolar)."""
    if isinstance(fmt, BipolarInt):
        return code
    return Cat(code[:-1], ~code[-1])


def _serial_ports(names: tuple[str, str], fmts: tuple[Any, Any], k: int,
                  result_bits: int) -> dict[str, Any]:
    """Ports of a bit-serial PE: two arrays of k codes, start, busy, done, result."""
    return {names[0]: In(data.ArrayLayout(_hw.layout_of(fmts[0]), k)),
            names[1]: In(data.ArrayLayout(_hw.layout_of(fmts[1]), k)),
            "start": In(1), "busy": Out(1), "done": Out(1), "result": Out(signed(result_bits))}


class BipolarPe(_Pe):
    """Bit-serial bipolar-INT dot product of ``k`` pairs: one bit-plane pair per cycle,
    ``S_i . T_j = k - 2 popcount(s_i xor t_j)`` (XNOR/popcount), shift-accumulated by
    ``i + j``. Two's-complement operands convert losslessly (``v = 2s + 1``) and the
    result converts back, as ``simulator.bipolar_gemm``."""

    kind = "BipolarPe"
    interface = "serial"

    def __init__(self, a: Any = "bipolar4", b: Any = "bipolar4", k: int = 16) -> None:
        self.a_format = _integer(a, "a", bipolar=True)
        self.b_format = _integer(b, "b", bipolar=True)
        for f, p in ((self.a_format, "a"), (self.b_format, "b")):
            if isinstance(f, Integer) and (not f.signed or f.narrow):
                raise TypeError(f"{p} must be a signed (non-narrow) int<n> or bipolar<n>, not {f}")
            if f.bits > 16:
                raise ValueError(f"{p} must have at most 16 bits, not {f.bits}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1024:
            raise ValueError(f"k must be an int in 1..1024, not {k!r}")
        self.k = k
        na, nb = self.a_format.bits, self.b_format.bits
        self.pairs = na * nb
        self.latency = self.pairs + 1
        bound = k * (2**na - 1) * (2**nb - 1)
        self.result_bits = bound.bit_length() + 1
        super().__init__(_serial_ports(("a", "b"), (self.a_format, self.b_format), k,
                                       self.result_bits))

    @property
    def formats(self) -> dict[str, str]:
        return {"a": str(self.a_format), "b": str(self.b_format)}

    @property
    def parameters(self) -> dict[str, Any]:
        return {"k": self.k, "cycles": self.latency}

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        fa, fb, k = self.a_format, self.b_format, self.k
        na, nb = fa.bits, fb.bits
        ra = Signal(na * k, name="a_r")
        rb = Signal(nb * k, name="b_r")
        i = Signal(range(max(na, 2)), name="i")
        j = Signal(range(max(nb, 2)), name="j")
        acc = Signal(signed(self.result_bits + 2), name="acc")
        # plane i of a, plane j of b (k bits each)
        pa = [_offset_bits(fa, ra[n * na:(n + 1) * na]) for n in range(k)]
        pb = [_offset_bits(fb, rb[n * nb:(n + 1) * nb]) for n in range(k)]
        s_i = Signal(k, name="s_i")
        t_j = Signal(k, name="t_j")
        m.d.comb += [s_i.eq(Cat(*[(x >> i)[0] for x in pa])),
                     t_j.eq(Cat(*[(y >> j)[0] for y in pb]))]
        pop = Signal(range(k + 1), name="popcount")
        x_ = s_i ^ t_j
        m.d.comb += pop.eq(_tree_sum(m, [x_[n] for n in range(k)], "pop", signed_=False))
        dot = Signal(signed(_hw.signed_width(-k, k)), name="dot")
        m.d.comb += dot.eq(k - 2 * pop)
        shift = Signal(range(na + nb), name="shift")
        m.d.comb += shift.eq(i + j)
        with m.If(self.start):
            m.d.sync += [ra.eq(self.a.as_value()), rb.eq(self.b.as_value()), i.eq(0), j.eq(0),
                         acc.eq(0), self.busy.eq(1), self.done.eq(0)]
        with m.Elif(self.busy):
            m.d.sync += acc.eq(acc + (dot << shift))
            with m.If(j == nb - 1):
                m.d.sync += j.eq(0)
                with m.If(i == na - 1):
                    m.d.sync += [self.busy.eq(0), self.done.eq(1)]
                with m.Else():
                    m.d.sync += i.eq(i + 1)
            with m.Else():
                m.d.sync += j.eq(j + 1)
        # back to two's complement: sums of the operands' bipolar values
        def bip_sum(fmt: Any, reg: Any, n: int, name: str) -> Any:
            vals = []
            for e in range(k):
                c = reg[e * n:(e + 1) * n]
                u = _offset_bits(fmt, c)
                v = Signal(signed(n + 2), name=f"{name}{e}")
                m.d.comb += v.eq(2 * u.as_unsigned() - ((1 << n) - 1))
                vals.append(v)
            return _tree_sum(m, vals, name)
        res = acc
        ia, ib = isinstance(fa, Integer), isinstance(fb, Integer)
        if ia and ib:
            sa, sb = bip_sum(fa, ra, na, "va"), bip_sum(fb, rb, nb, "vb")
            res = (acc - sa - sb + k) >> 2
        elif ia:
            res = (acc - bip_sum(fb, rb, nb, "vb")) >> 1
        elif ib:
            res = (acc - bip_sum(fa, ra, na, "va")) >> 1
        m.d.comb += self.result.eq(res)
        return m


# --- 7. LUT Tensor Core PE -------------------------------------------------------------

class LutPe(_Pe):
    """LUT Tensor Core style mpGEMM PE for ``groups`` x ``group`` activations and weights.

    After ``start`` the first edge precomputes each group's symmetrized table (the
    2**(group-1) sums ``sum_i s_i x_i`` whose last sign is +1); then one weight bit-plane
    per cycle, most significant first: each group's plane pattern selects an entry (the
    negated complement entry when its last bit is 0), the group sums are added and
    shift-accumulated (``acc = 2 acc + sum``). Two's-complement weights convert back as
    ``(acc - sum x) / 2`` (``sum x`` is each table's all-plus entry). Integers only:
    ``simulator.lut_gemm`` with exact tables."""

    kind = "LutPe"
    interface = "serial"

    def __init__(self, w: Any = "int4", x: Any = "int8", *, group: int = 4,
                 groups: int = 1) -> None:
        self.w_format = _integer(w, "w", bipolar=True)
        self.x_format = _integer(x, "x")
        if isinstance(self.w_format, Integer) and (not self.w_format.signed
                                                   or self.w_format.narrow):
            raise TypeError(f"w must be a signed (non-narrow) int<n> or bipolar<n>, not "
                            f"{self.w_format}")
        if isinstance(group, bool) or not isinstance(group, int) or not 1 <= group <= 8:
            raise ValueError(f"group must be an int in 1..8, not {group!r}")
        if isinstance(groups, bool) or not isinstance(groups, int) or not 1 <= groups <= 64:
            raise ValueError(f"groups must be an int in 1..64, not {groups!r}")
        self.group, self.groups = group, groups
        self.k = group * groups
        nb = self.w_format.bits
        self.latency = nb + 2
        xmax = max(abs(self.x_format.min), abs(self.x_format.max))
        self.entry_bits = _hw.signed_width(-int(xmax) * group, int(xmax) * group)
        bound = int(xmax) * self.k * (2**nb - 1)
        self.result_bits = _hw.signed_width(-bound, bound)
        super().__init__(_serial_ports(("x", "w"), (self.x_format, self.w_format), self.k,
                                       self.result_bits))

    @property
    def formats(self) -> dict[str, str]:
        return {"w": str(self.w_format), "x": str(self.x_format)}

    @property
    def parameters(self) -> dict[str, Any]:
        return {"group": self.group, "groups": self.groups, "cycles": self.latency}

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        g, G, nb = self.group, self.groups, self.w_format.bits
        half = 1 << (g - 1)
        xs = [Signal(self.x_format.bits, name=f"x{i}") for i in range(self.k)]
        rw = Signal(nb * self.k, name="w_r")
        tables = [[Signal(signed(self.entry_bits), name=f"t{gi}_{p}") for p in range(half)]
                  for gi in range(G)]
        phase = Signal(2, name="phase")  # 0 idle, 1 table, 2 planes
        j = Signal(range(max(nb, 2)), name="plane")
        acc = Signal(signed(self.result_bits + 2), name="acc")
        xv = [(x.as_signed() if self.x_format.signed else x.as_unsigned()) for x in xs]
        with m.If(self.start):
            m.d.sync += [xs[i].eq(self.x[i].as_value()) for i in range(self.k)]
            m.d.sync += [rw.eq(self.w.as_value()), phase.eq(1), self.busy.eq(1),
                         self.done.eq(0), acc.eq(0), j.eq(nb - 1)]
        with m.Elif(phase == 1):
            for gi in range(G):
                for p in range(half):
                    pat = p + half
                    terms = [xv[gi * g + i] if (pat >> i) & 1 else -xv[gi * g + i]
                             for i in range(g)]
                    m.d.sync += tables[gi][p].eq(sum(terms[1:], terms[0]))
            m.d.sync += phase.eq(2)
        with m.Elif(phase == 2):
            looks = []
            for gi in range(G):
                bits = Cat(*[_offset_bits(self.w_format, rw[(gi * g + i) * nb:
                                                            (gi * g + i + 1) * nb]).bit_select(
                    j, 1) for i in range(g)])
                top = bits[g - 1]
                idx = Mux(top, bits, ~bits)[: g - 1] if g > 1 else Const(0, 1)
                entry = Signal(signed(self.entry_bits), name=f"look{gi}")
                with m.Switch(idx):
                    for p in range(half):
                        with m.Case(p):
                            m.d.comb += entry.eq(tables[gi][p])
                v = Signal(signed(self.entry_bits + 1), name=f"signed_look{gi}")
                m.d.comb += v.eq(Mux(top, entry, -entry))
                looks.append(v)
            m.d.sync += acc.eq((acc << 1) + _tree_sum(m, looks, "gsum"))
            with m.If(j == 0):
                m.d.sync += [phase.eq(0), self.busy.eq(0), self.done.eq(1)]
            with m.Else():
                m.d.sync += j.eq(j - 1)
        if isinstance(self.w_format, Integer):
            sx = _tree_sum(m, [tables[gi][half - 1] for gi in range(G)], "xsum")
            m.d.comb += self.result.eq((acc - sx) >> 1)
        else:
            m.d.comb += self.result.eq(acc)
        return m


# --- 8. MixPE shift-and-add PE -----------------------------------------------------------

def _grouped(value: Any, parameter: str) -> BlockScaled:
    f = parse(value, parameter=parameter)
    if not isinstance(f, BlockScaled) or not isinstance(f.element, Integer) \
            or isinstance(f.element, FixedPoint):
        raise TypeError(f"{parameter} must be a grouped integer format (int4_g128, ...), not "
                        f"{f} ({type(f).__name__})")
    if f.zero_point:
        raise ValueError(f"{parameter}: zero points ({f}) are not supported by ShiftAddPe; use "
                         "a symmetric grouped format (int4_g128)")
    if not isinstance(f.block_size, int):
        raise ValueError(f"{parameter} must have 1-D groups, not tiles {f.block_size}")
    if not isinstance(f.scale, Minifloat):
        raise TypeError(f"{parameter}: group scales must be minifloats, not {f.scale}")
    if not f.element.signed:
        raise TypeError(f"{parameter}: elements must be signed integers, not {f.element}")
    return f


class ShiftAddPe(_Pe):
    """MixPE-style PE: ``lanes`` activation x weight pairs per cycle multiplied without a
    multiplier (each weight bit selects a shifted activation; the sign bit's is
    subtracted), summed exactly into the group's integer partial sum; on the group's last
    cycle (``last``) the partial sum is multiplied once by the group scale (late
    dequantization) and added into the float accumulator with one rounding, as
    ``simulator.grouped_gemm``."""

    kind = "ShiftAddPe"
    interface = "accumulate"

    def __init__(self, x: Any = "int8", w: Any = "int4_g128", acc: Any = "float32", *,
                 lanes: int = 4, rounding: Any = "nearest_even", overflow: Any = None) -> None:
        self.x_format = _integer(x, "x")
        self.w_format = _grouped(w, "w")
        self.acc_format = _minifloat(acc, "acc")
        _hw.check_output_float(self.acc_format, "acc")
        gs = self.w_format.block_size
        assert isinstance(gs, int)
        if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= 256 \
                or gs % lanes:
            raise ValueError(f"lanes must be an int in 1..256 dividing the group size {gs}, "
                             f"not {lanes!r}")
        self.lanes = lanes
        self.rounding = _rounding(rounding)
        self.overflow = _hw.hw_overflow(self.acc_format, overflow, "overflow")
        self.latency = 1
        el = self.w_format.element
        xmax = max(abs(int(self.x_format.min)), int(self.x_format.max))
        wmax = max(abs(int(el.min)), int(el.max))
        bound = xmax * wmax * gs
        self.psum_bits = _hw.signed_width(-bound, bound)
        super().__init__({
            "x": In(data.ArrayLayout(_hw.layout_of(self.x_format), lanes)),
            "w": In(data.ArrayLayout(_hw.layout_of(el), lanes)),
            "scale": In(_hw.layout_of(self.w_format.scale)),
            "en": In(1), "clear": In(1), "last": In(1),
            "acc": Out(_hw.float_layout(self.acc_format)),
        })

    @property
    def formats(self) -> dict[str, str]:
        return {"x": str(self.x_format), "w": str(self.w_format), "acc": str(self.acc_format),
                "w_element": str(self.w_format.element), "scale": str(self.w_format.scale)}

    @property
    def parameters(self) -> dict[str, Any]:
        return {"lanes": self.lanes, "group": self.w_format.block_size,
                "rounding": self.rounding.value, "overflow": self.overflow.value}

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        nb = self.w_format.element.bits
        prods = []
        for li in range(self.lanes):
            x = self.x[li].as_value()
            xv = x.as_signed() if self.x_format.signed else x.as_unsigned()
            w = self.w[li].as_value()
            parts = [Mux(w[jb], xv << jb, 0) for jb in range(nb - 1)]
            p = Signal(signed(self.x_format.bits + nb + 1), name=f"shiftadd{li}")
            m.d.comb += p.eq(sum(parts, Const(0, signed(2))) - Mux(w[nb - 1], xv << (nb - 1), 0))
            prods.append(p)
        psum = Signal(signed(self.psum_bits), name="psum")
        nxt = Signal(signed(self.psum_bits + 1), name="psum_next")
        m.d.comb += nxt.eq(Mux(self.clear, 0, psum) + _tree_sum(m, prods, "lanes"))
        neg = nxt < 0
        mag = Signal(self.psum_bits + 1, name="psum_mag")
        m.d.comb += mag.eq(Mux(neg, -nxt, nxt))
        term = Term(neg, mag, Const(0, signed(2)), (0, 0), Const(0, 1), Const(0, 1))
        sc = _hw.unpack(m, self.w_format.scale, self.scale.as_value(), "scale")
        deq = _hw.multiply(m, term, sc, "dequant")
        fmt = self.acc_format
        acc = self.acc.as_value()
        base = Signal(fmt.bits, name="acc_base")
        m.d.comb += base.eq(Mux(self.clear, 0, acc))
        summed = _hw.add_round(m, fmt, base, deq, self.rounding, self.overflow, "sum")
        with m.If(self.en):
            with m.If(self.last):
                m.d.sync += [acc.eq(summed), psum.eq(0)]
            with m.Else():
                m.d.sync += psum.eq(nxt)
                with m.If(self.clear):
                    m.d.sync += acc.eq(0)
        with m.Elif(self.clear):
            m.d.sync += [acc.eq(0), psum.eq(0)]
        return m


PE_KINDS: dict[str, type[_Pe]] = {c.kind: c for c in (IntMac, FloatMul, FloatMac, BlockDot,
                                                     Quantizer, BipolarPe, LutPe, ShiftAddPe)}
