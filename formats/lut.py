"""Lookup-table formats (NF4, FP4-as-table, user tables) and bipolar-INT."""

from __future__ import annotations

import dataclasses
import functools
import math
from fractions import Fraction
from typing import Any

import numpy as np

from . import _kernels as K
from ._base import Format, InputArray, check_int

__all__ = ["NF4_VALUES", "BipolarInt", "Lut"]

#: The 16 NF4 values in code order, as float32 constants (QLoRA, Dettmers et al. 2023,
#: appendix E; the table bitsandbytes ships in functional.get_4bit_type("nf4")).
NF4_VALUES: tuple[float, ...] = tuple(
    float(np.float32(v))
    for v in (
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
        -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
        0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    )
)


def _total_key(v: np.ndarray) -> np.ndarray:
    """Integer keys monotone in value with -0 below +0 (as the kernel's _key)."""
    k = np.asarray(v, np.float64).view(np.int64)
    return np.where(k >= 0, k, -(k & np.int64(0x7FFFFFFFFFFFFFFF)) - 1)


class _Table(Format):
    """Shared machinery for formats defined by a finite table of values."""

    #: The value of each code, in code order (a field of Lut, a property of BipolarInt).
    table: tuple[float, ...]

    @functools.cached_property
    def _sorted(self) -> tuple[np.ndarray, ...]:
        vals = np.asarray(self.table, np.float64)
        keys = _total_key(vals)
        order = np.argsort(keys, kind="stable")
        svals, skeys = vals[order], keys[order]
        n = svals.size
        mid = np.empty(max(n - 1, 1), np.float64)
        exact = np.zeros(max(n - 1, 1), np.bool_)
        for j in range(n - 1):
            true_mid = (Fraction(float(svals[j])) + Fraction(float(svals[j + 1]))) / 2
            m = float(true_mid)
            if Fraction(m) > true_mid:
                m = math.nextafter(m, -math.inf)
            mid[j], exact[j] = m, Fraction(m) == true_mid
        return skeys, svals, mid, exact, order.astype(np.int64)

    @property
    def max(self) -> float:
        return float(max(self.table))

    @property
    def min(self) -> float:
        return float(min(self.table))

    @property
    def smallest_subnormal(self) -> float:
        """Smallest positive magnitude in the table (no subnormals here: same as normal)."""
        mags = [abs(v) for v in self.table if v != 0]
        return float(min(mags))

    @property
    def smallest_normal(self) -> float:
        return self.smallest_subnormal

    @property
    def eps(self) -> float:
        """Gap between 1 and the next larger value, or NaN if 1 is not in the table."""
        above = sorted(v for v in self.table if v > 1.0)
        return float(above[0] - 1.0) if 1.0 in self.table and above else math.nan

    @property
    def valid_codes(self) -> int:
        return len(self.table)

    @functools.cached_property
    def _significands(self) -> tuple[int, int, int]:
        """(precision, lsb_exp_min, lsb_exp_max) read off the table's float64 values."""
        mags = [abs(v) for v in self.table if v != 0]
        sig, low, top = 1, None, None
        for v in mags:
            m, e = math.frexp(v)  # v = m * 2**e, 0.5 <= m < 1: 53-bit integer significand
            n = int(m * 2**53)
            tz = (n & -n).bit_length() - 1
            sig = max(sig, 53 - tz)
            low = e - 53 + tz if low is None else min(low, e - 53 + tz)
            top = e if top is None else max(top, e)
        assert low is not None and top is not None  # a table holds a nonzero value
        return sig, low, top - sig

    @property
    def precision(self) -> int:
        """The most significant bits any table value has (the table is read as
        floating-point numbers of the least significand width that holds them all)."""
        return self._significands[0]

    @property
    def lsb_exp_min(self) -> int:
        """Exponent of the lowest set bit over the table's values (its quantum)."""
        return self._significands[1]

    @property
    def lsb_exp_max(self) -> int:
        """``floor(log2(largest magnitude)) - precision + 1``."""
        return self._significands[2]

    @functools.cached_property
    def _nan_code(self) -> int:
        """Code NaN inputs get: the entry nearest zero (+0 before -0)."""
        return min(range(len(self.table)),
                   key=lambda i: (abs(self.table[i]), bool(np.signbit(self.table[i]))))

    @functools.cached_property
    def _nearest(self) -> dict[int, tuple[Any, ...]]:
        """Per nearest mode: padded midpoints, exactness, tie rules (table_nearest)."""
        keys, vals, mid, exact, order = self._sorted
        nmid = max(vals.size - 1, 1)
        npad = 1 << nmid.bit_length()  # the search reaches counts 0..npad-1 >= nmid
        mids = np.full(npad, np.inf)
        mids[: vals.size - 1] = mid[: vals.size - 1]
        ex = exact[:nmid].copy() if vals.size > 1 else np.zeros(1, np.bool_)
        rules = {}
        for mode in (K.RNE, K.RNA):
            rule = np.zeros(nmid, np.int64)
            for j in range(vals.size - 1):
                a, c = vals[j], vals[j + 1]
                if abs(a) == abs(c):
                    rule[j] = 2
                elif mode == K.RNA:
                    rule[j] = int(abs(c) > abs(a))
                else:
                    ca, cb = order[j] & 1, order[j + 1] & 1
                    rule[j] = int(cb < ca or (cb == ca and order[j + 1] < order[j]))
            rules[mode] = (mids, ex, rule, order, np.int64(npad))
        return rules

    def _encode_flat(
        self, inp: InputArray, out: np.ndarray, mode: int, policy: int, rnd: np.ndarray, rbits: int
    ) -> int:
        keys, vals, mid, exact, order = self._sorted
        x = inp.flat.astype(np.float64) if inp.flat.dtype == np.float16 else inp.flat
        nan_code = self._nan_code
        if mode in (K.RNE, K.RNA):
            bad = int(K.table_nearest(x, out, *self._nearest[mode], nan_code))
        else:
            bad = int(
                K.sorted_encode(x, out, rnd, keys, vals, mid, exact, order, mode, nan_code)
            )
        if policy == K.OERR:
            with np.errstate(invalid="ignore"):
                bad += int(np.count_nonzero((x > vals[-1]) | (x < vals[0]) | np.isinf(x)))
        return bad

    def _encode_exact(self, x: Fraction, mode: int, policy: int) -> tuple[int, bool]:
        # outside [min, max] exactly when lo or hi is (the ends are float64 numbers)
        lo, hi = self._bracket(x)
        over = self._encode1(lo, mode, policy)[1] or self._encode1(hi, mode, policy)[1]
        return super()._encode_exact(x, mode, policy)[0], over

    def _decode_flat(self, codes: np.ndarray, out: np.ndarray) -> None:
        table = np.asarray(self.table, out.dtype)
        K.table_decode(codes, out, table)


