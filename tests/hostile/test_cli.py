"""Hostile input to the ``numfab`` command line: every refusal is one line on stderr with
exit status 2 and no traceback, and no file is created or changed on error."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from numfab.cli import main

SWEEP = 'models = ["digits"]\nformats = ["int8"]\n'


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding files of every kind the commands read."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NUMFAB_DEBUG", raising=False)
    (tmp_path / "s.toml").write_text(SWEEP)
    (tmp_path / "notes.txt").write_text("my notes, one line\n")
    (tmp_path / "existing").write_text("keep me")
    (tmp_path / "adir").mkdir()
    np.save(tmp_path / "x.npy", np.linspace(-3, 3, 64, dtype=np.float32))
    np.save(tmp_path / "scalar.npy", np.float32(1.5))
    np.savez(tmp_path / "arch.npz", a=np.ones(3))
    np.save(tmp_path / "obj.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    np.save(tmp_path / "cplx.npy", np.ones(3, np.complex128))
    np.save(tmp_path / "bool.npy", np.ones(3, bool))
    np.save(tmp_path / "ld.npy", np.ones(3, np.longdouble))
    np.save(tmp_path / "big.npy", np.array([2**53 + 1], np.int64))
    (tmp_path / "text.npy").write_text("not numpy")
    return tmp_path


BAD = {
    # argparse-level: one line naming the option and what it takes
    "no-command": ([], r"numfab: error: the following arguments are required: command"),
    "unknown-command": (["bogus"], r"numfab: error: argument command: invalid choice"),
    "gemm-m-zero": (["gemm", "--m", "0"], r"argument --m: must be a positive integer, not '0'"),
    "gemm-k-negative": (["gemm", "--k", "-1"], r"argument --k: must be a positive integer"),
    "gemm-n-float": (["gemm", "--n", "1e3"], r"argument --n: must be a positive integer, "
                     r"not '1e3'"),
    "gemm-chunk-zero": (["gemm", "--chunk", "0"], r"argument --chunk: must be a positive"),
    "gemm-tree-width-word": (["gemm", "--tree-width", "x"], r"argument --tree-width: must be"),
    "gemm-seed-negative": (["gemm", "--seed", "-1"], r"argument --seed: must be an integer "
                           r">= 0, not '-1'"),
    "eval-tokens-zero": (["eval", "--tokens", "0"], r"argument --tokens: must be a positive"),
    "sweep-jobs-zero": (["sweep", "s.toml", "--jobs", "0"], r"argument --jobs: must be a "
                        r"positive integer"),
    "demo-tokens-negative": (["demo", "--tokens", "-3"], r"argument --tokens: must be an "
                             r"integer >= 0"),
    # API-level: the error of the function, prefixed by the command
    "gemm-acc-unknown": (["gemm", "--m", "2", "--n", "2", "--k", "2", "--acc", "float99"],
                         r"numfab gemm: .*float99"),
    "gemm-a-format-unknown": (["gemm", "--m", "2", "--n", "2", "--k", "2", "--a-format",
                               "e9m9x"], r"numfab gemm: .*e9m9x"),
    "eval-model-unknown": (["eval", "--model", "llama"], r"numfab eval: unknown model 'llama'"),
    "eval-weights-unknown": (["eval", "--model", "digits", "--weights", "mxfp44"],
                             r"numfab eval: weights: .*mxfp4"),
    "eval-gptq-no-weights": (["eval", "--model", "minilm", "--gptq"],
                             r"numfab eval: gptq needs a weight format"),
    "eval-digits-kv": (["eval", "--model", "digits", "--kv", "int8"],
                       r"numfab eval: kv: model digits \(a CNN\) has no KV cache"),
    "eval-digits-hadamard": (["eval", "--model", "digits", "--hadamard"],
                             r"numfab eval: hadamard: model digits \(a CNN\) .* takes no "
                             r"Hadamard rotation or GPTQ; they apply to smollm2, minilm$"),
    "eval-digits-gptq": (["eval", "--model", "digits", "--weights", "int4", "--gptq"],
                         r"numfab eval: gptq: model digits \(a CNN\) .* takes no Hadamard "
                         r"rotation or GPTQ"),
    "eval-digits-all-three": (["eval", "--model", "digits", "--weights", "int4", "--kv",
                               "int8", "--hadamard", "--gptq"],
                              r"numfab eval: kv, hadamard, gptq: model digits"),
    "sweep-directory": (["sweep", "."], r"numfab sweep: sweep file '\.' is a directory"),
    "sweep-missing": (["sweep", "nope.toml"], r"numfab sweep: sweep file 'nope\.toml' does "
                      r"not exist"),
    "sweep-not-toml": (["sweep", "notes.txt"], r"numfab sweep: .*malformed TOML"),
    "sweep-into-notes": (["sweep", "s.toml", "-o", "notes.txt"],
                         r"numfab sweep: notes\.txt is not a numfab results file"),
    "sweep-into-directory": (["sweep", "s.toml", "-o", "adir"],
                             r"numfab sweep: results file 'adir' is a directory"),
    "sweep-into-missing-dir": (["sweep", "s.toml", "-o", "no/such/r.jsonl"],
                               r"numfab sweep: .*directory 'no/such' does not exist"),
    "sweep-scheduler-empty": (["sweep", "s.toml", "--scheduler", " "],
                              r"numfab sweep: scheduler must be a Dask scheduler address"),
    "report-notes": (["report", "notes.txt", "-o", "rep"],
                     r"numfab report: notes\.txt is not a numfab results file"),
    "report-missing": (["report", "nope.jsonl"], r"results file 'nope\.jsonl' does not exist"),
    "report-directory": (["report", "adir"], r"results file 'adir' is a directory"),
    "report-target": (["report", "notes.txt", "--target", "fpga"],
                      r"numfab report: target must be one of xilinx, cmos, not 'fpga'"),
    "quantize-missing": (["quantize", "nope.npy", "--format", "e4m3"],
                         r"numfab quantize: input file 'nope\.npy' does not exist"),
    "quantize-directory": (["quantize", "adir", "--format", "e4m3"],
                           r"input file 'adir' is a directory"),
    "quantize-format": (["quantize", "x.npy", "--format", "e4m3x"], r"numfab quantize: .*e4m3"),
    "quantize-text": (["quantize", "text.npy", "--format", "e4m3"],
                      r"cannot read text\.npy as a \.npy array"),
    "quantize-npz": (["quantize", "arch.npz", "--format", "e4m3"], r"is an \.npz archive"),
    "quantize-object": (["quantize", "obj.npy", "--format", "e4m3"],
                        r"cannot read obj\.npy as a \.npy array"),
    "quantize-complex": (["quantize", "cplx.npy", "--format", "e4m3"],
                         r"holds complex128; numfab quantize takes float16, float32, float64 "
                         r"or integer arrays"),
    "quantize-bool": (["quantize", "bool.npy", "--format", "e4m3"], r"holds bool;"),
    "quantize-longdouble": (["quantize", "ld.npy", "--format", "e4m3"],
                            r"holds float128; numfab quantize takes"),
    "quantize-int-beyond-2p53": (["quantize", "big.npy", "--format", "int8"],
                                 r"integers beyond 2\*\*53"),
    "quantize-out-missing-dir": (["quantize", "x.npy", "--format", "e4m3", "-o",
                                  "missing/dir/q.npy"],
                                 r"output file \(-o\) 'missing/dir/q\.npy': directory "
                                 r"'missing/dir' does not exist"),
    "quantize-out-directory": (["quantize", "x.npy", "--format", "e4m3", "-o", "adir.npy"],
                               r"output file \(-o\) 'adir\.npy' is a directory"),
    "formats-unknown": (["formats", "e4m3x"], r"numfab formats: .*e4m3"),
    "formats-nested-block": (["formats", "block<mxfp4;e8m0;32;floor>"],
                             r"numfab formats: block<\.\.\.> element must be a scalar format "
                             r"\(minifloat, integer, fixed point, bipolar or lut\), not the block "
                             r"format 'mxfp4'"),
    "formats-nested-tensor": (["formats", "block<e2m1;e4m3;16;floor;tensor=mxfp4>"],
                              r"numfab formats: .*tensor.*mxfp4"),
    "formats-3d-size": (["formats", "block<e4m3;e8m0;4x4x4;floor>"],
                        r"size must be a positive integer or <rows>x<cols> .*not '4x4x4'"),
    "formats-huge-block": (["formats", "block<e4m3;e8m0;1000000000000;floor>"],
                           r"size must be an integer of at most 12 digits"),
    "formats-lut-zeros": (["formats", "lut[0,-0]"], r"table must hold a nonzero value"),
    "quantize-0d-block": (["quantize", "scalar.npy", "--format", "mxfp4"],
                          r"x must be an array of rank >= 1 for the block format mxfp4, not a "
                          r"0-d scalar"),
    "demo-out-file": (["demo", "--out", "existing"], r"numfab demo: output folder 'existing' "
                      r"must be a directory"),
    "demo-tokens-small": (["demo", "--tokens", "5"], r"numfab demo: --tokens must be 0 .*or at "
                          r"least 16, not 5"),
    # --tokens is the bundled evaluation's length: never silently ignored on the own path
    "eval-tokens-own-windows": (["eval", "--tokens", "64", "--seq-len", "32"],
                                r"numfab eval: --tokens sets the bundled evaluation's length; "
                                r".*--seq-len x --windows"),
    "eval-tokens-own-model": (["eval", "--tokens", "64", "--model", "./nomodel"],
                              r"numfab eval: --tokens sets the bundled"),
    "search-front-one-point": (["search", "--candidates", "mxfp4,int8", "--front", "energy=1"],
                               r"numfab search: --front 'energy=1': give key=N .*N >= 2"),
    "search-no-budget": (["search", "--candidates", "mxfp4,int8"],
                         r"numfab search: give --budget key=value .* or --front key=N"),
}


@pytest.mark.parametrize(("argv", "match"), BAD.values(), ids=BAD.keys())
def test_bad_cli_input(work: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                       match: str) -> None:
    if "adir.npy" in argv:
        (work / "adir.npy").mkdir()
    before = _snapshot(work)
    code, out, err = run(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(match, err), err
    assert _snapshot(work) == before
    assert not (work / "rep").exists() and not (work / "missing").exists()


def test_quantize_output_verified(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["quantize", "x.npy", "--format", "float8_e4m3fn", "-o", "q"], capsys)
    assert code == 0 and "wrote q.npy" in out
    x = np.load(work / "x.npy")
    # ml_dtypes (independent) rounds float32 to e4m3fn nearest-even; |x| <= 3 is in range
    want = x.astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
    np.testing.assert_array_equal(np.load(work / "q.npy"), want)


def test_quantize_integers_exactly(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    v = np.array([-(2**40) - 3, -7, 0, 5, 2**40 + 1], np.int64)
    np.save(work / "i.npy", v)
    code, _, _ = run(["quantize", "i.npy", "--format", "int8", "-o", "q.npy"], capsys)
    assert code == 0
    # int8 saturates: the exact integers clipped to [-128, 127]
    assert np.load(work / "q.npy").tolist() == [max(-128, min(127, int(i))) for i in v]


def test_broken_pipe_is_quiet(capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    class Closed(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["formats"]) == 1


def test_broken_pipe_real_process(tmp_path: Path) -> None:
    # the reader is gone before numfab writes: no traceback, no "Exception ignored"
    p = subprocess.Popen([sys.executable, "-m", "numfab.cli", "formats", "e4m3"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()
    err = p.stderr.read().decode()
    p.stderr.close()
    assert p.wait(timeout=120) == 1
    assert err == ""


def test_debug_shows_the_traceback(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMFAB_DEBUG", "1")
    with pytest.raises(ValueError, match="sweep file 'nope.toml' does not exist"):
        main(["sweep", "nope.toml"])


def test_demo_refuses_a_foreign_results_file_first(work: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (work / "out").mkdir()
    (work / "out" / "results.jsonl").write_text("my own notes\n")
    before = _snapshot(work)
    code, _, err = run(["demo", "--out", "out", "--sweep", "s.toml"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert re.search(r"numfab demo: out/results\.jsonl is not a numfab results file", err), err
    assert _snapshot(work) == before  # not even the format zoo was written
