"""Canonical names, aliases and ``parse``: ``parse(str(f)) == f`` for every format."""

from __future__ import annotations

import difflib
import re
from typing import Any

from ._base import Format
from ._enums import Special
from .integer import FixedPoint, Integer
from .lut import NF4_VALUES, BipolarInt, Lut
from .minifloat import Minifloat

__all__ = ["ALIASES", "NAMED", "canonical_name", "named_formats", "parse"]

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
    "fp4_lut": Lut(tuple(float(v) for v in _E2M1.values())),
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
}

_SUFFIX = {Special.IEEE: "", Special.FN: "fn", Special.FNUZ: "fnuz", Special.FINITE: "_finite"}
_MINIFLOAT_RE = re.compile(
    r"^(?:float(?P<width>\d+)_)?(?P<u>u)?e(?P<e>\d+)m(?P<m>\d+)(?:_?b(?P<bias>-?\d+))?"
    r"(?P<special>fnuz|fnu|fn|_finite|_ieee)?(?P<nosub>_nosub)?$"
)
_INT_RE = re.compile(r"^(?P<u>u)?int(?P<bits>\d+)(?P<narrow>_narrow)?$")
_FIXED_RE = re.compile(
    r"^(?P<u>u)?fixed<\s*(?P<i>-?\d+)\s*,\s*(?P<f>-?\d+)\s*>(?P<narrow>_narrow)?$"
)
_BIPOLAR_RE = re.compile(r"^bipolar(?:<(?P<a>\d+)>|(?P<b>\d+))$")
_LUT_RE = re.compile(r"^lut\[(?P<body>[^\]]*)\]$")


def _minifloat_name(f: Minifloat) -> str:
    default = Minifloat(f.exp_bits, f.man_bits, special=f.special, signed=f.signed).bias
    name = f"{'' if f.signed else 'u'}e{f.exp_bits}m{f.man_bits}"
    if f.bias != default:
        name += f"b{f.bias}"
    name += _SUFFIX[f.special]
    if not f.subnormals:
        name += "_nosub"
    return name


def canonical_name(fmt: Format) -> str:
    """The canonical name of ``fmt`` (used by ``str(fmt)``)."""
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
    pool = list(NAMED) + list(ALIASES) + ["int8", "uint4", "fixed<4,4>", "bipolar4", "e3m4b5"]
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"unknown format name {name!r}{hint} (named formats: {', '.join(NAMED)}; families: "
        "e<E>m<M>[b<bias>][fn|fnuz|_finite][_nosub], u-prefixed unsigned minifloats, "
        "int<n>/uint<n>[_narrow], fixed<i,f>/ufixed<i,f>, bipolar<n>, lut[v0,v1,...])"
    )


def parse(name: Any) -> Format:
    """The format called ``name`` (canonical, alias or family syntax).

    Raises TypeError for a non-string and ValueError, with the closest valid names, for
    an unknown one. A :class:`Format` is returned unchanged.
    """
    if isinstance(name, Format):
        return name
    if not isinstance(name, str):
        raise TypeError(f"format name must be a str, not {type(name).__name__}")
    key = name.strip()
    low = key.lower()
    if low in NAMED:
        return NAMED[low]
    if low in ALIASES:
        return NAMED[ALIASES[low]]
    m = _MINIFLOAT_RE.match(low)
    if m:
        special = {None: Special.IEEE, "_ieee": Special.IEEE, "fn": Special.FN,
                   "fnu": Special.FN, "fnuz": Special.FNUZ, "_finite": Special.FINITE}[
            m["special"]
        ]
        signed = not m["u"] and m["special"] != "fnu"
        extra = {} if m["bias"] is None else {"bias": int(m["bias"])}
        fmt = Minifloat(
            int(m["e"]), int(m["m"]), special=special, subnormals=not m["nosub"],
            signed=signed, **extra,
        )
        if m["width"] is not None and int(m["width"]) != fmt.bits:
            raise ValueError(f"{name!r}: float{m['width']} does not match the {fmt.bits} bits")
        return fmt
    m = _INT_RE.match(low)
    if m:
        return Integer(int(m["bits"]), signed=not m["u"], narrow=bool(m["narrow"]))
    m = _FIXED_RE.match(low)
    if m:
        return FixedPoint(int(m["i"]), int(m["f"]), signed=not m["u"], narrow=bool(m["narrow"]))
    m = _BIPOLAR_RE.match(low)
    if m:
        return BipolarInt(int(m["a"] or m["b"]))
    m = _LUT_RE.match(low)
    if m:
        try:
            vals = tuple(float(v) for v in m["body"].split(",") if v.strip())
        except ValueError:
            raise ValueError(f"{name!r}: lut[...] needs comma-separated numbers") from None
        return Lut(vals)
    raise ValueError(_suggest(key))
