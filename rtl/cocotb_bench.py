"""cocotb testbench driving golden vectors (rtl.vectors) through a generated PE.

Run by :func:`rtl.verify.run_icarus`: ``NUMFAB_VECTORS`` names the vectors (JSON),
``NUMFAB_RESULTS`` the file the observed outputs go to.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.triggers import Timer


def _read(handle: object) -> int:
    val = handle.value  # type: ignore[attr-defined]
    try:
        return int(val.to_unsigned()) if hasattr(val, "to_unsigned") else int(val)
    except ValueError:  # X or Z bits
        return -1


@cocotb.test()
async def golden_vectors(dut: object) -> None:
    with open(os.environ["NUMFAB_VECTORS"]) as f:
        v = json.load(f)
    ins = {k: [int(x, 16) for x in col] for k, col in v["inputs"].items()}
    exp = {k: [None if x is None else int(x, 16) for x in col]
           for k, col in v["expected"].items()}
    hin = {k: getattr(dut, k) for k in ins}
    hout = {k: getattr(dut, k) for k in exp}
    clocked = v["clocked"]
    T = len(next(iter(ins.values())))
    got: dict[str, list[int]] = {k: [] for k in exp}
    if clocked:
        dut.rst.value = 0  # type: ignore[attr-defined]
        dut.clk.value = 0  # type: ignore[attr-defined]
    for t in range(T):
        for k, h in hin.items():
            h.value = ins[k][t]
        await Timer(1, unit="ns")
        if clocked:
            dut.clk.value = 1  # type: ignore[attr-defined]
            await Timer(1, unit="ns")
        for k, h in hout.items():
            got[k].append(_read(h))
        if clocked:
            dut.clk.value = 0  # type: ignore[attr-defined]
    with open(os.environ["NUMFAB_RESULTS"], "w") as f:
        json.dump(got, f)
    bad = sum(1 for k in exp for t, want in enumerate(exp[k])
              if want is not None and got[k][t] != want)
    assert bad == 0, f"{bad} outputs differ from the golden vectors"
