"""Canonical names, aliases and ``parse``: ``parse(str(f)) == f`` for every format."""

from __future__ import annotations

import difflib
import re
from typing import Any

from ._base import Format, check_int
from ._enums import Rounding, Special
from .block import BlockScaled, ScaleRule
from .integer import FixedPoint, Integer
from .lut import NF4_VALUES, BipolarInt, Lut
from .minifloat import Minifloat
from .reference import ref_decode

__all__ = [
    "ALIASES", "NAMED", "NAMED_BLOCKS", "bfp", "canonical_name", "grouped_int",
    "named_formats", "parse",
]

_E2M1 = Minifloat(2, 1, special=Special.FINITE)

#: Named formats, canonical name -> format (ml_dtypes / LLVM names where they exist).
NAMED: dict[str, Format] = {
    "float8_e3m4": Minifloat(3, 4),
    "float8_e4m3": Minifloat(4, 3),
    "float8_e4m3fn": Minifloat(4, 3, special=Special.FN),
    "float8_e4m3fnuz": Minifloat(4, 3, special=Special.FNUZ),
    "float8_e4m3b11fnuz": Minifloat(4, 3, bias=11, special=Special.FNUZ),
    "float8_e5m2": Minifloat(5, 2),
    "float8_e5m2fnuz": Minifloat(5, 2, special=Special.FNUZ),
    "float8_e8m0fnu": Minifloat(8, 0, special=Special.FN, subnormals=False, signed=False),
    "float6_e2m3fn": Minifloat(2, 3, special=Special.FINITE),
    "float6_e3m2fn": Minifloat(3, 2, special=Special.FINITE),
    "float4_e2m1fn": _E2M1,
    "bfloat16": Minifloat(8, 7),
    "float16": Minifloat(5, 10),
    "float32": Minifloat(8, 23),
    "float64": Minifloat(11, 52),
    "tfloat32": Minifloat(8, 10),
    # Unsigned scale formats: UE4M3 is E4M3FN without its sign (NVFP4's block scale is
    # E4M3 restricted to positive values); UE5M3 after "Elucidating the Design Space of FP4
    # training" (Hu et al. 2025), NaN at all-ones, max 114688; UE8M0 here keeps a zero at
    # code 0 (unlike float8_e8m0fnu, whose code 0 is 2**-127).
    "ue4m3": Minifloat(4, 3, special=Special.FN, signed=False),
    "ue5m3": Minifloat(5, 3, special=Special.FN, signed=False),
    "ue8m0": Minifloat(8, 0, special=Special.FN, signed=False),
    "nf4": Lut(NF4_VALUES),
    # E2M1's 16 values as a table, decoded exactly (no kernel runs at import)
    "fp4_lut": Lut(tuple(float(ref_decode(_E2M1, c)) for c in range(16))),
}

_E8M0 = NAMED["float8_e8m0fnu"]
_FP32 = NAMED["float32"]

#: Named block-scaled formats. OCP MX v1.0 (k=32, E8M0 scale, FLOOR rule; MXINT8's
#: element is two's complement with an implicit 2**-6, here the symmetric range without
#: -2.0 as the reference implementation microxcaling clamps; ``mxint8_full`` keeps -2.0);
#: NVFP4 (16 E2M1 elements, E4M3 scale = amax/6 rounded nearest-even, FP32 tensor scale
#: amax/(448*6)); NVINT4 is numfab's definition: NVFP4's layout with symmetric INT4
#: elements (-7..7; the seed papers name it without defining it).
NAMED_BLOCKS: dict[str, BlockScaled] = {
    "mxfp8_e4m3": BlockScaled(NAMED["float8_e4m3fn"], _E8M0, 32),
    "mxfp8_e5m2": BlockScaled(NAMED["float8_e5m2"], _E8M0, 32),
    "mxfp6_e3m2": BlockScaled(NAMED["float6_e3m2fn"], _E8M0, 32),
    "mxfp6_e2m3": BlockScaled(NAMED["float6_e2m3fn"], _E8M0, 32),
    "mxfp4": BlockScaled(_E2M1, _E8M0, 32),
    "mxint8": BlockScaled(FixedPoint(2, 6, narrow=True), _E8M0, 32),
    "mxint8_full": BlockScaled(FixedPoint(2, 6), _E8M0, 32),
    "nvfp4": BlockScaled(_E2M1, NAMED["float8_e4m3fn"], 16, scale_rule=ScaleRule.NEAREST,
                         tensor_scale=_FP32),
    "nvint4": BlockScaled(Integer(4, narrow=True), NAMED["float8_e4m3fn"], 16,
                          scale_rule=ScaleRule.NEAREST, tensor_scale=_FP32),
}

