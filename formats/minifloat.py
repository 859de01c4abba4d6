"""Minifloats of any shape: sign, exponent and mantissa fields, with selectable specials."""

from __future__ import annotations

import dataclasses
import functools
import math
from fractions import Fraction

import numpy as np

from . import _kernels as K
from ._base import Format, InputArray, check_int, pow2
from ._enums import Overflow, Special

__all__ = ["Minifloat"]

_NO_TABLE = np.zeros(0, np.float64)


@dataclasses.dataclass(frozen=True, eq=True)
class Minifloat(Format):
    """A binary floating-point format ``[sign][exponent][mantissa]``, code MSB first.

    A code with exponent field ``f`` and mantissa field ``m`` means
    ``(-1)**s * (1 + m / 2**man_bits) * 2**(f - bias)`` for ``f >= 1`` and, with
    subnormals, ``(-1)**s * m / 2**man_bits * 2**(1 - bias)`` for ``f == 0`` (IEEE 754-2019
    section 3.4). ``special`` says where Inf/NaN/-0 live:

    * ``ieee``: the all-ones exponent field is Inf (mantissa 0) or NaN (mantissa != 0).
    * ``fn``: no Inf; NaN is the code whose non-sign bits are all ones (OCP OFP8 E4M3,
      ``float8_e4m3fn``), so the top binade holds finite values.
    * ``fnuz``: no Inf, no -0; the negative-zero code is the only NaN and the default bias
      is one larger (``float8_e4m3fnuz``, ``float8_e5m2fnuz``; Graphcore/AMD).
    * ``finite``: every code is a finite number (OCP MX v1.0 section 5.3: FP6, FP4).

    ``subnormals=False`` makes the zero exponent field an ordinary binade, so the format
    has neither subnormals nor zero (OCP MX E8M0, ``float8_e8m0fnu``). ``signed=False``
    drops the sign bit (scale formats such as UE4M3).

    Encoding rounds once, exactly, from the input's bits (never through an intermediate
    float). Overflow defaults follow each convention's spec: ``ieee`` -> Inf;
    ``fn``/``fnuz`` -> NaN (ml_dtypes, and OFP8's non-saturating mode; torch's float8
    casts saturate instead: pass ``overflow="saturate"``); ``finite`` -> saturate (the
    only choice). Like IEEE 754 section 7.4, directed rounding toward the range (toward
    zero; up for negatives; down for positives) carries a finite overflow to the largest
    finite value under any policy. NaN inputs give the format's NaN; where it has none they
    give +0 (or the least value), or raise with ``overflow="error"``. A format without zero
    maps an exact 0 to NaN (if it has NaN and the policy is ``nan``) or its least value;
    an unsigned format does the same for negative values that do not round to 0.
    """

    exp_bits: int
    man_bits: int
    bias: int = None  # type: ignore[assignment]
    special: Special = Special.IEEE
    subnormals: bool = True
    signed: bool = True

    def __post_init__(self) -> None:
        check_int(self.exp_bits, "exp_bits", 1, 11)
        check_int(self.man_bits, "man_bits", 0, 52)
        object.__setattr__(self, "special", Special.coerce(self.special, "special"))
        for flag in ("subnormals", "signed"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise TypeError(f"{flag} must be a bool, not {getattr(self, flag)!r}")
            object.__setattr__(self, flag, bool(getattr(self, flag)))
        if self.special is Special.IEEE and (self.exp_bits < 2 or self.man_bits < 1):
            raise ValueError(
                "special 'ieee' needs exp_bits >= 2 and man_bits >= 1 (the top exponent "
                f"field holds Inf and NaN), not exp_bits={self.exp_bits}, man_bits={self.man_bits}"
            )
        if self.special is Special.FNUZ and not (self.signed and self.subnormals):
            raise ValueError(
                "special 'fnuz' puts NaN at the negative-zero code; it needs signed=True "
                "and subnormals=True"
            )
        if self.bias is None:
            default = 1 << (self.exp_bits - 1)
            bias = default if self.special is Special.FNUZ else default - 1
            object.__setattr__(self, "bias", bias)
        if isinstance(self.bias, bool) or not isinstance(self.bias, (int, np.integer)):
            raise TypeError(f"bias must be an integer, not {self.bias!r}")
        object.__setattr__(self, "bias", int(self.bias))
        if self.bits > 64:
            raise ValueError(f"a minifloat has at most 64 bits, not {self.bits}")
        if self._maxmag < 1:
            raise ValueError(f"{self!r} has no nonzero finite value")
        # Every value must be a float64 so that value math is exact: its LSB at least
        # float64's 2**-1074 (with or without subnormals: a binade 2**emin * (1 + m /
        # 2**man_bits) has it at emin - man_bits), its top binade at most float64's.
        if self.lsb_exp_min < -1074 or self.emax > 1023:
            lo_b = max(0, self._top_field - 1023)
            hi_b = 1074 + (1 if self.subnormals else 0) - self.man_bits
            raise ValueError(
                f"bias must be in {lo_b}..{hi_b} for exp_bits={self.exp_bits}, "
                f"man_bits={self.man_bits} (every value must be a float64), not {self.bias}"
            )

    # --- layout -------------------------------------------------------------------------
    @property
    def bits(self) -> int:  # type: ignore[override]
        return int(self.signed) + self.exp_bits + self.man_bits

    @property
    def _top_field(self) -> int:
        """Largest exponent field holding finite values."""
        top = (1 << self.exp_bits) - 1
        if self.special is Special.IEEE or (self.special is Special.FN and self.man_bits == 0):
            return top - 1
        return top

    @property
    def _maxmag(self) -> int:
        """Magnitude code (sign bit clear) of the largest finite value."""
        allones = (1 << (self.exp_bits + self.man_bits)) - 1
        if self.special is Special.IEEE:
            return ((1 << self.exp_bits) - 1 << self.man_bits) - 1
        if self.special is Special.FN:
            return allones - 1
        return allones

    @property
    def _infmag(self) -> int:
        return ((1 << self.exp_bits) - 1) << self.man_bits if self.special is Special.IEEE else -1

    @property
    def nan_code(self) -> int | None:
        """Code of the (positive, quiet) NaN, or None."""
        if self.special is Special.IEEE:
            return self._infmag | (1 << (self.man_bits - 1))
        if self.special is Special.FN:
            return (1 << (self.exp_bits + self.man_bits)) - 1
        if self.special is Special.FNUZ:
            return 1 << (self.bits - 1)
        return None

    # --- facts --------------------------------------------------------------------------
    @property
    def emin(self) -> int:
        """Exponent of the smallest normal value."""
        return (1 if self.subnormals else 0) - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest finite value."""
        return (self._maxmag >> self.man_bits) - self.bias

    @property
    def precision(self) -> int:
        """Significand width p with the implicit bit, ``man_bits + 1`` (IEEE 754-2019
        section 3.3's p; subnormals use fewer of its bits, at the LSB ``lsb_exp_min``)."""
        return self.man_bits + 1

    @property
    def lsb_exp_min(self) -> int:
        """Exponent of the smallest LSB, ``emin - man_bits``: the subnormals' (with
        subnormals), else the lowest binade's."""
        return self.emin - self.man_bits

    @property
    def lsb_exp_max(self) -> int:
        """Exponent of the LSB in the top finite binade, ``emax - man_bits``."""
        return self.emax - self.man_bits

    @property
    def max(self) -> float:
        return self._value_of_mag(self._maxmag)

    @property
    def min(self) -> float:
        """Most negative finite value (the least value for unsigned formats)."""
        return -self.max if self.signed else (0.0 if self.subnormals else self.smallest_normal)

    @property
    def smallest_normal(self) -> float:
        return pow2(self.emin)

    @property
    def smallest_subnormal(self) -> float:
        """Smallest positive value (== smallest_normal without subnormals or mantissa)."""
        if not self.subnormals or self.man_bits == 0:
            return self.smallest_normal
        return pow2(self.lsb_exp_min)

    @property
    def eps(self) -> float:
        """Gap between 1 and the next larger value of this precision, 2**-man_bits."""
        return pow2(-self.man_bits)

    @property
    def has_inf(self) -> bool:
        return self.special is Special.IEEE

    @property
    def has_nan(self) -> bool:
        return self.special is not Special.FINITE

    @property
    def has_zero(self) -> bool:
        return self.subnormals

    @property
    def has_negative_zero(self) -> bool:
        return self.signed and self.subnormals and self.special is not Special.FNUZ

    @property
    def default_overflow(self) -> Overflow:
        return {
            Special.IEEE: Overflow.INF,
            Special.FN: Overflow.NAN,
            Special.FNUZ: Overflow.NAN,
            Special.FINITE: Overflow.SATURATE,
        }[self.special]

    @property
    def allowed_overflow(self) -> tuple[Overflow, ...]:
        allowed = [Overflow.SATURATE, Overflow.ERROR]
        if self.has_inf:
            allowed.append(Overflow.INF)
        if self.has_nan:
            allowed.append(Overflow.NAN)
        return tuple(allowed)

    def _value_of_mag(self, mag: int) -> float:
        f, m = mag >> self.man_bits, mag & ((1 << self.man_bits) - 1)
        if f == 0 and self.subnormals:
            return float(m) * pow2(self.lsb_exp_min)
        return float(m + (1 << self.man_bits)) * pow2(f - self.bias - self.man_bits)

    # --- exact inputs (see Format._encode_exact) ---------------------------------------
    def _bracket(self, x: Fraction) -> tuple[float, float]:
        lo, hi = super()._bracket(x)
        if not self.subnormals:
            # no zero: magnitudes below the least value clamp to it under every mode, so
            # a zero neighbour stands for the nonzero one
            lo, hi = (hi, hi) if lo == 0 else (lo, lo) if hi == 0 else (lo, hi)
        return lo, hi

    def _split(
        self, x: Fraction, a: tuple[int, bool], b: tuple[int, bool], mode: int
    ) -> tuple[int, bool]:
        if x < 0 and not self.signed:
            # zero (b) against the value below the range (a): the boundary is half the
            # least magnitude; a tie goes to zero (even) or away from it
            edge = -Fraction(self.smallest_subnormal) / 2
            tie_b = mode == K.RNE
        elif all(math.isfinite(self._value1(c)) and not over for c, over in (a, b)):
            return super()._split(x, a, b, mode)
        else:
            # the largest finite value against an overflow: the boundary is halfway to
            # the next binade step, as the kernels round; a tie overflows unless the
            # largest finite code is even (nearest-even)
            step = Fraction(2) ** self.lsb_exp_max
            edge = Fraction(self.max) + step / 2
            away = mode == K.RNA or self._maxmag % 2 == 1
            if x < 0:
                edge, tie_b = -edge, not away
            else:
                tie_b = away
        if x != edge:
            return a if x < edge else b
        return b if tie_b else a

    # --- kernels ------------------------------------------------------------------------
    @functools.cached_property
    def _fast_f32(self) -> bool:
        """Whether the float32 fast path applies (see _kernels.quantize_f32)."""
        return (
            self.subnormals and 1 <= self.man_bits <= 22 and self.emin >= -126
            and self.emax <= 127 and self.lsb_exp_min >= -149
        )

    @functools.cached_property
    def _f32_bits(self) -> tuple[int, int, int]:
        """float32 bit patterns of max, +Inf (or 0) and NaN (or 0) for the fast path."""
        def bits(v: float) -> int:
            return int(np.array(v, np.float32).view(np.uint32))

        return (
            bits(self.max),
            bits(np.inf) if self.has_inf else 0,
            bits(np.nan) if self.has_nan else 0,
        )

    @functools.cached_property
    def _params(self) -> K.MinifloatParams:
        nan = self.nan_code
        return K.MinifloatParams(
            self.man_bits, self.bias, self.emin, not self.subnormals, self.signed,
            self.special is Special.FNUZ, self._maxmag, self._infmag,
            -1 if nan is None else nan, self.bits,
        )

    @functools.cached_property
    def _f32_consts(self) -> dict[int, K.F32Consts]:
        """The float32 fast path's constants per overflow-policy code."""
        return {pol.code: K.fast_consts(self.man_bits, self.emin, *self._f32_bits, pol.code)
                for pol in Overflow}

    @functools.cached_property
    def _code_consts(self) -> K.CodeConsts:
        nan = self.nan_code  # positive; FNUZ's NaN is sign | 0, handled in the kernel
        nan_mag = 0 if nan is None or self.special is Special.FNUZ else nan
        return K.code_consts(self.man_bits, self.emin, max(self._infmag, 0), nan_mag,
                             self.bits)

    @functools.cached_property
    def _table64(self) -> np.ndarray:
        codes = np.arange(self.num_codes, dtype=np.int64)
        out = np.empty(codes.size, np.float64)
        self._decode_kernel(codes, out)
        return out

    @functools.cached_property
    def _table32(self) -> np.ndarray:
        with np.errstate(over="ignore"):
            return self._table64.astype(np.float32)

    def _decode_kernel(self, codes: np.ndarray, out: np.ndarray) -> None:
        K.mf_decode(codes, out, self._params)

    def _encode_flat(
        self, inp: InputArray, out: np.ndarray, mode: int, policy: int, rnd: np.ndarray, rbits: int
    ) -> int:
        if self._fast_f32 and inp.flat.dtype == np.float32 and mode != K.STOCH:
            return K.encode_f32(inp.flat.view(np.uint32), out, self._f32_consts[policy],
                                self._code_consts, self.signed,
                                self.special is Special.FNUZ, mode)
        xb, fin = inp.bits()
        return int(K.mf_encode(xb, out, _NO_TABLE, rnd, fin, self._params, policy, mode, rbits))

    def _decode_flat(self, codes: np.ndarray, out: np.ndarray) -> None:
        if self.bits <= 16:
            table = self._table32 if out.dtype == np.float32 else self._table64
            K.table_decode(codes, out, table)
        else:
            if out.dtype == np.float64:
                self._decode_kernel(codes, out)
            else:
                tmp = np.empty(out.size, np.float64)
                self._decode_kernel(codes, tmp)
                with np.errstate(over="ignore"):
                    out[...] = tmp
                return

    def _quantize_flat(
        self, inp: InputArray, out: np.ndarray, mode: int, policy: int, rnd: np.ndarray, rbits: int
    ) -> int:
        if self._fast_f32 and out.dtype == np.float32 and mode != K.STOCH:
            x32 = inp.flat if inp.flat.dtype == np.float32 else inp.flat.astype(np.float32)
            return K.quantize_f32(x32.view(np.uint32), out.view(np.uint32),
                                  self._f32_consts[policy], self.signed,
                                  self.special is Special.FNUZ, mode)
        if self.bits > 16:
            return super()._quantize_flat(inp, out, mode, policy, rnd, rbits)
        xb, fin = inp.bits()
        table = self._table32 if out.dtype == np.float32 else self._table64
        return int(K.mf_encode(xb, out, table, rnd, fin, self._params, policy, mode, rbits))
