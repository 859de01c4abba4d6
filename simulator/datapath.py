"""The datapath: one description of the arithmetic a GEMM engine performs.

A :class:`Datapath` holds the two operand formats (scalar or block-scaled), the
:class:`~simulator.Accumulator` that sums their products, and the geometry of the
processing element that computes it (``k`` products summed per cycle, ``lanes``).
It holds numbers only; :func:`simulator.gemm` computes it, and the hardware layers read
the same object.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from formats import BlockScaled, Format, Rounding, parse

from .accumulator import Accumulator, Order, split_top

__all__ = ["Datapath"]

_KEYS = ("a", "b", "acc", "k", "lanes", "terms", "lut", "out")


def _count(value: Any, parameter: str, most: int = 1 << 20) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{parameter} must be an int in 1..{most}, not {value!r}")
    if not 1 <= value <= most:
        raise ValueError(f"{parameter} must be an int in 1..{most}, not {value!r}")
    return value


def _flag(value: Any, parameter: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{parameter} must be True or False, not {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Datapath:
    """Operand formats, accumulator and PE geometry of a GEMM engine (or of one of its
    stages: a multiplier, a converter, a fixed-length dot product).

    Parameters
    ----------
    a, b : the formats of A (M x K) and B (K x N): scalar formats or block-scaled
        formats with 1-D blocks, which run along K (A's last axis, B's first). ``b`` is
        ``None`` for a conversion (``terms=1``, ``out`` given): each output is one value
        of ``a`` rounded to ``out``
    accumulator : an :class:`Accumulator`, its text (``str(acc)``), a format or ``None``
        (exact); default a sequential nearest-even float32 accumulator
    k : products the PE sums per cycle. An adder tree (``order="tree"``) sums
        ``tree_width`` products exactly, so ``k`` defaults to the tree width and must
        divide it (a tree of ``tree_width`` products taken over ``tree_width / k``
        cycles, its partial sum kept exact); sequential accumulation takes one product
        per step (``k=1``); pairwise summation has no per-cycle width (``k`` is then the
        PE's choice, default 1)
    lanes : independent outputs per PE (default 1)
    terms : ``None`` (default): the PE keeps a running sum of any number of products
        in the accumulator. An int: the PE keeps no running sum; each output is the
        exact sum of exactly ``terms`` products (K = ``terms``; a shorter K counts as
        zero products), a multiple of ``k``, then rounded once to ``out`` if given. The
        accumulator must then be exact (``tree_width = k`` products summed together)
    lut : ``True``: the ``k`` products of a tree are looked up in precomputed tables of
        sums of A's values (LUT-based mpGEMM; the same exact sums as multipliers and an
        adder tree, a different PE); ``False`` (default): multipliers
    out, out_rounding, out_overflow : each output rounded once to the scalar format
        ``out`` (``out_rounding``, deterministic, default nearest-even; ``out_overflow``
        default ``out``'s own), as ``simulator.gemm(..., out_format=)``; ``None``: the
        accumulator's value

    ``str(dp)`` is ``"a=<fmt> b=<fmt> acc=<accumulator> k=<k> lanes=<lanes>"`` followed
    by ``terms=<n>``, ``lut=true`` and ``out=<fmt>[,<rounding>][,overflow=<policy>]``
    where they are set; :meth:`parse` reads it back (``b=none`` for no b).

    Raises
    ------
    TypeError
        an argument of the wrong kind
    ValueError
        unknown formats, 2-D block tiles, operands whose block sizes differ, ``k`` not
        matching the accumulator's order, counts out of range, ``terms`` with a rounding
        accumulator or not a multiple of ``k``, ``lut`` without a tree, ``b=None``
        without ``terms=1`` and ``out``
    """

    a: Any
    b: Any
    accumulator: Any = "float32"
    k: int | None = None
    lanes: int = 1
    terms: int | None = None
    lut: bool = False
    out: Any = None
    out_rounding: Any = Rounding.NEAREST_EVEN
    out_overflow: Any = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        for name in ("a", "b"):
            value = getattr(self, name)
            if name == "b" and value is None:
                continue
            f = parse(value, parameter=name)
            if isinstance(f, BlockScaled) and not isinstance(f.block_size, int):
                raise ValueError(f"{name} must have 1-D blocks along K, not tiles "
                                 f"{'x'.join(map(str, f.block_size))} ({f})")
            put(self, name, f)
        acc = self.accumulator
        if not isinstance(acc, Accumulator):
            if acc is None or not isinstance(acc, str):
                acc = Accumulator(format=acc)
            else:
                acc = Accumulator.parse(acc)
        put(self, "accumulator", acc)
        tree = acc.tree_width if acc.order in (Order.TREE, Order.FUSED) else None
        if self.k is None:
            put(self, "k", tree or 1)
        else:
            _count(self.k, "k")
            if tree is not None and tree % self.k:
                raise ValueError(f"k must divide the accumulator's tree width {tree} (the PE "
                                 f"takes a tree's products over tree_width / k cycles), not "
                                 f"{self.k}")
            if acc.order is Order.SEQUENTIAL and self.k != 1:
                raise ValueError(f"k must be 1 with sequential accumulation (one product "
                                 f"per step), not {self.k}; for k products per cycle use "
                                 f"order='tree', tree_width={self.k}")
        _count(self.lanes, "lanes", 4096)
        if isinstance(self.a, BlockScaled) and isinstance(self.b, BlockScaled) \
                and self.a.block_size != self.b.block_size:
            raise ValueError(f"a and b must block K alike, not {self.a.block_size} ({self.a}) "
                             f"and {self.b.block_size} ({self.b})")
        self._check_stages()

    def _check_stages(self) -> None:
        """Validate ``terms``, ``lut`` and the output rounding."""
        put = object.__setattr__
        acc, k = self.accumulator, self.k
        assert isinstance(k, int)
        if self.terms is not None:
            _count(self.terms, "terms")
            if not acc.exact:
                raise ValueError(f"terms={self.terms} (no running sum) needs the exact "
                                 f"accumulator (acc=exact; round the sum with out=), not "
                                 f"{acc}")
            if self.terms % k:
                raise ValueError(f"terms must be a multiple of k={k} (whole trees per "
                                 f"output), not {self.terms}")
        put(self, "lut", _flag(self.lut, "lut"))
        if self.lut and acc.order is not Order.TREE and k != 1:
            raise ValueError("lut=True looks up the k products of an adder tree: it needs "
                             "order='tree' (or k=1)")
        out = self.out
        if out is not None:
            out = parse(out, parameter="out")
            if not isinstance(out, Format):
                raise ValueError(f"out must be a scalar format, not the block format {out}")
            put(self, "out", out)
        mode = Rounding.coerce(self.out_rounding, "out_rounding")
        if mode is Rounding.STOCHASTIC:
            raise ValueError("out_rounding must be a deterministic rounding mode, not "
                             "'stochastic'")
        put(self, "out_rounding", mode)
        if out is None:
            if self.out_overflow is not None:
                raise ValueError("out_overflow needs out (the format it applies to)")
        else:
            put(self, "out_overflow", out._policy(self.out_overflow))
        if self.b is None:
            if self.terms != 1 or out is None:
                raise ValueError("b=None (a conversion of a's values) needs terms=1 and an "
                                 "out format to round each value to")
            if isinstance(self.a, BlockScaled):
                raise ValueError(f"b=None converts a scalar format, not the block format "
                                 f"{self.a}")

    def __str__(self) -> str:
        text = (f"a={self.a} b={'none' if self.b is None else self.b} acc={self.accumulator} "
                f"k={self.k} lanes={self.lanes}")
        if self.terms is not None:
            text += f" terms={self.terms}"
        if self.lut:
            text += " lut=true"
        if self.out is not None:
            text += f" out={self.out},{self.out_rounding.value}"
            if self.out_overflow is not self.out.default_overflow:
                text += f",overflow={self.out_overflow.value}"
        return text

    @classmethod
    def parse(cls, text: str) -> Datapath:
        """The datapath ``text`` describes, as :meth:`__str__` writes it; ``acc``, ``k``,
        ``lanes`` and the output stage may be left out (their defaults)."""
        if isinstance(text, Datapath):
            return text
        if not isinstance(text, str):
            raise TypeError(f"datapath text must be a str, not {type(text).__name__}")
        kw: dict[str, Any] = {}
        for part in split_top(text.strip(), " "):
            if not part:
                continue
            key, eq, value = part.partition("=")
            if not eq or key not in _KEYS:
                raise ValueError(f"datapath {text!r}: cannot read {part!r}; give "
                                 "space-separated a=<format> b=<format> [acc=<accumulator>] "
                                 "[k=<int>] [lanes=<int>] [terms=<int>] [lut=true] "
                                 "[out=<format>[,<rounding>][,overflow=<policy>]]")
            if key in kw or (key == "acc" and "accumulator" in kw):
                raise ValueError(f"datapath {text!r}: {key} is given twice")
            if key in ("k", "lanes", "terms"):
                if not value.isdigit() or len(value) > 9:
                    raise ValueError(f"datapath {text!r}: {key} must be a positive integer, "
                                     f"not {value!r}")
                kw[key] = int(value)
            elif key == "lut":
                if value not in ("true", "false"):
                    raise ValueError(f"datapath {text!r}: lut must be true or false, not "
                                     f"{value!r}")
                kw[key] = value == "true"
            elif key == "out":
                fmt, *rest = [p.strip() for p in split_top(value, ",")]
                kw["out"] = fmt
                for setting in rest:
                    name, eq2, policy = setting.partition("=")
                    if eq2 and name == "overflow":
                        kw["out_overflow"] = policy
                    elif not eq2:
                        kw["out_rounding"] = setting
                    else:
                        raise ValueError(f"datapath {text!r}: cannot read {setting!r} in out; "
                                         "give out=<format>[,<rounding>][,overflow=<policy>]")
            elif key == "b" and value == "none":
                kw["b"] = None
            else:
                kw["accumulator" if key == "acc" else key] = value
        missing = [k for k in ("a", "b") if k not in kw]
        if missing:
            raise ValueError(f"datapath {text!r} names no {' and no '.join(missing)} format")
        return cls(**kw)
