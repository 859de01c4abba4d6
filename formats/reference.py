"""Slow, obviously-correct scalar reference: exact rationals and Python ints.

Independent of the kernels: values come from the field definitions with ``Fraction``,
and rounding picks between the two neighbouring representable values by exact
comparison. Used by the tests over every code of every format up to 16 bits.
"""

from __future__ import annotations

import bisect
import functools
import math
from fractions import Fraction

from ._base import Format
from ._enums import Overflow, Rounding, Special
from .block import BlockScaled, ScaleRule
from .integer import FixedPoint, Integer
from .lut import BipolarInt, Lut
from .minifloat import Minifloat

__all__ = ["ref_block_encode", "ref_decode", "ref_encode", "ref_grid", "ref_rand62",
           "ref_round", "ref_ulp", "ref_up_probability"]

Value = Fraction | float  # float only for NaN and +-Inf


def ref_decode(fmt: Format, code: int) -> Value:
    """Exact value of ``code`` (a Fraction; NaN/Inf as floats; -0 as float -0.0)."""
    if isinstance(fmt, Minifloat):
        e, m = fmt.exp_bits, fmt.man_bits
        sign = (code >> (e + m)) & 1 if fmt.signed else 0
        f = (code >> m) & ((1 << e) - 1)
        man = code & ((1 << m) - 1)
        top = (1 << e) - 1
        if fmt.special is Special.IEEE and f == top:
            return math.nan if man else (-math.inf if sign else math.inf)
        if fmt.special is Special.FN and f == top and man == (1 << m) - 1:
            return math.nan
        if fmt.special is Special.FNUZ and sign and f == 0 and man == 0:
            return math.nan
        if f == 0 and fmt.subnormals:
            mag = Fraction(man, 1 << m) * Fraction(2) ** (1 - fmt.bias)
        else:
            mag = (1 + Fraction(man, 1 << m)) * Fraction(2) ** (f - fmt.bias)
        if mag == 0 and sign:
            return -0.0
        return -mag if sign else mag
    if isinstance(fmt, (Integer, FixedPoint)):
        v = code - (1 << fmt.bits) if fmt.signed and code >> (fmt.bits - 1) else code
        frac = fmt.frac_bits if isinstance(fmt, FixedPoint) else 0
        return Fraction(v) / Fraction(2) ** frac
    if isinstance(fmt, BipolarInt):
        return Fraction(2 * code - (2**fmt.bits - 1))
    if isinstance(fmt, Lut):
        t = fmt.table[code]
        return -0.0 if t == 0 and math.copysign(1, t) < 0 else Fraction(t)
    raise TypeError(f"no reference for {fmt!r}")


def _codes(fmt: Format) -> range:
    return range(fmt.valid_codes)


@functools.lru_cache(maxsize=64)
def ref_grid(fmt: Format) -> list[tuple[Fraction, int]]:
    """Finite (value, code) pairs sorted by value; -0 dropped in favour of +0, and codes
    a narrow integer excludes left out."""
    pairs = []
    for c in _codes(fmt):
        if getattr(fmt, "narrow", False) and c == 1 << (fmt.bits - 1):
            continue
        v = ref_decode(fmt, c)
        if isinstance(v, float):
            continue
        pairs.append((v, c))
    pairs.sort(key=lambda p: p[0])
    return pairs


def _beyond(fmt: Format, grid: list[tuple[Fraction, int]], top: bool) -> tuple[Fraction, int]:
    """The value (and code parity) just past the end of the range, with the spacing the
    format would continue with (unbounded exponent for minifloats)."""
    v, c = grid[-1] if top else grid[0]
    if isinstance(fmt, Minifloat) and not top and not fmt.signed:
        return (v - (grid[1][0] - grid[0][0]), c + 1)
    if isinstance(fmt, Minifloat):
        step = Fraction(2) ** fmt.lsb_exp_max
        return (v + step, c + 1) if top else (v - step, c + 1)
    if len(grid) > 1:
        step = grid[-1][0] - grid[-2][0] if top else grid[1][0] - grid[0][0]
    else:
        step = Fraction(1)
    return (v + step, c + 1) if top else (v - step, c + 1)