#: Short names accepted by :func:`parse` -> canonical name.
ALIASES: dict[str, str] = {
    "e4m3": "float8_e4m3fn",
    "e4m3fn": "float8_e4m3fn",
    "fp8": "float8_e4m3fn",
    "fp8_e4m3": "float8_e4m3fn",
    "fp8_e4m3fn": "float8_e4m3fn",
    "e4m3fnuz": "float8_e4m3fnuz",
    "e4m3b11fnuz": "float8_e4m3b11fnuz",
    "e5m2": "float8_e5m2",
    "fp8_e5m2": "float8_e5m2",
    "e5m2fnuz": "float8_e5m2fnuz",
    "e8m0": "float8_e8m0fnu",
    "e8m0fnu": "float8_e8m0fnu",
    "e2m1": "float4_e2m1fn",
    "fp4": "float4_e2m1fn",
    "fp4_e2m1": "float4_e2m1fn",
    "e3m2": "float6_e3m2fn",
    "fp6_e3m2": "float6_e3m2fn",
    "e2m3": "float6_e2m3fn",
    "fp6_e2m3": "float6_e2m3fn",
    "bf16": "bfloat16",
    "fp16": "float16",
    "half": "float16",
    "fp32": "float32",
    "float": "float32",
    "fp64": "float64",
    "double": "float64",
    "tf32": "tfloat32",
    "mxfp8": "mxfp8_e4m3",
    "mxfp6": "mxfp6_e3m2",
    "mxfp4_e2m1": "mxfp4",
}

_SUFFIX = {Special.IEEE: "", Special.FN: "fn", Special.FNUZ: "fnuz", Special.FINITE: "_finite"}
_MINIFLOAT_RE = re.compile(
    r"^(?:float(?P<width>\d+)_)?(?P<u>u)?e(?P<e>\d+)m(?P<m>\d+)(?:_?b(?P<bias>-?\d+))?"
    r"(?P<special>fnuz|fnu|fn|_finite|_ieee)?(?P<nosub>_nosub)?$", re.ASCII
)
_INT_RE = re.compile(r"^(?P<u>u)?int(?P<bits>\d+)(?P<narrow>_narrow)?$", re.ASCII)
_FIXED_RE = re.compile(
    r"^(?P<u>u)?fixed<\s*(?P<i>-?\d+)\s*,\s*(?P<f>-?\d+)\s*>(?P<narrow>_narrow)?$", re.ASCII
)
_BIPOLAR_RE = re.compile(r"^bipolar(?:<(?P<a>\d+)>|(?P<b>\d+))$", re.ASCII)
_LUT_RE = re.compile(r"^lut\[(?P<body>[^\]]*)\]$")
_BFP_RE = re.compile(r"^bfp(?P<m>\d+)_b(?P<k>\d+)$", re.ASCII)
_GROUP_RE = re.compile(
    r"^(?P<u>u)?int(?P<n>\d+)_g(?P<k>\d+)(?P<asym>_asym)?(?:_(?P<scale>[a-z0-9_]+))?$",
    re.ASCII,
)
_BLOCK_RE = re.compile(r"^block<(?P<body>.*)>$", re.DOTALL)
_SIZE_RE = re.compile(r"^(?P<r>[0-9]+)(?:x(?P<c>[0-9]+))?$")
_AXIS_RE = re.compile(r"^[+-]?[0-9]{1,3}$")
_GROUP_SCALES = ("float16", "bfloat16", "float32", "float8_e8m0fnu", "ue4m3", "ue5m3")


