"""Hypothesis fuzzing of the sweep-file reader, the results-file reader and the CLI:
random keys, values, bytes and argument lists give a result or a clear error (ValueError,
TypeError; exit status 0 or 2 from the CLI) and never write a file on error."""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numfab.cli import build_parser, main
from numfab.sweep import _KEYS, load_sweep, read_results

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

WORDS = ["digits", "minilm", "smollm2", "int8", "mxfp4", "e4m3", "weights", "acts", "kv",
         "", " ", "0", "-1", "true", "nan", "../x", "a\x00b", "é", "block<e4m3;e8m0;32;floor>"]
scalars = st.one_of(st.integers(-(2**70), 2**70), st.booleans(),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from(WORDS), st.text(max_size=12))
values = st.one_of(scalars, st.lists(scalars, max_size=4),
                   st.lists(st.lists(scalars, max_size=2), max_size=2))


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else "nan"
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string (\uXXXX escapes)
    return "[" + ", ".join(_toml(x) for x in v) + "]"


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@FUZZ
@given(st.dictionaries(st.sampled_from([*_KEYS, "bogus", "model"]), values, max_size=6))
def test_sweep_reader_structured(cfg: dict[str, Any]) -> None:
    with _workdir() as d:
        f = d / "s.toml"
        f.write_text("".join(f"{k} = {_toml(v)}\n" for k, v in cfg.items()))
        try:
            out = load_sweep(f)
        except ValueError as exc:
            assert str(f) in str(exc)
        else:
            assert set(out) <= set(_KEYS) and out["models"] and out["formats"]
        assert _snapshot(d) == {"s.toml": f.read_bytes()}


@FUZZ
@given(st.binary(max_size=200))
def test_sweep_reader_bytes(data: bytes) -> None:
    with _workdir() as d:
        f = d / "s.toml"
        f.write_bytes(data)
        try:
            load_sweep(f)
        except ValueError as exc:  # a clear refusal names the file
            assert str(f) in str(exc)
        assert _snapshot(d) == {"s.toml": data}


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(
    [b'{"config_hash": "abc", "config": {}}', b'{"key": "k"}', b"[]", b"{}", b"null"])),
    max_size=5), st.booleans())
def test_results_reader(lines: list[bytes], newline_at_end: bool) -> None:
    with _workdir() as d:
        f = d / "r.jsonl"
        data = b"\n".join(lines) + (b"\n" if newline_at_end else b"")
        f.write_bytes(data)
        try:
            read_results(f)
        except ValueError as exc:
            assert str(f) in str(exc)
        assert _snapshot(d) == {"r.jsonl": data}


COMMANDS = {
    "formats": [],
    "quantize": ["--format", "-o"],
    "gemm": ["--a-format", "--b-format", "--acc", "--rounding", "--order", "--tree-width",
             "--chunk", "--m", "--n", "--k", "--seed"],
    "eval": ["--model", "--weights", "--acts", "--kv", "--hadamard", "--gptq", "--tokens",
             "--json"],
    "sweep": ["-o", "--jobs", "--scheduler", "--quiet"],
    "report": ["-o", "--pareto", "--target"],
    "demo": ["--out", "--tokens"],
    "rtl": ["generate", "verify", "vectors", "--a", "--b", "--acc", "--k", "--stages", "-o"],
    "cost": ["--target", "--jobs", "-o", "--m", "--n", "--array", "--freq"],
}
tokens = st.one_of(st.sampled_from(WORDS), st.integers(-5, 10**6).map(str),
                   st.text(max_size=10).filter(lambda s: "\x00" not in s))


@FUZZ
@given(st.sampled_from(sorted(COMMANDS)).flatmap(
    lambda c: st.tuples(st.just(c), st.lists(st.one_of(st.sampled_from(COMMANDS[c] or ["x"]),
                                                       tokens), max_size=6))))
def test_cli_parsers(cmd: tuple[str, list[str]]) -> None:
    argv = [cmd[0], *cmd[1]]
    with contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            assert exc.code in (0, 2)
            assert "Traceback" not in err.getvalue()


READS = {"formats": [], "quantize": ["--format"], "report": ["-o", "--target"]}


@FUZZ
@given(st.sampled_from(sorted(READS)).flatmap(
    lambda c: st.tuples(st.just(c), st.lists(st.one_of(
        st.sampled_from(READS[c] + ["x.npy", "notes.txt", "s.toml", "r.jsonl", "."]), tokens),
        min_size=1, max_size=4))))
def test_cli_runs(cmd: tuple[str, list[str]]) -> None:
    """Whole commands that only read (or write where -o asks) on random arguments."""
    import os

    argv = [cmd[0], *cmd[1]]
    with _workdir() as d:
        np.save(d / "x.npy", np.linspace(-2, 2, 16, dtype=np.float32))
        (d / "notes.txt").write_text("one line\n")
        (d / "s.toml").write_text('models = ["digits"]\nformats = []\n')
        (d / "r.jsonl").write_text('{"config_hash": "0", "config": {}}\n[1]\n')
        before = _snapshot(d)
        cwd = os.getcwd()
        os.chdir(d)
        try:
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()) as err:
                try:
                    code = main(argv)
                except SystemExit as exc:
                    code = int(exc.code or 0)
        finally:
            os.chdir(cwd)
        assert code in (0, 2), argv
        assert "Traceback" not in err.getvalue()
        if code == 2:
            assert err.getvalue().count("\n") == 1, err.getvalue()
            assert _snapshot(d) == before, argv
