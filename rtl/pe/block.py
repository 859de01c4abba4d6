"""The block dot-product PE for MX / NVFP4 / BFP operands: :class:`BlockDot`."""

from __future__ import annotations

import dataclasses
from typing import Any

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from formats import BlockScaled, FixedBase, Minifloat, parse

from .. import _hw
from .._hw import Term
from ._common import (
    Rounder,
    _accumulate,
    _accumulator_options,
    _delay,
    _extra_formats,
    _extra_parameters,
    _minifloat,
    _Pe,
    _product_rounding,
    _promotion,
    _register_term,
    _round_by,
    _rounding,
    _stages,
    _tree_rounding,
    _tree_sum,
)

__all__ = ["BlockDot", "ProductGrid", "product_grid"]


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


@dataclasses.dataclass(frozen=True)
class ProductGrid:
    """Where BlockDot's adder tree holds the element products of ``a`` x ``b``
    (rounded to ``product_format`` first, if given): each a two's-complement integer
    of ``width`` bits on the grid 2**lsb0, below 2**(top + 1); a product's significand
    shifts left by up to ``left`` and right by up to ``right`` bits onto it.

    Exact products are multiples of 2**lsb0 (the smallest product LSB). A rounded
    product is a multiple of the larger of that and the product format's smallest
    subnormal (rounding never lowers the lowest set bit; a saturated product is the
    format's largest value, a multiple of its top ulp) and below 2**(min(emax, top) + 1)
    after a carry; its LSB may lie up to ``man`` bits below the grid (trailing zeros,
    shifted out to the right)."""

    lsb0: int
    top: int
    left: int
    right: int

    @property
    def width(self) -> int:
        return self.top - self.lsb0 + 2


def product_grid(a: Any, b: Any, product_format: Minifloat | None = None) -> ProductGrid:
    """The :class:`ProductGrid` of element formats ``a`` x ``b`` (minifloats, integers or
    fixed point)."""
    (alo, ahi), (blo, bhi) = _hw.lsb_range(a), _hw.lsb_range(b)
    lo, hi = alo + blo, ahi + bhi
    top = hi + _hw.significand_bits(a) + _hw.significand_bits(b) - 1
    if product_format is None:
        return ProductGrid(lo, top, hi - lo, 0)
    f = product_format
    f_lo, f_hi = f.lsb_exp_min, f.lsb_exp_max
    lsb0 = max(f_lo, min(lo, f_hi))
    top = min(f.emax, top + 1)
    return ProductGrid(lsb0, top, max(0, min(f_hi, max(top - f.man_bits, f_lo)) - lsb0),
                       lsb0 - max(f_lo, lsb0 - f.man_bits))


def _fixed_products(m: Module, ta: list[Term], tb: list[Term], grid: ProductGrid, name: str,
                    products: Rounder | None = None) -> tuple[list[Any], Any, Any, Any]:
    """Each product (rounded to ``products.fmt`` first, if given) as a two's-complement
    integer on ``grid``; the NaN flag and the +Inf / -Inf flags of the products."""
    out = []
    lsb0, left_max, right_max = grid.lsb0, grid.left, grid.right
    nan = Const(0, 1)
    pinf = Const(0, 1)
    ninf = Const(0, 1)
    for i, (x, y) in enumerate(zip(ta, tb)):
        p = _hw.multiply(m, x, y, f"{name}{i}")
        v = Signal(signed(grid.width), name=f"{name}{i}_fx")
        if products is None:
            shift = Signal(range(left_max + 1), name=f"{name}{i}_sh")
            m.d.comb += shift.eq((p.lsb - lsb0)[: len(shift)] if left_max else 0)
            mag = (p.mag << shift) if left_max else p.mag
        else:
            p = _round_by(m, products, p, f"{name}{i}_rnd")
            d = Signal(signed(_hw.signed_width(p.lsb_range[0] - lsb0, p.lsb_range[1] - lsb0)),
                       name=f"{name}{i}_d")
            m.d.comb += d.eq(p.lsb - lsb0)
            left = Signal(range(left_max + 1), name=f"{name}{i}_shl")
            right = Signal(range(right_max + 1), name=f"{name}{i}_shr")
            m.d.comb += [left.eq(Mux(d > left_max, left_max, Mux(d > 0, d, 0))),
                         right.eq(Mux(-d > right_max, right_max, Mux(d < 0, -d, 0)))]
            mag = (p.mag << left) >> right
        m.d.comb += v.eq(Mux(p.inf | p.nan, 0, Mux(p.sign, -mag, mag)))
        out.append(v)
        nan = _hw._bit(m, nan | p.nan, f"{name}{i}_anynan")
        pinf = _hw._bit(m, pinf | (p.inf & ~p.sign), f"{name}{i}_anypinf")
        ninf = _hw._bit(m, ninf | (p.inf & p.sign), f"{name}{i}_anyninf")
    return out, nan, pinf, ninf