def bfp(mantissa_bits: int, block_size: int) -> BlockScaled:
    """Block floating point: a shared 8-bit exponent (E8M0) per ``block_size`` elements of
    sign-magnitude ``mantissa_bits``-bit mantissas (sign included) in [-2, 2): the element
    is the symmetric fixed point ``fixed<2,m-2>_narrow``, so the block's largest value keeps
    its leading one (FLOOR rule)."""
    check_int(mantissa_bits, "bfp mantissa bits", 2, 53)
    return BlockScaled(FixedPoint(2, mantissa_bits - 2, narrow=True), _E8M0, block_size)


def grouped_int(bits: int, group: int, scale: str = "float16", asym: bool = False) -> BlockScaled:
    """Grouped integers, one scale per ``group`` elements, the scale rounded nearest-even
    to ``scale`` (float16 by default; bf16, fp32, e8m0 (rounded up), ue4m3, ue5m3).

    Symmetric (``int4_g128``): INT``bits`` elements in -(2**(b-1)-1)..2**(b-1)-1, scale =
    amax / (2**(b-1)-1). Asymmetric (``uint4_g128_asym``, ``asym=True``): UINT``bits``
    elements with a per-group integer zero point (see ``BlockScaled.zero_point``)."""
    if scale not in _GROUP_SCALES:
        raise ValueError(
            f"group scale must be one of {', '.join(_GROUP_SCALES)}, not {scale!r}"
        )
    sc = NAMED[scale]
    rule = ScaleRule.RCEIL if scale == "float8_e8m0fnu" else ScaleRule.NEAREST
    if asym:
        return BlockScaled(Integer(bits, signed=False), sc, group, scale_rule=rule,
                           zero_point=True)
    return BlockScaled(Integer(bits, narrow=True), sc, group, scale_rule=rule)


def _block_name(f: BlockScaled) -> str:
    for name, named in NAMED_BLOCKS.items():
        if named == f:
            return name
    if f.scale == _E8M0 and f.scale_rule is ScaleRule.FLOOR and f.tensor_scale is None \
            and f.axis == -1 and isinstance(f.element, FixedPoint) and f.element.narrow \
            and f.element.int_bits == 2 and isinstance(f.block_size, int):
        return f"bfp{f.element.bits}_b{f.block_size}"
    if isinstance(f.element, Integer) and isinstance(f.block_size, int) \
            and f.tensor_scale is None and f.axis == -1:
        for sname in _GROUP_SCALES:
            suffix = "" if sname == "float16" else f"_{sname}"
            if f.element.narrow and f == grouped_int(f.element.bits, f.block_size, sname):
                return f"int{f.element.bits}_g{f.block_size}{suffix}"
            if f.zero_point and f == grouped_int(f.element.bits, f.block_size, sname, True):
                return f"uint{f.element.bits}_g{f.block_size}_asym{suffix}"
    bs = f.block_size
    size = f"{bs[0]}x{bs[1]}" if isinstance(bs, tuple) else str(bs)
    parts = [str(f.element), str(f.scale), size, f.scale_rule.value]
    if f.axis != -1:
        parts.append(f"axis={f.axis}")
    if f.tensor_scale is not None:
        parts.append(f"tensor={f.tensor_scale}")
    if f.scale_rounding is not Rounding.NEAREST_EVEN:
        parts.append(f"round={f.scale_rounding.value}")
    if f.zero_point:
        parts.append("zero_point")
    return "block<" + ";".join(parts) + ">"


def _int(digits: str, parameter: str) -> int:
    """A number from a name's digits; too long a string is refused before conversion
    (Python refuses more than 4300 digits, and no parameter has more than 12)."""
    if len(digits.lstrip("+-")) > 12:
        raise ValueError(f"{parameter} must be an integer of at most 12 digits, not "
                         f"{digits[:16]}... ({len(digits)} characters)")
    return int(digits)


def _part(text: str, what: str) -> Format:
    """A scalar format named inside block<...>."""
    try:
        fmt = parse(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"block<...> {what}: {exc}") from None
    if isinstance(fmt, BlockScaled):
        raise ValueError(
            f"block<...> {what} must be a scalar format (minifloat, integer, fixed point, "
            f"bipolar or lut), not the block format {text!r}"
        )
    return fmt


