"""Generated Verilog on Icarus through cocotb (cocotb_tools.runner), against the same
golden vectors. Exhaustive 8-bit FloatMul checks run here (Icarus: ~20-30k vectors/s):
CI runs one per reference path and format (NUMFAB_FULL=1 all)."""

from __future__ import annotations

import os

import pytest

from rtl import BipolarPe, BlockDot, FloatMac, FloatMul, IntMac, LutPe, Quantizer, ShiftAddPe
from rtl.sim import Mismatch
from rtl.vectors import make_vectors
from rtl.verify import run_icarus

FULL = os.environ.get("NUMFAB_FULL") == "1"


@pytest.mark.parametrize("a,out,kw,ref", [
    ("e4m3fn", "e4m3fn", {"overflow": "saturate"}, "torch"),
    ("e4m3fn", None, {}, "formats"),
    ("e5m2", "e5m2", {}, "torch"),
    *([("e4m3fn", "e4m3fn", {}, "formats"), ("e5m2", None, {}, "formats")] if FULL else []),
])
def test_float_mul_exhaustive(tmp_path, a, out, kw, ref):
    pe = FloatMul(a, a, out, **kw)
    v = make_vectors(pe, exhaustive=True)
    assert v.header["reference"] == ref and v.checks == 65536
    assert run_icarus(pe, v, tmp_path)["checks"] == 65536


@pytest.mark.parametrize("pe", [
    lambda: Quantizer("float32", "e4m3fn"),
    lambda: Quantizer("float32", "int8"),
    lambda: FloatMul("bfloat16", "bfloat16", "bfloat16", stages=1),
    lambda: IntMac("int8", "int8", 20, overflow="saturate", stages=1),
    lambda: FloatMac("e4m3fn", "e4m3fn", "float32"),
    lambda: FloatMac("e5m2", "e5m2", "float16", stages=1),
    lambda: BlockDot("mxfp4", "float32", k=8),
    lambda: BlockDot("mxint8", "bfloat16", k=8),
    lambda: BipolarPe("int4", "int4", 16),
    lambda: LutPe("int4", "int8", group=4, groups=2),
    lambda: ShiftAddPe("int8", "int4_g32", "bfloat16", lanes=8),
], ids=["quant_e4m3", "quant_int8", "mul_bf16", "intmac", "fmac_fp32", "fmac_fp16",
        "blockdot_mxfp4", "blockdot_mxint8", "bipolar", "lut", "shiftadd"])
def test_pe_on_icarus(tmp_path, pe):
    pe = pe()
    v = make_vectors(pe, n=96, seed=3)
    r = run_icarus(pe, v, tmp_path)
    assert r["checks"] == v.checks > 0


def test_icarus_reports_mismatch(tmp_path):
    pe = IntMac("int8", "int8", 16)
    v = make_vectors(pe, n=30)
    t = next(i for i, e in enumerate(v.expected["acc"]) if e is not None)
    v.expected["acc"][t] ^= 4
    with pytest.raises(Mismatch, match=rf"(?s)on Icarus.*cycle {t}: acc="):
        run_icarus(pe, v, tmp_path)
