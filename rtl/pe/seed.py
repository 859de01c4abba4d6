"""PEs of the seed hardware (:mod:`simulator.hardware`): the bipolar-INT bit-serial
:class:`BipolarPe`, the LUT Tensor Core :class:`LutPe` and the MixPE shift-and-add
:class:`ShiftAddPe`."""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from formats import BipolarInt, BlockScaled, FixedPoint, Integer, Minifloat, parse

from .. import _hw
from .._hw import Term
from ._common import (
    _integer,
    _minifloat,
    _Pe,
    _rounding,
    _tree_sum,
)

__all__ = ["BipolarPe", "LutPe", "ShiftAddPe"]


# --- 6. bipolar-INT bit-serial PE --------------------------------------------------------

def _offset_bits(fmt: Any, code: Any) -> Any:
    """+-1 plane bits (1: +1): bipolar codes as they are; two's complement with the top
    bit inverted (v = 2s + 1 in bipolar)."""
    if isinstance(fmt, BipolarInt):
        return code
    return Cat(code[:-1], ~code[-1])


def _exact_tree(k: int) -> Any:
    """The exact accumulator summing ``k`` products as one adder tree."""
    from simulator import Accumulator

    return Accumulator(None, order="tree", tree_width=k) if k > 1 else Accumulator(None)


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

    @property
    def datapath(self) -> Any:
        """The :class:`simulator.Datapath` this PE computes: one exact dot product of
        ``k`` pairs per operation (``terms=k``, no running sum: an exact adder tree of
        width ``k``), as ``simulator.bipolar_gemm`` with K = k. The bit-serial schedule
        (one plane pair per cycle) is how, not what, it computes."""
        from simulator import Datapath

        return Datapath(self.a_format, self.b_format, _exact_tree(self.k), k=self.k,
                        terms=self.k)

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

    @property
    def datapath(self) -> Any:
        """The :class:`simulator.Datapath` this PE computes: ``a`` = the activations
        ``x``, ``b`` = the weights ``w``; one exact dot product of ``group * groups``
        pairs per operation (``terms``, no running sum), the products of each group of
        ``group`` read from a table (``lut=True``, an exact tree of width ``k = group``),
        as ``simulator.lut_gemm`` with exact tables and K = terms."""
        from simulator import Datapath

        return Datapath(self.x_format, self.w_format, _exact_tree(self.group), k=self.group,
                        terms=self.k, lut=True)

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
        self.lanes, self.group = lanes, gs
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

    @property
    def datapath(self) -> Any:
        """The :class:`simulator.Datapath` this PE computes: ``a`` = ``x``, ``b`` = the
        grouped weights ``w``; each group's products summed exactly (an adder tree as
        wide as the group), scaled once, one rounding into the accumulator, taken
        ``lanes`` products per cycle (``k = lanes``), as ``simulator.grouped_gemm``."""
        from simulator import Accumulator, Datapath

        return Datapath(self.x_format, self.w_format,
                        Accumulator(self.acc_format, rounding=self.rounding,
                                    overflow=self.overflow, order="tree",
                                    tree_width=self.group), k=self.lanes)

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