@dataclasses.dataclass(frozen=True)
class Lut(_Table):
    """A format given by its table of values: code ``i`` means ``table[i]``.

    The table needs 1..65536 distinct finite values, at least one nonzero (``-0.0``
    and ``0.0`` count as distinct); it may be in any order, the codes being the
    indices. ``bits`` is the least width holding every index; codes past the table are
    invalid.

    Rounding is onto the nearest table value; a tie (an input exactly at the midpoint of
    two neighbours) goes to the entry with the even code under nearest-even (if both codes
    have the same parity, which only an unordered table allows, to the lower code), so a
    table listed in a minifloat's code order rounds exactly as that minifloat, and to the
    larger magnitude under nearest-away. A tie at zero between -v and +v (a table without
    zero) follows the sign of the zero under every mode. Toward-zero picks the neighbour
    of smaller magnitude; up/down the neighbour above/below; stochastic picks the upper
    neighbour with probability (x - lo) / (hi - lo) (float64, bias < 2**-52). Inputs
    beyond the table saturate to its ends (the only policy besides ``error``, which
    rejects anything outside [min, max]); NaN becomes the entry nearest zero, or raises
    with ``overflow="error"``.
    """

    table: tuple[float, ...]

    def __post_init__(self) -> None:
        try:
            arr = np.asarray(self.table, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"table must be a sequence of real numbers: {exc}") from None
        if arr.ndim != 1:
            raise TypeError(f"table must be a 1-D sequence of real numbers, not {self.table!r}")
        if not 1 <= arr.size <= 65536:
            raise ValueError(f"table must hold 1..65536 entries, not {arr.size}")
        if not np.isfinite(arr).all():
            raise ValueError("table values must all be finite (a Lut has no NaN or Inf)")
        if not arr.any():
            # a format needs a nonzero value: its smallest magnitude, the scale a block
            # format derives from its largest, ...
            raise ValueError(f"table must hold a nonzero value, not only zeros {arr.tolist()}")
        keys = _total_key(arr)
        if np.unique(keys).size != arr.size:
            raise ValueError("table values must be distinct (each code needs its own value)")
        object.__setattr__(self, "table", tuple(float(v) for v in arr))

    @property
    def bits(self) -> int:  # type: ignore[override]
        return max(1, (len(self.table) - 1).bit_length())

    @property
    def signed(self) -> bool:  # type: ignore[override]
        return min(self.table) < 0


