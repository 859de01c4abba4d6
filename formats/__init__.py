"""numfab.formats: the numeric truth. Every scalar number format, bit-exact.

Formats are frozen dataclasses (:class:`Minifloat`, :class:`Integer`, :class:`FixedPoint`,
:class:`BipolarInt`, :class:`Lut`); :func:`parse` turns names into formats and
``str(fmt)`` gives the canonical name back. :mod:`formats.odd` holds rounding to odd,
the double-rounding primitive the block formats and the simulator's accumulators share.
"""

from . import odd, stream
from ._base import Format, InputArray
from ._enums import Choice, Overflow, Rounding, Special
from ._gpu import emulate as emulate_gpu
from ._gpu import on_gpu
from ._runtime import setup_runtime
from .block import BlockEncoded, BlockScaled, ScaleRule
from .integer import FixedBase, FixedPoint, Integer
from .lut import NF4_VALUES, BipolarInt, Lut
from .minifloat import Minifloat
from .names import (
    ALIASES,
    NAMED,
    NAMED_BLOCKS,
    bfp,
    canonical_name,
    grouped_int,
    named_formats,
    parse,
)
from .packing import pack, unpack

__all__ = [
    "ALIASES",
    "NAMED",
    "NAMED_BLOCKS",
    "BlockEncoded",
    "BlockScaled",
    "ScaleRule",
    "bfp",
    "grouped_int",
    "NF4_VALUES",
    "BipolarInt",
    "Choice",
    "FixedBase",
    "FixedPoint",
    "Format",
    "InputArray",
    "Integer",
    "Lut",
    "Minifloat",
    "Overflow",
    "Rounding",
    "Special",
    "canonical_name",
    "named_formats",
    "odd",
    "on_gpu",
    "emulate_gpu",
    "stream",
    "pack",
    "setup_runtime",
    "parse",
    "unpack",
]
