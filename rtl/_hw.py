"""Arithmetic building blocks shared by the processing elements (Amaranth expressions).

Every helper takes the module ``m`` it adds logic to and returns Amaranth values. Numbers
travel between helpers as :class:`Term`: an exact value ``(-1)**sign * mag * 2**lsb``
with its ``mag`` an unsigned integer and ``lsb`` a signed exponent, plus NaN/Inf flags.
Python-side ranges of ``lsb`` travel with it, so every adder and shifter is as wide as
the formats need and no wider.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data

from formats import BipolarInt, FixedBase, Minifloat, Overflow, Rounding, Special

__all__ = ["Term", "float_layout", "int_layout", "layout_of", "lsb_range", "lzc", "round_to",
           "round_term", "significand_bits", "unpack", "add_round", "signed_width", "multiply"]


# --- layouts derived from the formats --------------------------------------------------

def float_layout(fmt: Minifloat) -> data.StructLayout:
    """The bit fields of a minifloat code, LSB first: mantissa, exponent, sign."""
    fields: dict[str, Any] = {"man": unsigned(fmt.man_bits), "exp": unsigned(fmt.exp_bits)}
    if fmt.signed:
        fields["sign"] = unsigned(1)
    return data.StructLayout(fields)


def int_layout(fmt: FixedBase | BipolarInt) -> data.StructLayout:
    """An integer code: one field, two's complement (signed) or plain binary."""
    if isinstance(fmt, BipolarInt):
        return data.StructLayout({"planes": unsigned(fmt.bits)})
    return data.StructLayout({"value": signed(fmt.bits) if fmt.signed else unsigned(fmt.bits)})


def layout_of(fmt: Any) -> data.StructLayout:
    if isinstance(fmt, Minifloat):
        return float_layout(fmt)
    if isinstance(fmt, (FixedBase, BipolarInt)):
        return int_layout(fmt)
    raise TypeError(f"no hardware layout for {fmt} ({type(fmt).__name__})")


def significand_bits(fmt: Any) -> int:
    """Bits of the unsigned significand :func:`unpack` gives for ``fmt``: a minifloat's
    ``precision``; an integer's or fixed-point format's full code width, the magnitude of
    any ``n``-bit two's-complement code (``|-2**(n-1)|`` needs all ``n``, also in narrow
    formats, where that code is unused and ``precision`` is ``n - 1``)."""
    if isinstance(fmt, Minifloat):
        return fmt.precision
    if isinstance(fmt, FixedBase):
        return fmt.bits
    raise TypeError(f"no significand for {fmt} ({type(fmt).__name__})")


def lsb_range(fmt: Any) -> tuple[int, int]:
    """(lowest, highest) exponent of the LSB of the significand :func:`unpack` gives for
    ``fmt``: the format's ``lsb_exp_min``, and for a minifloat the LSB of its top
    exponent field, which Inf/NaN codes decode with too (one binade above
    ``lsb_exp_max`` where that field holds no finite value)."""
    if isinstance(fmt, Minifloat):
        return fmt.lsb_exp_min, _lsb_of_field(fmt, (1 << fmt.exp_bits) - 1)
    if isinstance(fmt, FixedBase):
        return fmt.lsb_exp_min, fmt.lsb_exp_max
    raise TypeError(f"no significand for {fmt} ({type(fmt).__name__})")


def _lsb_of_field(fmt: Minifloat, field: Any) -> Any:
    """Exponent of the significand LSB of a minifloat code whose exponent field is
    ``field`` (``max(field, 1)`` for subnormals is the caller's)."""
    return field - (fmt.bias + fmt.man_bits)


def signed_width(lo: int, hi: int) -> int:
    """Bits of a two's-complement signal holding every integer in lo..hi."""
    n = 1
    while not (-(1 << (n - 1)) <= lo and hi <= (1 << (n - 1)) - 1):
        n += 1
    return n


# --- exact values ----------------------------------------------------------------------

@dataclasses.dataclass
class Term:
    """``(-1)**sign * mag * 2**lsb`` exactly; ``lsb`` lies in ``lsb_range``."""

    sign: Value
    mag: Value
    lsb: Value
    lsb_range: tuple[int, int]
    nan: Value
    inf: Value

    @property
    def width(self) -> int:
        return len(self.mag)


def _bit(m: Module, value: Any, name: str) -> Signal:
    """A 1-bit signal driven by ``value`` (keeps flag expressions from nesting)."""
    sig = Signal(name=name)
    m.d.comb += sig.eq(value)
    return sig