@dataclasses.dataclass(frozen=True)
class BipolarInt(_Table):
    """Bipolar-INT of "Efficient Arbitrary Precision Acceleration for Large Language Models
    on GPU Tensor Cores" (Ma et al., arXiv:2409.17870; its abstract: "a novel bipolar-INT
    data format that facilitates parallel computing and supports symmetric quantization";
    the extended APT-LLM paper, arXiv:2508.19087: "efficient and lossless conversion with
    signed INT"). The paper's full text could not be consulted when this was written, so
    the section number is not cited; the definition below is the one those properties
    imply and that the bit-plane GEMM relies on.

    Bit ``i`` of an n-bit code weighs ``+2**i`` when set and ``-2**i`` when clear, so code
    ``u`` means ``2*u - (2**n - 1)``: the odd integers from ``-(2**n - 1)`` to
    ``2**n - 1``, symmetric, without zero. A two's-complement integer ``s`` converts
    losslessly as ``v = 2*s + 1``: the code is ``s``'s bit pattern with its top bit
    inverted (:meth:`from_twos_complement`, :meth:`to_twos_complement`).

    Rounding is onto the odd integers with the table rules of :class:`Lut` (ties: the
    even code under nearest-even, except that x = +-0, the tie between -1 and +1, follows
    the sign of the zero, so rounding stays sign-symmetric).
    """

    bits: int  # type: ignore[misc]

    def __post_init__(self) -> None:
        check_int(self.bits, "bits", 1, 16)

    @property
    def signed(self) -> bool:  # type: ignore[override]
        return True

    @functools.cached_property
    def table(self) -> tuple[float, ...]:  # type: ignore[override]
        return tuple(self._values.tolist())

    @functools.cached_property
    def _values(self) -> np.ndarray:
        """The odd integers in code order, an arithmetic sequence: no search needed."""
        return np.arange(self.num_codes, dtype=np.float64) * 2 - (self.num_codes - 1)

    # The _Table machinery, built with numpy from the arithmetic sequence rather than
    # entry by entry (the values are sorted, code order is value order, every midpoint is
    # an even integer and exact).
    @functools.cached_property
    def _sorted(self) -> tuple[np.ndarray, ...]:
        vals = self._values
        mid = vals[:-1] + 1 if vals.size > 1 else np.zeros(1)
        exact = np.ones(max(vals.size - 1, 1), np.bool_)
        return _total_key(vals), vals, mid, exact, np.arange(vals.size, dtype=np.int64)

    @functools.cached_property
    def _nearest(self) -> dict[int, tuple[Any, ...]]:
        keys, vals, mid, exact, order = self._sorted
        nmid = max(vals.size - 1, 1)
        npad = 1 << nmid.bit_length()
        mids = np.full(npad, np.inf)
        mids[: vals.size - 1] = mid[: vals.size - 1]
        j = np.arange(nmid, dtype=np.int64)
        at_zero = vals[:nmid] == -1  # the tie between -1 and +1: the sign of x
        rne = np.where(at_zero, 2, j & 1)  # the even code of j, j + 1
        rna = np.where(at_zero, 2, (vals[:nmid] > 0).astype(np.int64))  # away from zero
        return {mode: (mids, exact[:nmid], rule, order, np.int64(npad))
                for mode, rule in ((K.RNE, rne), (K.RNA, rna))}

    @functools.cached_property
    def _nan_code(self) -> int:
        """NaN gets +1, the entry nearest zero (as :class:`Lut`)."""
        return self.num_codes // 2

    def _decode_flat(self, codes: np.ndarray, out: np.ndarray) -> None:
        K.table_decode(codes, out, self._values.astype(out.dtype))

    @property
    def smallest_subnormal(self) -> float:
        return 1.0

    @property
    def smallest_normal(self) -> float:
        return 1.0

    @property
    def precision(self) -> int:
        """``bits``: the odd integers up to ``2**bits - 1``."""
        return self.bits

    @property
    def lsb_exp_min(self) -> int:
        """0: every value is an (odd) integer."""
        return 0

    @property
    def lsb_exp_max(self) -> int:
        """0, as :attr:`lsb_exp_min`."""
        return 0

    @property
    def max(self) -> float:
        return float(2**self.bits - 1)

    @property
    def min(self) -> float:
        return -self.max

    @property
    def eps(self) -> float:
        """Gap between 1 and the next value, 2 (NaN for 1-bit, whose values are +-1)."""
        return 2.0 if self.bits > 1 else math.nan

    def from_twos_complement(self, s: Any) -> np.ndarray:
        """Codes of the bipolar values ``2*s + 1`` for two's-complement integers ``s``
        in ``-2**(bits-1) .. 2**(bits-1) - 1`` (lossless)."""
        arr = np.asarray(s)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"s must be integers, not dtype {arr.dtype}")
        lo, hi = -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        if arr.size and (arr.min() < lo or arr.max() > hi):
            raise ValueError(f"s must be in {lo}..{hi} for {self}")
        return (arr.astype(np.int64) + (1 << (self.bits - 1))).astype(self.code_dtype)

    def to_twos_complement(self, codes: Any) -> np.ndarray:
        """Inverse of :meth:`from_twos_complement`: ``s = (v - 1) / 2``."""
        arr = np.asarray(codes)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"codes must be integers, not dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.num_codes):
            raise ValueError(f"codes for {self} must be in 0..{self.num_codes - 1}")
        return arr.astype(np.int64) - (1 << (self.bits - 1))
