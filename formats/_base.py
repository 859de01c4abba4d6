"""The scalar-format base class: argument checking, input conversion and dispatch."""

from __future__ import annotations

import abc
import math
import numbers
import sys
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np

from . import _gpu, stream
from . import _kernels as K
from ._enums import Overflow, Rounding

__all__ = ["Format"]

# The bit view and IEEE layout of each input dtype.
_FLOAT_INPUTS: dict[np.dtype, tuple[np.dtype, K.FloatInput]] = {
    np.dtype(np.float16): (np.dtype(np.uint16), K.FloatInput(10, 15, 31, 15)),
    np.dtype(np.float32): (np.dtype(np.uint32), K.FloatInput(23, 127, 255, 31)),
    np.dtype(np.float64): (np.dtype(np.uint64), K.FloatInput(52, 1023, 2047, 63)),
}
_MODE_CODE = {m: i for i, m in enumerate(Rounding)}
_POLICY_CODE = {
    Overflow.SATURATE: K.SAT,
    Overflow.INF: K.OINF,
    Overflow.NAN: K.ONAN,
    Overflow.WRAP: K.WRAP,
    Overflow.ERROR: K.OERR,
}
_DUMMY_RND = np.zeros(1, np.int64)


def code_dtype(bits: int) -> np.dtype:
    """Smallest unsigned integer dtype that holds a ``bits``-bit code."""
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if bits <= np.dtype(dt).itemsize * 8:
            return np.dtype(dt)
    raise ValueError(f"bits must be at most 64, not {bits}")


def _to_float(fr: Fraction) -> float:
    """``fr`` rounded to nearest float64 (+-Inf beyond its range)."""
    try:
        return float(fr)
    except OverflowError:
        return math.inf if fr > 0 else -math.inf


