"""Hostile input to costmodel and `numfab cost`: whatever is priced can be built, every
refusal is a clear ValueError/TypeError naming the parameter and what is allowed, raised
before any tool runs, and no file the user did not ask for is touched."""

from __future__ import annotations

import argparse
import math
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import costmodel
import rtl
from costmodel import energy_per_op, estimate, features, gemm_cost, operand_bits, pe_for
from costmodel.calibrate import calibrate
from costmodel.pareto import format_cost
from costmodel.synth import synthesize, synthesize_verilog
from numfab.cli import build_parser

PES = (r"IntMac, FloatMul, FloatMac, BlockDot, FusedDot, Quantizer, BipolarPe, LutPe, "
       r"ShiftAddPe")
TILE = "block<e4m3;e8m0;4x4;floor>"


def run(argv: list[str]) -> int:
    """A `numfab` subcommand through its own function (argparse errors: SystemExit 2)."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


# --- 1. what estimate / energy_per_op / features price is what rtl builds ---------------

#: (PE kind, options, error, message): rtl's own refusal, shared by every pricing path
UNBUILDABLE: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("FloatMac", {"aa": "e5m2"}, ValueError,
     r"FloatMac takes no option 'aa'; it takes a, acc, b, chunk, chunk_format, overflow, "
     r"product_format, product_rounding, rounding, stages$"),
    ("IntMac", {"acc": "int32"}, ValueError, r"IntMac takes no option 'acc'; it takes a, "
     r"acc_bits, b, overflow, stages$"),
    ("IntMac", {"a": "e4m3"}, TypeError,
     r"^a must be an integer \(int<n>\) format, not float8_e4m3fn \(Minifloat\)$"),
    ("IntMac", {"acc_bits": -5}, ValueError, r"^acc_bits must be an int in 2\.\.64, not -5$"),
    ("IntMac", {"acc_bits": -100}, ValueError,
     r"^acc_bits must be an int in 2\.\.64, not -100$"),
    ("IntMac", {"acc_bits": 65}, ValueError, r"^acc_bits must be an int in 2\.\.64, not 65$"),
    ("IntMac", {"acc_bits": True}, ValueError,
     r"^acc_bits must be an int in 2\.\.64, not True$"),
    ("IntMac", {"acc_bits": "32"}, ValueError,
     r"^acc_bits must be an int in 2\.\.64, not '32'$"),
    ("IntMac", {"a": "int40"}, ValueError, r"^a must have at most 32 bits, not 40$"),
    ("IntMac", {"overflow": "nan"}, ValueError,
     r"^overflow must be 'wrap' or 'saturate', not 'nan'$"),
    ("BlockDot", {"a": "mxfp4", "k": 3}, ValueError,
     r"^k \(3\) must divide the block size \(32\)$"),
    ("BlockDot", {"a": "mxfp4", "k": 0}, ValueError, r"^k must be an int in 1\.\.256, not 0$"),
    ("BlockDot", {"a": "mxfp4", "k": 2.5}, ValueError,
     r"^k must be an int in 1\.\.256, not 2\.5$"),
    ("BlockDot", {"a": "mxfp4", "b": "nvfp4"}, ValueError,
     r"^a and b need the same block size, not 32 and 16$"),
    ("BlockDot", {"a": TILE}, ValueError, r"^a: BlockDot takes 1-D blocks, not tiles"),
    ("BlockDot", {"a": "int8"}, TypeError, r"^a must be a block format \(mxfp8_e4m3, mxfp4"),
    ("LutPe", {"group": 40}, ValueError, r"^group must be an int in 1\.\.8, not 40$"),
    ("LutPe", {"groups": 0}, ValueError, r"^groups must be an int in 1\.\.64, not 0$"),
    ("LutPe", {"w": "uint4"}, TypeError, r"^w must be a signed \(non-narrow\) int<n> or "
     r"bipolar<n>, not uint4$"),
    ("BipolarPe", {"k": 0}, ValueError, r"^k must be an int in 1\.\.1024, not 0$"),
    ("BipolarPe", {"a": "int17"}, ValueError, r"^a must have at most 16 bits, not 17$"),
    ("ShiftAddPe", {"lanes": 3}, ValueError,
     r"^lanes must be an int in 1\.\.256 dividing the group size 128, not 3$"),
    ("ShiftAddPe", {"w": "int4_g65536", "lanes": 65536}, ValueError,
     r"^lanes must be an int in 1\.\.256 dividing the group size 65536, not 65536$"),
    ("FloatMac", {"rounding": "stochastic"}, ValueError,
     r"^rounding must be deterministic in hardware \(nearest_even, nearest_away, "
     r"toward_zero, up, down\), not 'stochastic'$"),
    ("FloatMac", {"rounding": "bogus"}, ValueError,
     r"^rounding must be one of 'nearest_even', .*not 'bogus'$"),
    ("FloatMac", {"overflow": "bogus"}, ValueError,
     r"^overflow must be one of 'saturate', .*not 'bogus'$"),
    ("FloatMac", {"stages": 2}, ValueError, r"^stages must be an int in 0\.\.1, not 2$"),
    ("FloatMul", {"stages": -1}, ValueError, r"^stages must be an int in 0\.\.4, not -1$"),
    ("FloatMul", {"a": "float64", "b": "float64"}, ValueError,
     r"^out must be given for float64 x float64: no minifloat holds every product exactly"),
    ("FloatMac", {"acc": "int32"}, TypeError, r"^acc must be a minifloat format"),
    ("FloatMac", {"a": "e30m2"}, ValueError,
     r"^a: exp_bits must be an integer in 1\.\.11, not 30$"),
    ("FloatMac", {"a": 5}, TypeError, r"^a: format name must be a str, not int$"),
    ("Quantizer", {"a": "nvfp4"}, TypeError,
     r"^in_format must be a minifloat, integer or fixed-point format, not nvfp4"),
]


@pytest.mark.parametrize("price", [estimate, energy_per_op, features],
                         ids=["estimate", "energy_per_op", "features"])
@pytest.mark.parametrize("kind,opts,exc,msg", UNBUILDABLE,
                         ids=[f"{k}-{'-'.join(f'{a}={v}' for a, v in o.items())}"
                              for k, o, _, _ in UNBUILDABLE])
def test_priced_only_if_rtl_builds_it(price: Any, kind: str, opts: dict[str, Any],
                                      exc: type[Exception], msg: str) -> None:
    with pytest.raises(exc, match=msg):
        rtl.build(kind, **opts)
    with pytest.raises(exc, match=msg):
        price(kind, **opts)


@pytest.mark.parametrize("kind,opts", [
    ("FloatMac", {"a": "e5m2", "b": "e4m3fn", "acc": "float16"}),
    ("IntMac", {"a": "int4", "b": "int4", "acc_bits": 16, "overflow": "saturate"}),
    ("BlockDot", {"a": "nvfp4", "k": 8}),
    ("LutPe", {"group": 8, "groups": 64}),
    ("ShiftAddPe", {"w": "int4_g32", "lanes": 32}),
])
def test_priced_by_name_equals_priced_built(kind: str, opts: dict[str, Any]) -> None:
    """A kind name is priced as the PE rtl builds from it, parameters and defaults."""
    pe = rtl.build(kind, **opts)
    assert estimate(kind, **opts) == estimate(pe)
    assert energy_per_op(kind, **opts) == energy_per_op(pe)
    assert energy_per_op(kind, **opts) > 0


# --- 2. wrong kinds and unknown PEs ----------------------------------------------------

@pytest.mark.parametrize("price", [estimate, energy_per_op, features],
                         ids=["estimate", "energy_per_op", "features"])
@pytest.mark.parametrize("pe,name", [(None, "NoneType"), (3, "int"), (["IntMac"], "list"),
                                     (b"IntMac", "bytes"), (rtl.IntMac, "type")],
                         ids=["None", "int", "list", "bytes", "class"])
def test_pe_of_wrong_kind(price: Any, pe: Any, name: str) -> None:
    with pytest.raises(TypeError, match=rf"^pe must be a PE kind name \({PES}\), a "
                                        rf"simulator\.Datapath or a PE built by rtl, not "
                                        rf"{name}$"):
        price(pe)


@pytest.mark.parametrize("pe", ["Bogus", "", "floatmac ", "Float Mac"])
def test_unknown_pe_lists_the_pes(pe: str) -> None:
    with pytest.raises(ValueError, match=rf"^unknown PE {pe!r}; choose one of {PES}$"):
        estimate(pe)


def test_options_with_a_built_pe() -> None:
    with pytest.raises(TypeError, match=r"^options go with a PE kind name, not with a built "
                                        r"component \(got a\)$"):
        estimate(rtl.IntMac(), a="int4")


@pytest.mark.parametrize("target,exc,msg", [
    (None, TypeError, r"^target must be a str \(xilinx, cmos\), not NoneType$"),
    (["xilinx"], TypeError, r"^target must be a str \(xilinx, cmos\), not list$"),
    ("ice40", ValueError, r"^no cost model for target 'ice40'; modelled targets: xilinx, cmos"),
    ("", ValueError, r"^no cost model for target ''; modelled targets: xilinx, cmos"),
])
def test_estimate_target(target: Any, exc: type[Exception], msg: str) -> None:
    with pytest.raises(exc, match=msg):
        estimate("IntMac", target=target)


# --- 3. gemm_cost arguments -------------------------------------------------------------

GEMM_BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"M": 0}, ValueError, r"^M must be a positive int, not 0$"),
    ({"N": -3}, ValueError, r"^N must be a positive int, not -3$"),
    ({"K": 0}, ValueError, r"^K must be a positive int, not 0$"),
    ({"M": 2.5}, TypeError, r"^M must be a positive int, not float 2\.5$"),
    ({"K": "16"}, TypeError, r"^K must be a positive int, not str '16'$"),
    ({"N": None}, TypeError, r"^N must be a positive int, not NoneType None$"),
    ({"M": True}, TypeError, r"^M must be a positive int, not bool True$"),
    ({"array": (0, 4)}, ValueError, r"^array must be \(rows, cols\) of positive ints, not "
     r"\(0, 4\)$"),
    ({"array": (-1, 4)}, ValueError, r"^array must be \(rows, cols\) of positive ints"),
    ({"array": (16, 16, 16)}, TypeError, r"^array must be \(rows, cols\) of positive ints, "
     r"not \(16, 16, 16\)$"),
    ({"array": "16x16"}, TypeError, r"^array must be \(rows, cols\) of positive ints, not "
     r"'16x16'$"),
    ({"array": (2.5, 4)}, TypeError, r"^array must be \(rows, cols\) of positive ints"),
    ({"freq": math.inf}, ValueError, r"^freq must be a positive finite number \(Hz\), not inf$"),
    ({"freq": -math.inf}, ValueError, r"^freq must be a positive finite number \(Hz\), not "
     r"-inf$"),
    ({"freq": math.nan}, ValueError, r"^freq must be a positive finite number \(Hz\), not nan$"),
    ({"freq": 0}, ValueError, r"^freq must be a positive finite number \(Hz\), not 0$"),
    ({"freq": -250e6}, ValueError, r"^freq must be a positive finite number \(Hz\)"),
    ({"freq": "fast"}, TypeError, r"^freq must be a positive finite number \(Hz\), not str "
     r"'fast'$"),
    ({"freq": None}, TypeError, r"^freq must be a positive finite number \(Hz\), not NoneType"),
    ({"freq": True}, TypeError, r"^freq must be a positive finite number \(Hz\), not bool"),
    ({"k": 0}, ValueError, r"^k must be a positive int, not 0$"),
    ({"k": 2.5}, TypeError, r"^k must be a positive int, not float 2\.5$"),
    ({"a_format": "int8", "b_format": "int4_g128", "lanes": -8}, ValueError,
     r"^lanes must be a positive int, not -8$"),
    ({"a_format": TILE}, ValueError, r"^a_format must have 1-D blocks along K for gemm_cost, "
     r"not tiles 4x4 \(block<float8_e4m3fn;float8_e8m0fnu;4x4;floor>\)$"),
    ({"b_format": TILE}, ValueError, r"^b_format must have 1-D blocks along K for gemm_cost, "
     r"not tiles 4x4"),
    ({"b_format": "nvfp4"}, ValueError, r"^a_format=mxfp4, b_format=nvfp4, "
     r"accumulator=float32 run on BlockDot, which rtl cannot build for them: a and b need the same "
     r"block size, not 32 and 16$"),
    ({"accumulator": "int32"}, TypeError, r"^a_format=mxfp4, b_format=mxfp4, "
     r"accumulator=int32 run on BlockDot, which rtl cannot build for them: acc must be a "
     r"minifloat"),
    ({"accumulator": None}, TypeError, r"^accumulator: format name must be a str, not "
     r"NoneType$"),
    ({"accumulator": "bogus"}, ValueError, r"^accumulator: unknown format name 'bogus'"),
    ({"a_format": None}, TypeError, r"^a_format: format name must be a str, not NoneType$"),
    ({"b_format": "float8_e4m3fn"}, ValueError, r"^no PE model for mxfp4 x float8_e4m3fn "
     r"into float32"),
    ({"a_format": "int8", "b_format": "int8", "accumulator": "int1"}, ValueError,
     r"accumulator=int1 run on IntMac, which rtl cannot build for them: acc_bits must be an int in "
     r"2\.\.64, not 1$"),
    ({"target": "vivado"}, ValueError, r"^no cost model for target 'vivado'"),
    ({"target": None}, TypeError, r"^target must be a str"),
]


@pytest.mark.parametrize("change,exc,msg", GEMM_BAD,
                         ids=[",".join(f"{k}={v!r}" for k, v in c.items()) for c, _, _ in GEMM_BAD])
def test_gemm_cost_bad_arguments(change: dict[str, Any], exc: type[Exception], msg: str) -> None:
    args: dict[str, Any] = {"M": 16, "N": 16, "K": 16, "a_format": "mxfp4", "b_format": "mxfp4"}
    args.update(change)
    with pytest.raises(exc, match=msg):
        gemm_cost(**args)


def test_gemm_cost_counts_hand_checked() -> None:
    """numpy integer sizes are sizes; the counts worked by hand: 32x32 outputs on a
    16x16 array are 4 tiles of 32 one-MAC cycles, plus the 16 + 16 fill."""
    c = gemm_cost(np.int64(32), np.int32(32), 32, "int8", "int8", "int32", array=(16, 16),
                  freq=1e9)
    assert c.pe == "IntMac" and c.macs_per_cycle == 1
    assert c.cycles == 4 * 32 + 32 and c.seconds == 160 / 1e9
    assert c.bytes["a"] == 32 * 32 and c.bytes["c"] == 32 * 32 * 4
    # k = 3 on 32-element blocks: the largest divisor of both, one pair per cycle
    assert gemm_cost(16, 16, 16, "mxfp4", "mxfp4", k=3).macs_per_cycle == 1


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: operand_bits(TILE, 4, 4), ValueError, r"^fmt must have 1-D blocks along K"),
    (lambda: operand_bits("mxfp4", 0, 4), ValueError, r"^rows must be a positive int, not 0$"),
    (lambda: operand_bits("mxfp4", 4, 1.5), TypeError, r"^k must be a positive int"),
    (lambda: pe_for("mxfp4", "nvfp4", "float32"), ValueError, r"run on BlockDot, which rtl "
     r"cannot build for them: a and b need the same block size, not 32 and 16$"),
    (lambda: pe_for("int8", TILE, "float32"), ValueError, r"^b_format must have 1-D blocks"),
    (lambda: format_cost(["e4m3"], "e4m3"), TypeError, r"^a_format: format name must be a "
     r"str, not list$"),
    (lambda: format_cost("e4m3", "e4m3", target=["x"]), TypeError, r"^target must be a str"),
    (lambda: format_cost("mxfp4", "nvfp4"), ValueError,
     r"a and b must block K alike, not 32 \(mxfp4\) and 16 \(nvfp4\)$"),
], ids=["operand_bits-tile", "operand_bits-rows0", "operand_bits-k-float", "pe_for-mismatch",
        "pe_for-tile", "format_cost-list", "format_cost-target-list", "format_cost-mismatch"])
def test_gemm_helpers(call: Any, exc: type[Exception], msg: str) -> None:
    with pytest.raises(exc, match=msg):
        call()


# --- 5. synthesis: the module name is checked before yosys runs ------------------------

@pytest.fixture
def no_yosys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reaching yosys would raise YosysMissing instead of the expected error."""
    monkeypatch.setattr(shutil, "which", lambda name: None)


