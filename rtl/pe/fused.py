"""The fused multi-term adder PE, as tensor cores sum: :class:`FusedDot`."""

from __future__ import annotations

import dataclasses
from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from formats import Overflow, Rounding

from .. import _hw
from .._hw import Term
from ._common import (
    _accumulate,
    _delay,
    _extra_formats,
    _extra_parameters,
    _minifloat,
    _Pe,
    _promotion,
    _register_term,
    _rounding,
    _stages,
    _tree_sum,
)

__all__ = ["FusedDot"]

#: float64's smallest normal exponent: the kernel's alignment grid never goes below it
_GRID_MIN = -1022


@dataclasses.dataclass
class _Aligned:
    """A term of the fused adder: its exact value and the exponent it aligns by (its
    own ``floor(log2|x|)``, or its operands' exponents added); ``top`` bounds the
    magnitude of the term on its grid: ``|x| < 2**(exp + top)``."""

    term: Term
    exp: Value
    exp_range: tuple[int, int]
    top: int


def _max_tree(m: Module, values: list[Any], shape: Any, name: str) -> Any:
    """The largest of signed ``values`` (a balanced tree of compare-selects)."""
    level = 0
    while len(values) > 1:
        nxt = []
        for i in range(0, len(values) - 1, 2):
            s = Signal(shape, name=f"{name}_l{level}_{i // 2}")
            x, y = values[i], values[i + 1]
            m.d.comb += s.eq(Mux(x > y, x, y))
            nxt.append(s)
        if len(values) % 2:
            nxt.append(values[-1])
        values = nxt
        level += 1
    return values[0]