_BLOCK_SYNTAX = "block<element;scale;size;rule[;axis=..][;tensor=..][;round=..][;zero_point]>"


def _parse_block(body: str) -> BlockScaled:
    if "block<" in body:
        raise ValueError(f"block<...> element, scale and tensor must be scalar formats; "
                         f"block formats do not nest ({_BLOCK_SYNTAX})")
    parts = [p.strip() for p in body.split(";")]
    if len(parts) < 4:
        raise ValueError(f"block<...> needs {_BLOCK_SYNTAX}, not block<{body}>")
    size_m = _SIZE_RE.match(parts[2])
    if not size_m:
        raise ValueError(
            "block<...> size must be a positive integer or <rows>x<cols> (e.g. 32, 16x16), "
            f"not {parts[2]!r}"
        )
    r = _int(size_m["r"], "block<...> size")
    size: int | tuple[int, int] = (
        r if size_m["c"] is None else (r, _int(size_m["c"], "block<...> size"))
    )
    kw: dict[str, Any] = {}
    for extra in parts[4:]:
        key, eq, val = (t.strip() for t in extra.partition("="))
        name = {"axis": "axis", "tensor": "tensor_scale", "round": "scale_rounding",
                "zero_point": "zero_point"}.get(key)
        if name is None:
            raise ValueError(
                f"block<...>: unknown option {extra!r} (allowed: axis=<int>, tensor=<format>, "
                "round=<rounding>, zero_point)")
        if name in kw:
            raise ValueError(f"block<...>: option {key!r} given twice")
        if key == "zero_point":
            if eq:
                raise ValueError(f"block<...>: option zero_point takes no value, not {extra!r}")
            kw[name] = True
        elif key == "axis":
            if not _AXIS_RE.match(val):
                raise ValueError(f"block<...> axis must be an integer, not {val!r}")
            kw[name] = int(val)
        elif key == "tensor":
            kw[name] = _part(val, "tensor")
        else:
            kw[name] = val
    rule = ScaleRule.coerce(parts[3], "scale_rule")
    return BlockScaled(_part(parts[0], "element"), _part(parts[1], "scale"), size,
                       scale_rule=rule, **kw)


def _minifloat_name(f: Minifloat) -> str:
    default = (1 << (f.exp_bits - 1)) - (0 if f.special is Special.FNUZ else 1)
    name = f"{'' if f.signed else 'u'}e{f.exp_bits}m{f.man_bits}"
    if f.bias != default:
        name += f"b{f.bias}"
    suffix = _SUFFIX[f.special]
    if not suffix and name in ALIASES:
        suffix = "_ieee"  # e2m1, e3m2, e2m3 name the OCP formats; say IEEE explicitly
    name += suffix
    if not f.subnormals:
        name += "_nosub"
    return name


def canonical_name(fmt: Format | BlockScaled) -> str:
    """The canonical name of ``fmt`` (used by ``str(fmt)``)."""
    if isinstance(fmt, BlockScaled):
        return _block_name(fmt)
    for name, named in NAMED.items():
        if type(named) is type(fmt) and named == fmt:
            return name
    if isinstance(fmt, Minifloat):
        return _minifloat_name(fmt)
    if isinstance(fmt, Integer):
        return f"{'' if fmt.signed else 'u'}int{fmt.bits}{'_narrow' if fmt.narrow else ''}"
    if isinstance(fmt, FixedPoint):
        narrow = "_narrow" if fmt.narrow else ""
        return f"{'' if fmt.signed else 'u'}fixed<{fmt.int_bits},{fmt.frac_bits}>{narrow}"
    if isinstance(fmt, BipolarInt):
        return f"bipolar{fmt.bits}"
    if isinstance(fmt, Lut):
        return "lut[" + ",".join(repr(v) for v in fmt.table) + "]"
    raise TypeError(f"no name for {fmt!r}")


def named_formats() -> dict[str, Format]:
    """Every named scalar format, canonical name -> format."""
    return dict(NAMED)


