"""Hostile input to the application: results files, sweep files, evaluation points.

Nothing the user did not ask numfab to write changes; every refusal is a ValueError or
TypeError naming what is wrong and what is allowed."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from costmodel.pareto import format_cost
from numfab import _io
from numfab.evaluate import EvalConfig, max_tokens
from numfab.report import write_report
from numfab.sweep import config_hash, load_sweep, points, read_results, run_sweep
from simulator import Accumulator, Datapath

SWEEP = 'models = ["digits"]\nformats = ["int8"]\n'


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _results(tmp_path: Path) -> tuple[str, bytes, bytes]:
    """A valid header line and two valid record lines of the SWEEP configuration."""
    (tmp_path / "s.toml").write_text(SWEEP)
    cfg = load_sweep(tmp_path / "s.toml")
    head = json.dumps({"config_hash": config_hash(cfg), "config": cfg}).encode()
    recs = []
    for p in points(cfg):
        recs.append(json.dumps({"key": p.key(), "config": asdict(p), "seconds": 1.0,
                                "metrics": {"bits_weights": 8.0, "bits_acts": 8.0,
                                            "accuracy": 0.9}}).encode())
    assert len(recs) == 2
    return head.decode(), recs[0], recs[1]


# -- files that are not numfab results are never changed -------------------------------

NOT_RESULTS = {
    "one-line-text": b"my notes\n",
    "one-line-no-newline": b"my notes",
    "two-lines": b"first line\nsecond line\n",
    "json-object": b'{"a": 1}\n',
    "json-list": b"[1, 2, 3]\n",
    "header-hash-not-str": b'{"config_hash": 1, "config": {}}\n',
    "binary": bytes(range(256)),
    "utf16": "config_hash".encode("utf-16"),
}


@pytest.mark.parametrize("content", NOT_RESULTS.values(), ids=NOT_RESULTS.keys())
def test_report_refuses_other_files_unchanged(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "notes.txt"
    f.write_bytes(content)
    with pytest.raises(ValueError, match=r"not a numfab results file.*not changed"):
        write_report(f, tmp_path / "rep")
    assert f.read_bytes() == content
    assert not (tmp_path / "rep").exists()


@pytest.mark.parametrize("content", NOT_RESULTS.values(), ids=NOT_RESULTS.keys())
def test_sweep_refuses_other_files_unchanged(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "s.toml").write_text(SWEEP)
    f = tmp_path / "notes.txt"
    f.write_bytes(content)
    with pytest.raises(ValueError, match=r"not a numfab results file"):
        run_sweep(load_sweep(tmp_path / "s.toml"), f, progress=False)
    assert f.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "s.toml"]


def test_corrupt_middle_line_refused_not_repaired(tmp_path: Path) -> None:
    # the case: second-to-last line corrupt, last line valid without a newline
    head, r1, r2 = _results(tmp_path)
    data = head.encode() + b"\n" + b'{"key": "model=dig\n' + r2
    f = tmp_path / "r.jsonl"
    f.write_bytes(data)
    with pytest.raises(ValueError, match=r"r\.jsonl:2: not JSON"):
        read_results(f)
    with pytest.raises(ValueError, match=r"r\.jsonl:2: not JSON"):
        write_report(f, tmp_path / "rep")
    with pytest.raises(ValueError, match=r"r\.jsonl:2: not JSON"):
        run_sweep(load_sweep(tmp_path / "s.toml"), f, progress=False)
    assert f.read_bytes() == data


def test_cut_short_last_line_read_not_written(tmp_path: Path) -> None:
    head, r1, r2 = _results(tmp_path)
    data = head.encode() + b"\n" + r1 + b"\n" + r2[:30]
    f = tmp_path / "r.jsonl"
    f.write_bytes(data)
    header, recs = read_results(f)
    assert header is not None and list(recs) == [json.loads(r1)["key"]]
    write_report(f, tmp_path / "rep")
    assert f.read_bytes() == data  # a reader never writes


def test_valid_last_line_without_newline_is_a_record(tmp_path: Path) -> None:
    head, r1, r2 = _results(tmp_path)
    f = tmp_path / "r.jsonl"
    f.write_bytes(head.encode() + b"\n" + r1 + b"\n" + r2)
    _, recs = read_results(f)
    assert set(recs) == {json.loads(r1)["key"], json.loads(r2)["key"]}


def _rec(r: bytes, **change: object) -> bytes:
    obj = json.loads(r)
    for k, v in change.items():
        if v is None:
            del obj[k]
        else:
            obj[k] = v
    return json.dumps(obj).encode()


BAD_RECORDS = {
    "list": (lambda r: b"[1, 2]", r"a JSON list, not an object"),
    "string": (lambda r: b'"text"', r"a JSON str, not an object"),
    "no-key": (lambda r: _rec(r, key=None), r"no 'key' field"),
    "key-int": (lambda r: _rec(r, key=3), r"field 'key' is int"),
    "no-metrics": (lambda r: _rec(r, metrics=None), r"no 'metrics' field"),
    "seconds-str": (lambda r: _rec(r, seconds="1"), r"field 'seconds' is str"),
    "config-unknown-model": (lambda r: _rec(r, config={"model": "gpt9"}),
                             r"its config is not an evaluation point.*unknown model"),
    "config-bad-field": (lambda r: _rec(r, config={"model": "digits", "bogus": 1}),
                         r"its config is not an evaluation point"),
    "config-weights-unknown": (lambda r: _rec(r, config={"model": "digits",
                                                          "weights": "mxfp44"}),
                               r"its config is not an evaluation point: weights: unknown "
                               r"format name 'mxfp44'"),
    "key-mismatch": (lambda r: _rec(r, key="model=minilm"), r"its key does not match"),
    "metric-str": (lambda r: _rec(r, metrics={"bits_weights": "8", "bits_acts": 8}),
                   r"a metric is not a number"),
    "metrics-missing-bits": (lambda r: _rec(r, metrics={"accuracy": 1.0}),
                             r"metrics lack bits_weights, bits_acts"),
}


@pytest.mark.parametrize(("make", "match"), BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
def test_json_that_is_not_a_record(tmp_path: Path, make, match: str) -> None:
    head, r1, _ = _results(tmp_path)
    data = head.encode() + b"\n" + make(r1) + b"\n"
    f = tmp_path / "r.jsonl"
    f.write_bytes(data)
    with pytest.raises(ValueError, match=r"r\.jsonl:2: not a numfab results record \("
                       + match):
        write_report(f, tmp_path / "rep")
    assert f.read_bytes() == data


def test_results_paths(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(SWEEP)
    cfg = load_sweep(tmp_path / "s.toml")
    with pytest.raises(ValueError, match=r"results file .* is a directory; give a file"):
        run_sweep(cfg, tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"directory .*missing.* does not exist"):
        run_sweep(cfg, tmp_path / "missing" / "r.jsonl", progress=False)
    with pytest.raises(ValueError, match=r"results file .* does not exist"):
        write_report(tmp_path / "nope.jsonl", tmp_path / "rep")
    with pytest.raises(ValueError, match=r"results file .* is a directory"):
        write_report(tmp_path, tmp_path / "rep")
    assert not (tmp_path / "missing").exists() and not (tmp_path / "rep").exists()


def test_report_out_is_a_file(tmp_path: Path) -> None:
    head, r1, r2 = _results(tmp_path)
    f = tmp_path / "r.jsonl"
    f.write_bytes(head.encode() + b"\n" + r1 + b"\n" + r2 + b"\n")
    (tmp_path / "existing").write_text("keep me")
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"report folder .*existing.* must be a directory"):
        write_report(f, tmp_path / "existing")
    with pytest.raises(ValueError, match=r"must be a directory \(its parent .*existing.* is a "
                       r"file\)"):
        write_report(f, tmp_path / "existing" / "sub")
    with pytest.raises(ValueError, match=r"target must be one of xilinx, cmos, not 'fpga'"):
        write_report(f, tmp_path / "rep", target="fpga")
    assert _snapshot(tmp_path) == before


def test_report_writes_only_its_own_files(tmp_path: Path) -> None:
    head, r1, r2 = _results(tmp_path)
    f = tmp_path / "r.jsonl"
    data = head.encode() + b"\n" + r1 + b"\n" + r2 + b"\n"
    f.write_bytes(data)
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "mine.txt").write_text("keep me")
    write_report(f, tmp_path / "rep")
    names = sorted(p.name for p in (tmp_path / "rep").iterdir())
    assert names == ["digits_accuracy_vs_bits.png", "mine.txt", "report.md"]
    assert (tmp_path / "rep" / "mine.txt").read_text() == "keep me"
    assert f.read_bytes() == data


def test_second_sweep_on_one_file_refused(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(SWEEP)
    cfg = load_sweep(tmp_path / "s.toml")
    f = tmp_path / "r.jsonl"
    with _io.exclusive_lock(f, "results file"):
        with pytest.raises(ValueError, match=r"results file .*r\.jsonl.* is in use by another "
                           r"numfab process"):
            run_sweep(cfg, f, progress=False)
        assert not f.exists()
    assert not Path(str(f) + ".lock").exists()


def test_atomic_write_failure_leaves_target(tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("old")

    def boom(fh: object) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _io.atomic_write(f, boom)
    assert f.read_text() == "old" and os.listdir(tmp_path) == ["t.txt"]
    _io.atomic_write(f, "new")
    assert f.read_text() == "new" and os.listdir(tmp_path) == ["t.txt"]


# -- sweep files -----------------------------------------------------------------------

BAD_SWEEPS = {
    "blocks-negative": ('models = ["smollm2"]\nformats = ["int8"]\nsensitivity = "mxfp4"\n'
                        "blocks = -5\n", r":4: key 'blocks': must be between 1 and 30 "
                        r"\(smollm2 has 30\), not -5"),
    "blocks-zero": ('models = ["minilm"]\nformats = ["int8"]\nsensitivity = "mxfp4"\n'
                    "blocks = 0\n", r"key 'blocks': must be between 1 and 6"),
    "blocks-too-many": ('models = ["smollm2", "minilm"]\nformats = ["int8"]\n'
                        'sensitivity = "mxfp4"\nblocks = 1000\n',
                        r"key 'blocks': must be between 1 and 6 \(smollm2 has 30, minilm has "
                        r"6\), not 1000"),
    "blocks-without-sensitivity": ('models = ["smollm2"]\nformats = ["int8"]\nblocks = 3\n',
                                   r"key 'blocks': .*set 'sensitivity' too"),
    "blocks-bool": ('models = ["smollm2"]\nformats = ["int8"]\nblocks = true\n',
                    r"key 'blocks': must be int, not bool"),
    "sensitivity-digits": ('models = ["digits"]\nformats = ["int8"]\nsensitivity = "mxfp4"\n',
                           r"key 'sensitivity': needs a model with transformer blocks"),
    "sensitivity-bad-format": ('models = ["minilm"]\nformats = ["int8"]\n'
                               'sensitivity = "mxfp5"\n', r":3: key 'sensitivity'.*mxfp5"),
    "tokens-small": ('models = ["digits"]\nformats = ["int8"]\ntokens = 5\n',
                     r":3: key 'tokens': must be between 16 and \d+, not 5"),
    "tokens-huge": ('models = ["digits"]\nformats = ["int8"]\ntokens = 1000000000\n',
                    r"key 'tokens': must be between 16 and \d+, not 1000000000"),
    "tokens-float": ('models = ["digits"]\nformats = ["int8"]\ntokens = 5.5\n',
                     r"key 'tokens': must be int, not float"),
    "models-nested": ('models = [["digits"]]\nformats = ["int8"]\n',
                      r"key 'models': must be a non-empty list of strings"),
    "models-int": ('models = [1]\nformats = ["int8"]\n',
                   r"key 'models': must be a non-empty list of strings"),
    "models-twice": ('models = ["digits", "digits"]\nformats = ["int8"]\n',
                     r"key 'models': lists digits more than once"),
    "formats-int": ('models = ["digits"]\nformats = [8]\n',
                    r"key 'formats': must be a non-empty list of strings"),
    "formats-empty": ('models = ["digits"]\nformats = []\n',
                      r":2: key 'formats': is required and must not be empty"),
    "formats-twice": ('models = ["digits"]\nformats = ["int8", "int8"]\n',
                      r"key 'formats': lists int8 more than once"),
    "quantize-typo": ('models = ["digits"]\nformats = ["int8"]\nquantize = ["weight"]\n',
                      r"key 'quantize': must list some of weights, acts, kv"),
    "quantize-empty": ('models = ["digits"]\nformats = ["int8"]\nquantize = []\n',
                       r"key 'quantize': must be a non-empty list of strings"),
    "hadamard-int": ('models = ["digits"]\nformats = ["int8"]\nhadamard = [1]\n',
                     r"key 'hadamard': must be a non-empty list of true/false"),
    "gptq-scalar": ('models = ["digits"]\nformats = ["int8"]\ngptq = true\n',
                    r"key 'gptq': must be list, not bool"),
    "table": ('models = ["digits"]\nformats = ["int8"]\n[extra]\nx = 1\n',
              r"key 'extra': unknown key"),
    "models-missing": ('formats = ["int8"]\n', r"key 'models' is required"),
    "not-toml": ("this is not toml\n", r"malformed TOML"),
    "nul": ("models = [\"digits\"]\x00\n", r"malformed TOML"),
}


@pytest.mark.parametrize(("text", "match"), BAD_SWEEPS.values(), ids=BAD_SWEEPS.keys())
def test_bad_sweep_files(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(ValueError, match=match):
        load_sweep(tmp_path / "s.toml")


def test_sweep_file_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"sweep file .* is a directory; give a file"):
        load_sweep(tmp_path)
    with pytest.raises(ValueError, match=r"sweep file .*nope\.toml.* does not exist"):
        load_sweep(tmp_path / "nope.toml")
    (tmp_path / "s.toml").write_bytes(b"models = [\"\xff\"]\n")
    with pytest.raises(ValueError, match=r"sweep file .* is not UTF-8 text"):
        load_sweep(tmp_path / "s.toml")


def test_blocks_counted_as_asked(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text('models = ["minilm"]\nformats = ["int8"]\n'
                                     'sensitivity = "mxfp4"\nblocks = 4\n')
    blocks = [p.block for p in points(load_sweep(tmp_path / "s.toml")) if p.block is not None]
    assert blocks == [0, 1, 2, 3]


# -- evaluation points -----------------------------------------------------------------

BAD_POINTS = {
    "block-negative": (dict(model="smollm2", block=-1), ValueError,
                       r"block must be an integer from 0 to 29 \(smollm2 has 30"),
    "block-too-big": (dict(model="minilm", block=6), ValueError,
                      r"block must be an integer from 0 to 5 \(minilm has 6"),
    "block-bool": (dict(model="minilm", block=True), ValueError, r"block must be an integer"),
    "block-digits": (dict(model="digits", block=0), ValueError,
                     r"block: model digits has no transformer blocks"),
    "tokens-bool": (dict(model="digits", tokens=True), ValueError,
                    r"tokens must be an integer between 16 and"),
    "tokens-float": (dict(model="digits", tokens=64.0), ValueError,
                     r"tokens must be an integer between 16 and"),
    "tokens-huge": (dict(model="smollm2", tokens=10**12), ValueError,
                    r"tokens must be an integer between 16 and"),
    "hadamard-str": (dict(model="digits", hadamard="yes"), TypeError,
                     r"hadamard must be True or False, not 'yes'"),
    "gptq-int": (dict(model="digits", gptq=1), TypeError, r"gptq must be True or False, not 1"),
    "gptq-no-weights": (dict(model="minilm", gptq=True), ValueError,
                        r"gptq needs a weight format \(weights\)"),
    "digits-kv": (dict(model="digits", kv="int8"), ValueError,
                  r"kv: model digits \(a CNN\) has no KV cache"),
    "digits-hadamard": (dict(model="digits", weights="int8", hadamard=True), ValueError,
                        r"hadamard: model digits .*apply to smollm2, minilm"),
    "model-none": (dict(model=None), TypeError, r"model must be a model name or a path \(str\), "
                   "not NoneType"),
    "model-list": (dict(model=["digits"]), TypeError, r"model must be a model name"),
    "model-unknown": (dict(model="llama"), ValueError, r"unknown model 'llama'.*models: "),
    "weights-unknown": (dict(model="digits", weights="int99x"), ValueError, r"weights: "),
    "acts-int": (dict(model="digits", acts=8), TypeError, r"acts: format name must be a str, "
                 "not int"),
}


@pytest.mark.parametrize(("kw", "exc", "match"), BAD_POINTS.values(), ids=BAD_POINTS.keys())
def test_bad_eval_points(kw: dict, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        EvalConfig(**kw)


BAD_DEVICES = {
    "name": ("gpu", ValueError, r"device must be auto, cpu, cuda or cuda:N, not 'gpu'"),
    "index": ("cuda:x", ValueError, r"device must be auto, cpu, cuda or cuda:N, not "
                                    r"'cuda:x'"),
    "int": (0, TypeError, r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N' \(a str\), "
                          r"not 0"),
    "no-gpu": ("cuda", ValueError, r"device cuda: no CUDA device is visible to torch"),
}


@pytest.mark.parametrize(("device", "exc", "match"), BAD_DEVICES.values(),
                         ids=BAD_DEVICES.keys())
def test_bad_devices_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             device: Any, exc: type[Exception],
                                             match: str) -> None:
    import torch

    from numfab.evaluate import evaluate

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "s.toml").write_text(SWEEP)
    cfg = load_sweep(tmp_path / "s.toml")
    with pytest.raises(exc, match=match):
        evaluate(EvalConfig("digits"), device)
    with pytest.raises(exc, match=match):
        run_sweep(cfg, tmp_path / "r.jsonl", progress=False, device=device)
    if device != "cuda":  # a Dask worker, not the client, looks for the GPU
        with pytest.raises(exc, match=match):  # refused before connecting
            run_sweep(cfg, tmp_path / "r.jsonl", progress=False, device=device,
                      scheduler="tcp://127.0.0.1:9")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_max_tokens_bounds_the_text() -> None:
    EvalConfig("smollm2", tokens=max_tokens())
    with pytest.raises(ValueError, match="tokens must be"):
        EvalConfig("smollm2", tokens=max_tokens() + 1)


# -- points whose formats form no datapath, or one no PE computes -----------------------

TILE = "block<e4m3;e8m0;4x4;floor>"
NO_DATAPATH = {
    "blocks-differ": ({"weights": "mxfp4", "acts": "nvfp4"},
                      r"^acts=nvfp4 \(A\) x weights=mxfp4 \(B\) form no datapath: a and b must "
                      r"block K alike, not 16 \(nvfp4\) and 32 \(mxfp4\)$"),
    "weight-tiles": ({"weights": TILE},
                     r"^acts=float32 \(A\) x weights=block<e4m3;e8m0;4x4;floor> \(B\) form no "
                     r"datapath: b must have 1-D blocks along K, not tiles 4x4"),
    "act-tiles": ({"weights": "e4m3", "acts": TILE},
                  r"^acts=block<e4m3;e8m0;4x4;floor> \(A\) x weights=e4m3 \(B\) form no "
                  r"datapath: a must have 1-D blocks along K"),
}


@pytest.mark.parametrize(("fields", "match"), NO_DATAPATH.values(), ids=NO_DATAPATH.keys())
def test_point_without_a_datapath(tmp_path: Path, fields: dict[str, str], match: str) -> None:
    """EvalConfig.datapath names the two fields; the report lists the point as left off
    the front with that reason, and still prices the others."""
    cfg = EvalConfig("digits", **fields)
    with pytest.raises(ValueError, match=match):
        cfg.datapath  # noqa: B018
    head = json.dumps({"config_hash": "h", "config": {}})
    rec = [json.dumps({"key": c.key(), "config": asdict(c), "seconds": 1.0,
                       "metrics": {"bits_weights": 8, "bits_acts": 8, "accuracy": acc}})
           for c, acc in ((cfg, 0.5), (EvalConfig("digits", weights="e4m3", acts="e4m3"), 0.9))]
    f = tmp_path / "r.jsonl"
    f.write_text("\n".join([head, *rec]) + "\n")
    md = write_report(f, tmp_path / "rep", pareto=True).read_text()
    left = md.split("Left off the fronts (no datapath priced):", 1)[1].strip().splitlines()
    assert len(left) == 1
    assert re.match(match.lstrip("^"), left[0].split(": ", 1)[1])
    assert "| e4m3 | FloatMac |" in md  # the other point is priced


def test_results_file_with_no_priceable_point(tmp_path: Path) -> None:
    """Every point left off: the section says why for each, and draws no front."""
    pts = [EvalConfig("digits", weights="mxfp4", acts="float8_e4m3fn"),
           EvalConfig("digits", weights="mxfp4", acts="nvfp4")]
    head = json.dumps({"config_hash": "h", "config": {}})
    recs = [json.dumps({"key": c.key(), "config": asdict(c), "seconds": 1.0,
                        "metrics": {"bits_weights": 8, "bits_acts": 8, "accuracy": 0.5}})
            for c in pts]
    f = tmp_path / "r.jsonl"
    f.write_text("\n".join([head, *recs]) + "\n")
    md = write_report(f, tmp_path / "rep", pareto=True).read_text()
    section = md.split("### digits: accuracy x hardware cost", 1)[1]
    assert "| format | PE |" not in section
    assert ("- weights=mxfp4 acts=float8_e4m3fn: no PE computes the datapath "
            "a=float8_e4m3fn b=mxfp4 acc=float32") in section
    assert "- weights=mxfp4 acts=nvfp4: acts=nvfp4 (A) x weights=mxfp4 (B)" in section
    assert not (tmp_path / "rep" / "digits_pareto.png").exists()


BAD_FORMAT_COST = {
    "no-b": (lambda: format_cost("e4m3"), TypeError,
             r"^format_cost needs b_format \(or a simulator\.Datapath in place of a_format\)$"),
    "datapath-and-b": (lambda: format_cost(Datapath("e4m3", "e4m3"), "e4m3"), ValueError,
                       r"^give either a datapath or a_format, b_format and accumulator"),
    "datapath-and-acc": (lambda: format_cost(Datapath("e4m3", "e4m3"), accumulator="int32"),
                         ValueError, r"^give either a datapath or a_format"),
    "acc-kind": (lambda: format_cost("e4m3", "e4m3", 5), TypeError,
                 r"^a_format=float8_e4m3fn, b_format=float8_e4m3fn, accumulator=5 form no "
                 r"datapath: format: format name must be a str, not int$"),
    "acc-unknown": (lambda: format_cost("e4m3", "e4m3", "float99"), ValueError,
                    r"accumulator='float99' form no datapath: format: unknown format name "
                    r"'float99'"),
    "blocks-differ": (lambda: format_cost("mxfp4", "nvfp4"), ValueError,
                      r"^a_format=mxfp4, b_format=nvfp4, accumulator='float32' form no "
                      r"datapath: a and b must block K alike"),
    # priced exactly as given: never another accumulator's PE
    "scalar-x-block": (lambda: format_cost("e4m3", "mxfp4"), ValueError,
                       r"^no PE computes the datapath a=float8_e4m3fn b=mxfp4 acc=float32,"
                       r"nearest_even k=1 lanes=1: it needs a PE for these formats"),
    "float-into-int": (lambda: format_cost("e4m3", "e4m3", "int32"), ValueError,
                       r"^no PE computes the datapath a=float8_e4m3fn b=float8_e4m3fn acc=int32"),
    "stochastic": (lambda: format_cost("mxfp4", "mxfp4", Accumulator(
        "float32", rounding="stochastic", seed=0)), ValueError,
        r"it needs stochastic rounding \(no PE has a random source\)$"),
    "target-kind": (lambda: format_cost("e4m3", "e4m3", target=None), TypeError,
                    r"^target must be a str, not NoneType$"),
    "target-unknown": (lambda: format_cost("e4m3", "e4m3", target="vivado"), ValueError,
                       r"^no cost model for target 'vivado'; modelled targets: xilinx, cmos"),
}


@pytest.mark.parametrize(("call", "exc", "match"), BAD_FORMAT_COST.values(),
                         ids=BAD_FORMAT_COST.keys())
def test_format_cost_refuses(call, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        call()


# -- numfab search's results file: a record that is not whole is refused, not drawn -------

def _search_record() -> dict[str, Any]:
    def pt(kl: float, choice: list[str]) -> dict[str, Any]:
        return {"budget": {"energy": 3.0}, "totals": {"energy": 2.5, "bytes": 9.0,
                                                      "area": 1.0},
                "predicted": kl * 1.5, "kl": kl, "perplexity": 20.0,
                "top1_agreement": 0.9, "choice": choice}

    return {"kind": "numfab-search", "version": 1, "model": "m", "estimator": "fisher",
            "candidates": [{"name": "a"}, {"name": "b"}], "groups": [["l0"], ["l1", "l2"]],
            "uniform": [{"candidate": "a", "energy": 2.0, "bytes": 8.0, "area": 1.0,
                         "kl": 0.5, "perplexity": 30.0, "top1_agreement": 0.8},
                        {"candidate": "b", "energy": 4.0, "bytes": 16.0, "area": 2.0,
                         "kl": 0.1, "perplexity": 21.0, "top1_agreement": 0.95}],
            "points": [pt(0.2, ["a", "b"]), pt(0.3, ["b", "a"])]}


def test_search_record_drawn(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps(_search_record()))
    md = write_report(f, tmp_path / "rep").read_text()
    # each point beside the best uniform format within its budget (b is over it)
    assert md.count("| a | 0.5 |") == 2 and "| b | 0.1 |" not in md
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == [
        "m_search_choices.png", "m_search_front.png", "report.md"]


def _corrupt(path: list[Any], value: Any) -> dict[str, Any]:
    d = _search_record()
    node: Any = d
    for k in path[:-1]:
        node = node[k]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return d


SEARCH_CORRUPT = {
    "no-points": (["points"], KeyError),
    "points-not-list": (["points"], {"a": 1}),
    "estimator-number": (["estimator"], 3),
    "candidate-no-name": (["candidates", 1], {"nom": "b"}),
    "group-empty": (["groups", 0], []),
    "group-not-names": (["groups", 1], [1, 2]),
    "uniform-kl-string": (["uniform", 0, "kl"], "0.5"),
    "uniform-kl-nan": (["uniform", 0, "kl"], float("nan")),
    "uniform-unknown-candidate": (["uniform", 1, "candidate"], "c"),
    "point-no-totals": (["points", 0, "totals"], KeyError),
    "point-budget-not-dict": (["points", 1, "budget"], [3.0]),
    "point-budget-key-not-in-totals": (["points", 1, "budget"], {"watts": 2.0}),
    "point-choice-short": (["points", 0, "choice"], ["a"]),
    "point-choice-unknown": (["points", 0, "choice"], ["a", "z"]),
    "point-predicted-bool": (["points", 0, "predicted"], True),
}


@pytest.mark.parametrize("case", SEARCH_CORRUPT.values(), ids=SEARCH_CORRUPT.keys())
def test_search_record_not_whole_refused(tmp_path: Path, case: tuple[list[Any], Any]) -> None:
    f = tmp_path / "s.json"
    data = json.dumps(_corrupt(*case), allow_nan=True)
    f.write_text(data)
    with pytest.raises(ValueError, match=r"s\.json: a numfab search results file with no "
                       r"valid"):
        write_report(f, tmp_path / "rep")
    assert f.read_text() == data
    assert not (tmp_path / "rep").exists()
