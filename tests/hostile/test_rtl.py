"""Hostile input to rtl and `numfab rtl`: constructors and build refuse impossible PEs
clearly; output paths are checked before any folder or file is created; results are
written atomically; a file the user did not ask numfab to write is never changed."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

import rtl
from numfab.cli import build_parser
from rtl import (
    BipolarPe,
    BlockDot,
    FloatMac,
    FloatMul,
    IntMac,
    LutPe,
    Quantizer,
    ShiftAddPe,
    to_verilog,
)
from rtl.outputs import check_output_dir, check_output_file, write_text
from rtl.vectors import make_vectors

PES = (r"IntMac, FloatMul, FloatMac, BlockDot, FusedDot, Quantizer, BipolarPe, LutPe, "
       r"ShiftAddPe")
KEEP = b"the user's own bytes\n"


def run(argv: list[str]) -> int:
    """A `numfab` subcommand through its own function (argparse errors: SystemExit 2)."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for directories)."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    """A folder with a user's file and an empty directory in it."""
    (tmp_path / "notes.txt").write_bytes(KEEP)
    (tmp_path / "dir").mkdir()
    return tmp_path


# --- constructors and build -------------------------------------------------------------

BAD_PES: list[tuple[Any, type[Exception], str]] = [
    (lambda: rtl.build(None), TypeError,
     rf"^pe must be a PE kind name \(str\): one of {PES}, or a simulator\.Datapath; not "
     r"NoneType$"),
    (lambda: rtl.build(("IntMac",)), TypeError, r"^pe must be a PE kind name \(str\)"),
    (lambda: rtl.build(""), ValueError, rf"^unknown PE ''; choose one of {PES}$"),
    (lambda: rtl.build("FloatMac", bogus=1), ValueError,
     r"^FloatMac takes no option 'bogus'; it takes a, acc, b, chunk, chunk_format, overflow, "
     r"product_format, product_rounding, rounding, stages$"),
    (lambda: rtl.build("IntMac", a=["int8"]), TypeError, r"^a: format name must be a str, "
     r"not list$"),
    (lambda: FloatMac(a=None), TypeError, r"^a: format name must be a str, not NoneType$"),
    (lambda: Quantizer(None), TypeError, r"^in_format: format name must be a str"),
    (lambda: FloatMul("float64", "float64"), ValueError, r"^out must be given for float64 x "
     r"float64: no minifloat holds every product exactly"),
    (lambda: FloatMul(overflow="bogus"), ValueError, r"^overflow must be one of"),
    (lambda: FloatMul(rounding=None), ValueError, r"^rounding must be one of .*not None$"),
    (lambda: FloatMac(acc="e8m0"), TypeError, r"^acc must be a signed minifloat with "
     r"subnormals"),
    (lambda: FloatMac(a="mxfp4"), TypeError, r"^a must be a minifloat, integer or fixed-point "
     r"format \(e\.g\. e4m3fn, int8, fixed<4,4>\), not mxfp4 \(BlockScaled\)$"),
    (lambda: FloatMac(b="bipolar2"), TypeError, r"^b must be a minifloat, integer or "
     r"fixed-point format .*, not bipolar2 \(BipolarInt\)$"),
    (lambda: IntMac(acc_bits=None), ValueError, r"^acc_bits must be an int in 2\.\.64, not "
     r"None$"),
    (lambda: IntMac(acc_bits=2.0), ValueError, r"^acc_bits must be an int in 2\.\.64, not "
     r"2\.0$"),
    (lambda: IntMac(overflow=None), ValueError, r"^overflow must be 'wrap' or 'saturate', not "
     r"None$"),
    (lambda: IntMac(overflow="inf"), ValueError, r"^overflow must be 'wrap' or 'saturate', "
     r"not 'inf'$"),
    (lambda: IntMac(stages=True), ValueError, r"^stages must be an int in 0\.\.1, not True$"),
    (lambda: IntMac(a="int33"), ValueError, r"^a must have at most 32 bits, not 33$"),
    (lambda: BlockDot("mxfp4", k=64), ValueError, r"^k \(64\) must divide the block size "
     r"\(32\)$"),
    (lambda: BlockDot("mxfp4", k=True), ValueError, r"^k must be an int in 1\.\.256, not "
     r"True$"),
    (lambda: BlockDot("block<e4m3;e8m0;4x4;floor>"), ValueError, r"^a: BlockDot takes 1-D "
     r"blocks, not tiles \(4, 4\)$"),
    (lambda: BlockDot("block<e4m3;e8m0;1000000;floor>"), ValueError, r"^k must be an int in "
     r"1\.\.256, not 1000000$"),
    (lambda: LutPe(group=2.5), ValueError, r"^group must be an int in 1\.\.8, not 2\.5$"),
    (lambda: LutPe(groups=65), ValueError, r"^groups must be an int in 1\.\.64, not 65$"),
    (lambda: BipolarPe(k=1025), ValueError, r"^k must be an int in 1\.\.1024, not 1025$"),
    (lambda: BipolarPe(k=None), ValueError, r"^k must be an int in 1\.\.1024, not None$"),
    (lambda: ShiftAddPe(lanes=0), ValueError, r"^lanes must be an int in 1\.\.256 dividing "
     r"the group size 128, not 0$"),
    (lambda: ShiftAddPe(lanes=256), ValueError, r"^lanes must be an int in 1\.\.256 dividing "
     r"the group size 128, not 256$"),
    (lambda: ShiftAddPe(w="int4_g65536", lanes=65536), ValueError, r"^lanes must be an int in "
     r"1\.\.256 dividing the group size 65536, not 65536$"),
    (lambda: Quantizer("float32", "ue4m3"), TypeError, r"^out_format must be a signed "
     r"minifloat with subnormals"),
]