def _suggest(name: str) -> str:
    pool = list(NAMED) + list(NAMED_BLOCKS) + list(ALIASES)
    pool += ["int8", "uint4", "fixed<4,4>", "bipolar4", "e3m4b5", "int4_g128", "bfp8_b16"]
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"unknown format name {name!r}{hint} (named formats: {', '.join(NAMED)}; block "
        f"formats: {', '.join(NAMED_BLOCKS)}, bfp<m>_b<k>, int<n>_g<k>[_<scale>], "
        "uint<n>_g<k>_asym[_<scale>], "
        "block<element;scale;size;rule[;axis=..][;tensor=..][;round=..][;zero_point]>; families: "
        "e<E>m<M>[b<bias>][fn|fnuz|_finite][_nosub], u-prefixed unsigned minifloats, "
        "int<n>/uint<n>[_narrow], fixed<i,f>/ufixed<i,f>, bipolar<n>, lut[v0,v1,...])"
    )


def parse(name: Any, *, parameter: str | None = None) -> Any:
    """The format called ``name`` (canonical, alias or family syntax).

    Raises TypeError for a non-string and ValueError, with the closest valid names, for
    an unknown one; with ``parameter``, the message starts with it (``"w_format: ..."``),
    so a function taking formats names the argument that is wrong. A :class:`Format` is
    returned unchanged.
    """
    if parameter is None:
        return _parse(name)
    try:
        return _parse(name)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{parameter}: {exc}") from None


def _parse(name: Any) -> Any:
    if isinstance(name, (Format, BlockScaled)):
        return name
    if not isinstance(name, str):
        raise TypeError(f"format name must be a str, not {type(name).__name__}")
    key = name.strip()
    if not key.isascii() or not key.isprintable():
        raise ValueError(
            f"format name must be printable ASCII (e.g. 'e4m3', 'int8', 'mxfp4'), not {name!r}"
        )
    low = key.lower()
    if low in NAMED:
        return NAMED[low]
    if low in NAMED_BLOCKS:
        return NAMED_BLOCKS[low]
    if low in ALIASES:
        target = ALIASES[low]
        return NAMED_BLOCKS[target] if target in NAMED_BLOCKS else NAMED[target]
    m = _BLOCK_RE.match(low)
    if m:
        return _parse_block(m["body"])
    m = _BFP_RE.match(low)
    if m:
        return bfp(_int(m["m"], "bfp mantissa bits"), _int(m["k"], "block_size"))
    m = _GROUP_RE.match(low)
    if m and bool(m["u"]) == bool(m["asym"]):
        return grouped_int(_int(m["n"], "bits"), _int(m["k"], "group"), m["scale"] or "float16",
                           bool(m["asym"]))
    m = _MINIFLOAT_RE.match(low)
    if m:
        special = {None: Special.IEEE, "_ieee": Special.IEEE, "fn": Special.FN,
                   "fnu": Special.FN, "fnuz": Special.FNUZ, "_finite": Special.FINITE}[
            m["special"]
        ]
        signed = not m["u"] and m["special"] != "fnu"
        extra = {} if m["bias"] is None else {"bias": _int(m["bias"], "bias")}
        fmt = Minifloat(
            _int(m["e"], "exp_bits"), _int(m["m"], "man_bits"), special=special,
            subnormals=not m["nosub"], signed=signed, **extra,
        )
        if m["width"] is not None and _int(m["width"], "width") != fmt.bits:
            raise ValueError(f"{name!r}: float{m['width']} does not match the {fmt.bits} bits")
        return fmt
    m = _INT_RE.match(low)
    if m:
        return Integer(_int(m["bits"], "bits"), signed=not m["u"], narrow=bool(m["narrow"]))
    m = _FIXED_RE.match(low)
    if m:
        return FixedPoint(_int(m["i"], "int_bits"), _int(m["f"], "frac_bits"),
                          signed=not m["u"], narrow=bool(m["narrow"]))
    m = _BIPOLAR_RE.match(low)
    if m:
        return BipolarInt(_int(m["a"] or m["b"], "bits"))
    m = _LUT_RE.match(low)
    if m:
        try:
            vals = tuple(float(v) for v in m["body"].split(",") if v.strip())
        except ValueError:
            raise ValueError(
                f"lut[...] table must be comma-separated decimal numbers, not {name!r}"
            ) from None
        return Lut(vals)
    raise ValueError(_suggest(key))
