"""The accumulator model: a frozen description of how a datapath sums products.

An :class:`Accumulator` holds numbers only (formats, rounding, order, widths); how the
sum is computed (numba kernels, BLAS fast paths) is decided in :mod:`simulator.gemm`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from formats import Choice, FixedBase, Format, Minifloat, Overflow, Rounding, parse

__all__ = ["Accumulator", "Order"]


class Order(Choice):
    """The order in which addends enter the accumulator."""

    #: acc = round(acc + x_j) for j = 0, 1, ... along K, starting from +0
    SEQUENTIAL = "sequential"
    #: a balanced binary tree: level by level, adjacent pairs summed and rounded (an odd
    #: last addend moves up unchanged), as pairwise summation
    PAIRWISE = "pairwise"
    #: a hardware adder tree: groups of ``tree_width`` products summed exactly (or rounded
    #: once to ``tree_format``), each group sum then added sequentially into the accumulator
    TREE = "tree"
    #: a fused multi-term adder, as tensor cores sum: each step takes the accumulator and
    #: the next ``tree_width`` products, aligns them to the largest exponent among them
    #: within an ``align_bits``-bit window (bits below it shifted out with
    #: ``align_rounding``: truncation by default), sums the aligned terms exactly and
    #: rounds the sum once into the accumulator (``rounding``)
    FUSED = "fused"


def _format(value: Any, parameter: str) -> Format | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "exact":
        return None
    fmt = parse(value, parameter=parameter)
    if not isinstance(fmt, Format):
        raise ValueError(f"{parameter} must be a scalar format, not the block format {fmt}")
    return fmt


def _deterministic(value: Any, parameter: str) -> Rounding:
    mode = Rounding.coerce(value, parameter)
    if mode is Rounding.STOCHASTIC:
        raise ValueError(f"{parameter} must be a deterministic rounding mode, not 'stochastic' "
                         "(only the accumulator's own additions round stochastically)")
    return mode


def _check_float(fmt: Format, parameter: str) -> None:
    """A minifloat the kernels can round to exactly (float64 round-to-odd argument)."""
    if not isinstance(fmt, Minifloat):
        return
    if not fmt.signed:
        raise ValueError(f"{parameter} must be a signed format, not {fmt}")
    if not fmt.subnormals:
        raise ValueError(f"{parameter} must have subnormals (a zero), not {fmt}")
    if str(fmt) == "float64":
        return
    if fmt.man_bits > 50:
        raise ValueError(f"{parameter} {fmt} has {fmt.man_bits} mantissa bits; sums round "
                         "exactly through float64 for at most 50 (or float64 itself)")
    if fmt.lsb_exp_min < -1022 or fmt.emax > 1022:
        raise ValueError(f"{parameter} {fmt} reaches beyond float64's normal range "
                         "(smallest subnormal must be >= 2**-1022, emax <= 1022)")


@dataclasses.dataclass(frozen=True)
class Accumulator:
    """How a datapath sums products: numbers only.

    Parameters
    ----------
    format : the accumulator's format: a signed :class:`~formats.Minifloat` with
        subnormals and at most 50 mantissa bits (or ``float64``, nearest-even only), an
        :class:`~formats.Integer` / :class:`~formats.FixedPoint` of at most 62 bits, or
        ``None`` / ``"exact"`` (the exact sum, returned correctly rounded to float64)
    rounding : rounding of every accumulator addition (any :class:`~formats.Rounding`;
        stochastic needs ``seed``). Integer accumulators take integer products and never
        round; their ``rounding`` must stay nearest-even.
    overflow : what a sum beyond the format's range becomes; default the format's own
        (IEEE: Inf, ``fn``: NaN, finite formats: saturate; integers: ``wrap``).
        ``error`` raises naming the output element and step.
    order : :class:`Order` — ``sequential`` (default), ``pairwise`` or ``tree``
    tree_width : products per adder-tree group (``order="tree"``) or per step of the
        fused adder (``order="fused"``)
    tree_format : format each group sum is rounded to once (``tree_rounding``) before it
        enters the accumulator; ``None``: the group sum is exact
    chunk : chunked promotion: after every ``chunk`` products the accumulator's partial sum
        is added (nearest-even) into a wider ``chunk_format`` accumulator and reset to 0
    chunk_format : the wide accumulator of chunked promotion (default float32)
    product_format : ``None``: products enter exact (fused); else each product is first
        rounded to this format with ``product_rounding``
    align_bits : ``order="fused"``: the window's width w: each term keeps its bits down
        to 2**(E - w), E the largest exponent (floor(log2|x|)) among the step's nonzero
        terms; w + ceil(log2(tree_width + 2)) <= 52 (the aligned sum exact in float64)
    align_rounding : how a term's bits below the window go (any deterministic mode;
        default ``toward_zero``: truncation, as tensor cores shift out)
    align_acc : ``True`` (default): the accumulator is one of the aligned terms (the
        step is one fused (n+1)-term addition, rounded once); ``False``: the products
        alone are aligned and summed exactly, then added into the accumulator
    align_from : ``"value"`` (default): a product's exponent is its own;
        ``"exponents"``: the sum of its operands' exponents (each at least its format's
        emin), as a multiplier that aligns before it normalizes (a product of
        significands in [2, 4) then keeps one bit more); scalar minifloat operands only
    inf_on_overflow : a sum beyond the format's range becomes +-Inf in every rounding
        mode (as tensor cores do; IEEE's directed modes give the largest finite value);
        needs ``overflow="inf"`` (the format's default for IEEE-style formats)
    seed : int seed of the counter-based random stream of stochastic rounding
    rand_bits : random bits per stochastic rounding (default: 50 - mantissa bits, the most
        float64 intermediate sums keep exact)
    """

    format: Any = "float32"
    rounding: Any = Rounding.NEAREST_EVEN
    overflow: Any = None
    order: Any = Order.SEQUENTIAL
    tree_width: int | None = None
    tree_format: Any = None
    tree_rounding: Any = Rounding.NEAREST_EVEN
    chunk: int | None = None
    chunk_format: Any = "float32"
    product_format: Any = None
    product_rounding: Any = Rounding.NEAREST_EVEN
    align_bits: int | None = None
    align_rounding: Any = Rounding.TOWARD_ZERO
    align_acc: bool = True
    align_from: str = "value"
    inf_on_overflow: bool = False
    seed: int | None = None
    rand_bits: int | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        fmt = _format(self.format, "format")
        put(self, "format", fmt)
        if fmt is not None and not isinstance(fmt, (Minifloat, FixedBase)):
            raise ValueError(f"format must be a Minifloat, Integer, FixedPoint or 'exact', "
                             f"not {fmt} ({type(fmt).__name__})")
        if fmt is not None:
            _check_float(fmt, "format")
        if isinstance(fmt, FixedBase):
            if fmt.bits > 62:
                raise ValueError(f"format {fmt} has {fmt.bits} bits; integer accumulators "
                                 "take at most 62")
            if not fmt.signed:
                raise ValueError(f"format must be signed, not {fmt}")
        mode = Rounding.coerce(self.rounding, "rounding")
        put(self, "rounding", mode)
        if isinstance(fmt, FixedBase) and mode is not Rounding.NEAREST_EVEN:
            raise ValueError("rounding applies to floating-point accumulators; integer "
                             "accumulators add integer products exactly (leave rounding "
                             "'nearest_even' and set product_format to round products)")
        if fmt is not None and str(fmt) == "float64" and mode is not Rounding.NEAREST_EVEN:
            raise ValueError("a float64 accumulator supports rounding 'nearest_even' only")
        if self.overflow is None:
            policy = Overflow.WRAP if isinstance(fmt, FixedBase) else (
                fmt.default_overflow if fmt is not None else None)
        else:
            if fmt is None:
                raise ValueError("overflow does not apply to the exact accumulator")
            policy = fmt._policy(self.overflow)
        put(self, "overflow", policy)
        if not isinstance(self.inf_on_overflow, bool):
            raise TypeError(f"inf_on_overflow must be a bool, not {self.inf_on_overflow!r}")
        if self.inf_on_overflow and policy is not Overflow.INF:
            raise ValueError(f"inf_on_overflow needs overflow='inf', not "
                             f"{policy.value if policy else None!r} ({fmt or 'exact'})")
        order = Order.coerce(self.order, "order")
        put(self, "order", order)
        if order in (Order.TREE, Order.FUSED):
            if (isinstance(self.tree_width, bool) or not isinstance(self.tree_width, int)
                    or self.tree_width < 1):
                raise ValueError(f"tree_width must be a positive int with order "
                                 f"'{order.value}', not {self.tree_width!r}")
        elif self.tree_width is not None or self.tree_format is not None:
            raise ValueError("tree_width and tree_format need order='tree' (tree_width: "
                             "or 'fused')")
        if order is Order.FUSED:
            if not isinstance(fmt, Minifloat) or str(fmt) == "float64":
                raise ValueError(f"order 'fused' rounds each step's sum into a "
                                 f"floating-point accumulator: format must be a Minifloat "
                                 f"other than float64, not {fmt or 'exact'}")
            if self.tree_format is not None:
                raise ValueError("tree_format applies to order='tree'; the fused adder "
                                 "rounds each step once, into the accumulator")
            # aligned terms below 2**(E+1) (2**(E+2) for products aligned by their
            # operands' exponents), n + 1 of them: the sum exact in float64
            wide_p = 2 if self.align_from == "exponents" else 1
            top = 52 - math.ceil(math.log2(wide_p * (self.tree_width + 1) + 1))  # type: ignore[operator]
            ab = self.align_bits
            if isinstance(ab, bool) or not isinstance(ab, int) or not 1 <= ab <= top:
                raise ValueError(f"align_bits (the fused adder's window) must be an int in "
                                 f"1..{top} for tree_width {self.tree_width}, not {ab!r}")
            if not isinstance(self.align_acc, bool):
                raise TypeError(f"align_acc must be a bool, not {self.align_acc!r}")
            if self.align_from not in ("value", "exponents"):
                raise ValueError(f"align_from must be 'value' or 'exponents', not "
                                 f"{self.align_from!r}")
        elif (self.align_bits is not None or self.align_acc is not True
              or self.align_from != "value"):
            raise ValueError("align_bits, align_acc and align_from need order='fused'")
        put(self, "align_rounding", _deterministic(self.align_rounding, "align_rounding"))
        if order is not Order.FUSED and self.align_rounding is not Rounding.TOWARD_ZERO:
            raise ValueError("align_rounding needs order='fused'")
        tf = _format(self.tree_format, "tree_format")
        if tf is not None:
            if not isinstance(tf, Minifloat):
                raise ValueError(f"tree_format must be a Minifloat, not {tf}")
            _check_float(tf, "tree_format")
        put(self, "tree_format", tf)
        put(self, "tree_rounding", _deterministic(self.tree_rounding, "tree_rounding"))
        if self.chunk is not None:
            if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk < 1:
                raise ValueError(f"chunk must be a positive int or None, not {self.chunk!r}")
            if fmt is None or isinstance(fmt, FixedBase):
                raise ValueError("chunk (promotion to a wider accumulator) needs a "
                                 "floating-point accumulator format")
            if order in (Order.TREE, Order.FUSED) and self.chunk % self.tree_width:  # type: ignore[operator]
                raise ValueError(f"chunk ({self.chunk}) must be a multiple of tree_width "
                                 f"({self.tree_width})")
        cf = _format(self.chunk_format, "chunk_format")
        if cf is None or not isinstance(cf, Minifloat):
            raise ValueError(f"chunk_format must be a Minifloat, not {self.chunk_format!r}")
        _check_float(cf, "chunk_format")
        put(self, "chunk_format", cf)
        pf = _format(self.product_format, "product_format")
        if pf is not None:
            if not isinstance(pf, (Minifloat, FixedBase)):
                raise ValueError(f"product_format must be a Minifloat, Integer or FixedPoint, "
                                 f"not {pf}")
            _check_float(pf, "product_format")
        put(self, "product_format", pf)
        put(self, "product_rounding",
            _deterministic(self.product_rounding, "product_rounding"))
        if mode is Rounding.STOCHASTIC:
            if self.seed is None or isinstance(self.seed, bool) or not isinstance(self.seed, int):
                raise ValueError("stochastic accumulator rounding needs seed= an int "
                                 "(the counter-based random stream is reproducible)")
            assert isinstance(fmt, Minifloat)
            top = 50 - fmt.man_bits
            rb = top if self.rand_bits is None else self.rand_bits
            if isinstance(rb, bool) or not isinstance(rb, int) or not 1 <= rb <= top:
                raise ValueError(f"rand_bits must be an int in 1..{top} for {fmt}, not "
                                 f"{self.rand_bits!r}")
            put(self, "rand_bits", rb)
        elif self.rand_bits is not None or self.seed is not None:
            if self.seed is not None and (isinstance(self.seed, bool)
                                          or not isinstance(self.seed, int)):
                raise TypeError(f"seed must be an int, not {self.seed!r}")
            if self.rand_bits is not None:
                raise ValueError("rand_bits needs rounding='stochastic'")

    @property
    def exact(self) -> bool:
        """True when the accumulator keeps the exact sum."""
        return self.format is None

    @property
    def is_integer(self) -> bool:
        """True for Integer / FixedPoint accumulators."""
        return isinstance(self.format, FixedBase)

    @property
    def default_overflow(self) -> Overflow | None:
        """The overflow policy an accumulator of this format has unless told otherwise."""
        if self.format is None:
            return None
        return Overflow.WRAP if isinstance(self.format, FixedBase) else self.format.default_overflow

    def __str__(self) -> str:
        """The canonical text: ``parse(str(acc)) == acc``. Comma-separated, the format
        first, then only what differs from the defaults, e.g.
        ``float32,nearest_even,tree32,chunk128->float32`` or
        ``float16,stochastic,seed=7,products@e5m2,product_rounding=toward_zero``."""
        parts = ["exact" if self.format is None else str(self.format)]
        if self.format is not None and not self.is_integer:
            parts.append(self.rounding.value)
        if self.overflow is not self.default_overflow:
            parts.append(f"overflow={self.overflow.value}")  # type: ignore[union-attr]
        if self.order is Order.TREE:
            parts.append(f"tree{self.tree_width}"
                         + (f"@{self.tree_format}" if self.tree_format is not None else ""))
            if self.tree_rounding is not Rounding.NEAREST_EVEN:
                parts.append(f"tree_rounding={self.tree_rounding.value}")
        elif self.order is Order.FUSED:
            parts.append(f"fused{self.tree_width}w{self.align_bits}")
            if self.align_rounding is not Rounding.TOWARD_ZERO:
                parts.append(f"align_rounding={self.align_rounding.value}")
            if not self.align_acc:
                parts.append("align_acc=false")
            if self.align_from != "value":
                parts.append(f"align_from={self.align_from}")
        elif self.order is not Order.SEQUENTIAL:
            parts.append(self.order.value)
        if self.chunk is not None:
            parts.append(f"chunk{self.chunk}->{self.chunk_format}")
        elif str(self.chunk_format) != "float32":
            parts.append(f"chunk_format={self.chunk_format}")
        if self.inf_on_overflow:
            parts.append("inf_on_overflow")
        if self.product_format is not None:
            parts.append(f"products@{self.product_format}")
        if self.product_rounding is not Rounding.NEAREST_EVEN:
            parts.append(f"product_rounding={self.product_rounding.value}")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        if self.rounding is Rounding.STOCHASTIC and isinstance(self.format, Minifloat) \
                and self.rand_bits != 50 - self.format.man_bits:
            parts.append(f"rand_bits={self.rand_bits}")
        return ",".join(parts)

    @classmethod
    def named(cls, name: str) -> Accumulator:
        """A model validated against silicon (:data:`simulator.silicon.NAMED`), e.g.
        ``Accumulator.named("h100_fp8_scaled_mm")``."""
        from .silicon import named

        acc: Accumulator = named(name)
        return acc

    @classmethod
    def parse(cls, text: str) -> Accumulator:
        """The accumulator ``text`` describes, as :meth:`__str__` writes it (a bare format
        name is a sequential nearest-even accumulator of that format)."""
        if isinstance(text, Accumulator):
            return text
        if not isinstance(text, str):
            raise TypeError(f"accumulator text must be a str, not {type(text).__name__}")
        parts = [p.strip() for p in split_top(text, ",")]
        if not parts or not parts[0]:
            raise ValueError(f"accumulator {text!r} must start with its format (e.g. "
                             "'float32,nearest_even,tree32') or 'exact'")
        kw: dict[str, Any] = {"format": parts[0]}
        modes = {m.value for m in Rounding}
        ints = ("seed", "rand_bits")
        for part in parts[1:]:
            key, eq, value = part.partition("=")
            if eq:
                if key in ints:
                    try:
                        kw[key] = int(value)
                    except ValueError:
                        raise ValueError(f"accumulator {text!r}: {key} must be an int, not "
                                         f"{value!r}") from None
                elif key in ("overflow", "tree_rounding", "product_rounding", "chunk_format",
                             "align_rounding", "align_from"):
                    kw[key] = value
                elif key == "align_acc":
                    if value not in ("true", "false"):
                        raise ValueError(f"accumulator {text!r}: align_acc must be true or "
                                         f"false, not {value!r}")
                    kw[key] = value == "true"
                else:
                    raise ValueError(f"accumulator {text!r}: unknown setting {key!r}; "
                                     "settings: overflow, tree_rounding, product_rounding, "
                                     "chunk_format, align_rounding, align_acc, align_from, "
                                     "seed, "
                                     "rand_bits")
            elif part in modes:
                kw["rounding"] = part
            elif part == "inf_on_overflow":
                kw["inf_on_overflow"] = True
            elif part == Order.PAIRWISE.value:
                kw["order"] = Order.PAIRWISE
            elif part.startswith("tree") and part[4:5].isdigit():
                width, _, tf = part[4:].partition("@")
                kw.update(order=Order.TREE, tree_width=_int_of(width, text, "tree width"))
                if tf:
                    kw["tree_format"] = tf
            elif part.startswith("fused") and part[5:6].isdigit() and "w" in part:
                n, _, w = part[5:].partition("w")
                kw.update(order=Order.FUSED, tree_width=_int_of(n, text, "fused terms"),
                          align_bits=_int_of(w, text, "fused window (align_bits)"))
            elif part.startswith("chunk") and "->" in part:
                n, _, cf = part[5:].partition("->")
                kw.update(chunk=_int_of(n, text, "chunk"), chunk_format=cf)
            elif part.startswith("products@"):
                kw["product_format"] = part[len("products@"):]
            else:
                raise ValueError(
                    f"accumulator {text!r}: cannot read {part!r}; after the format come a "
                    f"rounding mode ({', '.join(sorted(modes))}), pairwise, tree<w>[@fmt], "
                    "fused<n>w<bits>, chunk<n>-><fmt>, products@<fmt> or key=value settings")
        return cls(**kw)


def _int_of(text: str, whole: str, what: str) -> int:
    if not text.isdigit() or len(text) > 9:
        raise ValueError(f"accumulator {whole!r}: {what} must be a positive integer, not "
                         f"{text!r}")
    return int(text)


def split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside ``<...>`` and ``[...]`` (format names such as
    ``fixed<8,8>`` and ``lut[1,2]`` hold commas)."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch in "<[":
            depth += 1
        elif ch in ">]":
            depth = max(0, depth - 1)
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts
