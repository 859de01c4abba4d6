"""Issue 20's figures: the co-design search on SmolLM2 (all 30 blocks, 120 layer groups).

Candidates MXFP4, NVFP4, MXFP8, INT8 (int32 accumulator), INT4-g128 weights x INT8
activations, bfloat16; sensitivities on ``--calib-windows`` windows of 512 tokens after
the ``--windows`` evaluated ones. Budgets: all-NVFP4's energy, an energy front of
``--points`` budgets, and the same energies with weight bytes <= all-MXFP8's. Prints:

- at all-NVFP4's energy, the searched KL against all-NVFP4's and the best uniform format's
  within that energy;
- at all-MXFP8's KL (the cheapest searched point measuring no worse), the energy and
  weight bytes saved against all-MXFP8;
- search time with the Fisher estimator (sensitivity + integer programs);
- ``--correlation`` (instead of the above): both estimators on the calibration windows
  (the measured one: one evaluation per group and candidate, ~12 min per window on 2
  cores) and their Spearman rank correlation, over all pairs and per candidate.

Writes ``--out``/search.json and ``--out``/report.md (numfab report) with the plots.

    python benchmarks/bench_search.py [--out DIR] [--points 16]
    python benchmarks/bench_search.py --correlation --calib-windows 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("mxfp4;nvfp4;mxfp8_e4m3;int8@int32;int4_g128:int8@float32,nearest_even,tree128;"
              "bfloat16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--correlation", action="store_true",
                    help="only the two estimators on the calibration windows and their "
                    "rank correlation (the measured one: one evaluation per group and "
                    "candidate)")
    ap.add_argument("--out", default="out/search")
    ap.add_argument("--points", type=int, default=16)
    ap.add_argument("--windows", type=int, default=2)
    ap.add_argument("--calib-windows", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=512)
    args = ap.parse_args()

    import numpy as np
    import torch

    import formats
    from numfab import lm
    from numfab.evaluate import text
    from numfab.models import load_model
    from numfab.report import write_report
    from numfab.search import budget_range, group_costs, layer_groups, search
    from numfab.search_cli import parse_candidates

    formats.setup_runtime()
    dev = torch.device("cpu")
    cands = parse_candidates(CANDIDATES)
    names = [c.name for c in cands]
    loaded = load_model("smollm2", "float32", dev)
    model = loaded.model
    ids = lm.tokenize(loaded.tokenizer, text())
    wins = lm.windows(ids, args.seq_len, args.windows)
    cwins = lm.windows(ids, args.seq_len, args.calib_windows, skip=args.windows)
    ref = lm.reference(loaded, wins, dev, None)
    groups = layer_groups(model)
    costs = group_costs(model, groups, cands, args.seq_len)
    total = {n: {k: float(v[:, i].sum()) for k, v in costs.items()}
             for i, n in enumerate(names)}
    lo, hi = budget_range(costs, "energy")
    energies = [float(e) for e in np.linspace(lo, hi, args.points)]
    budgets = ([{"energy": total["nvfp4"]["energy"]}] + [{"energy": e} for e in energies]
               + [{"energy": e, "bytes": total["mxfp8_e4m3"]["bytes"]} for e in energies])
    if args.correlation:
        _correlation(model, loaded, cwins, dev, groups, cands, Path(args.out))
        return
    t0 = time.perf_counter()
    res = search(model, wins, ref, dev, cands, budgets, tokens=args.seq_len, calib=cwins,
                 uniform=True)
    print(f"{len(groups)} groups x {len(cands)} candidates; Fisher on {len(cwins)} x "
          f"{args.seq_len} tokens: sensitivity {res.seconds['sensitivity']:.1f} s, "
          f"{len(budgets)} integer programs {res.seconds['solve']:.1f} s; evaluations "
          f"{res.seconds['verify']:.0f} s (total {time.perf_counter() - t0:.0f} s)")
    unif = {u["candidate"]: u for u in res.uniform}
    print(f"{'configuration':44s} {'M pJ/tok':>9s} {'MB':>7s} {'pred':>8s} {'KL':>8s} "
          f"{'ppl':>7s}")
    for u in sorted(res.uniform, key=lambda u: u["energy"]):
        print(f"{'all ' + u['candidate']:44s} {u['energy'] / 1e6:9.1f} {u['bytes'] / 1e6:7.1f}"
              f" {'':8s} {u['kl']:8.4f} {u['perplexity']:7.2f}")
    for p in res.points:
        b = ",".join(f"{k}<={v / 1e6:.1f}M" for k, v in p["budget"].items())
        print(f"{'searched ' + b:44s} {p['totals']['energy'] / 1e6:9.1f} "
              f"{p['totals']['bytes'] / 1e6:7.1f} {p['predicted']:8.4f} {p['kl']:8.4f} "
              f"{p['perplexity']:7.2f}")
    nv = res.points[0]
    within = [u for u in res.uniform if u["energy"] <= total["nvfp4"]["energy"] * (1 + 1e-9)]
    best = min(within, key=lambda u: u["kl"])
    print(f"at all-NVFP4's energy: searched KL {nv['kl']:.4g} vs all-NVFP4 "
          f"{unif['nvfp4']['kl']:.4g} ({unif['nvfp4']['kl'] / nv['kl']:.1f}x lower); best "
          f"uniform within that energy {best['candidate']} {best['kl']:.4g} "
          f"({best['kl'] / nv['kl']:.1f}x)")
    m8 = unif["mxfp8_e4m3"]
    for label, pts in (("energy front", res.points[1:1 + len(energies)]),
                       ("energy front, bytes <= all-MXFP8's", res.points[1 + len(energies):])):
        ok = [p for p in pts if p["kl"] <= m8["kl"]]
        if not ok:
            print(f"{label}: no point measures at or below all-MXFP8's KL {m8['kl']:.4g}")
            continue
        p = min(ok, key=lambda p: p["totals"]["energy"])
        print(f"{label}: at all-MXFP8's KL ({m8['kl']:.4g}) the cheapest searched point "
              f"(KL {p['kl']:.4g}) needs {p['totals']['energy'] / 1e6:.1f} M pJ/token "
              f"({1 - p['totals']['energy'] / m8['energy']:.1%} less than "
              f"{m8['energy'] / 1e6:.1f}) and {p['totals']['bytes'] / 1e6:.1f} MB of weights "
              f"({1 - p['totals']['bytes'] / m8['bytes']:.1%} less than "
              f"{m8['bytes'] / 1e6:.1f})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"model": "smollm2", "data": "bundled text", "seq_len": args.seq_len,
            "windows": len(wins), "calib_windows": len(cwins),
            "calibration": f"windows {len(wins)}..{len(wins) + len(cwins) - 1}",
            "tokens": args.seq_len}
    (out / "search.json").write_text(json.dumps(res.to_json(**meta), indent=1) + "\n")
    print("wrote", write_report(out / "search.json", out))


def _correlation(model: Any, loaded: Any, cwins: Any, dev: Any, groups: Any, cands: Any,
                 out: Path) -> None:
    import numpy as np
    from scipy.stats import spearmanr

    from numfab import lm
    from numfab.search import fisher_sensitivity, measured_sensitivity

    cref = lm.reference(loaded, cwins, dev, None)
    t0 = time.perf_counter()
    fish = fisher_sensitivity(model, cwins, dev, groups, cands)
    tf = time.perf_counter() - t0
    t0 = time.perf_counter()
    meas = measured_sensitivity(model, cwins, cref, dev, groups, cands, progress=True)
    tm = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "measured_sensitivity.npy", meas)
    np.save(out / "fisher_sensitivity.npy", fish)
    names = [c.name for c in cands]
    rho = spearmanr(meas.ravel(), fish.ravel()).statistic
    per = [spearmanr(meas[:, i], fish[:, i]).statistic for i in range(len(cands))]
    print(f"{len(groups)} groups x {len(cands)} candidates on {len(cwins)} calibration "
          f"windows: measured {tm:.0f} s, Fisher {tf:.1f} s; Spearman over {meas.size} "
          f"pairs {rho:.3f}; per candidate "
          + ", ".join(f"{n} {r:.3f}" for n, r in zip(names, per, strict=True)))
    ratio = meas / np.maximum(fish, 1e-30)
    print(f"measured / Fisher per pair: median {np.median(ratio):.2f}, quartiles "
          f"{np.quantile(ratio, 0.25):.2f}..{np.quantile(ratio, 0.75):.2f}")


if __name__ == "__main__":
    main()
