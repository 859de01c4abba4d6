"""Two's-complement integers and fixed point."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Any

import numpy as np

from . import _kernels as K
from ._base import Format, InputArray, check_int, pow2
from ._enums import Overflow

__all__ = ["FixedPoint", "Integer"]


class FixedBase(Format):
    """The base of :class:`Integer` and :class:`FixedPoint`: value = integer * 2**ulp_exp,
    the integer in two's complement (or unsigned) of ``bits`` bits."""

    narrow: bool

    @property
    def ulp_exp(self) -> int:
        """Exponent of the value of integer 1 (the grid's step is 2**ulp_exp)."""
        return 0

    @property
    def precision(self) -> int:
        """Bits of the largest integer magnitude, ``max(max_int, max_neg_int)``: ``bits``
        for two's complement (|-2**(bits-1)| needs them all) and unsigned, ``bits - 1``
        for narrow. Values are integers times 2**ulp_exp, so the LSB never moves."""
        return max(self.max_int, self.max_neg_int).bit_length()

    @property
    def lsb_exp_min(self) -> int:
        """``ulp_exp``: every value is an integer times 2**ulp_exp."""
        return self.ulp_exp

    @property
    def lsb_exp_max(self) -> int:
        """``ulp_exp``, as :attr:`lsb_exp_min` (fixed point)."""
        return self.ulp_exp

    @property
    def max_int(self) -> int:
        """The largest integer (``max == max_int * 2**ulp_exp``)."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def max_neg_int(self) -> int:
        """The magnitude of the most negative integer (0 if unsigned; narrow formats
        leave out -2**(bits-1)): ``min == -max_neg_int * 2**ulp_exp``."""
        if not self.signed:
            return 0
        return (1 << (self.bits - 1)) - (1 if self.narrow else 0)


    def codes(self) -> np.ndarray:
        """Every valid code in order (narrow integers leave out -2**(bits-1))."""
        c = np.arange(self.num_codes, dtype=np.int64)
        if self.narrow:
            c = c[c != 1 << (self.bits - 1)]
        return c.astype(self.code_dtype)

    def values(self) -> np.ndarray:
        """The value of every valid code (see :meth:`codes`), in code order."""
        return self.decode(self.codes())

    def decode(self, codes: Any, **kw: Any) -> Any:
        if self.narrow:
            arr = np.asarray(codes.detach().cpu().numpy() if hasattr(codes, "detach") else codes)
            if arr.dtype.kind in "iu" and (arr == (1 << (self.bits - 1))).any():
                raise ValueError(
                    f"code {1 << (self.bits - 1)} (-2**{self.bits - 1}) is not part of {self}"
                )
        return super().decode(codes, **kw)


    @property
    def max(self) -> float:
        return self.max_int * pow2(self.ulp_exp)

    @property
    def min(self) -> float:
        return -self.max_neg_int * pow2(self.ulp_exp)

    @property
    def smallest_normal(self) -> float:
        """Smallest positive value (fixed point has no subnormals)."""
        return pow2(self.ulp_exp)

    @property
    def smallest_subnormal(self) -> float:
        return pow2(self.ulp_exp)

    @property
    def eps(self) -> float:
        """Spacing of the values, 2**-frac_bits."""
        return pow2(self.ulp_exp)

    @property
    def allowed_overflow(self) -> tuple[Overflow, ...]:
        if self.narrow:  # wrapping could land on the excluded code
            return (Overflow.SATURATE, Overflow.ERROR)
        return (Overflow.SATURATE, Overflow.WRAP, Overflow.ERROR)

    def _encode_flat(
        self, inp: InputArray, out: np.ndarray, mode: int, policy: int, rnd: np.ndarray, rbits: int
    ) -> int:
        self._check_wrap(inp, policy)
        xb, fin = inp.bits()
        return int(K.int_encode(xb, out, rnd, fin, self._params, policy, mode, rbits))

    def _quantize_flat(
        self, inp: InputArray, out: np.ndarray, mode: int, policy: int, rnd: np.ndarray, rbits: int
    ) -> int:
        self._check_wrap(inp, policy)
        f = -self.ulp_exp
        exact_scaling = (0 <= f <= 900) if inp.flat.dtype == np.float64 else (-800 <= f <= 900)
        if mode != K.STOCH and policy in (K.SAT, K.OERR) and exact_scaling \
                and inp.flat.dtype != np.float16:
            return int(K.fixed_quantize_fast(inp.flat, out, self._grid, mode))
        xb, fin = inp.bits()
        return int(K.int_quantize(xb, out, rnd, fin, self._params, policy, mode, rbits))

    @property
    def _params(self) -> K.FixedParams:
        return K.FixedParams(self.ulp_exp, self.bits, self.max_int, self.max_neg_int)

    @property
    def _grid(self) -> K.GridConsts:
        """The grid as float64 constants (exact where -1074 <= ulp_exp <= 1023)."""
        return K.GridConsts(pow2(-self.ulp_exp), pow2(self.ulp_exp),
                            float(-self.max_neg_int), float(self.max_int))

    def _encode_exact(self, x: Fraction, mode: int, policy: int) -> tuple[int, bool]:
        """Exact rational ``x`` rounded with Python integers (wrap keeps its exact low
        bits), as the kernels round float inputs."""
        v = x / Fraction(2) ** self.ulp_exp
        if mode == K.RNE:
            q = round(v)
        elif mode == K.RNA:
            q = math.floor(abs(v) + Fraction(1, 2)) * (1 if v >= 0 else -1)
        elif mode == K.RTZ:
            q = math.trunc(v)
        elif mode == K.UP:
            q = math.ceil(v)
        else:
            q = math.floor(v)
        over = q > self.max_int or -q > self.max_neg_int
        if over and policy != K.WRAP:
            q = min(max(q, -self.max_neg_int), self.max_int)
        return q & ((1 << self.bits) - 1), over

    def _check_wrap(self, inp: InputArray, policy: int) -> None:
        if policy == K.WRAP and not np.isfinite(inp.flat).all():
            raise ValueError(f"x holds NaN or Inf, which cannot wrap into {self}")

    def _decode_flat(self, codes: np.ndarray, out: np.ndarray) -> None:
        c = codes.astype(np.int64)
        if self.signed:
            c = np.where(c >= (1 << (self.bits - 1)), c - (1 << self.bits), c)
        out[...] = np.ldexp(c.astype(np.float64), self.ulp_exp)

    @property
    def valid_codes(self) -> int:
        return self.num_codes


@dataclasses.dataclass(frozen=True)
class Integer(FixedBase):
    """A ``bits``-wide integer: two's complement when signed (value = code - 2**bits for
    codes >= 2**(bits-1)), plain binary when unsigned.

    ``narrow=True`` drops the most negative code (-2**(bits-1)) so the range is symmetric,
    as symmetric INT weight quantizers use; encode never produces that code and decode
    rejects it. Rounding: every mode of :class:`Rounding` (nearest-even ties go to the even
    integer). Overflow: ``saturate`` (default), ``wrap`` (keep the low ``bits`` bits), or
    ``error``. NaN saturates to 0.
    """

    bits: int  # type: ignore[misc]
    signed: bool = True  # type: ignore[misc]
    narrow: bool = False

    def __post_init__(self) -> None:
        check_int(self.bits, "bits", 1, 53)
        for flag in ("signed", "narrow"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise TypeError(f"{flag} must be a bool, not {getattr(self, flag)!r}")
        if self.narrow and not (self.signed and self.bits >= 2):
            raise ValueError("narrow=True needs a signed integer of at least 2 bits")

@dataclasses.dataclass(frozen=True)
class FixedPoint(FixedBase):
    """Fixed point ``fixed<int_bits,frac_bits>``: a (int_bits + frac_bits)-bit integer
    scaled by 2**-frac_bits. ``int_bits`` counts the sign bit when signed (the apytypes
    convention), so ``fixed<1,7>`` spans [-1, 1 - 2**-7]. Either count may be negative as
    long as the total is 1..53. ``narrow=True`` drops the most negative code, as for
    :class:`Integer`. Rounding and overflow as :class:`Integer`.
    """

    int_bits: int
    frac_bits: int
    signed: bool = True  # type: ignore[misc]
    narrow: bool = False

    def __post_init__(self) -> None:
        check_int(self.int_bits, "int_bits", -1074, 1074)
        check_int(self.frac_bits, "frac_bits", -1074, 1074)
        for flag in ("signed", "narrow"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise TypeError(f"{flag} must be a bool, not {getattr(self, flag)!r}")
        if self.narrow and not (self.signed and self.bits >= 2):
            raise ValueError("narrow=True needs a signed format of at least 2 bits")
        total = self.int_bits + self.frac_bits
        if not 1 <= total <= 53:
            raise ValueError(
                f"int_bits + frac_bits must be in 1..53, not {self.int_bits} + "
                f"{self.frac_bits} = {total}"
            )
        if self.frac_bits > 1074 or self.int_bits > 1024:
            raise ValueError(
                "fixed point values must be float64 numbers: frac_bits <= 1074 and "
                f"int_bits <= 1024, not fixed<{self.int_bits},{self.frac_bits}>"
            )

    @property
    def bits(self) -> int:  # type: ignore[override]
        return self.int_bits + self.frac_bits

    @property
    def ulp_exp(self) -> int:
        return -self.frac_bits
