"""Verilog emission, manifests, golden-vector CSV, the `numfab rtl` CLI and bad input."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

import rtl
from numfab.cli import main
from rtl import (
    BipolarPe,
    BlockDot,
    FloatMac,
    FloatMul,
    IntMac,
    LutPe,
    Quantizer,
    ShiftAddPe,
    manifest,
    to_verilog,
)
from rtl.vectors import make_vectors


def test_verilog_is_deterministic(tmp_path):
    text = to_verilog(FloatMac("e4m3fn", "e4m3fn", "float32"), "fmac")
    assert text == to_verilog(FloatMac("e4m3fn", "e4m3fn", "float32"), "fmac")
    assert "module fmac(" in text and "src =" not in text
    assert os.getcwd() not in text and "site-packages" not in text
    # another process, another directory, another hash seed: the same bytes
    code = ("import sys; from rtl import FloatMac, to_verilog; "
            "sys.stdout.write(to_verilog(FloatMac('e4m3fn','e4m3fn','float32'), 'fmac'))")
    env = dict(os.environ, PYTHONHASHSEED="12345",
               PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out == text


def test_manifest_ports_and_layouts():
    man = manifest(FloatMac("e4m3fn", "e5m2", "bfloat16", stages=1), "m")
    ports = {p["name"]: p for p in man["ports"]}
    assert man["latency"] == 2 and man["clocked"] and man["interface"] == "accumulate"
    assert ports["a"]["width"] == 8 and ports["a"]["fields"] == {"man": [0, 3], "exp": [3, 4],
                                                                 "sign": [7, 1]}
    assert ports["b"]["fields"]["exp"] == [2, 5]
    assert ports["acc"]["direction"] == "out" and ports["acc"]["width"] == 16
    assert {"clk", "rst", "en", "clear"} <= set(ports)
    man = manifest(BlockDot("mxfp4", "float32", k=8), "bd")
    ports = {p["name"]: p for p in man["ports"]}
    assert ports["a"]["width"] == 32 and ports["a"]["elements"] == 8
    assert ports["sa"]["width"] == 8
    assert manifest(FloatMul(), "p")["clocked"] is False


def test_cli_generate(tmp_path, capsys):
    assert main(["rtl", "generate", "FloatMac", "--a", "e4m3fn", "--b", "e4m3fn", "--acc",
                 "float32", "-o", str(tmp_path)]) == 0
    v = (tmp_path / "floatmac.v").read_text()
    man = json.loads((tmp_path / "floatmac.json").read_text())
    assert "module floatmac(" in v and str(tmp_path) not in v
    assert man["formats"] == {"a": "float8_e4m3fn", "b": "float8_e4m3fn", "acc": "float32"}
    assert man["latency"] == 1
    assert main(["rtl", "generate", "IntMac", "--acc", "int24", "-o", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "intmac.json").read_text())["parameters"]["acc_bits"] == 24


def test_cli_vectors_csv(tmp_path):
    out = tmp_path / "v.csv"
    assert main(["rtl", "vectors", "FloatMul", "--a", "e4m3fn", "--b", "e4m3fn", "--out",
                 "e4m3fn", "--n", "40", "-o", str(out)]) == 0
    lines = out.read_text().splitlines()
    header = [x for x in lines if x.startswith("#")]
    assert any("float8_e4m3fn" in x for x in header)
    assert any("rounding" in x and "nearest_even" in x for x in header)
    rows = list(csv.DictReader([x for x in lines if not x.startswith("#")]))
    v = make_vectors(FloatMul("e4m3fn", "e4m3fn", "e4m3fn"), n=40)
    assert len(rows) == v.cycles
    for t, row in enumerate(rows):
        assert int(row["a"], 16) == v.inputs["a"][t]
        assert int(row["expected_p"], 16) == v.expected["p"][t]


def test_cli_verify_both_simulators(capfd):
    """The Quantizer given as its datapath; cocotb's start-up log lines (GPI INFO and
    Icarus's vpiInstance WARNING) are not printed, only the verdicts."""
    assert main(["rtl", "verify", "--datapath", "a=float32 b=none acc=exact terms=1 out=e5m2",
                 "--n", "50"]) == 0
    out, err = capfd.readouterr()
    assert "PASS amaranth: Quantizer" in out and "PASS icarus: Quantizer" in out
    assert "gpi" not in out + err and "vpi" not in out + err


