"""Verify a PE on Icarus Verilog through cocotb (``cocotb_tools.runner``)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from .outputs import check_output_dir
from .sim import compare
from .vectors import Vectors
from .verilog import to_verilog

__all__ = ["run_icarus", "IcarusMissing", "icarus_available"]

INSTALL = "apt-get update && apt-get install -y iverilog"


class IcarusMissing(RuntimeError):
    """Icarus Verilog (iverilog/vvp) is not installed."""


def icarus_available() -> bool:
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def run_icarus(component: Any, vectors: Vectors, workdir: str | Path,
               name: str | None = None) -> dict[str, Any]:
    """Build ``component``'s Verilog with Icarus, drive ``vectors`` through it with the
    cocotb bench :mod:`rtl.cocotb_bench`, compare; raises :class:`rtl.sim.Mismatch` on a
    difference. Returns ``{"checks", "cycles", "seconds", "verilog"}``."""
    if not icarus_available():
        raise IcarusMissing("Icarus Verilog is not installed (iverilog/vvp); install it: "
                            + INSTALL)
    from cocotb_tools.runner import get_runner

    name = name or component.kind.lower()
    verilog = to_verilog(component, name)
    work = check_output_dir(workdir, "workdir").resolve()
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"{name}.v"
    src.write_text(verilog)
    vec = work / "vectors.json"
    vec.write_text(vectors.to_json())
    res = work / "observed.json"
    if res.exists():
        res.unlink()
    runner = get_runner("icarus")
    runner.build(sources=[src], hdl_toplevel=name, build_dir=work / "build",
                 timescale=("1ns", "1ps"), always=True)
    # cocotb's log levels (its documented variables; a user's own setting wins): the
    # Python side from WARNING, the GPI from ERROR -- its INFO start-up lines and Icarus's
    # benign "vpi_iterate returned NULL for type vpiInstance" WARNING are no news, while
    # failures still come through as errors and as the Mismatch raised below
    env = {"NUMFAB_VECTORS": str(vec), "NUMFAB_RESULTS": str(res),
           "COCOTB_REWRITE_ASSERTION_FILES": "",
           "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING"),
           "GPI_LOG_LEVEL": os.environ.get("GPI_LOG_LEVEL", "ERROR")}
    t0 = time.perf_counter()
    saved = {k: os.environ.pop(k) for k in list(env) if k in os.environ}
    try:
        runner.test(hdl_toplevel=name, test_module="rtl.cocotb_bench", build_dir=work / "build",
                    test_dir=work, extra_env=env, results_xml=str(work / "results.xml"))
    except SystemExit as exc:  # the runner exits on a failed cocotb test under pytest
        if not res.exists():
            raise RuntimeError(f"cocotb run failed before writing results (exit {exc.code}); "
                               f"see {work}") from None
    finally:
        os.environ.update(saved)
    seconds = time.perf_counter() - t0
    if not res.exists():
        raise RuntimeError(f"cocotb wrote no results; see the log under {work}")
    got = json.loads(res.read_text())
    checks = compare(vectors, got, "Icarus (cocotb)")
    return {"checks": checks, "cycles": vectors.cycles, "seconds": seconds, "verilog": str(src)}