@pytest.mark.parametrize("make,exc,msg", BAD_PES, ids=[str(i) for i in range(len(BAD_PES))])
def test_impossible_pes_refused(make: Any, exc: type[Exception], msg: str) -> None:
    with pytest.raises(exc, match=msg):
        make()


@pytest.mark.parametrize("name,exc,msg", [
    (None, TypeError, r"^name must be a str \(a Verilog identifier\), not NoneType$"),
    (b"fmac", TypeError, r"^name must be a str \(a Verilog identifier\), not bytes$"),
    ("1bad", ValueError, r"^name must be a Verilog identifier \(\[A-Za-z_\]\[A-Za-z0-9_\]\*\), "
     r"not '1bad'$"),
    ("a b", ValueError, r"^name must be a Verilog identifier .*not 'a b'$"),
    ("../evil", ValueError, r"^name must be a Verilog identifier .*not '\.\./evil'$"),
    ("x;y", ValueError, r"^name must be a Verilog identifier .*not 'x;y'$"),
    ("", ValueError, r"^name must be a Verilog identifier .*not ''$"),
], ids=["None", "bytes", "digit", "space", "path", "semicolon", "empty"])
def test_to_verilog_name(name: Any, exc: type[Exception], msg: str) -> None:
    with pytest.raises(exc, match=msg):
        to_verilog(FloatMul(), name)


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"n": 0}, ValueError, r"^n must be an int in 1\.\.1048576, not 0$"),
    ({"n": -5}, ValueError, r"^n must be an int in 1\.\.1048576, not -5$"),
    ({"n": 10**12}, ValueError, r"^n must be an int in 1\.\.1048576, not 1000000000000$"),
    ({"n": 2.5}, TypeError, r"^n must be an int in 1\.\.1048576, not float$"),
    ({"n": True}, TypeError, r"^n must be an int in 1\.\.1048576, not bool$"),
    ({"seed": -1}, ValueError, r"^seed must be an int >= 0, not -1$"),
    ({"seed": "0"}, TypeError, r"^seed must be an int >= 0, not str$"),
    ({"exhaustive": "yes"}, TypeError, r"^exhaustive must be a bool, not str$"),
])
def test_make_vectors_arguments(kwargs: dict[str, Any], exc: type[Exception], msg: str) -> None:
    with pytest.raises(exc, match=msg):
        make_vectors(FloatMul("e4m3fn", "e4m3fn", "e4m3fn"), **kwargs)