def _exp_sig(lo: int, hi: int) -> Any:
    return signed(signed_width(lo, hi))


def unpack(m: Module, fmt: Any, code: Value, name: str) -> Term:
    """Decode a code of ``fmt`` (minifloat, integer, fixed point) into an exact Term."""
    if isinstance(fmt, Minifloat):
        v = data.View(float_layout(fmt), code)
        sub = (v.exp == 0) if fmt.subnormals else Const(0, 1)
        hidden = ~sub if fmt.subnormals else Const(1, 1)
        sig = Cat(v.man, hidden) if fmt.man_bits else hidden
        # exponent of the significand's LSB: max(field, 1) - bias - man (no-subnormal
        # formats: field 0 is an ordinary binade)
        lo, hi = lsb_range(fmt)
        lsb = Signal(_exp_sig(lo, hi), name=f"{name}_lsb")
        field = Mux(sub, 1, v.exp) if fmt.subnormals else v.exp
        m.d.comb += lsb.eq(_lsb_of_field(fmt, field))
        sign = v.sign if fmt.signed else Const(0, 1)
        top = (1 << fmt.exp_bits) - 1
        mag_bits = code[: fmt.exp_bits + fmt.man_bits]
        if fmt.special is Special.IEEE:
            nan = (v.exp == top) & (v.man != 0)
            inf = (v.exp == top) & (v.man == 0)
        elif fmt.special is Special.FN:
            nan = mag_bits == (1 << (fmt.exp_bits + fmt.man_bits)) - 1
            inf = Const(0, 1)
        elif fmt.special is Special.FNUZ:
            nan = code == (1 << (fmt.bits - 1))
            inf = Const(0, 1)
        else:
            nan = inf = Const(0, 1)
        return Term(sign, sig, lsb, (lo, hi), _bit(m, nan, f"{name}_nan"),
                    _bit(m, inf, f"{name}_inf"))
    if isinstance(fmt, FixedBase):
        lo, hi = lsb_range(fmt)
        if fmt.signed:
            val = code.as_signed()
            sign = code[-1]
            mag = Mux(sign, -val, val)[: significand_bits(fmt)]
        else:
            sign = Const(0, 1)
            mag = code.as_unsigned()
        return Term(sign, mag, Const(lo, signed(signed_width(lo, hi))), (lo, hi),
                    Const(0, 1), Const(0, 1))
    raise TypeError(f"{name}: no exact decoder for {fmt} ({type(fmt).__name__}); "
                    "minifloats, integers and fixed point are supported")


def multiply(m: Module, a: Term, b: Term, name: str) -> Term:
    """The exact product of two Terms (NaN for NaN, Inf x 0; Inf for Inf x finite)."""
    lo, hi = a.lsb_range[0] + b.lsb_range[0], a.lsb_range[1] + b.lsb_range[1]
    lsb = Signal(_exp_sig(lo, hi), name=f"{name}_lsb")
    mag = Signal(a.width + b.width, name=f"{name}_mag")
    m.d.comb += [lsb.eq(a.lsb + b.lsb), mag.eq(a.mag * b.mag)]
    a_zero, b_zero = a.mag == 0, b.mag == 0
    nan = _bit(m, a.nan | b.nan | (a.inf & b_zero & ~b.inf) | (b.inf & a_zero & ~a.inf),
               f"{name}_nan")
    inf = _bit(m, (a.inf | b.inf) & ~nan, f"{name}_inf")
    return Term(_bit(m, a.sign ^ b.sign, f"{name}_sign"), mag, lsb, (lo, hi), nan, inf)


def lzc(m: Module, x: Value, name: str) -> Value:
    """Leading-zero count of ``x`` (``len(x)`` for zero), as a balanced tree (one signal
    per node, so simulators and synthesis see a shallow netlist)."""
    n = len(x)
    out = Signal(range(n + 1), name=name)
    if n == 1:
        m.d.comb += out.eq(~x[0])
        return out
    half = 1 << ((n - 1).bit_length() - 1)  # low part: half bits, high part: the rest
    hi, lo = x[half:], x[:half]
    c_hi, c_lo = lzc(m, hi, f"{name}h"), lzc(m, lo, f"{name}l")
    m.d.comb += out.eq(Mux(hi.any(), c_hi, (n - half) + c_lo))
    return out


