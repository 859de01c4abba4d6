"""numfab.formats: the numeric truth. Every scalar number format, bit-exact."""

from ._enums import Overflow, Rounding, Special
from .minifloat import Minifloat

__all__ = ["Minifloat", "Overflow", "Rounding", "Special"]