def ref_encode(
    fmt: Format,
    x: float | Fraction,
    rounding: Rounding | str = Rounding.NEAREST_EVEN,
    overflow: Overflow | str | None = None,
) -> int | None:
    """Code for ``x`` (deterministic modes). Returns None where the result is NaN, so that
    tests compare NaN-ness rather than NaN payloads; raises ValueError for errors."""
    mode = Rounding.coerce(rounding, "rounding")
    policy = fmt._policy(overflow)
    if mode is Rounding.STOCHASTIC:
        raise ValueError("the reference handles deterministic modes; see ref_up_probability")
    grid = ref_grid(fmt)
    if isinstance(x, Fraction):  # exact input (block references): finite, never -0
        xf = x
        neg = x < 0
    elif math.isnan(x):
        if fmt.has_nan:
            return None
        if policy is Overflow.ERROR:
            raise ValueError("NaN")
        return _nearest_zero_code(fmt, grid)
    else:
        neg = math.copysign(1.0, x) < 0
        if math.isinf(x):
            return _overflow(fmt, grid, neg, policy, mode, is_inf=True)
        xf = Fraction(x)
    lo_v, lo_c = grid[0]
    hi_v, hi_c = grid[-1]
    zero_less = isinstance(fmt, Minifloat) and not fmt.subnormals
    if zero_less:
        tiny = Fraction(fmt.smallest_normal)
        if xf < 0 and not fmt.signed:
            return _overflow(fmt, grid, neg, policy, mode)
        if xf == 0:
            if policy is Overflow.NAN:
                return None
            if policy is Overflow.ERROR:
                raise ValueError("zero")
            return 0
        if abs(xf) < tiny:  # below the least magnitude: clamps to it under every mode
            return (1 << (fmt.bits - 1)) if neg else 0
    if isinstance(fmt, (Lut, BipolarInt)) and not lo_v <= xf <= hi_v:
        return _overflow(fmt, grid, neg, policy, mode)  # tables: outside [min, max]
    ext, values = _extended(fmt)
    if xf > ext[-1][0]:
        return _overflow(fmt, grid, neg, policy, mode)
    if xf < ext[0][0]:
        return _overflow(fmt, grid, neg, policy, mode)
    i = bisect.bisect_left(values, xf)
    if values[i] == xf:
        choice = i
    else:
        a, b = i - 1, i
        va, vb = values[a], values[b]
        if mode is Rounding.TOWARD_ZERO:
            if abs(va) != abs(vb):
                choice = a if abs(va) < abs(vb) else b
            else:
                choice = a if neg else b
        elif mode is Rounding.UP:
            choice = b
        elif mode is Rounding.DOWN:
            choice = a
        else:
            mid = (va + vb) / 2
            if xf < mid:
                choice = a
            elif xf > mid:
                choice = b
            elif mode is Rounding.NEAREST_AWAY:
                choice = b if abs(vb) > abs(va) or (abs(vb) == abs(va) and not neg) else a
            else:
                ca, cb = ext[a][1], ext[b][1]
                if abs(va) == abs(vb):  # tie at zero between -v and +v: the sign of x
                    choice = a if neg else b
                elif ca % 2 != cb % 2:
                    choice = a if ca % 2 == 0 else b
                else:  # same parity (only in unordered tables): the lower code
                    choice = a if ca < cb else b
    v, c = ext[choice]
    if choice == 0 or choice == len(ext) - 1:
        return _overflow(fmt, grid, neg, policy, mode)
    return _signed_zero(fmt, v, c, neg)