class FusedDot(_Pe):
    """Fused multi-term adder (``simulator.Accumulator(order="fused")``): ``n`` products
    of scalar minifloats per cycle, summed with the accumulator in one fused step, as
    tensor cores sum (e.g. ``Accumulator.named("h100_fp8_fast_accum")``:
    ``FusedDot("e4m3fn", "e4m3fn", "e8m13", n=32, align_bits=13,
    rounding="toward_zero", align_from="exponents")``).

    Each enabled cycle takes the accumulator (with ``align_acc``) and the ``n`` exact
    products, finds ``E``, the largest exponent (``floor(log2|x|)``) among the nonzero
    terms -- a product's own, or with ``align_from="exponents"`` the sum of its
    operands' exponents, each at least its format's ``emin``; the accumulator's own --
    keeps each term's bits down to ``2**(E - align_bits)`` (the bits below rounded by
    ``align_rounding``: truncation, ``toward_zero``, by default), sums the aligned terms
    exactly and rounds the sum once into ``acc`` (``rounding``; overflow ``overflow``,
    with ``inf_on_overflow`` +-Inf in every mode). An aligned sum of zero is +0. A step
    with a NaN or Inf term or with no nonzero term gives the IEEE sum of its terms (NaN
    for NaN or Inf - Inf, else +-Inf; an all-zero step is -0 only if every term is -0,
    and only where overflow is ``inf`` with a nearest ``rounding`` or
    ``inf_on_overflow``: elsewhere +0, as ``simulator.gemm`` rounds an exact -0).
    ``align_acc=False``: the products alone are aligned and summed exactly, and that sum
    is added into the accumulator with one rounding. Bit for bit ``simulator.gemm`` of
    :attr:`datapath`; a step of fewer products (K not a multiple of ``n``) is this step
    with the missing products -0 (a zero operand of the other product's sign).

    Parameters
    ----------
    a, b : the operands' minifloat formats
    acc : the accumulator's format (a signed minifloat with subnormals)
    n : products per cycle and per fused step (``Accumulator(tree_width=n)``)
    align_bits : the alignment window w (``Accumulator(align_bits=w)``; the simulator's
        range for ``n``)
    rounding, overflow : of each step's sum into ``acc`` (``overflow``: ``acc``'s default)
    align_rounding : of the bits of a term below the window (deterministic modes)
    align_acc : the accumulator is one of the aligned terms (default) or added after
    align_from : ``"value"`` or ``"exponents"`` (see above)
    inf_on_overflow : a sum beyond ``acc``'s range is +-Inf in every rounding mode (needs
        overflow ``inf``)
    stages : 1 registers the products first (latency 2)
    chunk, chunk_format : chunked promotion: after every ``chunk`` products (a multiple
        of ``n``: ``chunk / n`` cycles) the partial sum is added nearest-even into a
        wide ``chunk_format`` register (default the simulator's, float32) and restarts
        from +0 (``h100_fp8_scaled_mm``: ``chunk=128``)

    Attributes
    ----------
    a, b : In, arrays of ``n`` operand codes (element 0 in the low bits)
    en, clear : In(1); ``clear`` with ``en`` starts a new sum, ``clear`` alone empties it
    acc : Out, a code of ``acc`` -- or, with ``chunk``, of ``chunk_format``: the wide
        sum with the unfinished chunk promoted into it, i.e. ``simulator.gemm`` of the
        products so far

    Raises
    ------
    TypeError
        Operands or accumulator that are not minifloats, an accumulator without
        subnormals or sign, flags that are not bools.
    ValueError
        ``n``, ``align_bits``, ``chunk`` or ``stages`` out of range, stochastic rounding,
        overflow ``error``, ``inf_on_overflow`` without overflow ``inf``, an unknown
        ``align_from``.
    """

    kind = "FusedDot"
    interface = "accumulate"

    def __init__(self, a: Any = "e4m3fn", b: Any = "e4m3fn", acc: Any = "float32", *,
                 n: int = 32, align_bits: int = 13, rounding: Any = "nearest_even",
                 overflow: Any = None, align_rounding: Any = "toward_zero",
                 align_acc: bool = True, align_from: str = "value",
                 inf_on_overflow: bool = False, stages: int = 0, chunk: int | None = None,
                 chunk_format: Any = None) -> None:
        from simulator import Accumulator

        self.a_format, self.b_format = _minifloat(a, "a"), _minifloat(b, "b")
        self.acc_format = _minifloat(acc, "acc")
        _hw.check_output_float(self.acc_format, "acc")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 256:
            raise ValueError(f"n must be an int in 1..256, not {n!r}")
        self.n = n
        self.rounding = _rounding(rounding)
        self.align_rounding = _rounding(align_rounding, "align_rounding")
        self.overflow = _hw.hw_overflow(self.acc_format, overflow, "overflow")
        for flag, value in (("align_acc", align_acc), ("inf_on_overflow", inf_on_overflow)):
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be a bool, not {value!r}")
        if align_from not in ("value", "exponents"):
            raise ValueError(f"align_from must be 'value' or 'exponents', not {align_from!r}")
        self.align_acc, self.align_from = align_acc, align_from
        self.inf_on_overflow = inf_on_overflow
        self.stages = _stages(stages, 1)
        self.promotion = _promotion(chunk, chunk_format, n)
        # the simulator's own checks of the window and the overflow flag
        chunked: dict[str, Any] = {} if self.promotion is None else {
            "chunk": self.promotion.chunk, "chunk_format": self.promotion.fmt}
        self.accumulator = Accumulator(
            self.acc_format, rounding=self.rounding, overflow=self.overflow, order="fused",
            tree_width=n, align_bits=align_bits, align_rounding=self.align_rounding,
            align_acc=align_acc, align_from=align_from, inf_on_overflow=inf_on_overflow,
            **chunked)
        self.align_bits = align_bits
        self.latency = 1 + self.stages
        out = self.promotion.fmt if self.promotion else self.acc_format
        super().__init__({
            "a": In(data.ArrayLayout(_hw.float_layout(self.a_format), n)),
            "b": In(data.ArrayLayout(_hw.float_layout(self.b_format), n)),
            "en": In(1), "clear": In(1), "acc": Out(_hw.float_layout(out)),
        })

    @property
    def formats(self) -> dict[str, str]:
        return {"a": str(self.a_format), "b": str(self.b_format), "acc": str(self.acc_format),
                **_extra_formats(self.promotion, None)}

    @property
    def parameters(self) -> dict[str, Any]:
        return {"n": self.n, "align_bits": self.align_bits, "rounding": self.rounding.value,
                "overflow": self.overflow.value, "align_rounding": self.align_rounding.value,
                "align_acc": self.align_acc, "align_from": self.align_from,
                "inf_on_overflow": self.inf_on_overflow, "stages": self.stages,
                **_extra_parameters(self.promotion, None)}

    @property
    def datapath(self) -> Any:
        """The :class:`simulator.Datapath` this PE computes: the fused adder of ``n``
        products per step (``order="fused"``), one step per cycle (``k = n``)."""
        from simulator import Datapath

        return Datapath(self.a_format, self.b_format, self.accumulator, k=self.n)

    # --- the datapath --------------------------------------------------------------------

    def _products(self, m: Module) -> list[_Aligned]:
        """The exact products and the exponents they align by."""
        fa, fb = self.a_format, self.b_format
        out = []
        for i in range(self.n):
            ta = _hw.unpack(m, fa, self.a[i].as_value(), f"a{i}")
            tb = _hw.unpack(m, fb, self.b[i].as_value(), f"b{i}")
            p = _hw.multiply(m, ta, tb, f"p{i}")
            if self.align_from == "exponents":
                # max(floor(log2|x|), emin) of a minifloat is its significand LSB's
                # exponent plus man_bits (subnormals sit in the emin binade)
                lo = ta.lsb_range[0] + fa.man_bits + tb.lsb_range[0] + fb.man_bits
                hi = ta.lsb_range[1] + fa.man_bits + tb.lsb_range[1] + fb.man_bits
                e = Signal(signed(_hw.signed_width(lo, hi)), name=f"p{i}_eops")
                m.d.comb += e.eq(ta.lsb + fa.man_bits + tb.lsb + fb.man_bits)
                # significands in [1, 2) each: the product lies below 2**(e + 2)
                out.append(_Aligned(p, e, (lo, hi), 2))
            else:
                out.append(self._own_exponent(m, p, f"p{i}"))
        return out

    @staticmethod
    def _own_exponent(m: Module, t: Term, name: str) -> _Aligned:
        """``t`` with its own exponent ``floor(log2|t|)`` (its leading one's)."""
        lo, hi = t.lsb_range[0], t.lsb_range[1] + t.width - 1
        e = Signal(signed(_hw.signed_width(lo, hi)), name=f"{name}_e")
        lz = _hw.lzc(m, t.mag, f"{name}_lz")
        m.d.comb += e.eq(t.lsb + (t.width - 1) - lz)
        return _Aligned(t, e, (lo, hi), 1)

    def _align(self, m: Module, x: _Aligned, E: Value, e_range: tuple[int, int],
               name: str) -> Value:
        """``x`` on the grid ``2**(E - w)`` (``align_rounding``), as a signed integer."""
        t, w = x.term, self.align_bits
        # mag * 2**(lsb - (E - w)) = (mag << w) >> (E - lsb), E - lsb >= 0 for a nonzero
        # term; a zero term's shift is clamped (it adds nothing)
        Z = Cat(Const(0, w + 1), t.mag)  # (mag << w) << 1: the guard bit below
        ZW = len(Z)
        r_lo, r_hi = e_range[0] - t.lsb_range[1], e_range[1] - t.lsb_range[0]
        r_full = Signal(signed(_hw.signed_width(r_lo, r_hi)), name=f"{name}_rraw")
        m.d.comb += r_full.eq(E - t.lsb)
        rmax = ZW  # everything below the grid: q = 0, the guard bit 0
        r = Signal(range(rmax + 1), name=f"{name}_r")
        clamped = Mux(r_full > rmax, rmax, r_full[: len(r)])
        m.d.comb += r.eq(Mux(r_full < 0, 0, clamped) if r_lo < 0 else clamped)
        # |x| < 2**(exp + top) <= 2**(E + top): below 2**(w + top) on the grid, so
        # w + top bits hold it and one more its rounding carry
        qw = w + x.top + 1
        q = Signal(qw, name=f"{name}_q")
        m.d.comb += q.eq((Z >> (r + 1))[:qw])
        mode = self.align_rounding
        if mode is Rounding.TOWARD_ZERO:
            mag: Value = q
        else:
            guard = (Z >> r)[0]
            ones = Const((1 << ZW) - 1, ZW)
            sticky = (Z & ~(ones << r)[:ZW]).any()
            inc = _hw._round_increment(mode, t.sign, q[0], guard, sticky)
            mag = Signal(qw, name=f"{name}_qr")
            m.d.comb += mag.eq(q + inc)
        v = Signal(signed(qw + 1), name=f"{name}_al")
        m.d.comb += v.eq(Mux(t.sign, -mag, mag))
        return v

    @staticmethod
    def _specials(m: Module, terms: list[Term], name: str) -> tuple[Value, Value, Value]:
        """(NaN, Inf, Inf's sign) of the IEEE sum of ``terms``: NaN for a NaN or +Inf
        and -Inf, else an Inf is the sum."""
        nan = Const(0, 1)
        pinf = Const(0, 1)
        ninf = Const(0, 1)
        for t in terms:
            nan = nan | t.nan
            pinf = pinf | (t.inf & ~t.sign)
            ninf = ninf | (t.inf & t.sign)
        is_nan = _hw._bit(m, nan | (pinf & ninf), f"{name}_nan")
        is_inf = _hw._bit(m, (pinf | ninf) & ~is_nan, f"{name}_inf")
        return is_nan, is_inf, ninf

    def _fused_sum(self, m: Module, terms: list[_Aligned], name: str,
                   signed_zero: bool) -> Term:
        """The exact sum of ``terms`` aligned to the largest exponent among the nonzero
        ones, as a Term (NaN / Inf by the IEEE sum where a term is one). A zero sum is
        +0, or with ``signed_zero`` -0 where every term is -0 (float64's IEEE sum of an
        all-zero step; an aligned sum that cancels is +0)."""
        w = self.align_bits
        e_lo = min(x.exp_range[0] for x in terms)
        e_hi = max(x.exp_range[1] for x in terms)
        shape = signed(_hw.signed_width(e_lo, e_hi))
        masked = []
        for i, x in enumerate(terms):
            s = Signal(shape, name=f"{name}{i}_emask")
            m.d.comb += s.eq(Mux(x.term.mag != 0, x.exp, e_lo))
            masked.append(s)
        E = Signal(shape, name=f"{name}_E")
        m.d.comb += E.eq(_max_tree(m, masked, shape, f"{name}_emax"))
        if e_lo - w < _GRID_MIN:  # the kernel's grid stops at float64's smallest normal
            Ec = Signal(signed(_hw.signed_width(_GRID_MIN + w, e_hi)), name=f"{name}_Eg")
            m.d.comb += Ec.eq(Mux(E - w < _GRID_MIN, _GRID_MIN + w, E))
            E, e_lo = Ec, _GRID_MIN + w
        aligned = [self._align(m, x, E, (e_lo, e_hi), f"{name}{i}") for i, x in enumerate(terms)]
        total = _tree_sum(m, aligned, f"{name}_tree")
        neg = total < 0
        mag = Signal(len(total), name=f"{name}_mag")
        m.d.comb += mag.eq(Mux(neg, -total, total))
        lsb = Signal(signed(_hw.signed_width(e_lo - w, e_hi - w)), name=f"{name}_lsb")
        m.d.comb += lsb.eq(E - w)
        nan, inf, ninf = self._specials(m, [x.term for x in terms], name)
        zero_sign: Value = Const(0, 1)
        if signed_zero:
            all_zero = Const(1, 1)
            all_neg = Const(1, 1)
            for x in terms:
                all_zero = all_zero & (x.term.mag == 0)
                all_neg = all_neg & x.term.sign
            zero_sign = _hw._bit(m, all_zero & all_neg, f"{name}_zsign")
        sign = Mux(inf, ninf, Mux(mag == 0, zero_sign, neg))
        return Term(_hw._bit(m, sign, f"{name}_sign"), mag, lsb, (e_lo - w, e_hi - w),
                    nan, inf)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        products = self._products(m)
        en, clear = self.en, self.clear
        if self.stages:
            regs = []
            for i, x in enumerate(products):
                e = Signal(x.exp.shape(), name=f"p{i}_exp_r")
                m.d.sync += e.eq(x.exp)
                regs.append(_Aligned(_register_term(m, x.term, f"p{i}_r"), e, x.exp_range,
                                     x.top))
            products = regs
            en, clear = _delay(m, en, 1, "en"), _delay(m, clear, 1, "clear")
        fmt, mode, policy = self.acc_format, self.rounding, self.overflow
        inf_always = self.inf_on_overflow
        if self.align_acc:
            # simulator.gemm rounds an all-zero step's IEEE sum -0 to -0 only where
            # overflow goes to Inf in a nearest mode (or with inf_on_overflow); its rounder
            # reads an exact -0 as +0 under the other policies and modes
            keep = inf_always or (policy is Overflow.INF and mode in (
                Rounding.NEAREST_EVEN, Rounding.NEAREST_AWAY))

            def step(m: Module, base: Value) -> Value:
                acc = self._own_exponent(m, _hw.unpack(m, fmt, base, "accv"), "accv")
                s = self._fused_sum(m, [acc, *products], "fs", signed_zero=keep)
                return _hw.round_to(m, fmt, s, mode, policy, "fs_rnd", inf_always)
        else:
            # the products' sum starts from +0 (the simulator's float64 sum)
            psum = self._fused_sum(m, products, "fs", signed_zero=False)

            def step(m: Module, base: Value) -> Value:
                acc = _hw.unpack(m, fmt, base, "accv")
                s = _hw.add_terms(m, acc, psum, mode, fmt.precision, "sum")
                return _hw.round_to(m, fmt, s, mode, policy, "sum_rnd", inf_always)

        # a step the products make NaN: the invalid flag of an accumulator without NaN
        # (which keeps the accumulator's own NaN)
        nan = Const(0, 1) if fmt.has_nan else \
            self._specials(m, [x.term for x in products], "pflag")[0]
        flag = Term(Const(0, 1), Const(0, 1), Const(0, 1), (0, 0), nan, Const(0, 1))
        _accumulate(m, fmt, self.acc.as_value(), flag, en, clear, mode, policy,
                    self.promotion, step)
        return m
