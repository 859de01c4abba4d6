"""numfab.rtl: Amaranth processing elements parameterised by formats/, emitted as
deterministic Verilog, verified against PyTorch / simulator references in Amaranth's
simulator and, through cocotb, on Icarus Verilog.

>>> from rtl import FloatMac, to_verilog
>>> pe = FloatMac("e4m3fn", "e4m3fn", "float32")
>>> text = to_verilog(pe, "fmac")
"""

from __future__ import annotations

from typing import Any

from ._hw import exact_product_format, significand_bits
from .pe import (
    PE_KINDS,
    BipolarPe,
    BlockDot,
    FloatMac,
    FloatMul,
    FusedDot,
    IntMac,
    LutPe,
    Quantizer,
    ShiftAddPe,
    product_grid,
)
from .verilog import manifest, to_verilog, write

__all__ = ["PE_KINDS", "BipolarPe", "BlockDot", "FloatMac", "FloatMul", "FusedDot", "IntMac",
           "LutPe", "Quantizer", "ShiftAddPe", "build", "describe", "exact_product_format",
           "manifest", "product_grid", "significand_bits", "to_verilog", "write"]

#: the options each PE takes from ``build`` / ``numfab rtl`` (option -> constructor arg)
OPTIONS: dict[str, dict[str, str]] = {
    "IntMac": {"a": "a", "b": "b", "acc_bits": "acc_bits", "overflow": "overflow",
               "stages": "stages"},
    "FloatMul": {"a": "a", "b": "b", "out": "out", "rounding": "rounding",
                 "overflow": "overflow", "stages": "stages"},
    "FloatMac": {"a": "a", "b": "b", "acc": "acc", "rounding": "rounding",
                 "overflow": "overflow", "stages": "stages", "chunk": "chunk",
                 "chunk_format": "chunk_format", "product_format": "product_format",
                 "product_rounding": "product_rounding"},
    "BlockDot": {"a": "a", "b": "b", "acc": "acc", "k": "k", "rounding": "rounding",
                 "overflow": "overflow", "stages": "stages", "chunk": "chunk",
                 "chunk_format": "chunk_format", "product_format": "product_format",
                 "product_rounding": "product_rounding", "tree_format": "tree_format",
                 "tree_rounding": "tree_rounding"},
    "FusedDot": {"a": "a", "b": "b", "acc": "acc", "n": "n", "align_bits": "align_bits",
                 "rounding": "rounding", "overflow": "overflow",
                 "align_rounding": "align_rounding", "align_acc": "align_acc",
                 "align_from": "align_from", "inf_on_overflow": "inf_on_overflow",
                 "stages": "stages", "chunk": "chunk", "chunk_format": "chunk_format"},
    "Quantizer": {"a": "in_format", "out": "out_format", "rounding": "rounding",
                  "overflow": "overflow", "stages": "stages"},
    "BipolarPe": {"a": "a", "b": "b", "k": "k"},
    "LutPe": {"w": "w", "x": "x", "group": "group", "groups": "groups"},
    "ShiftAddPe": {"x": "x", "w": "w", "acc": "acc", "lanes": "lanes", "rounding": "rounding",
                   "overflow": "overflow"},
}


def build(pe: Any, **options: Any) -> Any:
    """Construct a PE by kind name (case-insensitive) from keyword options; options that
    are ``None`` are left at the PE's defaults, options the PE does not take raise.

    ``pe`` may instead be a :class:`simulator.Datapath` (no options): the PE that computes
    it (:func:`rtl.datapath.pe_options`), whose ``.datapath`` equals it.

    This is the one validation of PE options: ``costmodel`` prices a kind name by
    describing it here (:func:`describe`), so whatever can be priced can be built.

    Raises
    ------
    TypeError
        ``pe`` is not a str, or an option has the wrong kind (the PE's own error).
    ValueError
        Unknown kind or option (listing the valid ones), or an impossible parameter.
    """
    cls, args = _constructor(pe, options, "build(datapath)")
    return cls(**args)


def describe(pe: Any, **options: Any) -> Any:
    """The PE :func:`build` makes, validated the same way (the same errors), for reading
    what it is -- ``kind``, ``formats``, ``parameters``, ``datapath`` -- rather than for
    generating hardware: Amaranth is told it is meant to stay unelaborated, so dropping
    it prints no ``UnusedElaboratable`` warning (``costmodel`` prices PEs this way)."""
    from ._unelaborated import construct

    cls, args = _constructor(pe, options, "a simulator.Datapath")
    return construct(cls, args)


def _constructor(pe: Any, options: dict[str, Any], who: str) -> tuple[type, dict[str, Any]]:
    """The PE class and its constructor arguments for ``build``/``describe`` (``who``
    names the datapath in the error for options given with one)."""
    from simulator import Datapath

    if isinstance(pe, Datapath):
        if options:
            raise ValueError(f"{who} takes no options; the datapath holds them, not "
                             f"{', '.join(sorted(options))}")
        from .datapath import pe_options

        dp_kind, opts = pe_options(pe)
        return _constructor(dp_kind, opts, who)
    if not isinstance(pe, str):
        raise TypeError(f"pe must be a PE kind name (str): one of {', '.join(PE_KINDS)}, or "
                        f"a simulator.Datapath; not {type(pe).__name__}")
    kinds = {k.lower(): k for k in PE_KINDS}
    kind = kinds.get(pe.lower())
    if kind is None:
        raise ValueError(f"unknown PE {pe!r}; choose one of {', '.join(PE_KINDS)}")
    allowed = OPTIONS[kind]
    args = {}
    for key, value in options.items():
        if value is None:
            continue
        if key not in allowed:
            raise ValueError(f"{kind} takes no option {key!r}; it takes "
                             f"{', '.join(sorted(allowed))}")
        args[allowed[key]] = value
    return PE_KINDS[kind], args