def test_make_vectors_needs_a_pe() -> None:
    with pytest.raises(TypeError, match=rf"^pe must be a PE built by rtl \({PES}\), not str$"):
        make_vectors("FloatMul")


# --- rtl.write and Vectors.to_csv: checked first, atomic, nothing else touched ---------

@pytest.mark.parametrize("out,name,exc,msg", [
    ("notes.txt", "fmac", ValueError, r"^out_dir must be a directory, but '.*notes\.txt' is "
     r"an existing file$"),
    ("notes.txt/sub", "fmac", ValueError, r"^out_dir '.*notes\.txt/sub' cannot be created: "
     r"'.*notes\.txt' is a file, not a directory$"),
    ("new", "1bad", ValueError, r"^name must be a Verilog identifier"),
    ("new/deeper", "../x", ValueError, r"^name must be a Verilog identifier"),
    ("new", None, TypeError, r"^name must be a str"),
    (None, "fmac", TypeError, r"^out_dir must be a path \(str or os\.PathLike\), not "
     r"NoneType$"),
    ("", "fmac", ValueError, r"^out_dir must be a non-empty path without NUL characters, "
     r"not ''$"),
], ids=["file", "under-a-file", "bad-name", "path-name", "None-name", "None-dir", "empty-dir"])
def test_write_refuses_before_creating(disk: Path, out: Any, name: Any, exc: type[Exception],
                                       msg: str) -> None:
    before = snapshot(disk)
    target = out if out in (None, "") else str(disk / out)
    with pytest.raises(exc, match=msg):
        rtl.write(FloatMul(), name, target)
    assert snapshot(disk) == before


def test_write_refuses_a_directory_in_place_of_an_output(disk: Path) -> None:
    (disk / "dir" / "fmac.json").mkdir()
    before = snapshot(disk)
    with pytest.raises(ValueError, match=r"^out_dir '.*dir' holds a directory 'fmac\.json' "
                                         r"where the output file goes$"):
        rtl.write(FloatMul(), "fmac", disk / "dir")
    assert snapshot(disk) == before


def test_write_replaces_only_its_own_files(disk: Path) -> None:
    """Existing outputs are replaced whole (mode kept); neighbours are untouched; no
    temporary file is left behind."""
    out = disk / "dir"
    (out / "fmac.v").write_text("old")
    os.chmod(out / "fmac.v", 0o640)
    (out / "other.v").write_bytes(KEEP)
    v, j = rtl.write(FloatMul(), "fmac", out)
    assert v.read_text() == to_verilog(FloatMul(), "fmac")
    assert stat.S_IMODE(v.stat().st_mode) == 0o640
    assert sorted(p.name for p in out.iterdir()) == ["fmac.json", "fmac.v", "other.v"]
    assert (out / "other.v").read_bytes() == KEEP and (disk / "notes.txt").read_bytes() == KEEP


