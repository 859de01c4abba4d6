"""Markdown report with plots from a sweep's results file or a search's results."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ._io import atomic_write, check_input_file, check_output_dir
from .sweep import read_failures, read_results

__all__ = ["MAIN_METRIC", "write_report"]

#: the metric plotted per model, and whether lower is better
MAIN_METRIC = {"smollm2": ("kl", True), "minilm": ("cosine", False),
               "digits": ("accuracy", False)}
_COLUMNS = {"smollm2": ["perplexity", "kl", "top1_agreement"],
            "minilm": ["cosine", "retrieval_agreement"], "digits": ["accuracy"]}


def _file_stem(model: str) -> str:
    """A file name for plots of ``model`` inside the report folder: a bundled name as it
    is; a model path by its last part (characters other than letters, digits, ``-_.``
    replaced) and a short hash of the whole path (two paths never share plots)."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", model):
        return model
    import hashlib

    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(model).name or "model").lstrip(".") or "model"
    return f"{stem}-{hashlib.sha256(model.encode()).hexdigest()[:8]}"


def _label(c: dict[str, Any]) -> str:
    given = {k: c[k] for k in ("weights", "acts", "kv") if c.get(k)}
    if len(set(given.values())) > 1:  # formats that differ are each named
        fmt = " ".join(f"{k}={v}" for k, v in given.items())
    elif c.get("rules"):
        fmt = f"rules {Path(c['rules']).name}"
    else:
        fmt = next(iter(given.values()), f"{c.get('dtype') or 'float32'} (reference)")
    tech = [t for t in ("hadamard", "gptq") if c.get(t)]
    return fmt + (" + " + "+".join(tech) if tech else "")


#: a priced point: (results record, its datapath, costmodel's per-MAC cost, bits/element)
_Point = tuple[dict[str, Any], Any, dict[str, Any], float]


def _priced(grid: list[dict[str, Any]], metric: str, target: str
            ) -> tuple[list[_Point], list[str]]:
    """(the points priced as the datapath each was simulated with, the points left out,
    each with why)."""
    from costmodel.pareto import format_cost

    from .evaluate import EvalConfig

    pts, left_out = [], []
    for r in grid:
        c = r["config"]
        name = _label(c)
        if c.get("rules"):
            left_out.append(f"{name}: a rules file's formats differ by layer (no one "
                            "datapath or bits per element)")
            continue
        if c.get("kv"):
            left_out.append(f"{name} (kv={c['kv']}): the KV cache's attention products are "
                            "another GEMM, not priced here")
            continue
        if metric not in r["metrics"] or not math.isfinite(float(r["metrics"][metric])):
            left_out.append(f"{name}: no finite {metric}")
            continue
        try:
            dp = EvalConfig(**c).datapath
            cost = format_cost(dp, target=target)
        except ValueError as exc:
            left_out.append(f"{name}: {exc}")
            continue
        if "bits_weights" not in r["metrics"]:
            left_out.append(f"{name}: a rules file's formats differ by layer (no one "
                            "datapath or bits per element)")
            continue
        bits = max(r["metrics"]["bits_weights"], r["metrics"]["bits_acts"])
        pts.append((r, dp, cost, bits))
    return pts, left_out


def _pareto_section(model: str, grid: list[dict[str, Any]], metric: str, lower: bool,
                    outd: Path, target: str, plt: Any) -> list[str]:
    """Accuracy against per-MAC LUTs, energy and bits per element, with Pareto fronts, and
    the points left off them."""
    pts, left_out = _priced(grid, metric, target)
    lines = [f"### {model}: accuracy x hardware cost", ""]
    if pts:
        lines += _front_table(model, pts, metric, lower, outd, target, plt)
    if left_out:
        lines += ["Left off the fronts (no datapath priced):", ""]
        lines += [f"- {why}" for why in sorted(set(left_out))] + [""]
    return lines


def _front_table(model: str, pts: list[_Point], metric: str, lower: bool, outd: Path,
                 target: str, plt: Any) -> list[str]:
    from costmodel.pareto import pareto_front

    axes_def = [("cost_per_mac", f"{pts[0][2]['unit']} per MAC ({target})"),
                ("pj_per_mac", "pJ per MAC (45 nm, Horowitz-scaled)"),
                ("bits", "bits per element")]
    ys = [float(r["metrics"][metric]) for r, _, _, _ in pts]
    xs = {key: [b if key == "bits" else c[key] for _, _, c, b in pts] for key, _ in axes_def}
    fronts = {key: pareto_front(xs[key], ys, lower_is_better=lower) for key, _ in axes_def}
    accs = ", ".join(sorted({f"`{dp.accumulator}` (k={dp.k})" for _, dp, _, _ in pts}))
    lines = ["Each point is priced as the datapath it was simulated with "
             f"(`EvalConfig.datapath`: activations as A x weights as B, summed by {accs}): "
             f"the PE `rtl.build(datapath)` per MAC, estimated by `costmodel.estimate` for "
             f"{target}; * marks the Pareto front. Per-channel and per-token scales and the "
             "online Hadamard rotation are outside the PE and not included.", "",
             f"| format | PE | {axes_def[0][1]} | pJ/MAC | bits | {metric} |",
             "|---|---|---|---|---|---|"]
    order = sorted(range(len(pts)), key=lambda i: pts[i][2]["cost_per_mac"])
    for i in order:
        r, _, c, b = pts[i]
        star = {k: "*" if fronts[k][i] else "" for k in fronts}
        lines.append(f"| {_label(r['config'])} | {c['pe']} | {c['cost_per_mac']:.0f}"
                     f"{star['cost_per_mac']} | {c['pj_per_mac']:.3f}{star['pj_per_mac']} | "
                     f"{b:g}{star['bits']} | {ys[i]:.4g} |")
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for ax, (key, xlabel) in zip(axes, axes_def):
        on = fronts[key]
        ax.scatter([x for x, f in zip(xs[key], on) if not f],
                   [y for y, f in zip(ys, on) if not f], c="0.6", label="dominated")
        fx = sorted((x, y) for x, y, f in zip(xs[key], ys, on) if f)
        ax.plot([p[0] for p in fx], [p[1] for p in fx], "o-", c="C3", label="Pareto front")
        for x, y, (r, _, _, _) in zip(xs[key], ys, pts):
            ax.annotate(_label(r["config"]).replace(" + hadamard", "+H"), (x, y), fontsize=6,
                        xytext=(2, 2), textcoords="offset points")
        if metric == "kl":
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{model}: {metric} vs hardware cost")
    fig.tight_layout()
    png = f"{_file_stem(model)}_pareto.png"
    _save(fig, outd / png)
    plt.close(fig)
    return lines + ["", f"![{model} Pareto]({png})", ""]