class BlockDot(_Pe):
    """Block dot-product unit for MX / NVFP4 / BFP: ``k`` element pairs and their two
    scales per cycle. The k products sum exactly in an adder tree (on the grid of the
    smallest product), the sum is multiplied by both scales exactly and added into the
    accumulator with one rounding: ``simulator.Accumulator(acc, order="tree",
    tree_width=k)``. NVFP4's per-tensor FP32 scale is applied once per output, outside
    the unit.

    Parameters
    ----------
    a, b : block formats (``b`` default ``a``) of equal block size; ``acc`` the
        accumulator's minifloat format
    k : element pairs per cycle, dividing the block size (default the block size)
    rounding, overflow : of every accumulator addition (``overflow``: ``acc``'s default)
    stages : 1 registers the scaled block sum first (latency 2)
    chunk, chunk_format : chunked promotion: after every ``chunk`` products (a multiple
        of ``k``: ``chunk / k`` cycles) the partial sum is added nearest-even into a
        wide ``chunk_format`` register (default the simulator's, float32)
    product_format, product_rounding : each element product rounded once to this
        minifloat before the adder tree (``None``: exact products)
    tree_format, tree_rounding : the tree's sum of k products rounded once to this
        minifloat before it is scaled (``k > 1``; ``None``: exact)

    Attributes
    ----------
    a, b : In, arrays of ``k`` element codes (element 0 in the low bits)
    sa, sb : In, the blocks' scale codes
    en, clear : In(1); ``clear`` with ``en`` starts a new sum, ``clear`` alone empties it
    acc : Out, a code of ``acc`` -- or, with ``chunk``, of ``chunk_format``: the wide
        sum with the unfinished chunk promoted into it, i.e. ``simulator.gemm`` of the
        products so far
    """

    kind = "BlockDot"
    interface = "accumulate"

    def __init__(self, a: Any = "mxfp8_e4m3", acc: Any = "float32", *, b: Any = None,
                 k: int | None = None, rounding: Any = "nearest_even", overflow: Any = None,
                 stages: int = 0, chunk: int | None = None, chunk_format: Any = None,
                 product_format: Any = None, product_rounding: Any = "nearest_even",
                 tree_format: Any = None, tree_rounding: Any = "nearest_even") -> None:
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
        self.promotion = _promotion(chunk, chunk_format, k)
        self.products = _product_rounding(product_format, product_rounding)
        self.tree = _tree_rounding(tree_format, tree_rounding, k)
        self.latency = 1 + self.stages
        ea, eb = self.a_format.element, self.b_format.element
        out = self.promotion.fmt if self.promotion else self.acc_format
        super().__init__({
            "a": In(data.ArrayLayout(_hw.layout_of(ea), k)),
            "b": In(data.ArrayLayout(_hw.layout_of(eb), k)),
            "sa": In(_hw.layout_of(self.a_format.scale)),
            "sb": In(_hw.layout_of(self.b_format.scale)),
            "en": In(1), "clear": In(1), "acc": Out(_hw.float_layout(out)),
        })

    @property
    def formats(self) -> dict[str, str]:
        tree = {"tree_format": str(self.tree.fmt)} if self.tree else {}
        return {"a": str(self.a_format), "b": str(self.b_format), "acc": str(self.acc_format),
                "a_element": str(self.a_format.element), "b_element": str(self.b_format.element),
                "sa": str(self.a_format.scale), "sb": str(self.b_format.scale),
                **_extra_formats(self.promotion, self.products), **tree}

    @property
    def datapath(self) -> Any:
        """The :class:`simulator.Datapath` this PE computes: ``k`` element pairs per cycle
        (products exact or rounded to ``product_format``) summed exactly (an adder tree
        of width ``k``, its sum rounded to ``tree_format`` if given; ``k = 1`` is
        sequential), scaled, one rounding into the accumulator, chunks promoted into
        ``chunk_format``."""
        from simulator import Accumulator, Datapath

        tree: dict[str, Any] = {"order": "sequential"}
        if self.k > 1:
            tree = {"order": "tree", "tree_width": self.k}
            if self.tree is not None:
                tree.update(tree_format=self.tree.fmt, tree_rounding=self.tree.rounding)
        return Datapath(self.a_format, self.b_format,
                        Accumulator(self.acc_format, rounding=self.rounding,
                                    overflow=self.overflow, **tree,
                                    **_accumulator_options(self.promotion, self.products)))

    @property
    def parameters(self) -> dict[str, Any]:
        tree = {"tree_rounding": self.tree.rounding.value} if self.tree else {}
        return {"k": self.k, "rounding": self.rounding.value, "overflow": self.overflow.value,
                "stages": self.stages, **_extra_parameters(self.promotion, self.products),
                **tree}

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        ea, eb = self.a_format.element, self.b_format.element
        ta = [_hw.unpack(m, ea, self.a[i].as_value(), f"a{i}") for i in range(self.k)]
        tb = [_hw.unpack(m, eb, self.b[i].as_value(), f"b{i}") for i in range(self.k)]
        grid = product_grid(ea, eb, self.products.fmt if self.products else None)
        fixed, nan, pinf, ninf = _fixed_products(m, ta, tb, grid, "p", self.products)
        lsb0 = grid.lsb0
        total = _tree_sum(m, fixed, "tree")
        neg = total < 0
        mag = Signal(len(total), name="block_mag")
        m.d.comb += mag.eq(Mux(neg, -total, total))
        both = pinf & ninf
        block = Term(Mux(pinf | ninf, ninf, neg), mag, Const(lsb0, signed(
            _hw.signed_width(lsb0, lsb0))), (lsb0, lsb0), nan | both, (pinf | ninf) & ~both)
        block = _round_by(m, self.tree, block, "tree_rnd")
        sa = _hw.unpack(m, self.a_format.scale, self.sa.as_value(), "sa")
        sb = _hw.unpack(m, self.b_format.scale, self.sb.as_value(), "sb")
        term = _hw.multiply(m, _hw.multiply(m, block, sa, "bsa"), sb, "bsab")
        en, clear = self.en, self.clear
        if self.stages:
            term = _register_term(m, term, "term_r")
            en, clear = _delay(m, en, 1, "en"), _delay(m, clear, 1, "clear")
        _accumulate(m, self.acc_format, self.acc.as_value(), term, en, clear, self.rounding,
                    self.overflow, self.promotion)
        return m
