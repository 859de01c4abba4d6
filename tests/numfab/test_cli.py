"""The numfab command line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import formats
from numfab.cli import main


def test_formats_lists_every_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["formats"]) == 0
    out = capsys.readouterr().out
    for name in formats.NAMED:
        assert name in out


def test_formats_name_facts_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["formats", "e4m3"]) == 0
    out = capsys.readouterr().out
    assert "float8_e4m3fn" in out and "448.0" in out and "0.001953125" in out
    lines = [ln for ln in out.splitlines() if ln.strip().startswith(("126 ", "127 "))]
    assert "448.0" in lines[0] and "nan" in lines[1]
    assert len([ln for ln in out.splitlines() if "0b" in ln]) == 256


def test_formats_wide_has_no_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["formats", "bf16"]) == 0
    out = capsys.readouterr().out
    assert "bias                 127" in out and "0b" not in out


def test_formats_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["formats", "e4m3x"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_help_is_complete() -> None:
    out = subprocess.run([sys.executable, "-m", "numfab", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "formats" in out and "demo" in out
    sub = subprocess.run([sys.executable, "-m", "numfab", "formats", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "code -> value table" in sub


#: one redraw of tqdm's progress bar ("\r 45%|####5     | 5/11 [00:03<00:04, 1.2point/s]")
_PROGRESS = re.compile(r"^\s*\d+%\|[^|]*\| \d+/\d+ \[[^\]]*\]$")


def _numfab(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The ``numfab`` command in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "numfab", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, check=False)


def _noise(stderr: str) -> list[str]:
    """What stderr holds besides progress bars: a clean run leaves nothing."""
    return [s for s in re.split(r"[\r\n]", stderr) if s.strip() and not _PROGRESS.match(s)]


def test_demo_writes_outputs(tmp_path: Path) -> None:
    """The demo's whole job on a reduced sweep (the bundled one takes minutes), run as the
    command: the format zoo, a results file holding every point, the report with its plots
    and fronts, and on stderr nothing but the progress bar (no library log noise: the
    models load through transformers, which imports torchao, in the sweep's worker)."""
    from numfab.sweep import read_results

    env = {"NUMFAB_CACHE": str(tmp_path / "cache")}
    sweep = tmp_path / "small.toml"
    sweep.write_text('models = ["minilm", "digits"]\nformats = ["int8", "mxfp4"]\n'
                     'hadamard = [false, true]\nsensitivity = "mxfp4"\nblocks = 2\n')
    out = tmp_path / "out"
    run = _numfab("demo", "--out", str(out), "--sweep", str(sweep), env=env)
    assert run.returncode == 0, run.stderr
    assert _noise(run.stderr) == []
    assert "wrote" in run.stdout and "report.md" in run.stdout
    assert (out / "value_grids.png").stat().st_size > 10000
    assert "float8_e4m3fn" in (out / "formats.txt").read_text()
    err = (out / "quantization_error.txt").read_text()
    assert "nf4" in err and "int8" in err
    header, recs = read_results(out / "results.jsonl")
    assert header is not None and header["config"]["formats"] == ["int8", "mxfp4"]
    configs = [r["config"] for r in recs.values()]
    # minilm: reference, 2 formats x 2 Hadamard settings, 2 blocks; digits: reference, 2
    assert sum(c["model"] == "minilm" for c in configs) == 7
    assert sum(c["model"] == "digits" for c in configs) == 3
    assert sorted(c["block"] for c in configs if c["block"] is not None) == [0, 1]
    report = (out / "report.md").read_text()
    for section in ("## minilm", "## digits", "### minilm: accuracy x hardware cost",
                    "### digits: accuracy x hardware cost", "Per-block sensitivity"):
        assert section in report
    for png in ("minilm_cosine_vs_bits.png", "minilm_pareto.png", "minilm_sensitivity.png",
                "digits_accuracy_vs_bits.png", "digits_pareto.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG" and f"]({png})" in report
    # a second run resumes: nothing left to do, the results file is unchanged
    before = (out / "results.jsonl").read_bytes()
    again = _numfab("demo", "--out", str(out), "--sweep", str(sweep), env=env)
    assert again.returncode == 0 and _noise(again.stderr) == []
    assert (out / "results.jsonl").read_bytes() == before


def test_known_noise_dropped_only_by_the_command() -> None:
    """The command (any subcommand: here ``numfab formats``) drops exactly the known
    records, verbatim as torchao and torch log them (the demo test meets the real ones);
    importing numfab drops nothing."""
    code = ("import logging\n"
            "{setup}"
            "logging.getLogger('torchao').warning('Failed to load /x/torchao/_C_mxfp8.cpython-310"
            "-x86_64-linux-gnu.so: Could not load this library')\n"
            "logging.getLogger('torchao').warning('Failed to load the config')\n"
            "logging.getLogger('torch.utils._pytree').warning(\"<enum 'K'> is an Enum subclass "
            "and is now natively supported by torch.compile as an opaque value type. Calling "
            "register_constant() on Enum subclasses is deprecated and will be an error\")\n"
            "logging.getLogger('torch.utils._pytree').warning('other')\n")
    plain = subprocess.run([sys.executable, "-c", code.format(setup="import numfab.cli\n")],
                           capture_output=True, text=True, check=True).stderr
    assert len(plain.splitlines()) == 4  # importing numfab drops nothing
    quiet = subprocess.run(
        [sys.executable, "-c", code.format(
            setup="from numfab.cli import main\nmain(['formats', 'e2m1'])\n")],
        capture_output=True, text=True, check=True).stderr
    assert quiet.splitlines() == ["Failed to load the config", "other"]


def test_formats_block_facts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["formats", "mxfp4"]) == 0
    out = capsys.readouterr().out
    assert "float4_e2m1fn" in out and "float8_e8m0fnu" in out and "4.25" in out
    assert main(["formats", "nvfp4"]) == 0
    out = capsys.readouterr().out
    assert "tensor_scale         float32" in out and "4.5" in out
    assert main(["formats"]) == 0
    assert "mxint8 (8.25 b/elem)" in capsys.readouterr().out


def test_quantize_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    x[0, 0] = 1e4
    src = tmp_path / "x.npy"
    np.save(src, x)
    out = tmp_path / "q.npy"
    assert main(["quantize", str(src), "--format", "mxfp4", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sqnr_db" in text and "bits_per_element     4.2500" in text
    q = np.load(out)
    np.testing.assert_array_equal(q, formats.parse("mxfp4").quantize(x))
    assert main(["quantize", str(src), "--format", "e4m3"]) == 0
    assert "saturated_elements   1" in capsys.readouterr().out
    assert main(["quantize", str(src), "--format", "mxfp44"]) == 2
    assert main(["quantize", str(tmp_path / "missing.npy"), "--format", "mxfp4"]) == 2


def test_cost_output_is_clean(tmp_path: Path) -> None:
    """``numfab cost PE`` synthesizes and estimates: its table on stdout, nothing on stderr
    (fitting the model builds the calibration PEs, which Amaranth reports as unused once
    a synthesis has elaborated anything in the process)."""
    run = _numfab("cost", "IntMac", "--a", "int4", "--b", "int4", "--acc", "int12",
                  env={"NUMFAB_CACHE": str(tmp_path / "cache")})
    assert run.returncode == 0, run.stderr
    assert "synthesized" in run.stdout and "estimated" in run.stdout
    assert run.stderr == ""