def _round_increment(mode: Rounding, sign: Value, lsb: Value, guard: Value,
                     sticky: Value) -> Value:
    if mode is Rounding.NEAREST_EVEN:
        return guard & (sticky | lsb)
    if mode is Rounding.NEAREST_AWAY:
        return guard
    if mode is Rounding.TOWARD_ZERO:
        return Const(0, 1)
    if mode is Rounding.UP:
        return (guard | sticky) & ~sign
    if mode is Rounding.DOWN:
        return (guard | sticky) & sign
    raise ValueError(f"rounding must be deterministic in hardware, not {mode.value!r}")


def _toward_range(mode: Rounding, sign: Value) -> Value:
    """1 where the rounding direction is toward zero (an overflow stays finite)."""
    if mode is Rounding.TOWARD_ZERO:
        return Const(1, 1)
    if mode is Rounding.UP:
        return sign
    if mode is Rounding.DOWN:
        return ~sign
    return Const(0, 1)


def check_output_float(fmt: Any, parameter: str) -> None:
    if not isinstance(fmt, Minifloat):
        raise TypeError(f"{parameter} must be a Minifloat, not {fmt} ({type(fmt).__name__})")
    if not fmt.subnormals or not fmt.signed:
        raise TypeError(f"{parameter} must be a signed minifloat with subnormals (a zero) to "
                        f"round into in hardware, not {fmt}")


def hw_overflow(fmt: Minifloat, overflow: Any, parameter: str) -> Overflow:
    policy = fmt.default_overflow if overflow is None else fmt._policy(overflow)
    if policy is Overflow.ERROR:
        raise ValueError(f"{parameter}: overflow 'error' has no hardware meaning; choose one of "
                         + ", ".join(p.value for p in fmt.allowed_overflow
                                     if p is not Overflow.ERROR))
    return policy


def round_to(m: Module, fmt: Minifloat, t: Term, mode: Rounding, policy: Overflow,
             name: str, inf_on_overflow: bool = False) -> Value:
    """Round the exact Term ``t`` once to ``fmt`` (signed, with subnormals); the code.

    ``q = round(|t| / 2**qe)`` with ``qe = max(E, emin) - man`` (E: exponent of the
    leading one) has at most ``precision`` bits, and the magnitude code is
    ``((max(E, emin) - emin) << man) + q``: a rounding carry walks into the exponent field
    by itself, subnormals included. Overflow follows ``policy`` except that rounding toward
    zero keeps the largest finite value (IEEE 754 section 7.4); with ``inf_on_overflow``
    (``policy`` INF) a value whose rounding exceeds the largest finite one is +-Inf in every
    mode (``simulator.Accumulator(inf_on_overflow=True)``, as tensor cores).
    """
    man, emin, emax = fmt.man_bits, fmt.emin, fmt.emax
    W = t.width
    lz = lzc(m, t.mag, f"{name}_lz")
    zero = t.mag == 0
    lo, hi = t.lsb_range
    e_lo, e_hi = lo, hi + W - 1
    E = Signal(_exp_sig(min(e_lo, emin), max(e_hi, emin)), name=f"{name}_E")
    m.d.comb += E.eq(t.lsb + (W - 1) - lz)
    Eq = Signal(_exp_sig(min(e_lo, emin), max(e_hi, emin)), name=f"{name}_Eq")
    m.d.comb += Eq.eq(Mux(E < emin, emin, E))
    # right shift of X = mag << precision by s = Eq - man - lsb + precision >= 1
    XW = W + fmt.precision
    X = Cat(Const(0, fmt.precision), t.mag)
    s_full = Signal(_exp_sig(min(emin - hi, 1) - 2, max(e_hi, emin) - lo + 2),
                    name=f"{name}_sraw")
    m.d.comb += s_full.eq(Eq + 1 - t.lsb)
    smax = XW + 1
    s = Signal(range(smax + 1), name=f"{name}_s")
    m.d.comb += s.eq(Mux(s_full > smax, smax, s_full[: len(s)]))
    s1 = Signal(range(smax + 1), name=f"{name}_s1")
    m.d.comb += s1.eq(Mux(s == 0, 0, s - 1))
    q = Signal(fmt.precision, name=f"{name}_q")
    m.d.comb += q.eq(X >> s)
    guard = (X >> s1)[0]
    ones = Const((1 << XW) - 1, XW)
    below = ~(ones << s1)[:XW]
    sticky = (X & below).any()
    inc = _round_increment(mode, t.sign, q[0], guard, sticky)
    ew = max(E.shape().width, 2) + man + 2
    magcode = Signal(ew, name=f"{name}_magcode")
    m.d.comb += magcode.eq(((Eq - emin).as_unsigned() << man) + q + inc)
    ovf = (E > emax) | (magcode > fmt._maxmag)
    code = Signal(fmt.bits, name=f"{name}_code")
    sign_bit = 1 << (fmt.bits - 1)
    maxc = Mux(t.sign, sign_bit | fmt._maxmag, fmt._maxmag)
    nan_code = fmt.nan_code
    if policy is Overflow.INF:
        big = Mux(t.sign, sign_bit | fmt._infmag, fmt._infmag)
    elif policy is Overflow.NAN:
        assert nan_code is not None
        big = Const(nan_code, fmt.bits)
    else:
        big = maxc
    over = big if inf_on_overflow else Mux(_toward_range(mode, t.sign), maxc, big)
    if policy is Overflow.SATURATE:
        inf_code = maxc  # saturate: Inf becomes the largest finite value (as formats)
    elif fmt.has_inf:
        inf_code = Mux(t.sign, sign_bit | fmt._infmag, fmt._infmag)
    elif policy is Overflow.NAN:
        inf_code = Const(nan_code, fmt.bits)  # type: ignore[arg-type]
    else:
        inf_code = maxc  # saturate: Inf becomes the largest finite value
    nan_out = Const(nan_code if nan_code is not None else 0, fmt.bits)
    neg_zero = fmt.has_negative_zero
    rounded_zero = magcode == 0
    out_sign = t.sign & (~rounded_zero if not neg_zero else Const(1, 1))
    with m.If(t.nan):
        m.d.comb += code.eq(nan_out)
    with m.Elif(t.inf):
        m.d.comb += code.eq(inf_code)
    with m.Elif(zero):
        m.d.comb += code.eq(Mux(t.sign & neg_zero, sign_bit, 0))
    with m.Elif(ovf):
        m.d.comb += code.eq(over)
    with m.Else():
        m.d.comb += code.eq(Cat(magcode[: fmt.bits - 1], out_sign))
    return code