@functools.lru_cache(maxsize=64)
def _extended(fmt: Format) -> tuple[list[tuple[Fraction, int]], list[Fraction]]:
    """The grid extended one step past each end, so that rounding decides overflow."""
    grid = ref_grid(fmt)
    ext = [_beyond(fmt, grid, False), *grid, _beyond(fmt, grid, True)]
    return ext, [p[0] for p in ext]


def _signed_zero(fmt: Format, v: Fraction, c: int, neg: bool) -> int | None:
    if v != 0:
        return c
    if isinstance(fmt, Minifloat):
        if fmt.has_negative_zero and neg:
            return c | (1 << (fmt.bits - 1))
        return c
    if isinstance(fmt, Lut):
        for code, t in enumerate(fmt.table):
            if t == 0 and (math.copysign(1, t) < 0) == neg:
                return code
    return c


def _nearest_zero_code(fmt: Format, grid: list[tuple[Fraction, int]]) -> int:
    best = min(grid, key=lambda p: (abs(p[0]), p[0] < 0))
    return best[1]


def _overflow(
    fmt: Format, grid: list[tuple[Fraction, int]], neg: bool, policy: Overflow, mode: Rounding,
    is_inf: bool = False,
) -> int | None:
    if policy is Overflow.ERROR:
        raise ValueError("overflow")
    below = neg and not fmt.signed
    if below:
        if isinstance(fmt, Minifloat) and policy is Overflow.NAN:
            return None
        return grid[0][1]
    to_max = not is_inf and (
        mode is Rounding.TOWARD_ZERO
        or (mode is Rounding.DOWN and not neg)
        or (mode is Rounding.UP and neg)
    )
    end = grid[0][1] if neg else grid[-1][1]
    if policy is Overflow.SATURATE or to_max:
        return end
    if policy is Overflow.INF:
        assert isinstance(fmt, Minifloat)
        inf = ((1 << fmt.exp_bits) - 1) << fmt.man_bits
        return inf | ((1 << (fmt.bits - 1)) if neg else 0)
    return None


def ref_ulp(fmt: Format, x: Fraction) -> Fraction:
    """The weight of ``fmt``'s significand LSB at ``x``: the spacing of its values
    around ``x``, ``2**clamp(floor(log2 |x|) - precision + 1, lsb_exp_min,
    lsb_exp_max)`` (``2**lsb_exp_min`` at 0), continued past the largest value with the
    top binade's LSB (a minifloat, integer or fixed-point format)."""
    e = fmt.lsb_exp_min if x == 0 else _floor_log2(abs(x)) - fmt.precision + 1
    return Fraction(2) ** min(max(e, fmt.lsb_exp_min), fmt.lsb_exp_max)


_M64 = (1 << 64) - 1