def test_write_text_failure_keeps_the_old_file(disk: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure while replacing leaves the old bytes and no temporary file."""
    def fail(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    before = snapshot(disk)
    with pytest.raises(OSError, match="disk full"):
        write_text(disk / "notes.txt", "new text")
    assert snapshot(disk) == before


@pytest.mark.parametrize("path,msg", [
    ("missing/dir/v.csv", r"^path '.*missing/dir/v\.csv' cannot be written: its directory "
     r"'.*missing/dir' does not exist$"),
    ("notes.txt/v.csv", r"^path '.*notes\.txt/v\.csv' cannot be written: its directory "
     r"'.*notes\.txt' is a file$"),
    ("dir", r"^path must be a file name, but '.*dir' is a directory$"),
], ids=["missing-dir", "under-a-file", "a-directory"])
def test_to_csv_refuses_before_writing(disk: Path, path: str, msg: str) -> None:
    vec = make_vectors(FloatMul("e4m3fn", "e4m3fn", "e4m3fn"), n=4)
    before = snapshot(disk)
    with pytest.raises(ValueError, match=msg):
        vec.to_csv(disk / path)
    assert snapshot(disk) == before


@pytest.mark.parametrize("check,value,exc,msg", [
    (check_output_file, 3, TypeError, r"^out must be a path \(str or os\.PathLike\), not int$"),
    (check_output_file, "a\0b", ValueError, r"^out must be a non-empty path without NUL "
     r"characters, not 'a\\x00b'$"),
    (check_output_dir, b"dir", TypeError, r"^out must be a path \(str or os\.PathLike\), not "
     r"bytes$"),
], ids=["int", "nul", "bytes"])
def test_output_path_kinds(check: Any, value: Any, exc: type[Exception], msg: str) -> None:
    with pytest.raises(exc, match=msg):
        check(value, "out")


# --- `numfab rtl` -------------------------------------------------------------------------

@pytest.mark.parametrize("argv,msg", [
    (["generate", "FloatMac", "-o", "notes.txt"], r"^numfab rtl generate: -o/--output must "
     r"be a directory, but '.*notes\.txt' is an existing file$"),
    (["generate", "FloatMac", "--name", "1bad", "-o", "newdir"], r"^numfab rtl generate: "
     r"--name must be a Verilog identifier \(\[A-Za-z_\]\[A-Za-z0-9_\]\*\), not '1bad'$"),
    (["generate", "FloatMac", "--name", "a;b", "-o", "newdir"], r"^numfab rtl generate: "
     r"--name must be a Verilog identifier .*not 'a;b'$"),
    (["generate", "LutPe", "--group", "40", "-o", "newdir"], r"^numfab rtl generate: group "
     r"must be an int in 1\.\.8, not 40$"),
    (["generate", "Bogus", "-o", "newdir"], rf"^numfab rtl generate: unknown PE 'Bogus'; "
     rf"choose one of {PES}$"),
    (["generate", "FloatMac", "-o", "notes.txt/sub"], r"^numfab rtl generate: -o/--output "
     r"'.*notes\.txt/sub' cannot be created: '.*notes\.txt' is a file, not a directory$"),
    (["vectors", "FloatMul", "-o", "missing/dir/v.csv"], r"^numfab rtl vectors: -o/--output "
     r"'.*missing/dir/v\.csv' cannot be written: its directory '.*missing/dir' does not "
     r"exist$"),
    (["vectors", "FloatMul", "-o", "dir"], r"^numfab rtl vectors: -o/--output must be a file "
     r"name, but '.*dir' is a directory$"),
    (["vectors", "FloatMul", "-o", "notes.txt/v.csv"], r"^numfab rtl vectors: -o/--output "
     r"'.*notes\.txt/v\.csv' cannot be written: its directory '.*notes\.txt' is a file$"),
    (["vectors", "BlockDot", "--a", "mxfp4", "--k", "3", "-o", "v.csv"], r"^numfab rtl "
     r"vectors: k \(3\) must divide the block size \(32\)$"),
    (["vectors", "FloatMul", "--n", "1000000000000", "-o", "v.csv"], r"^numfab rtl vectors: "
     r"n must be an int in 1\.\.1048576, not 1000000000000$"),
    (["verify", "FloatMul", "--workdir", "notes.txt"], r"^numfab rtl verify: --workdir must "
     r"be a directory, but '.*notes\.txt' is an existing file$"),
    (["verify", "IntMac", "--acc", "float32"], r"^numfab rtl verify: --acc for IntMac must be "
     r"int<n> \(e\.g\. int32\), not 'float32'$"),
    (["generate", "--datapath", "bogus", "-o", "newdir"], r"^numfab rtl generate: --datapath: "
     r"datapath 'bogus': cannot read 'bogus'; give space-separated a=<format> b=<format>"),
    (["generate", "--datapath", "a=e4m3 b=", "-o", "newdir"], r"^numfab rtl generate: "
     r"--datapath 'a=e4m3 b=': b: unknown format name ''"),
    (["generate", "--datapath", "a=e4m3 b=e4m3 acc=float32", "--a", "e5m2", "--stages", "1",
      "-o", "newdir"], r"^numfab rtl generate: --datapath holds the formats and options; "
     r"give it without --a, --stages$"),
    (["generate", "FloatMac", "--datapath", "a=e4m3 b=e4m3 acc=float32", "-o", "newdir"],
     r"^numfab rtl generate: --datapath names its PE \(rtl\.build\(datapath\)\); give it "
     r"without the PE kind 'FloatMac'$"),
    (["generate", "-o", "newdir"], r"^numfab rtl generate: give a PE kind \(IntMac, FloatMul, "
     r"FloatMac, BlockDot, FusedDot, Quantizer, BipolarPe, LutPe, ShiftAddPe\) or "
     r"--datapath$"),
    (["vectors", "--datapath", "a=e4m3 b=e4m3 acc=float16,stochastic,seed=1", "-o", "v.csv"],
     r"^numfab rtl vectors: --datapath: no PE computes the datapath .*: it needs stochastic "
     r"rounding \(no PE has a random source\)$"),
    (["verify", "--datapath", "a=e4m3 b=mxfp4 acc=float32"], r"^numfab rtl verify: "
     r"--datapath: no PE computes the datapath a=float8_e4m3fn b=mxfp4 .*: it needs a PE for "
     r"these formats"),
], ids=["generate-into-file", "generate-bad-name", "generate-semicolon-name",
        "generate-bad-group", "generate-unknown-pe", "generate-under-file",
        "vectors-missing-dir", "vectors-into-dir", "vectors-under-file", "vectors-bad-k",
        "vectors-huge-n",
        "verify-workdir-file", "verify-intmac-acc", "datapath-unreadable",
        "datapath-bad-format", "datapath-and-options", "datapath-and-kind", "no-pe",
        "datapath-stochastic", "datapath-no-pe"])
def test_rtl_cli_refuses_and_changes_nothing(disk: Path, argv: list[str], msg: str,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(disk)
    before = snapshot(disk)
    assert run(["rtl", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and re.search(msg, err), err
    assert snapshot(disk) == before


@pytest.mark.parametrize("argv,msg", [
    (["vectors", "FloatMul", "--n", "0"], r"argument --n: must be a positive integer, not '0'"),
    (["vectors", "FloatMul", "--n", "many"], r"argument --n: must be a positive integer, "
     r"not 'many'"),
    (["verify", "FloatMul", "--seed=-1"], r"argument --seed: must be an integer >= 0, "
     r"not '-1'"),
    (["generate", "BlockDot", "--k", "2.5"], r"argument --k: invalid int value: '2\.5'"),
    (["generate", "FloatMac", "--aa", "e5m2"], r"unrecognized arguments: --aa e5m2"),
], ids=["n-zero", "n-word", "seed-negative", "k-float", "misspelled-option"])
def test_rtl_cli_argument_types(disk: Path, argv: list[str], msg: str,
                                capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(disk)
    before = snapshot(disk)
    with pytest.raises(SystemExit) as info:
        run(["rtl", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and re.search(msg, err), err
    assert snapshot(disk) == before


def test_rtl_cli_writes_what_was_asked(disk: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The accepted forms still work: a new nested folder, vectors into an existing one."""
    monkeypatch.chdir(disk)
    assert run(["rtl", "generate", "FloatMul", "--name", "fm", "-o", "a/b"]) == 0
    assert sorted(p.name for p in (disk / "a" / "b").iterdir()) == ["fm.json", "fm.v"]
    assert run(["rtl", "vectors", "FloatMul", "--n", "4", "-o", "dir/v.csv"]) == 0
    assert (disk / "dir" / "v.csv").read_text().startswith("# numfab golden vectors")
    assert (disk / "notes.txt").read_bytes() == KEEP
    assert sorted(p.name for p in disk.iterdir()) == ["a", "dir", "notes.txt"]