@pytest.mark.parametrize("text", [
    # the accumulator test_datapath's promoting test simulates (no kernels of its own)
    "a=e5m2 b=e4m3 acc=e3m2,toward_zero,chunk3->float16,products@e4m3,product_rounding=up "
    "k=1 lanes=1",
    "a=int8 b=int8 acc=float32",
])
def test_cli_generate_and_vectors_from_a_datapath(tmp_path, text):
    """--datapath (the str(Datapath) form) reaches every option, chunked promotion and
    rounded products included: the Verilog is rtl.build(datapath)'s and the vectors
    make_vectors' of it."""
    from simulator import Datapath

    pe = rtl.build(Datapath.parse(text))
    assert main(["rtl", "generate", "--datapath", text, "--name", "dp", "-o",
                 str(tmp_path)]) == 0
    assert (tmp_path / "dp.v").read_text() == to_verilog(pe, "dp")
    man = json.loads((tmp_path / "dp.json").read_text())
    assert man["formats"] == pe.formats and man["parameters"] == pe.parameters
    out = tmp_path / "v.csv"
    assert main(["rtl", "vectors", "--datapath", text, "--n", "12", "-o", str(out)]) == 0
    rows = [x for x in out.read_text().splitlines() if not x.startswith("#")]
    v = make_vectors(pe, n=12)
    assert len(rows) == v.cycles + 1
    assert [int(r.split(",")[-1], 16) for r in rows[1:] if r.split(",")[-1]] == \
        [e for e in v.expected["acc"] if e is not None]


@pytest.mark.parametrize("argv,msg", [
    (["rtl", "generate", "Foo"], "unknown PE 'Foo'"),
    (["rtl", "generate", "FloatMul", "--a", "nf4"], "a must be a minifloat"),
    (["rtl", "generate", "LutPe", "--acc", "float32"], "takes no option 'acc'"),
    (["rtl", "generate", "IntMac", "--acc", "float32"], "must be int<n>"),
    (["rtl", "vectors", "FloatMac", "--a", "e0m3"], "a:"),
])
def test_cli_errors(argv, msg, capsys):
    assert main(argv) == 2
    assert msg in capsys.readouterr().err


@pytest.mark.parametrize("make,exc,msg", [
    (lambda: FloatMul("nf4"), TypeError, "a must be a minifloat"),
    (lambda: FloatMul("e4m3fn", "int8"), TypeError, "b must be a minifloat"),
    (lambda: FloatMul(out="e8m0"), TypeError, "subnormals"),
    (lambda: FloatMul(out="e4m3fn", overflow="error"), ValueError, "no hardware meaning"),
    (lambda: FloatMul(out="e4m3fn", overflow="inf"), ValueError, "overflow"),
    (lambda: FloatMul(stages=9), ValueError, "stages must be an int in 0..4"),
    (lambda: Quantizer("float32", "e4m3fn", "stochastic"), ValueError, "deterministic"),
    (lambda: Quantizer("float32", "nvfp4"), TypeError, "out_format must be a minifloat"),
    (lambda: Quantizer("float32", "int8", overflow="nan"), ValueError, "overflow"),
    (lambda: IntMac(acc_bits=100), ValueError, "acc_bits must be an int in 2..64"),
    (lambda: IntMac("e4m3fn"), TypeError, "a must be an integer"),
    (lambda: IntMac(overflow="inf"), ValueError, "'wrap' or 'saturate'"),
    (lambda: FloatMac(acc="int32"), TypeError, "acc must be a minifloat"),
    (lambda: FloatMac(acc="e8m0"), TypeError, "subnormals"),
    (lambda: BlockDot("int8"), TypeError, "a must be a block format"),
    (lambda: BlockDot("mxfp4", k=5), ValueError, "must divide the block size"),
    (lambda: BlockDot("mxfp4", b="nvfp4"), ValueError, "same block size"),
    (lambda: BlockDot("uint4_g128_asym"), ValueError, "zero points"),
    (lambda: BipolarPe("uint4"), TypeError, "signed"),
    (lambda: BipolarPe("e4m3fn"), TypeError, "a must be an integer"),
    (lambda: BipolarPe(k=0), ValueError, "k must be an int in 1..1024"),
    (lambda: LutPe(group=9), ValueError, "group must be an int in 1..8"),
    (lambda: LutPe("nf4"), TypeError, "w must be an integer"),
    (lambda: ShiftAddPe("int8", "uint4_g128_asym"), ValueError, "zero points"),
    (lambda: ShiftAddPe("int8", "mxfp4"), TypeError, "grouped integer"),
    (lambda: ShiftAddPe("int8", "int4_g128", lanes=3), ValueError, "lanes must be"),
    (lambda: to_verilog(FloatMul(), "1bad"), ValueError, "Verilog identifier"),
    (lambda: to_verilog("x", "ok"), TypeError, "wiring.Component"),
    (lambda: rtl.build("FloatMul", acc="float32"), ValueError, "takes no option 'acc'"),
])
def test_bad_input(make, exc, msg):
    with pytest.raises(exc, match=msg):
        make()
