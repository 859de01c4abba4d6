"""Fixed sets of choices shared by every format: rounding, overflow, special values."""

from __future__ import annotations

import enum
from typing import TypeVar

__all__ = ["Overflow", "Rounding", "Special"]

_E = TypeVar("_E", bound=enum.Enum)


class Choice(enum.Enum):
    """An enum whose public functions also accept the member's string name."""

    @property
    def code(self) -> int:
        """The member's position in declaration order: the integer the numba kernels
        (formats' and simulator's) take for it."""
        return list(type(self)).index(self)

    @classmethod
    def coerce(cls: type[_E], value: object, parameter: str) -> _E:
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            key = value.strip().lower().replace("-", "_")
            for member in cls:
                if key == member.value or key == member.name.lower():
                    return member
            if key in _ALIASES.get(cls.__name__, {}):
                return cls(_ALIASES[cls.__name__][key])
        allowed = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"{parameter} must be one of {allowed} (or the enum), not {value!r}")


class Rounding(Choice):
    """Rounding mode for encode/quantize (IEEE 754-2019 section 4.3 names in comments)."""

    #: roundTiesToEven: nearest, ties to the code whose lowest bit is 0
    NEAREST_EVEN = "nearest_even"
    #: roundTiesToAway: nearest, ties away from zero
    NEAREST_AWAY = "nearest_away"
    #: roundTowardZero: truncate the magnitude
    TOWARD_ZERO = "toward_zero"
    #: roundTowardPositive: smallest representable value >= x
    UP = "up"
    #: roundTowardNegative: largest representable value <= x
    DOWN = "down"
    #: round up with probability equal to the distance to the lower neighbour, in ulps
    STOCHASTIC = "stochastic"


_ALIASES: dict[str, dict[str, str]] = {"Rounding": {
    "rne": "nearest_even",
    "nearest": "nearest_even",
    "even": "nearest_even",
    "rna": "nearest_away",
    "away": "nearest_away",
    "rtz": "toward_zero",
    "trunc": "toward_zero",
    "ceil": "up",
    "floor": "down",
    "sr": "stochastic",
}}

class Overflow(Choice):
    """What a value beyond the format's largest finite magnitude becomes."""

    #: clamp to the largest finite value of that sign (torch's float8 casts, OCP "saturating")
    SATURATE = "saturate"
    #: become +-Inf (IEEE 754 overflow; only formats with Inf)
    INF = "inf"
    #: become NaN (ml_dtypes' E4M3FN/FNUZ casts; only formats with NaN)
    NAN = "nan"
    #: keep the low bits, two's-complement wrap-around (integer and fixed-point formats only)
    WRAP = "wrap"
    #: raise ValueError naming the first offending element
    ERROR = "error"


class Special(Choice):
    """Where a minifloat keeps its special values (Inf, NaN, negative zero)."""

    #: top exponent field is Inf (mantissa 0) or NaN (mantissa != 0), as IEEE 754 binary formats
    IEEE = "ieee"
    #: no Inf; NaN only where every non-sign bit is 1, as OCP E4M3 (float8_e4m3fn)
    FN = "fn"
    #: no Inf, no -0; the negative-zero code is the single NaN; bias one larger (float8_e4m3fnuz)
    FNUZ = "fnuz"
    #: every code is a finite number, as OCP FP6/FP4 (float6_e2m3fn, float4_e2m1fn)
    FINITE = "finite"
