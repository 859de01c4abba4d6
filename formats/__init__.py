"""numfab.formats: the numeric truth. Every scalar number format, bit-exact.

Formats are frozen dataclasses (:class:`Minifloat`, :class:`Integer`, :class:`FixedPoint`,
:class:`BipolarInt`, :class:`Lut`); :func:`parse` turns names into formats and
``str(fmt)`` gives the canonical name back.
"""

import os as _os

import numba as _numba

# numba's OpenMP pool spin-waits after each parallel kernel and fights BLAS's and torch's
# pools for the cores (on 2 cores a 0.4 ms BLAS call became 10 ms); the workqueue pool
# does not spin. Set NUMBA_THREADING_LAYER to choose another (workqueue is not safe for
# parallel kernels launched from several Python threads at once).
if "NUMBA_THREADING_LAYER" not in _os.environ:
    _numba.config.THREADING_LAYER = "workqueue"  # type: ignore[attr-defined]

from ._base import Format  # noqa: E402
from ._enums import Overflow, Rounding, Special
from .block import BlockEncoded, BlockScaled, ScaleRule
from .integer import FixedPoint, Integer
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
    "FixedPoint",
    "Format",
    "Integer",
    "Lut",
    "Minifloat",
    "Overflow",
    "Rounding",
    "Special",
    "canonical_name",
    "named_formats",
    "pack",
    "parse",
    "unpack",
]