@pytest.mark.parametrize("top,exc,msg", [
    ("fmac; shell rm -rf x", ValueError, None),
    ("../../etc/passwd", ValueError, None),
    ("1bad", ValueError, None),
    ("", ValueError, None),
    ("a b", ValueError, None),
    ("x\ny", ValueError, None),
    (None, TypeError, r"^top must be a str \(a Verilog identifier\), not NoneType$"),
    (5, TypeError, r"^top must be a str \(a Verilog identifier\), not int$"),
], ids=["semicolon", "path", "digit", "empty", "space", "newline", "None", "int"])
def test_synthesize_verilog_top(no_yosys: None, top: Any, exc: type[Exception],
                                msg: str | None) -> None:
    msg = msg or (r"^top must be a Verilog identifier \(\[A-Za-z_\]\[A-Za-z0-9_\]\*\), not "
                  + re.escape(repr(top)) + "$")
    with pytest.raises(exc, match=msg):
        synthesize_verilog("module m; endmodule", top, "xilinx")


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: synthesize_verilog(None, "m", "xilinx"), TypeError,
     r"^verilog must be Verilog source text \(str\), not NoneType$"),
    (lambda: synthesize_verilog("module m; endmodule", "m", "vivado"), ValueError,
     r"^unknown target 'vivado'; choose one of xilinx, xilinx-dsp, ice40, ecp5, cmos$"),
    (lambda: synthesize_verilog("module m; endmodule", "m", None), TypeError,
     r"^target must be a str \(xilinx, xilinx-dsp, ice40, ecp5, cmos\), not NoneType$"),
    (lambda: synthesize(rtl.IntMac(), "xilinx", name="a;b"), ValueError,
     r"^name must be a Verilog identifier"),
    (lambda: synthesize(rtl.IntMac(), ["xilinx"]), TypeError, r"^target must be a str"),
], ids=["verilog-None", "target-unknown", "target-None", "name", "target-list"])
def test_synthesize_refuses_before_yosys(no_yosys: None, call: Any, exc: type[Exception],
                                         msg: str) -> None:
    with pytest.raises(exc, match=msg):
        call()