def ref_rand62(k: int, idx: int) -> int:
    """The random stream (:mod:`formats.stream`) in Python integers: SplitMix64's output
    function of ``k + idx * 0x9E3779B97F4A7C15`` (mod 2**64), shifted right by 2."""
    z = (k + idx * 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    z ^= z >> 31
    return z >> 2


def ref_round(x: Fraction | float, fmt: Format, mode: Rounding | str = Rounding.NEAREST_EVEN,
              overflow: Overflow | str | None = None) -> Fraction | float:
    """The exact ``x`` (a Fraction, or a float: +-Inf and NaN too) rounded to a value of
    ``fmt`` by arithmetic on its LSB (:func:`ref_ulp`), the value-level counterpart of
    :func:`ref_encode`'s search of the value grid; for a signed :class:`Minifloat` with
    subnormals, an :class:`Integer` or a :class:`FixedPoint` (wide formats too: no grid is
    listed), deterministic modes. Returns a Fraction, or a float for +-Inf and NaN.

    Beyond the range the policy decides (default the format's): saturate and error give
    the largest magnitude, inf +-Inf, nan NaN, wrap keeps the low ``bits`` of a fixed-point
    integer; directed rounding toward the range gives the largest magnitude under any
    policy (IEEE 754 section 7.4). NaN gives NaN; +-Inf is an overflow (ValueError under
    wrap, as :meth:`Format.encode`).
    """
    mode = Rounding.coerce(mode, "mode")
    if mode is Rounding.STOCHASTIC:
        raise ValueError("ref_round takes deterministic modes; see ref_up_probability")
    if not (isinstance(fmt, (Integer, FixedPoint)) or (
            isinstance(fmt, Minifloat) and fmt.signed and fmt.subnormals)):
        raise ValueError(f"ref_round takes a signed minifloat with subnormals, an integer or "
                         f"a fixed-point format, not {fmt}")
    policy = fmt._policy(overflow)
    if isinstance(x, float) and math.isnan(x):
        return math.nan
    neg = x < 0
    if isinstance(x, float) and math.isinf(x):
        if policy is Overflow.WRAP:
            raise ValueError(f"x is {x}, which cannot wrap into {fmt}")
        val: Fraction | None = None  # beyond every finite value
    else:
        x = Fraction(x)
        ulp = ref_ulp(fmt, x)
        v = x / ulp
        q = math.floor(v)
        rem = v - q
        if mode is Rounding.NEAREST_EVEN:
            inc = rem > Fraction(1, 2) or (rem == Fraction(1, 2) and q % 2 == 1)
        elif mode is Rounding.NEAREST_AWAY:
            inc = rem > Fraction(1, 2) or (rem == Fraction(1, 2) and not neg)
        elif mode is Rounding.TOWARD_ZERO:
            inc = rem != 0 and neg
        elif mode is Rounding.UP:
            inc = rem != 0
        else:
            inc = False
        val = (q + int(inc)) * ulp
        lo, hi = Fraction(fmt.min), Fraction(fmt.max)
        if lo <= val <= hi:
            return val
        if policy is Overflow.WRAP:
            span = Fraction(2) ** fmt.bits * ulp
            return (val - lo) % span + lo
    mx = Fraction(fmt.max)
    to_max = val is not None and (mode is Rounding.TOWARD_ZERO or (
        mode is Rounding.DOWN and not neg) or (mode is Rounding.UP and neg))
    if policy in (Overflow.SATURATE, Overflow.ERROR) or to_max:
        return Fraction(fmt.min) if neg else mx
    if policy is Overflow.INF:
        return -math.inf if neg else math.inf
    return math.nan


def ref_up_probability(fmt: Format, x: float) -> tuple[int, int, Fraction]:
    """For stochastic rounding of an in-range ``x``: (lower code, upper code, P(upper))."""
    grid = ref_grid(fmt)
    xf = Fraction(x)
    values = [p[0] for p in grid]
    i = bisect.bisect_right(values, xf)
    a, b = grid[i - 1], grid[min(i, len(grid) - 1)]
    if a[0] == xf or a == b:
        return a[1], a[1], Fraction(0)
    return a[1], b[1], (xf - a[0]) / (b[0] - a[0])


# --- block-scaled formats ------------------------------------------------------------
def _floor_log2(a: Fraction) -> int:
    """floor(log2(a)) for a > 0, exactly."""
    n = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** n > a:
        n -= 1
    if Fraction(2) ** (n + 1) <= a:
        n += 1
    return n


def _value(fmt: Format, code: int) -> Fraction:
    v = ref_decode(fmt, code)
    assert isinstance(v, Fraction) or v == 0
    return Fraction(v)


def _ref_scale(f: BlockScaled, amax: Fraction, ts: Fraction) -> Fraction:
    """A block's scale value from its exact maximum (or range, for zero points)."""
    sc = f.scale
    elem_max = Fraction(f.element.max)
    if f.pow2_scale:
        assert isinstance(sc, Minifloat)
        if amax == 0:
            return Fraction(2) ** sc.emin
        emax_elem = _floor_log2(elem_max)
        rule = f.scale_rule
        if rule is ScaleRule.FLOOR:
            k = _floor_log2(amax) - emax_elem
        elif rule is ScaleRule.CEIL:
            k = _floor_log2(amax) + (0 if amax == Fraction(2) ** _floor_log2(amax) else 1)
            k -= emax_elem
        elif rule is ScaleRule.EVEN:
            man = f.element.man_bits if isinstance(f.element, Minifloat) else 0
            e = _floor_log2(amax)
            unit = Fraction(2) ** (e - man)
            r = math.floor(amax / unit + Fraction(1, 2)) * unit  # ties away (amax > 0)
            k = _floor_log2(r) - emax_elem
        elif rule is ScaleRule.RCEIL:
            k = _floor_log2(amax / elem_max)
            if elem_max * Fraction(2) ** k < amax:
                k += 1
        else:
            raise ValueError(f"the reference has no scale rule {rule.value!r}")
        return Fraction(2) ** min(max(k, sc.emin), sc.emax)
    mode = Rounding.UP if f.scale_rule is ScaleRule.RCEIL else f.scale_rounding
    if f.scale_rule not in (ScaleRule.NEAREST, ScaleRule.RCEIL):
        raise ValueError(f"the reference has no scale rule {f.scale_rule.value!r}")
    code = ref_encode(sc, amax / ts / elem_max, mode, "saturate")
    assert code is not None
    return _value(sc, code)


def ref_block_encode(
    f: BlockScaled, x: list[list[float]]
) -> tuple[list[list[int]], list[int], list[int] | None, float | None]:
    """Exact encoding of finite ``x`` (rows of float values, blocked along the rows in
    blocks of ``f.block_size``; row length a multiple of it) by the definitions in
    :class:`formats.BlockScaled`: returns (element codes per row, scale codes in block
    order, zero-point codes or None, tensor scale or None). Rules: floor, ceil, even,
    rceil, nearest (not mse)."""
    bs = f.block_size
    if not isinstance(bs, int):
        raise ValueError("the reference handles 1-D blocks")
    blocks = [[Fraction(v) for v in row[i:i + bs]] for row in x for i in range(0, len(row), bs)]
    ts = Fraction(1)
    ts_out = None
    if f.tensor_scale is not None:
        tmax = max((abs(v) for b in blocks for v in b), default=Fraction(0))
        ideal = tmax / (Fraction(f.element.max) * Fraction(f.scale.max))
        if ideal > 0:
            # nearest-even onto the (wide) format, saturating, without its code table
            r = ref_round(ideal, f.tensor_scale, Rounding.NEAREST_EVEN, Overflow.SATURATE)
            assert isinstance(r, Fraction)
            ts = r or Fraction(1)
        ts_out = float(ts)
    codes: list[int] = []
    scodes: list[int] = []
    zcodes: list[int] = []
    for b in blocks:
        if f.zero_point:
            q = int(f.element.max)
            lo, hi = min(min(b), Fraction(0)), max(max(b), Fraction(0))
            s = _ref_scale(f, hi - lo, ts)
            z = min(max(round(-lo / s), 0), q) if s > 0 else 0
            for v in b:
                codes.append(min(max(round(v / s) + z, 0), q) if s > 0 else 0)
            zcodes.append(z)
        else:
            s = _ref_scale(f, max(abs(v) for v in b), ts) * ts
            for v in b:
                y = v / s if s != 0 else Fraction(0)
                c = ref_encode(f.element, y, "nearest_even", "saturate")
                assert c is not None
                codes.append(c)
        sc = ref_encode(f.scale, s / ts if not f.zero_point else s, "nearest_even", "saturate")
        assert sc is not None
        scodes.append(sc)
    n = len(x[0]) if x else 0
    rows = [codes[i:i + n] for i in range(0, len(codes), n)]
    return rows, scodes, zcodes if f.zero_point else None, ts_out