def round_term(m: Module, fmt: Minifloat, t: Term, mode: Rounding, policy: Overflow,
               name: str) -> Term:
    """``t`` rounded once to ``fmt`` (:func:`round_to`) as the exact Term of the rounded
    value. A NaN stays NaN where ``fmt`` has no NaN code (its code reads +0 there), as
    the simulator keeps NaN in float64 between roundings."""
    code = round_to(m, fmt, t, mode, policy, name)
    r = unpack(m, fmt, code, f"{name}_v")
    if fmt.has_nan:
        return r
    return dataclasses.replace(r, nan=_bit(m, r.nan | t.nan, f"{name}_isnan"))


def normalize(m: Module, t: Term, width: int, name: str) -> tuple[Value, Value, tuple[int, int]]:
    """Left-justify ``t.mag`` in ``width`` bits; (mag, exponent of its MSB, range)."""
    W = t.width
    lz = lzc(m, t.mag, f"{name}_lz")
    nm = Signal(width, name=f"{name}_norm")
    m.d.comb += nm.eq((t.mag << lz)[:W] << (width - W))
    lo, hi = t.lsb_range[0], t.lsb_range[1] + W - 1
    E = Signal(_exp_sig(lo - 1, hi), name=f"{name}_msb")
    m.d.comb += E.eq(t.lsb + (W - 1) - lz)
    return nm, E, (lo, hi)


