"""numfab.search: the integer program against hand-solved and brute-force optima, the
budget errors, and the per-layer cost tables against costmodel.gemm_cost."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import costmodel
from numfab.search import Candidate, brute_force, budget_range, front, layer_costs, solve


def test_hand_example() -> None:
    # 3 layers x 3 candidates (cheap/lossy .. dear/exact); energy budget 10: the best is
    # to spend on layer 1, the sensitive one: (0, 2, 0) costs 1 + 8 + 1 = 10, loss
    # 2 + 0 + 1 = 3; every other assignment within 10 loses more
    sens = np.array([[2.0, 1.0, 0.0], [9.0, 4.0, 0.0], [1.0, 0.5, 0.0]])
    energy = np.array([[1.0, 4.0, 8.0], [1.0, 4.0, 8.0], [1.0, 4.0, 8.0]])
    sol = solve(sens, {"energy": energy}, {"energy": 10.0})
    assert sol.choice == (0, 2, 0)
    assert sol.objective == 3.0 and sol.totals["energy"] == 10.0
    # a budget of 12: (1, 2, 0) 4 + 8 + 1 = 13 is over; (0, 2, 1) = 13 over; stays
    assert solve(sens, {"energy": energy}, {"energy": 12.0}).choice == (0, 2, 0)
    # 13: (1, 2, 0) loses 1 + 0 + 1 = 2 < (0, 2, 1)'s 2.5
    assert solve(sens, {"energy": energy}, {"energy": 13.0}).choice == (1, 2, 0)


@pytest.mark.parametrize("seed", range(6))
def test_against_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    L, C = 6, 3
    sens = rng.random((L, C)) * np.array([4.0, 1.0, 0.0])  # dearer candidates lose less
    energy = rng.random((L, C)) * 0.3 + np.array([1.0, 2.0, 4.0])
    nbytes = rng.random((L, C)) * 0.3 + np.array([0.5, 1.0, 2.0])
    costs = {"energy": energy, "bytes": nbytes}
    ties = [[0, 1, 2]] if seed % 2 else [[3, 4]]
    pins = {5: 2} if seed % 3 == 0 else {}
    for frac in (0.3, 0.6, 0.9):
        lo, hi = budget_range(costs, "energy", ties=ties, pins=pins)
        blo, bhi = budget_range(costs, "bytes", ties=ties, pins=pins)
        budget = {"energy": lo + frac * (hi - lo), "bytes": blo + (1 - frac / 2) * (bhi - blo)}
        try:
            want = brute_force(sens, costs, budget, ties=ties, pins=pins)
        except ValueError:
            with pytest.raises(ValueError, match="no assignment"):
                solve(sens, costs, budget, ties=ties, pins=pins)
            continue
        got = solve(sens, costs, budget, ties=ties, pins=pins)
        assert got.objective == pytest.approx(want.objective, abs=1e-9)
        assert all(got.totals[k] <= b * (1 + 1e-9) for k, b in budget.items())
        for g in ties:
            assert len({got.choice[i] for i in g}) == 1
        for layer, c in pins.items():
            assert got.choice[layer] == c


def test_front_is_monotone() -> None:
    rng = np.random.default_rng(7)
    sens = rng.random((8, 4)) * np.array([3.0, 2.0, 1.0, 0.0])
    energy = np.tile([1.0, 2.0, 3.0, 5.0], (8, 1)) + rng.random((8, 4)) * 0.1
    pts = front(sens, {"energy": energy}, "energy", 6, pins={7: 3})
    objs = [s.objective for _, s in pts]
    assert all(b <= a + 1e-12 for a, b in zip(objs, objs[1:]))
    assert pts[-1][1].objective == pytest.approx(sens[:, 3].sum())
    assert all(s.choice[7] == 3 for _, s in pts)


def test_bad_budgets_and_constraints() -> None:
    sens = np.ones((2, 2))
    e = np.array([[1.0, 2.0], [1.0, 2.0]])
    with pytest.raises(ValueError,
                       match=r"below the cheapest assignment \(2\); the range is 2\.\.4"):
        solve(sens, {"energy": e}, {"energy": 1.0})
    with pytest.raises(ValueError, match=r"above the most expensive assignment \(4\)"):
        solve(sens, {"energy": e}, {"energy": 9.0})
    with pytest.raises(ValueError, match="no cost table"):
        solve(sens, {"energy": e}, {"area": 1.0})
    with pytest.raises(ValueError, match="tied but pinned"):
        solve(sens, {"energy": e}, {"energy": 3.0}, ties=[[0, 1]], pins={0: 0, 1: 1})
    with pytest.raises(ValueError, match="shape"):
        solve(sens, {"energy": e[:1]}, {"energy": 3.0})
    with pytest.raises(ValueError, match="not a layer index"):
        solve(sens, {"energy": e}, {"energy": 3.0}, ties=[[0, 5]])
    with pytest.raises(ValueError, match="finite"):
        solve(np.array([[1.0, np.nan], [1.0, 1.0]]), {"energy": e}, {"energy": 3.0})


def test_layer_costs_equal_gemm_cost() -> None:
    cands = [Candidate("mxfp4", "mxfp4", "mxfp8_e4m3", "float32,nearest_even,tree32"),
             Candidate("int8", "int8", "int8", "int32"),
             Candidate("bf16", "bfloat16", "bfloat16")]
    shapes = {"q_proj": (576, 576), "up_proj": (1536, 576)}
    tables = layer_costs(shapes, 512, cands)
    for c, cand in enumerate(cands):
        for i, (n_out, k_in) in enumerate(shapes.values()):
            g = costmodel.gemm_cost(512, n_out, k_in, cand.datapath())
            assert tables["energy"][i, c] == g.energy_pj["total"] / 512
            assert tables["bytes"][i, c] == g.bytes["b"]
            assert tables["area"][i, c] == g.area
    # fewer bits, fewer weight bytes
    assert (tables["bytes"][:, 0] < tables["bytes"][:, 1]).all()
    assert (tables["bytes"][:, 1] < tables["bytes"][:, 2]).all()
    with pytest.raises(ValueError, match="candidate 'pairwise'"):
        layer_costs(shapes, 16, [Candidate("pairwise", "int8", "int8", "int32,pairwise")])


def test_smollm2_search_beats_uniform_formats() -> None:
    """CI-sized (2 blocks, 2 windows of 64 tokens): at three energy budgets between
    all-MXFP4 and all-MXFP8 the searched configuration's measured KL is at most the best
    uniform format's within the same budget, with either estimator; the two estimators
    rank (group, candidate) pairs alike."""
    import torch
    from scipy.stats import spearmanr

    from numfab import lm
    from numfab.evaluate import text
    from numfab.models import load_model
    from numfab.search import group_costs, layer_groups, measure, search

    dev = torch.device("cpu")
    loaded = load_model("smollm2", "float32", dev)
    model = loaded.model
    ids = lm.tokenize(loaded.tokenizer, text())
    wins = lm.windows(ids, 64, 2)
    ref = lm.reference(loaded, wins, dev, None)
    # the sensitivities are calibrated on other windows than the evaluated ones
    cwins = lm.windows(ids, 64, 2, skip=2)
    cref = lm.reference(loaded, cwins, dev, None)
    cands = [Candidate("mxfp4", "mxfp4", "mxfp4"), Candidate("nvfp4", "nvfp4", "nvfp4"),
             Candidate("mxfp8", "mxfp8_e4m3", "mxfp8_e4m3")]
    groups = layer_groups(model, [0, 1])
    assert groups[0] == [f"model.layers.0.self_attn.{p}_proj" for p in "qkv"]
    assert groups[2] == ["model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj"]
    assert len(groups) == 8
    uniform = {}
    for c in cands:
        uniform[c.name] = measure(model, wins, ref, dev, {n: c for g in groups for n in g})
    costs = group_costs(model, groups, cands, 512)
    energy = {c.name: float(costs["energy"][:, i].sum()) for i, c in enumerate(cands)}
    lo, hi = energy["mxfp4"], energy["mxfp8"]
    budgets = [{"energy": lo + f * (hi - lo)} for f in (0.25, 0.5, 0.75)]
    results = {}
    for est in ("measured", "fisher"):
        results[est] = r = search(model, wins, ref, dev, cands, budgets, blocks=[0, 1],
                                  estimator=est, calib=cwins, calib_reference=cref)
        for pt in r.points:
            # the prediction (summed per-group KL estimates) is in the measured KL's units
            assert 0.2 < pt["kl"] / pt["predicted"] < 10, (est, pt)
            assert pt["totals"]["energy"] <= pt["budget"]["energy"] * (1 + 1e-9)
            best = min(uniform[c]["kl"] for c in uniform
                       if energy[c] <= pt["budget"]["energy"])
            assert pt["kl"] <= best, (est, pt, best)
    rho = spearmanr(results["measured"].sensitivity.ravel(),
                    results["fisher"].sensitivity.ravel()).statistic
    assert rho > 0.7


def test_search_cli(tmp_path: Any, capsys: Any) -> None:
    import json

    from numfab.cli import main

    out = tmp_path / "searched.toml"
    common = ["search", "--candidates", "mxfp4,mxfp8_e4m3", "--blocks", "0", "--seq-len",
              "32", "--windows", "1", "--device", "cpu"]
    assert main(common + ["--budget", "energy=mxfp8_e4m3", "-o", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    rows = {r["config"].split(" ")[0] + r["config"].split(" ")[1][:5]: r for r in res["rows"]}
    searched = [r for r in res["rows"] if r["config"].startswith("searched")]
    assert len(searched) == 1 and res["groups"] == 4
    # at all-MXFP8's energy the search can afford all-MXFP8: no worse than it
    assert searched[0]["kl"] <= rows["allmxfp8"]["kl"] + 1e-12
    assert out.read_text().startswith('["re:(model\\\\.layers\\\\.0')
    assert main(["eval", "--model", "smollm2", "--config", str(out), "--seq-len", "32",
                 "--windows", "1", "--device", "cpu", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["kl"] == pytest.approx(searched[0]["kl"], rel=1e-6)
    # bad input: exit 2, one line naming the problem
    assert main(common + ["--budget", "energy=1"]) == 2
    assert "below the cheapest assignment" in capsys.readouterr().err
    assert main(["search", "--candidates", "mxfp44,int8", "--budget", "energy=1"]) == 2
    assert "mxfp44" in capsys.readouterr().err
    assert main(common + ["--budget", "watts=3"]) == 2
    assert "energy, bytes, area" in capsys.readouterr().err
    for bad in ("energy", "energy=1", "watts=4"):
        assert main(common + ["--front", bad]) == 2
        assert "--front" in capsys.readouterr().err
    assert main(common) == 2
    assert "--budget" in capsys.readouterr().err


def test_search_front_results_and_report(tmp_path: Any, capsys: Any) -> None:
    """--front gives N budgets from the cheapest to the dearest total the pins allow,
    each written as its own rules file; --head searches the output head, here pinned;
    --results holds every point and numfab report draws it; the calibration windows
    are not the evaluated ones."""
    import json

    from numfab.cli import main

    out = tmp_path / "rules.toml"
    results = tmp_path / "search.json"
    assert main(["search", "--candidates", "mxfp4;mxfp8_e4m3", "--blocks", "1",
                 "--seq-len", "32", "--windows", "1", "--calib-windows", "2", "--device",
                 "cpu", "--front", "energy=3", "--budget", "energy=mxfp8_e4m3",
                 "--head", "--pin", "lm_head=mxfp8_e4m3",
                 "-o", str(out), "--results", str(results)]) == 0
    capsys.readouterr()
    d = json.loads(results.read_text())
    assert d["kind"] == "numfab-search" and d["calibration"] == "windows 1..2"
    assert len(d["points"]) == 4 and len(d["uniform"]) == 2
    assert d["groups"][-1] == ["lm_head"] and len(d["groups"]) == 5
    unif = {u["candidate"]: u for u in d["uniform"]}
    energy = [p["budget"]["energy"] for p in d["points"][1:]]
    e = d["costs"]["energy"]  # per group and candidate
    lo = sum(row[0] for row in e[:-1]) + e[-1][1]  # the head pinned to MXFP8
    hi = unif["mxfp8_e4m3"]["energy"]
    assert energy == pytest.approx([lo, (lo + hi) / 2, hi], rel=1e-9)
    # the cheapest budget affords only MXFP4 on every searched group, the dearest picks
    # all-MXFP8 (the estimate ranks MXFP8 better on every group); the head stays pinned
    assert d["points"][1]["choice"] == ["mxfp4"] * 4 + ["mxfp8_e4m3"]
    assert d["points"][3]["choice"] == ["mxfp8_e4m3"] * 5
    assert all(p["choice"][-1] == "mxfp8_e4m3" for p in d["points"])
    assert d["points"][3]["kl"] == pytest.approx(unif["mxfp8_e4m3"]["kl"], rel=1e-9)
    paths = [tmp_path / f"rules_{i}.toml" for i in range(4)]
    assert d["rules"] == [str(p) for p in paths] and all(p.exists() for p in paths)
    assert "lm_head" in paths[1].read_text()
    assert not out.exists()
    assert main(["report", str(results), "-o", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert md.startswith("# numfab co-design search")
    assert "| searched #3 (energy <= " in md and "| all mxfp8_e4m3 |" in md
    for png in ("smollm2_search_front.png", "smollm2_search_choices.png"):
        assert (tmp_path / "rep" / png).read_bytes()[:4] == b"\x89PNG"
    # a search record missing a field: a clear error, the report folder untouched
    del d["points"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d))
    before = md
    assert main(["report", str(bad), "-o", str(tmp_path / "rep")]) == 2
    assert "'points'" in capsys.readouterr().err
    assert (tmp_path / "rep" / "report.md").read_text() == before
