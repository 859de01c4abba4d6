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

from formats import BlockScaled, parse

from .accumulator import Accumulator, Order, split_top

__all__ = ["Datapath"]

_KEYS = ("a", "b", "acc", "k", "lanes")


def _count(value: Any, parameter: str, most: int = 1 << 20) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{parameter} must be an int in 1..{most}, not {value!r}")
    if not 1 <= value <= most:
        raise ValueError(f"{parameter} must be an int in 1..{most}, not {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Datapath:
    """Operand formats, accumulator and PE geometry of a GEMM engine.

    Parameters
    ----------
    a, b : the formats of A (M x K) and B (K x N): scalar formats or block-scaled
        formats with 1-D blocks, which run along K (A's last axis, B's first)
    accumulator : an :class:`Accumulator`, its text (``str(acc)``), a format or ``None``
        (exact); default a sequential nearest-even float32 accumulator
    k : products the PE sums per cycle. An adder tree (``order="tree"``) sums
        ``tree_width`` products at once, so ``k`` defaults to, and must equal, the tree
        width; sequential accumulation takes one product per step (``k=1``); pairwise
        summation has no per-cycle width (``k`` is then the PE's choice, default 1)
    lanes : independent outputs per PE (default 1)

    ``str(dp)`` is ``"a=<fmt> b=<fmt> acc=<accumulator> k=<k> lanes=<lanes>"`` and
    :meth:`parse` reads it back.

    Raises
    ------
    TypeError
        an argument of the wrong kind
    ValueError
        unknown formats, 2-D block tiles, operands whose block sizes differ, ``k`` not
        matching the accumulator's order, counts out of range
    """

    a: Any
    b: Any
    accumulator: Any = "float32"
    k: int | None = None
    lanes: int = 1

    def __post_init__(self) -> None:
        put = object.__setattr__
        for name in ("a", "b"):
            f = parse(getattr(self, name), parameter=name)
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
        tree = acc.tree_width if acc.order is Order.TREE else None
        if self.k is None:
            put(self, "k", tree or 1)
        else:
            _count(self.k, "k")
            if tree is not None and self.k != tree:
                raise ValueError(f"k must equal the accumulator's tree width {tree} (the PE "
                                 f"sums tree_width products per cycle), not {self.k}")
            if acc.order is Order.SEQUENTIAL and self.k != 1:
                raise ValueError(f"k must be 1 with sequential accumulation (one product "
                                 f"per step), not {self.k}; for k products per cycle use "
                                 f"order='tree', tree_width={self.k}")
        _count(self.lanes, "lanes", 4096)
        if isinstance(self.a, BlockScaled) and isinstance(self.b, BlockScaled) \
                and self.a.block_size != self.b.block_size:
            raise ValueError(f"a and b must block K alike, not {self.a.block_size} ({self.a}) "
                             f"and {self.b.block_size} ({self.b})")

    def __str__(self) -> str:
        return (f"a={self.a} b={self.b} acc={self.accumulator} k={self.k} "
                f"lanes={self.lanes}")

    @classmethod
    def parse(cls, text: str) -> Datapath:
        """The datapath ``text`` describes, as :meth:`__str__` writes it; ``acc``, ``k``
        and ``lanes`` may be left out (their defaults)."""
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
                                 "[k=<int>] [lanes=<int>]")
            if key in kw:
                raise ValueError(f"datapath {text!r}: {key} is given twice")
            if key in ("k", "lanes"):
                if not value.isdigit() or len(value) > 9:
                    raise ValueError(f"datapath {text!r}: {key} must be a positive integer, "
                                     f"not {value!r}")
                kw[key] = int(value)
            else:
                kw["accumulator" if key == "acc" else key] = value
        missing = [k for k in ("a", "b") if k not in kw]
        if missing:
            raise ValueError(f"datapath {text!r} names no {' and no '.join(missing)} format")
        return cls(**kw)