def add_terms(m: Module, x: Term, y: Term, mode: Rounding, acc_precision: int,
              name: str) -> Term:
    """``x + y`` as a Term that rounds like the exact sum to any format of at most
    ``acc_precision`` significant bits.

    Both operands are normalized; the one with the larger leading exponent stays, the
    other shifts right by the exponent difference d into a window of P + 3 bits
    (P = max(widths, acc_precision)); bits shifted out collapse into one sticky bit below
    the window. Bits are lost only for d >= 4, where cancellation removes at most one
    leading bit, so the result's rounding point lies at least one bit above the window's
    LSB and the sticky bit (a value strictly inside that last ulp) rounds like the true
    remainder in every rounding mode.
    """
    P = max(x.width, y.width, acc_precision)
    G = P + 3
    nx, Ex, rx = normalize(m, x, G, f"{name}_x")
    ny, Ey, ry = normalize(m, y, G, f"{name}_y")
    zx, zy = x.mag == 0, y.mag == 0
    x_big = zy | (~zx & (Ex >= Ey))
    big = Signal(G, name=f"{name}_big")
    small = Signal(G, name=f"{name}_small")
    e_lo, e_hi = min(rx[0], ry[0]) - 1, max(rx[1], ry[1])
    Eb = Signal(_exp_sig(e_lo, e_hi), name=f"{name}_Eb")
    dw = signed_width(-(e_hi - e_lo) - 1, e_hi - e_lo + 1)
    d_raw = Signal(signed(dw), name=f"{name}_draw")
    sb = Signal(name=f"{name}_sb")
    ss = Signal(name=f"{name}_ss")
    m.d.comb += [
        big.eq(Mux(x_big, nx, ny)), small.eq(Mux(x_big, ny, nx)),
        Eb.eq(Mux(x_big, Ex, Ey)), d_raw.eq(Mux(x_big, Ex - Ey, Ey - Ex)),
        sb.eq(Mux(x_big, x.sign, y.sign)), ss.eq(Mux(x_big, y.sign, x.sign)),
    ]
    dmax = G + 1
    d = Signal(range(dmax + 1), name=f"{name}_d")
    m.d.comb += d.eq(Mux(zx | zy, 0, Mux(d_raw > dmax, dmax, d_raw[: len(d)])))
    shifted = (small >> d)[:G]
    ones = Const((1 << G) - 1, G)
    lost = (small & ~(ones << d)[:G]).any()
    A = Cat(Const(0, 1), big)
    B = Cat(lost, shifted)
    total = Signal(signed(G + 3), name=f"{name}_sum")
    m.d.comb += total.eq(Mux(sb == ss, A + B, A - B))
    neg = total < 0
    mag = Signal(G + 2, name=f"{name}_summag")
    m.d.comb += mag.eq(Mux(neg, -total, total)[: G + 2])
    exact_zero = total == 0
    # an exact zero sum is -0 only for -0 + -0, in every rounding mode: simulator's
    # Accumulator (IEEE 754 6.3 would give -0 under rounding down; see divergences.py)
    zero_sign = x.sign & y.sign
    sign = Mux(exact_zero, zero_sign, sb ^ neg)
    lsb = Signal(_exp_sig(e_lo - G - 1, e_hi), name=f"{name}_slsb")
    # A's LSB (the sticky position) sits G bits below Eb: A = big << 1, big's MSB = Eb
    m.d.comb += lsb.eq(Eb - G)
    nan = _bit(m, x.nan | y.nan | (x.inf & y.inf & (x.sign != y.sign)), f"{name}_nan")
    inf = _bit(m, (x.inf | y.inf) & ~nan, f"{name}_inf")
    inf_sign = Mux(x.inf, x.sign, y.sign)
    return Term(_bit(m, Mux(inf, inf_sign, sign), f"{name}_sign"), mag, lsb,
                (e_lo - G - 1, e_hi), nan, inf)


def add_round(m: Module, fmt: Minifloat, acc_code: Value, t: Term, mode: Rounding,
              policy: Overflow, name: str) -> Value:
    """``round(acc + t)`` into ``fmt`` with one rounding: the code."""
    acc = unpack(m, fmt, acc_code, f"{name}_acc")
    s = add_terms(m, acc, t, mode, fmt.precision, name)
    return round_to(m, fmt, s, mode, policy, f"{name}_rnd")


def exact_product_format(a: Minifloat | Any, b: Minifloat | Any) -> Minifloat:
    """The smallest-precision minifloat holding every product of ``a`` and ``b`` exactly
    (products of finite values; Inf where either format has Inf, NaN where either has
    NaN)."""
    def facts(f: Any) -> tuple[int, int, int, bool, bool]:
        if not isinstance(f, (Minifloat, FixedBase)):
            raise TypeError(f"no exact product for {f} ({type(f).__name__})")
        # precision, quantum, exponent of the largest value's leading one, specials
        return (f.precision, f.lsb_exp_min, f.lsb_exp_max + f.precision - 1, f.has_inf,
                f.has_nan)
    pa, qa, ea, ia, na = facts(a)
    pb, qb, eb, ib, nb = facts(b)
    man = pa + pb - 1
    emin = qa + qb + man
    emax = ea + eb + 1
    special = Special.IEEE if (ia or ib) else (Special.FN if (na or nb) else Special.FINITE)
    bias = 1 - emin
    need = emax + bias + (1 if special is not Special.FINITE else 0)
    exp_bits = max(need.bit_length(), 2 if special is Special.IEEE else 1)
    return Minifloat(exp_bits, man, bias=bias, special=special)