def write_report(results: str | Path, out: str | Path, *, pareto: bool = False,
                 target: str = "xilinx") -> Path:
    """Write ``out/report.md`` and its plots (PNG) from ``results``; returns the path.
    ``pareto`` prices each point as the datapath it was simulated with
    (:attr:`EvalConfig.datapath`: the PE that computes it, its estimated cost on
    ``target`` and energy, per MAC), marks the Pareto fronts of accuracy against LUTs (or
    transistors), energy and bits, and lists each point left off with why (a datapath
    no PE computes, formats that form none, a KV-cache format, a metric not finite)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from costmodel.estimate import MODEL_TARGETS

    if target not in MODEL_TARGETS:
        raise ValueError(f"target must be one of {', '.join(MODEL_TARGETS)}, not {target!r}")
    search = _search_results(check_input_file(results, "results file"))
    if search is not None:
        outd = check_output_dir(out, "report folder")
        outd.mkdir(parents=True, exist_ok=True)
        return atomic_write(outd / "report.md", "\n".join(_search_report(search, outd, plt))
                            + "\n")
    header, recs = read_results(results)
    if not recs:
        raise ValueError(f"{results} holds no results yet")
    outd = check_output_dir(out, "report folder")
    outd.mkdir(parents=True, exist_ok=True)
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in recs.values():
        by_model.setdefault(r["config"]["model"], []).append(r)
    lines = ["# numfab format report", ""]
    cfg = header["config"] if header else {}
    lines += [f"Sweep: models {cfg.get('models')}, formats {cfg.get('formats')}, "
              f"quantized {cfg.get('quantize')}, {cfg.get('tokens')} tokens "
              f"(config hash `{header.get('config_hash') if header else '?'}`).", ""]
    for model, rs in sorted(by_model.items()):
        grid = [r for r in rs if r["config"].get("block") is None]
        blocks = [r for r in rs if r["config"].get("block") is not None]
        # numfab.lm's evaluations: a causal LM's KL, an encoder's hidden-state cosine
        own_lm = any("kl_top_k" in r["metrics"] for r in rs)
        own_enc = any("embedding_cosine" in r["metrics"] for r in rs)
        metric, lower = (("kl", True) if own_lm else ("cosine", False) if own_enc
                         else MAIN_METRIC.get(model, ("", True)))
        cols = (["perplexity", "kl", "top1_agreement", "tokens_per_s"] if own_lm else
                ["cosine", "embedding_cosine", "tokens_per_s"] if own_enc else
                _COLUMNS.get(model, sorted(grid[0]["metrics"]) if grid else []))
        lines += [f"## {model}", ""]
        if model == "smollm2":
            lines += ["Reference: SmolLM2-135M-Instruct with its Q4_1 GGUF weights "
                      "dequantized (weight formats inherit that grid).", ""]
        lines += ["| format | bits/elem (w, a) | " + " | ".join(cols) + " | s |",
                  "|---|---|" + "---|" * len(cols) + "---|"]
        sign = 1.0 if lower else -1.0
        order = sorted(((float(r["metrics"].get(metric, 0.0)) * sign, i)
                        for i, r in enumerate(grid)))
        for r in (grid[i] for _, i in order):
            m = r["metrics"]
            vals = " | ".join(f"{m[c]:.4g}" if c in m else "-" for c in cols)
            bits = (f"{m['bits_weights']:g}, {m['bits_acts']:g}" if "bits_weights" in m
                    else "per rule")
            lines.append(f"| {_label(r['config'])} | {bits} | {vals} | "
                         f"{r['seconds']:.1f} |")
        lines.append("")
        quantized = [r for r in grid if (r["config"].get("weights") or r["config"].get("acts"))
                     and "bits_weights" in r["metrics"]]
        if quantized and metric:
            fig, ax = plt.subplots(figsize=(7, 4.5))
            for had, mk in ((False, "o"), (True, "s")):
                pts = [r for r in quantized if bool(r["config"].get("hadamard")) == had]
                if not pts:
                    continue
                xs = [min(r["metrics"]["bits_weights"], r["metrics"]["bits_acts"])
                      for r in pts]
                ys = [r["metrics"][metric] for r in pts]
                ax.scatter(xs, ys, marker=mk, label="Hadamard" if had else "plain")
                for x, y, r in zip(xs, ys, pts, strict=True):
                    ax.annotate(r["config"].get("weights") or r["config"].get("acts"),
                                (x, y), fontsize=7, xytext=(3, 3),
                                textcoords="offset points")
            if metric == "kl":
                ax.set_yscale("log")
            ax.set_xlabel("bits per element (scales included)")
            ax.set_ylabel(metric + (" (lower is better)" if lower else " (higher is better)"))
            ax.set_title(f"{model}: {metric} vs bits per element")
            ax.legend()
            fig.tight_layout()
            png = f"{_file_stem(model)}_{metric}_vs_bits.png"
            _save(fig, outd / png)
            plt.close(fig)
            lines += [f"![{model} {metric} vs bits]({png})", ""]
        if pareto and grid and metric:
            lines += _pareto_section(model, grid, metric, lower, outd, target, plt)
        if blocks and metric:
            blocks.sort(key=lambda r: r["config"]["block"])
            fig, ax = plt.subplots(figsize=(7, 3.5))
            ax.bar([r["config"]["block"] for r in blocks],
                   [r["metrics"][metric] for r in blocks])
            fmt = blocks[0]["config"]["weights"]
            ax.set_xlabel("transformer block quantized alone")
            ax.set_ylabel(metric)
            ax.set_title(f"{model}: per-block sensitivity to {fmt}")
            fig.tight_layout()
            png = f"{_file_stem(model)}_sensitivity.png"
            _save(fig, outd / png)
            plt.close(fig)
            worst = max(blocks, key=lambda r: r["metrics"][metric] * (1 if lower else -1))
            lines += [f"Per-block sensitivity ({fmt} in one block at a time): most "
                      f"sensitive block {worst['config']['block']} ({metric} "
                      f"{worst['metrics'][metric]:.4g}).", "", f"![sensitivity]({png})", ""]
    failed = read_failures(results)
    if failed:
        lines += ["## Failed points", "", "Not in the results file; rerun the sweep to "
                  "retry them.", ""]
        lines += [f"- {_label(f['config'])} ({f['config'].get('model')}): {f['error']}"
                  for f in failed if isinstance(f.get("config"), dict)]
        lines.append("")
    return atomic_write(outd / "report.md", "\n".join(lines) + "\n")


def _search_results(path: Path) -> dict[str, Any] | None:
    """The record of ``numfab search --results`` in ``path``, or None where it is not
    one (a sweep's results file); a search record that lacks a field is a ValueError."""
    import json

    from .search import RESULTS_KIND

    with open(path, "rb") as fh:
        if fh.read(1) != b"{":
            return None
        fh.seek(0)
        try:
            data = json.load(fh)
        except (ValueError, UnicodeDecodeError):
            return None
    if not isinstance(data, dict) or data.get("kind") != RESULTS_KIND:
        return None

    def bad(what: str) -> ValueError:
        return ValueError(f"{path}: a numfab search results file with no valid {what} "
                          "(written by another version, or edited?)")

    def num(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    def nums(d: Any, keys: tuple[str, ...]) -> bool:
        return isinstance(d, dict) and all(num(d.get(k)) for k in keys)

    for field in ("candidates", "groups", "uniform", "points"):
        if not isinstance(data.get(field), list):
            raise bad(repr(field))
    if not isinstance(data.get("estimator"), str):
        raise bad("'estimator'")
    names = [c.get("name") if isinstance(c, dict) else None for c in data["candidates"]]
    if not names or not all(isinstance(n, str) for n in names):
        raise bad("'candidates' (each with a name)")
    if not all(isinstance(g, list) and g and all(isinstance(n, str) for n in g)
               for g in data["groups"]):
        raise bad("'groups' (lists of layer names)")
    metrics = ("kl", "perplexity", "top1_agreement")
    for i, u in enumerate(data["uniform"]):
        if not nums(u, ("energy", "bytes", *metrics)) or u.get("candidate") not in names:
            raise bad(f"'uniform' entry {i}")
    for i, p in enumerate(data["points"]):
        if not (nums(p, ("predicted", *metrics)) and nums(p.get("totals"), ("energy", "bytes"))
                and isinstance(p.get("budget"), dict) and nums(p["budget"], tuple(p["budget"]))
                and isinstance(p.get("choice"), list)
                and len(p["choice"]) == len(data["groups"])
                and all(c in names for c in p["choice"])
                and all(k in p["totals"] for k in p["budget"])):
            raise bad(f"'points' entry {i}")
    return data


def _within(totals: dict[str, Any], budget: dict[str, float]) -> bool:
    return all(isinstance(totals.get(k), (int, float)) and totals[k] <= v * (1 + 1e-9)
               for k, v in budget.items())


def _search_report(d: dict[str, Any], outd: Path, plt: Any) -> list[str]:
    """report.md's lines for a search: the searched points beside the uniform formats
    (table: predicted next to measured, the best uniform format within each budget),
    the fronts of KL against energy per token and weight bytes, and each point's choice
    per layer group."""
    import numpy as np

    unif, pts = d["uniform"], d["points"]
    cands = [c["name"] for c in d["candidates"]]
    est = d["estimator"]
    model = str(d.get("model", "model"))
    lines = ["# numfab co-design search", "",
             f"Model {model}: {len(d['groups'])} layer groups (q/k/v and gate/up tied, "
             + ("output head searched" if d.get("head") else "output head not searched")
             + f"), candidates {', '.join(f'`{c}`' for c in cands)}. "
             f"Sensitivity: {est} estimator on {d.get('calib_windows', '?')} calibration "
             f"windows ({d.get('calibration', '?')}); every configuration measured on "
             f"{d.get('windows', '?')} other windows x {d.get('seq_len', '?')} tokens; "
             f"costs from costmodel.gemm_cost at {d.get('tokens', '?')} tokens per GEMM.", ""]
    sec = d.get("seconds") or {}
    if sec:
        lines += ["Time: " + ", ".join(f"{k} {v:.1f} s" for k, v in sec.items()) + ".", ""]
    lines += ["| configuration | energy (M pJ/token) | weight MB | predicted | KL | "
              "perplexity | top-1 | best uniform within budget | its KL |",
              "|---|---|---|---|---|---|---|---|---|"]
    for u in sorted(unif, key=lambda u: u["energy"]):
        lines.append(f"| all {u['candidate']} | {u['energy'] / 1e6:.2f} | "
                     f"{u['bytes'] / 1e6:.2f} | | {u['kl']:.4g} | {u['perplexity']:.4g} | "
                     f"{u['top1_agreement']:.3f} | | |")
    for i, p in enumerate(pts):
        ok = [u for u in unif if _within(u, p["budget"])]
        best = min(ok, key=lambda u: u["kl"]) if ok else None
        b = ", ".join(f"{k} <= {v:.4g}" for k, v in p["budget"].items())
        t = p["totals"]
        lines.append(f"| searched #{i} ({b}) | {t['energy'] / 1e6:.2f} | "
                     f"{t['bytes'] / 1e6:.2f} | {p['predicted']:.4g} | {p['kl']:.4g} | "
                     f"{p['perplexity']:.4g} | {p['top1_agreement']:.3f} | "
                     + (f"{best['candidate']} | {best['kl']:.4g} |" if best else "none | |"))
    lines += ["", f"Predicted: the summed {est} sensitivity of the chosen candidates "
              "(each group's loss increase estimated alone; interactions between groups "
              "are not modelled), next to the KL measured with the whole configuration.",
              ""]
    stem = _file_stem(model) + "_search"
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key, unit, scale in ((axes[0], "energy", "energy per token (M pJ)", 1e6),
                                 (axes[1], "bytes", "weight bytes (MB, scales included)",
                                  1e6)):
        ax.scatter([u[key] / scale for u in unif], [u["kl"] for u in unif], c="0.4",
                   marker="s", label="uniform format")
        for u in unif:
            ax.annotate(u["candidate"], (u[key] / scale, u["kl"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        order = sorted(range(len(pts)), key=lambda i: pts[i]["totals"][key])
        ax.plot([pts[i]["totals"][key] / scale for i in order],
                [pts[i]["kl"] for i in order], "o-", c="C3", label="searched (measured)")
        ax.scatter([pts[i]["totals"][key] / scale for i in order],
                   [max(pts[i]["predicted"], 1e-12) for i in order], marker="x", c="C0",
                   label=f"searched (predicted, {est})")
        ax.set_yscale("log")
        ax.set_xlabel(unit)
        ax.set_ylabel("KL divergence from the reference")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{model}: searched per-layer formats vs uniform formats")
    fig.tight_layout()
    _save(fig, outd / f"{stem}_front.png")
    plt.close(fig)
    lines += [f"![front]({stem}_front.png)", ""]
    if pts:
        choice = np.array([[cands.index(c) for c in p["choice"]] for p in pts])
        fig, ax = plt.subplots(figsize=(max(6.0, 0.12 * choice.shape[1] + 2), 0.35 *
                                        len(pts) + 1.6))
        cmap = plt.get_cmap("tab10", len(cands))
        im = ax.imshow(choice, aspect="auto", cmap=cmap, vmin=-0.5, vmax=len(cands) - 0.5,
                       interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, ticks=range(len(cands)))
        cb.ax.set_yticklabels(cands, fontsize=7)
        ax.set_yticks(range(len(pts)))
        ax.set_yticklabels([f"#{i}" for i in range(len(pts))], fontsize=7)
        ax.set_xlabel("layer group (model order)")
        ax.set_title("candidate chosen per layer group")
        fig.tight_layout()
        _save(fig, outd / f"{stem}_choices.png")
        plt.close(fig)
        lines += [f"![choices]({stem}_choices.png)", "", "Groups (columns of the choice map):",
                  ""]
        lines += [f"{gi}. {', '.join(g)}" for gi, g in enumerate(d["groups"])] + [""]
    return lines


def _save(fig: Any, path: Path) -> None:
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110))