# --- 4. the `numfab cost` command line ---------------------------------------------------

@pytest.mark.parametrize("argv,msg", [
    (["--array", "16x16x16"], r"argument --array: must be ROWSxCOLS with positive integers "
     r"\(e\.g\. 16x16\), not '16x16x16'"),
    (["--array", "0x4"], r"argument --array: must be ROWSxCOLS .*not '0x4'"),
    (["--array", "16"], r"argument --array: must be ROWSxCOLS .*not '16'"),
    (["--array=-1x4"], r"argument --array: must be ROWSxCOLS .*not '-1x4'"),
    (["--array", "axb"], r"argument --array: must be ROWSxCOLS .*not 'axb'"),
    (["--freq", "inf"], r"argument --freq: must be a positive finite number of Hz \(e\.g\. "
     r"250e6\), not 'inf'"),
    (["--freq", "nan"], r"argument --freq: must be a positive finite number of Hz .*'nan'"),
    (["--freq", "0"], r"argument --freq: must be a positive finite number of Hz .*'0'"),
    (["--freq", "fast"], r"argument --freq: must be a positive finite number of Hz .*'fast'"),
    (["--m", "0"], r"argument --m: must be a positive integer, not '0'"),
    (["--n", "-3"], r"argument --n: must be a positive integer, not '-3'"),
    (["--m", "2.5"], r"argument --m: must be a positive integer, not '2\.5'"),
    (["--jobs", "0"], r"argument --jobs: must be a positive integer, not '0'"),
])
def test_cost_gemm_argument_types(argv: list[str], msg: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run(["cost", "gemm", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.fullmatch(rf"numfab cost: error: {msg} \(see numfab cost --help\)\n", err), err


def test_argument_type_functions() -> None:
    from numfab.cost_cli import array_spec, frequency

    assert array_spec("8X4") == (8, 4) and frequency("1e9") == 1e9
    with pytest.raises(argparse.ArgumentTypeError, match="ROWSxCOLS"):
        array_spec("16x16x16")


@pytest.mark.parametrize("argv,msg", [
    (["cost", "gemm", "--k", "0"], r"^numfab cost: K must be a positive int, not 0$"),
    (["cost", "gemm", "--a", "mxfp4", "--b", "nvfp4"], r"^numfab cost: a_format=mxfp4, "
     r"b_format=nvfp4, accumulator=float32 run on BlockDot, which rtl cannot build for them: "
     r"a and b "
     r"need the same block size, not 32 and 16$"),
    (["cost", "gemm", "--a", TILE], r"^numfab cost: a_format must have 1-D blocks along K"),
    (["cost", "gemm", "--acc", "bogus"], r"^numfab cost: accumulator: unknown format name"),
    (["cost", "gemm", "--target", "vivado"], r"^numfab cost: no cost model for target "
     r"'vivado'"),
    (["cost", "LutPe", "--group", "40"], r"^numfab cost: group must be an int in 1\.\.8, "
     r"not 40$"),
    (["cost", "BlockDot", "--a", "mxfp4", "--k", "3"], r"^numfab cost: k \(3\) must divide "
     r"the block size \(32\)$"),
    (["cost", "IntMac", "--acc", "int1"], r"^numfab cost: acc_bits must be an int in "
     r"2\.\.64, not 1$"),
    (["cost", "Bogus"], rf"^numfab cost: unknown PE 'Bogus'; choose one of {PES}$"),
    (["cost", "--datapath", "bogus"], r"^numfab cost: --datapath: datapath 'bogus': cannot "
     r"read 'bogus'; give space-separated a=<format> b=<format>"),
    (["cost", "--datapath", "a=e4m3 b=e4m3 acc=float32,nearest_even,pairwise"],
     r"^numfab cost: --datapath: no PE computes the datapath .*: it needs pairwise "
     r"summation"),
    (["cost", "IntMac", "--datapath", "a=int4 b=int4 acc=int12"], r"^numfab cost: "
     r"--datapath names its PE \(rtl\.build\(datapath\)\); give it without the PE kind "
     r"'IntMac'$"),
    (["cost"], r"^numfab cost: give a PE kind \(IntMac, .*\) or --datapath$"),
    (["cost", "gemm", "--datapath", "a=e4m3 b=e4m3 acc=float32", "--acc", "float16"],
     r"^numfab cost: --datapath holds the formats and options; give it without --acc$"),
    (["cost", "gemm", "--datapath", "a=e4m3 b=e4m3 acc=float99"], r"^numfab cost: "
     r"--datapath 'a=e4m3 b=e4m3 acc=float99': format: unknown format name 'float99'"),
    (["cost", "gemm", "--datapath", "a=e4m3 b=e5m2 acc=exact terms=1"], r"^numfab cost: "
     r"gemm_cost runs a GEMM on accumulating PEs; the datapath .* is a FloatMul without a "
     r"running sum \(terms=1\)$"),
], ids=["k0", "mismatched-blocks", "tile", "acc", "target", "lut-group", "blockdot-k",
        "intmac-acc", "unknown-pe", "datapath-text", "datapath-no-pe", "datapath-and-kind",
        "no-pe", "gemm-datapath-and-acc", "gemm-datapath-format", "gemm-datapath-terms"])
def test_cost_cli_clear_errors(no_yosys: None, argv: list[str], msg: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before any synthesis (yosys is hidden: reaching it would say so)."""
    assert run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert re.search(msg, err), err


@pytest.mark.parametrize("target,msg", [
    ("file/x.csv", r"-o/--output '.*file/x\.csv' cannot be written: its directory '.*file' "
     r"is a file$"),
    ("file/a/x.csv", r"-o/--output '.*file/a/x\.csv' cannot be written: '.*file' is a file, "
     r"not a directory$"),
    ("dir", r"-o/--output must be a file name, but '.*dir' is a directory$"),
])
def test_cost_calibrate_refuses_output_before_synthesis(
        tmp_path: Path, no_yosys: None, target: str, msg: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_bytes(b"keep me\n")
    (tmp_path / "dir").mkdir()
    assert run(["cost", "calibrate", "-o", str(tmp_path / target)]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(msg, err), err
    assert (tmp_path / "file").read_bytes() == b"keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file"]
    assert list((tmp_path / "dir").iterdir()) == []


def test_calibrate_without_yosys_says_so_before_any_work(tmp_path: Path, no_yosys: None,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    with pytest.raises(costmodel.YosysMissing, match=r"^yosys is not installed .*install it: "
                                                     r"apt-get update && apt-get install -y "
                                                     r"yosys$"):
        calibrate(tmp_path / "new" / "c.csv")
    assert run(["cost", "calibrate", "-o", str(tmp_path / "c.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"numfab cost: yosys is not installed .*", err), err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"jobs": 0}, ValueError, r"^jobs must be a positive int, not 0$"),
    ({"jobs": 1.5}, ValueError, r"^jobs must be a positive int, not 1\.5$"),
    ({"targets": ("vivado",)}, ValueError, r"^unknown target 'vivado'"),
    ({"targets": ()}, ValueError, r"^targets and grid must not be empty$"),
    ({"grid": []}, ValueError, r"^targets and grid must not be empty$"),
])
def test_calibrate_arguments(tmp_path: Path, no_yosys: None, kwargs: dict[str, Any],
                             exc: type[Exception], msg: str) -> None:
    with pytest.raises(exc, match=msg):
        calibrate(tmp_path / "c.csv", **kwargs)
    assert list(tmp_path.iterdir()) == []