def _scalar(v: Any, parameter: str) -> tuple[float, Fraction | None]:
    """One input number as (float64 value, exact value where float64 cannot hold it)."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{parameter} must be numeric (float array, tensor or number), not bool")
    if isinstance(v, numbers.Integral):
        n = int(v)
        f = _to_float(Fraction(n))
        return f, None if math.isfinite(f) and int(f) == n else Fraction(n)
    if isinstance(v, np.floating) and v.dtype.itemsize > 8:  # longdouble
        if not np.isfinite(v):
            return float(v), None
        fr = Fraction(*v.as_integer_ratio())
    elif isinstance(v, (float, np.floating)):
        return float(v), None
    elif isinstance(v, Decimal):
        if not v.is_finite():
            return (math.nan if v.is_nan() else float(v)), None
        fr = Fraction(v)
    elif isinstance(v, numbers.Rational):
        fr = Fraction(int(v.numerator), int(v.denominator))
    elif isinstance(v, numbers.Real):
        return float(v), None
    else:
        raise TypeError(
            f"{parameter} must hold real numbers (float, int, Fraction, Decimal), not "
            f"{type(v).__name__}"
        )
    f = _to_float(fr)
    return f, None if math.isfinite(f) and Fraction(f) == fr else fr


class InputArray:
    """A user's input as a flat contiguous numpy array, and how to give results back.

    Elements float64 cannot hold exactly (integers beyond 2**53, Fractions, longdouble,
    Decimal) are kept as exact :class:`Fraction` values in ``exact`` (flat index ->
    value), their float64 neighbours in ``array``; with ``exact=False`` they are refused.
    """

    def __init__(self, x: Any, parameter: str = "x", exact: bool = False) -> None:
        self.scalar = False
        self.torch_like: Any = None
        self.exact: dict[int, Fraction] = {}
        if isinstance(x, (numbers.Real, Decimal, np.bool_)):
            self.scalar = True
            f, fr = _scalar(x, parameter)
            arr = np.asarray(f, dtype=np.float64)
            if fr is not None:
                self.exact[0] = fr
        elif type(x).__module__.startswith("torch") and hasattr(x, "detach"):
            self.torch_like = x
            t = x.detach()
            if t.is_complex() or t.dtype.__str__() == "torch.bool":
                raise TypeError(f"{parameter} must be a real tensor, not {t.dtype}")
            if t.is_floating_point() and str(t.dtype) in ("torch.float16", "torch.float32",
                                                          "torch.float64"):
                arr = t.cpu().numpy()
            elif t.is_floating_point():
                import torch

                arr = t.cpu().to(torch.float32).numpy()
            else:
                arr = self._from_ints(t.cpu().numpy(), parameter)
        else:
            try:
                arr = np.asarray(x)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{parameter} must be an array of real numbers: {exc}") from None
            if arr.dtype.kind == "O":
                arr = self._from_objects(arr, parameter)
            elif arr.dtype.kind in "iu":
                arr = self._from_ints(arr, parameter)
            elif arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
                arr = self._from_longdouble(arr)
            elif arr.dtype.kind != "f":
                raise TypeError(
                    f"{parameter} must hold real numbers (float16/32/64, integers, "
                    f"Fractions), not dtype {arr.dtype}"
                )
        if self.exact and not exact:
            raise ValueError(
                f"{parameter} holds {len(self.exact)} value(s) that float64 cannot hold "
                "exactly (integers beyond 2**53, Fractions, longdouble or Decimal), which "
                "this operation takes only as float64; convert them with float() if "
                "rounding them first is intended"
            )
        if arr.dtype not in _FLOAT_INPUTS:
            arr = arr.astype(np.float64)
        self.array = np.asarray(arr, order="C")
        self.shape = self.array.shape

    def _from_ints(self, arr: np.ndarray, parameter: str) -> np.ndarray:
        out = arr.astype(np.float64)
        big = np.flatnonzero(np.abs(out.reshape(-1)) >= 2.0**53)
        flat = arr.reshape(-1)
        for i in big:
            f, fr = _scalar(int(flat[i]), parameter)
            if fr is not None:
                self.exact[int(i)] = fr
        return out

    def _from_longdouble(self, arr: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            out = arr.astype(np.float64)
            flat = arr.reshape(-1)
            inexact = np.flatnonzero((out.reshape(-1).astype(arr.dtype) != flat)
                                     & np.isfinite(flat))
        for i in inexact:
            self.exact[int(i)] = Fraction(*flat[i].as_integer_ratio())
        return out

    def _from_objects(self, arr: np.ndarray, parameter: str) -> np.ndarray:
        out = np.empty(arr.shape, np.float64)
        flat = out.reshape(-1)
        for i, v in enumerate(arr.reshape(-1)):
            flat[i], fr = _scalar(v, parameter)
            if fr is not None:
                self.exact[i] = fr
        return out

    @property
    def flat(self) -> np.ndarray:
        return self.array.reshape(-1)

    def bits(self) -> tuple[np.ndarray, K.FloatInput]:
        view_dtype, fin = _FLOAT_INPUTS[self.array.dtype]
        return self.flat.view(view_dtype), fin

    def give_back(self, result: np.ndarray) -> Any:
        result = result.reshape(self.shape)
        if self.scalar:
            v = result[()]
            return int(v) if result.dtype.kind in "iu" else float(v)
        if self.torch_like is not None:
            import torch

            if result.dtype == np.uint64 or result.dtype == np.uint32:
                result = result.astype(np.int64)
            out = torch.from_numpy(np.asarray(result, order="C").copy()).to(
                self.torch_like.device
            )
            if result.dtype.kind == "f" and self.torch_like.is_floating_point():
                out = out.to(self.torch_like.dtype)  # exact: the values came from that dtype
            return out
        return result


class Format(abc.ABC):
    """Behaviour shared by every scalar format.

    Subclasses are frozen dataclasses holding only what the format's definition states;
    everything else is a property. They implement ``_encode_flat``, ``_decode_flat`` and
    may override ``_quantize_flat`` with a fused kernel.
    """

    bits: int
    signed: bool

    # --- facts every format answers -------------------------------------------------
    @property
    def num_codes(self) -> int:
        return 1 << self.bits

    @property
    def default_overflow(self) -> Overflow:
        return Overflow.SATURATE

    @property
    def allowed_overflow(self) -> tuple[Overflow, ...]:
        return (Overflow.SATURATE, Overflow.ERROR)

    @property
    def has_inf(self) -> bool:
        return False

    @property
    def has_nan(self) -> bool:
        return False

    def __str__(self) -> str:
        from .names import canonical_name

        return canonical_name(self)

    # --- argument checking -------------------------------------------------------------
    def _mode(self, rounding: Any) -> Rounding:
        return Rounding.coerce(rounding, "rounding")

    def _policy(self, overflow: Any) -> Overflow:
        if overflow is None:
            return self.default_overflow
        pol = Overflow.coerce(overflow, "overflow")
        if pol not in self.allowed_overflow:
            allowed = ", ".join(repr(p.value) for p in self.allowed_overflow)
            raise ValueError(f"overflow for {self} must be one of {allowed}, not {pol.value!r}")
        return pol

    @staticmethod
    def _check_rand(mode: Rounding, seed: Any, rand_bits: int | None) -> None:
        """Validate ``seed`` and ``rand_bits`` (drawing nothing from a Generator)."""
        if rand_bits is not None:
            if isinstance(rand_bits, bool) or not isinstance(rand_bits, (int, np.integer)) or not (
                1 <= rand_bits <= 62
            ):
                raise ValueError(
                    f"rand_bits must be an integer in 1..62 or None, not {rand_bits!r}"
                )
        if mode is not Rounding.STOCHASTIC:
            if seed is not None and not isinstance(seed, (int, np.integer, np.random.Generator)):
                raise TypeError(f"seed must be an int or numpy.random.Generator, not {seed!r}")

    def _rand(self, mode: Rounding, n: int, seed: Any, rand_bits: int | None) -> tuple[
        np.ndarray, int
    ]:
        self._check_rand(mode, seed, rand_bits)
        if mode is not Rounding.STOCHASTIC:
            return _DUMMY_RND, 0
        # the element's flat index is its counter in the one stream (formats.stream)
        return stream.random_bits(stream.key(seed), max(n, 1)), int(rand_bits or 0)

    @staticmethod
    def _check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype, what: str) -> np.ndarray:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy.ndarray, not {type(out).__name__}")
        if out.shape != shape:
            raise ValueError(f"out must have shape {shape} (the input's), not {out.shape}")
        if out.dtype != dtype:
            raise ValueError(f"out must have dtype {dtype} for {what}, not {out.dtype}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out must be a writeable C-contiguous array")
        return out.reshape(-1)

    # --- public API ---------------------------------------------------------------------
    def encode(
        self,
        x: Any,
        rounding: Rounding | str = Rounding.NEAREST_EVEN,
        overflow: Overflow | str | None = None,
        *,
        seed: Any = None,
        rand_bits: int | None = None,
        out: np.ndarray | None = None,
    ) -> Any:
        """Round ``x`` to this format and return the codes.

        Parameters
        ----------
        x : numpy array (float16/32/64 or integers), torch tensor, or Python number
        rounding : a :class:`Rounding` or its name; default nearest-even
        overflow : a :class:`Overflow` or its name; default: the format's spec behaviour
            (:attr:`default_overflow`)
        seed : int or numpy.random.Generator, required for stochastic rounding
        rand_bits : random bits per element for stochastic rounding (None: exact, unbiased)
        out : preallocated array of the input's shape and dtype :attr:`code_dtype`

        Returns
        -------
        Codes as unsigned integers (:attr:`code_dtype`); torch in -> torch out, a Python
        number in -> a Python int out.

        Raises
        ------
        TypeError : non-numeric input
        ValueError : a bad rounding/overflow name, an overflow policy the format cannot
            honour, a missing seed, or (overflow="error") an out-of-range element
        """
        mode = self._mode(rounding)
        policy = self._policy(overflow)
        if _gpu.on_gpu(x):
            self._check_rand(mode, seed, rand_bits)
            return _gpu.kernels("scalar").encode(self, x, mode, policy, seed, rand_bits, out)
        inp = self._input(x, mode)
        dt = self.code_dtype
        flat_out = (
            np.empty(inp.flat.size, dt)
            if out is None
            else self._check_out(out, inp.shape, dt, "codes")
        )
        rnd, rbits = self._rand(mode, inp.flat.size, seed, rand_bits)
        bad = self._encode_all(inp, flat_out, _MODE_CODE[mode], _POLICY_CODE[policy], rnd, rbits)
        self._raise_if_bad(bad, policy, inp)
        if out is not None:
            return out
        return inp.give_back(flat_out)

    def decode(self, codes: Any, *, dtype: Any = np.float64, out: np.ndarray | None = None) -> Any:
        """Values of ``codes`` (NaN/Inf where the format's specials say), as ``dtype``.

        Raises ValueError for codes outside 0..num_codes-1 and TypeError for non-integer
        codes.
        """
        if _gpu.on_gpu(codes):
            return _gpu.kernels("scalar").decode(self, codes, dtype, out)
        torch_like = None
        if type(codes).__module__.startswith("torch") and hasattr(codes, "detach"):
            torch_like = codes
            codes = codes.detach().cpu().numpy()
        scalar = isinstance(codes, (numbers.Integral,)) and not isinstance(codes, bool)
        arr = np.asarray(codes)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"codes must be integers, not dtype {arr.dtype}")
        flat = np.ascontiguousarray(arr).reshape(-1)
        if flat.size:
            lo, hi = int(flat.min()), int(flat.max())
            if lo < 0 or hi >= self.valid_codes:
                raise ValueError(
                    f"codes for {self} must be in 0..{self.valid_codes - 1}, "
                    f"got values in {lo}..{hi}"
                )
        if flat.dtype.kind == "i":
            flat = flat.astype(np.uint64 if flat.dtype.itemsize == 8 else code_dtype(self.bits))
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32 or float64, not {dtype!r}") from None
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, not {dtype}")
        res = (
            np.empty(flat.size, dtype)
            if out is None
            else self._check_out(out, arr.shape, dtype, "values")
        )
        self._decode_flat(flat, res)
        if out is not None:
            return out
        res = res.reshape(arr.shape)
        if scalar:
            return float(res[()])
        if torch_like is not None:
            import torch

            return torch.from_numpy(res).to(torch_like.device)
        return res

    def quantize(
        self,
        x: Any,
        rounding: Rounding | str = Rounding.NEAREST_EVEN,
        overflow: Overflow | str | None = None,
        *,
        seed: Any = None,
        rand_bits: int | None = None,
        out: np.ndarray | None = None,
    ) -> Any:
        """``decode(encode(x))`` in the input's float dtype (float64 for integer input).

        Same parameters and errors as :meth:`encode`; ``out`` must match the input's shape
        and float dtype. Results that the input dtype cannot hold (only possible when a
        format's range exceeds the input dtype's) overflow to Inf as an IEEE cast would,
        and integer/fixed-point values wider than the dtype's significand (more than 24
        bits for float32) are rounded by the final cast: use float64 input, or
        :meth:`encode`, whose codes are always exact.
        """
        mode = self._mode(rounding)
        policy = self._policy(overflow)
        if _gpu.on_gpu(x):
            self._check_rand(mode, seed, rand_bits)
            return _gpu.kernels("scalar").quantize(self, x, mode, policy, seed, rand_bits,
                                                   out)
        inp = self._input(x, mode)
        vdt = inp.array.dtype
        work_dt = np.dtype(np.float32) if vdt == np.float16 else vdt
        if out is not None:
            flat_out = self._check_out(out, inp.shape, vdt, "values")
        else:
            flat_out = np.empty(inp.flat.size, vdt)
        target = flat_out if work_dt == vdt else np.empty(inp.flat.size, work_dt)
        rnd, rbits = self._rand(mode, inp.flat.size, seed, rand_bits)
        if inp.exact:
            codes = np.empty(inp.flat.size, self.code_dtype)
            bad = self._encode_all(inp, codes, _MODE_CODE[mode], _POLICY_CODE[policy], rnd,
                                   rbits)
            self._decode_flat(codes, target)
        else:
            bad = self._quantize_flat(
                inp, target, _MODE_CODE[mode], _POLICY_CODE[policy], rnd, rbits
            )
        self._raise_if_bad(bad, policy, inp)
        if target is not flat_out:
            flat_out[...] = target
        if out is not None:
            return out
        return inp.give_back(flat_out)

    def values(self) -> np.ndarray:
        """The value of every code, in code order (NaN/Inf included), as float64."""
        if self.bits > 20:
            raise ValueError(f"values() lists at most 2**20 codes; {self} has {self.bits} bits")
        return self.decode(np.arange(self.valid_codes, dtype=np.uint64).astype(self.code_dtype))

    def finite_values(self) -> np.ndarray:
        """The distinct finite values, sorted ascending (-0 and +0 both kept if present)."""
        v = self.values()
        v = v[np.isfinite(v)]
        keys = np.unique(v.view(np.int64))
        out = keys.view(np.float64)
        return np.sort(out, kind="stable") if out.size else out

    # --- exact inputs -------------------------------------------------------------------
    @staticmethod
    def _input(x: Any, mode: Rounding) -> InputArray:
        inp = InputArray(x, exact=True)
        if inp.exact and mode is Rounding.STOCHASTIC:
            raise ValueError(
                "rounding='stochastic' takes values float64 holds exactly; x holds "
                f"{len(inp.exact)} that it cannot (integers beyond 2**53, Fractions, "
                "longdouble or Decimal): use a deterministic rounding mode, or convert "
                "them with float() first"
            )
        return inp

    def _encode_all(
        self, inp: InputArray, out: np.ndarray, mode: int, policy: int, rnd: np.ndarray, rbits: int
    ) -> int:
        """``_encode_flat`` plus exact rounding of the elements float64 cannot hold."""
        if inp.exact:
            # the kernel sees an in-range stand-in, so only the exact result counts
            idx = np.fromiter(inp.exact, np.int64, len(inp.exact))
            inp.flat[idx] = self.max
        bad = self._encode_flat(inp, out, mode, policy, rnd, rbits)
        for i, fr in inp.exact.items():
            out[i], over = self._encode_exact(fr, mode, policy)
            bad += int(over)
        return bad

    def _encode1(self, v: float, mode: int, policy: int) -> tuple[int, bool]:
        """Code and overflow flag of one float64 value, through the kernels."""
        out = np.empty(1, self.code_dtype)
        bad = self._encode_flat(InputArray(np.array([v])), out, mode, policy, _DUMMY_RND, 0)
        return int(out[0]), bool(bad)

    def _value1(self, code: int) -> float:
        out = np.empty(1, np.float64)
        self._decode_flat(np.array([code], self.code_dtype), out)
        return float(out[0])

    def _bracket(self, x: Fraction) -> tuple[float, float]:
        """The adjacent float64 numbers lo < x < hi around ``x`` (not a float64): hi is
        -0.0 for tiny negative x, +-Inf beyond float64's range."""
        f = _to_float(x)
        if math.isinf(f):
            f = math.copysign(sys.float_info.max, f)
        if Fraction(f) < x:
            lo, hi = f, math.nextafter(f, math.inf)
        else:
            lo, hi = math.nextafter(f, -math.inf), f
        if x < 0 and hi == 0:
            hi = -0.0
        return lo, hi

    def _encode_exact(self, x: Fraction, mode: int, policy: int) -> tuple[int, bool]:
        """Code and overflow flag of an exact rational ``x`` that is not a float64.

        Every value of a format is a float64, so none lies strictly between x's float64
        neighbours lo and hi: up/down/toward-zero of x are those of hi or lo, and x rounds
        to nearest as lo or hi does, unless they differ, when the exact midpoint of the
        two results decides (:meth:`_split`).
        """
        lo, hi = self._bracket(x)
        a = self._encode1(lo, mode, policy)
        b = self._encode1(hi, mode, policy)
        if mode == K.UP or (mode == K.RTZ and x < 0):
            return b
        if mode == K.DOWN or mode == K.RTZ:
            return a
        return a if a == b else self._split(x, a, b, mode)

    def _split(
        self, x: Fraction, a: tuple[int, bool], b: tuple[int, bool], mode: int
    ) -> tuple[int, bool]:
        """Nearest rounding of x between the results ``a`` (of lo) and ``b`` (of hi),
        adjacent finite values: ties to the even code (the lower code if both are even
        or odd) or away from zero."""
        mid = (Fraction(self._value1(a[0])) + Fraction(self._value1(b[0]))) / 2
        if x != mid:
            return a if x < mid else b
        if mode == K.RNA:
            return b if x > 0 else a
        if a[0] % 2 != b[0] % 2:
            return a if a[0] % 2 == 0 else b
        return min(a, b)

    # --- shared pieces ------------------------------------------------------------------
    @property
    def code_dtype(self) -> np.dtype:
        return code_dtype(self.bits)

    @property
    def valid_codes(self) -> int:
        return self.num_codes

    def _raise_if_bad(self, bad: int, policy: Overflow, inp: InputArray) -> None:
        if bad and policy is Overflow.ERROR:
            raise ValueError(
                f"{bad} element(s) of x are out of range for {self} (NaN, Inf, or beyond "
                f"+-{self.max}) and overflow='error'"
            )

    def _quantize_flat(
        self, inp: InputArray, out: np.ndarray, mode: int, policy: int, rnd: np.ndarray, rbits: int
    ) -> int:
        codes = np.empty(inp.flat.size, self.code_dtype)
        bad = self._encode_flat(inp, codes, mode, policy, rnd, rbits)
        self._decode_flat(codes, out)
        return bad

    @abc.abstractmethod
    def _encode_flat(
        self, inp: InputArray, out: np.ndarray, mode: int, policy: int, rnd: np.ndarray, rbits: int
    ) -> int:
        """Encode ``inp`` into ``out``; return the count of out-of-range elements."""

    @abc.abstractmethod
    def _decode_flat(self, codes: np.ndarray, out: np.ndarray) -> None:
        """Decode validated ``codes`` into ``out``."""

    @property
    @abc.abstractmethod
    def max(self) -> float:
        """Largest finite value."""

    @property
    @abc.abstractmethod
    def min(self) -> float:
        """Most negative finite value (the least value for unsigned formats)."""

    @property
    @abc.abstractmethod
    def smallest_normal(self) -> float:
        """Smallest positive normal value (formats without subnormals: smallest positive)."""

    @property
    @abc.abstractmethod
    def smallest_subnormal(self) -> float:
        """Smallest positive value."""

    @property
    @abc.abstractmethod
    def eps(self) -> float:
        """Gap between 1 and the next larger value of the format's precision."""

    # --- the significand view: what a datapath must hold ---------------------------------
    # Every finite value is +-m * 2**e with an integer 0 <= m < 2**precision and
    # lsb_exp_min <= e <= lsb_exp_max (e: the exponent of the significand's least
    # significant bit). Each bound is tight: every value is a multiple of 2**lsb_exp_min
    # and some value is an odd one; the largest magnitude has its leading one at bit
    # lsb_exp_max + precision - 1. Read these three; never re-derive them from fields.
    @property
    @abc.abstractmethod
    def precision(self) -> int:
        """Significand width in bits: every finite value is ``+-m * 2**e`` with an integer
        ``0 <= m < 2**precision`` and ``lsb_exp_min <= e <= lsb_exp_max``."""

    @property
    @abc.abstractmethod
    def lsb_exp_min(self) -> int:
        """Exponent of the smallest significand LSB: every finite value is a multiple of
        ``2**lsb_exp_min`` (the format's quantum) and some value an odd multiple."""

    @property
    @abc.abstractmethod
    def lsb_exp_max(self) -> int:
        """Exponent of the largest significand LSB: that of the largest magnitude, whose
        leading one is bit ``lsb_exp_max + precision - 1`` (the bound on ``e`` above)."""

    def storage_bits(self, shape: Any) -> int:
        """Exact stored bits of a tensor of ``shape`` (a tuple of ints) in this format:
        one ``bits``-wide code per element."""
        return math.prod(check_shape(shape)) * self.bits


def check_int(value: Any, parameter: str, lo: int, hi: int) -> int:
    """Validate an integer parameter in lo..hi, Amaranth-style messages."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{parameter} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{parameter} must be an integer in {lo}..{hi}, not {value}")
    return int(value)


def check_shape(shape: Any, parameter: str = "shape") -> tuple[int, ...]:
    """A tensor shape: a tuple (or list) of non-negative ints."""
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
            for d in shape):
        raise ValueError(f"{parameter} must be a tuple of non-negative ints, not {shape!r}")
    return tuple(int(d) for d in shape)


def pow2(e: int) -> float:
    return math.ldexp(1.0, e)
