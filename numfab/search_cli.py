"""``numfab search``: per-layer formats under a hardware budget (:mod:`numfab.search`)."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from ._args import DEVICE_HELP, device_arg, positive_int

__all__ = ["add_parser", "parse_budget", "parse_candidates"]


def parse_candidates(text: str) -> list[Any]:
    """``fmt[:act][@accumulator]`` entries, separated by ``;`` (where an accumulator's
    text holds commas) or else by commas outside ``<...>`` and ``[...]`` (weights and
    activations in ``fmt`` unless ``:act`` is given; accumulator default float32); each
    named by its text."""
    from simulator.accumulator import split_top

    from .search import Candidate

    out = []
    # ';' separates candidates where an accumulator's text holds commas
    for part in (text.split(";") if ";" in text else split_top(text, ",")):
        part = part.strip()
        if not part:
            continue
        body, _, acc = part.partition("@")
        w, _, a = body.partition(":")
        c = Candidate(part, w, a or w, acc or "float32")
        try:
            c.datapath()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--candidates: {part!r}: {exc}") from None
        out.append(c)
    if len(out) < 2:
        raise ValueError(f"--candidates needs at least two candidates, not {text!r}")
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise ValueError(f"--candidates: {names} repeats a candidate")
    return out


def parse_budget(text: str, uniform: dict[str, dict[str, float]]) -> dict[str, float]:
    """``key=value,...`` with key one of numfab.search.COSTS and value a number or a
    candidate's name (that candidate's total on every searched layer)."""
    from .search import COSTS

    out: dict[str, float] = {}
    for part in text.split(","):
        key, eq, value = part.strip().partition("=")
        if not eq or key not in COSTS:
            raise ValueError(f"--budget {text!r}: give key=value pairs with keys "
                             f"{', '.join(COSTS)} (e.g. energy=mxfp8_e4m3,bytes=2e6)")
        if value in uniform:
            out[key] = uniform[value][key]
            continue
        try:
            v = float(value)
        except ValueError:
            raise ValueError(f"--budget {key}={value!r}: a number or a candidate's name "
                             f"({', '.join(uniform)})") from None
        if not math.isfinite(v):
            raise ValueError(f"--budget {key}={value!r} must be finite")
        out[key] = v
    return out


def _rules_paths(out: Any, n: int) -> list[Any]:
    """One rules file per searched point: ``out`` itself for one point, else ``out``'s
    stem with ``_0``, ``_1``, ... before its suffix."""
    if n == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(n)]


def _cmd_search(args: argparse.Namespace) -> int:
    import time

    from . import lm
    from ._io import atomic_write, check_output_file
    from .evaluate import resolve_device, text
    from .models import load_model
    from .search import COSTS, group_costs, layer_groups, rules_toml, search

    cands = parse_candidates(args.candidates)
    if not args.budget and not args.front:
        raise ValueError("give --budget key=value (repeatable) or --front key=N")
    front = None
    if args.front:
        key, eq, n = args.front.partition("=")
        if not eq or key not in COSTS or not n.isdigit() or int(n) < 2:
            raise ValueError(f"--front {args.front!r}: give key=N with key one of "
                             f"{', '.join(COSTS)} and N >= 2 points (e.g. energy=8)")
        front = (key, int(n))
    out_path = check_output_file(args.out, "--out") if args.out else None
    results_path = check_output_file(args.results, "--results") if args.results else None
    dev = resolve_device(args.device, "--device")
    t0 = time.perf_counter()
    loaded = load_model(args.model, args.dtype, dev)
    model = loaded.model.to(dev)
    txt = lm.read_corpus(args.data) if args.data else text()
    ids = lm.tokenize(loaded.tokenizer, txt)
    wins = lm.windows(ids, args.seq_len, args.windows)
    # calibration (the sensitivities) never sees the evaluated windows: --calib text, or
    # the windows after the evaluated ones
    if args.calib:
        cids = lm.tokenize(loaded.tokenizer, lm.read_corpus(args.calib, what="--calib"))
        cwins = lm.windows(cids, args.seq_len, args.calib_windows, "--calib")
        calib_from = f"--calib {args.calib}"
    else:
        cwins = lm.windows(ids, args.seq_len, args.calib_windows,
                           "--data (calibration: the windows after the evaluated ones; "
                           "give --calib, fewer --windows or fewer --calib-windows)",
                           skip=wins.shape[0])
        calib_from = f"windows {wins.shape[0]}..{wins.shape[0] + cwins.shape[0] - 1}"
    ref = lm.reference(loaded, wins, dev, None)
    cref = lm.reference(loaded, cwins, dev, None) if args.estimator == "measured" else None
    blocks = None
    if args.blocks:
        try:
            blocks = [int(b) for b in args.blocks.split(",")]
        except ValueError:
            raise ValueError(f"--blocks {args.blocks!r}: comma-separated block indices") \
                from None
    groups = layer_groups(model, blocks, args.head)
    if not groups:
        raise ValueError(f"--blocks {args.blocks}: no Linear layers in those blocks")
    tokens = args.tokens or args.seq_len
    costs = group_costs(model, groups, cands, tokens)
    totals = {c.name: {k: float(v[:, i].sum()) for k, v in costs.items()}
              for i, c in enumerate(cands)}
    budgets = [parse_budget(b, totals) for b in args.budget or ()]
    pins: dict[str, str] = {}
    for p in args.pin or ():
        layer, eq, cname = p.partition("=")
        if not eq or not layer or not cname:
            raise ValueError(f"--pin {p!r}: give layer=candidate (e.g. "
                             f"model.layers.0.mlp.down_proj={cands[-1].name})")
        pins[layer] = cname
    t_load = time.perf_counter() - t0
    res = search(model, wins, ref, dev, cands, budgets, blocks=blocks, tokens=tokens,
                 estimator=args.estimator, pins=pins, front=front, calib=cwins,
                 calib_reference=cref, uniform=True, head=args.head, costs=costs)
    res.seconds["load"] = t_load
    rows = [{"config": f"all {u['candidate']}", **u} for u in res.uniform]
    for pt in res.points:
        rows.append({"config": "searched " + ",".join(f"{k}<={v:.4g}"
                                                       for k, v in pt["budget"].items()),
                     **pt["totals"], "predicted": pt["predicted"], "kl": pt["kl"],
                     "perplexity": pt["perplexity"], "top1_agreement": pt["top1_agreement"],
                     "choice": {",".join(g): cands[pt["choice"][gi]].name
                                for gi, g in enumerate(groups)}})
    written = []
    if out_path is not None:
        for i, path in enumerate(_rules_paths(out_path, len(res.points))):
            written.append(atomic_write(path, rules_toml(res.assignment(i))))
    if results_path is not None:
        meta = {"model": args.model, "data": args.data or "bundled text",
                "seq_len": args.seq_len, "windows": int(wins.shape[0]),
                "calib_windows": int(cwins.shape[0]), "calibration": calib_from,
                "tokens": tokens, "blocks": blocks, "pins": pins, "head": args.head,
                "rules": [str(p) for p in written]}
        atomic_write(results_path, json.dumps(res.to_json(**meta), indent=1) + "\n")
    if args.json:
        print(json.dumps({"estimator": args.estimator, "groups": len(groups), "rows": rows,
                          "seconds": res.seconds}))
    else:
        print(f"{len(groups)} layer groups, {len(cands)} candidates, estimator "
              f"{args.estimator} on {cwins.shape[0]} calibration windows ({calib_from}); "
              f"evaluated on {wins.shape[0]} windows x {wins.shape[1]} tokens")
        print(f"sensitivity {res.seconds['sensitivity']:.1f} s, solve "
              f"{res.seconds['solve']:.1f} s, evaluation {res.seconds['verify']:.0f} s")
        print(f"{'configuration':42s} {'energy pJ/tok':>14s} {'weight bytes':>13s} "
              f"{'predicted':>9s} {'KL':>9s} {'ppl':>9s} {'top1':>6s}")
        for r in rows:
            pred = f"{r['predicted']:9.4g}" if "predicted" in r else f"{'':9s}"
            print(f"{r['config'][:42]:42s} {r['energy']:14.4g} {r['bytes']:13.4g} "
                  f"{pred} {r['kl']:9.4g} {r['perplexity']:9.4g} {r['top1_agreement']:6.3f}")
        for path in written:
            print(f"wrote {path} (numfab eval --config takes it)")
        if results_path is not None:
            print(f"wrote {results_path} (numfab report draws it)")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "search", help="per-layer formats under a hardware budget",
        description="Choose a candidate datapath for every Linear layer (q/k/v and "
        "gate/up tied) minimizing the estimated accuracy loss under budgets on the cost "
        "model's energy per token, weight bytes or PE area (an integer program, HiGHS), "
        "then evaluate each chosen configuration for real beside the uniform formats.")
    p.add_argument("--model", default="smollm2",
                   help="smollm2, a local Hugging Face checkpoint directory or a .gguf file")
    p.add_argument("--candidates", required=True,
                   help="fmt[:act][@accumulator] entries separated by commas, or by ';' "
                   "where an accumulator has commas, e.g. 'mxfp4;nvfp4;mxfp8_e4m3;"
                   "int8@int32;int4_g128:int8@float32,nearest_even,tree128;bfloat16'")
    p.add_argument("--budget", action="append",
                   help="key=value[,key=value]: energy (pJ per token), bytes (weights) or "
                   "area; a value may name a candidate (its uniform total). Repeatable: "
                   "one searched configuration each")
    p.add_argument("--front", metavar="KEY=N",
                   help="N budgets of KEY (energy, bytes or area) spread evenly from the "
                   "cheapest to the dearest total: the accuracy-versus-cost front")
    p.add_argument("--estimator", choices=("fisher", "measured"), default="fisher",
                   help="sensitivity: second-order Fisher estimate (fast, default) or "
                   "the measured KL with one group quantized (exact, slow)")
    p.add_argument("--blocks", help="search only these transformer blocks (e.g. 0,1,2)")
    p.add_argument("--pin", action="append", help="layer=candidate (repeatable), e.g. "
                   "lm_head=bfloat16 with --head")
    p.add_argument("--head", action="store_true", help="search the output head too (its "
                   "own group; left at the model's precision otherwise)")
    p.add_argument("--data", help="evaluation text (default: the bundled text)")
    p.add_argument("--calib", help="calibration text for the sensitivities (default: the "
                   "windows of --data after the evaluated ones)")
    p.add_argument("--seq-len", type=positive_int, default=512, help="tokens per window")
    p.add_argument("--windows", type=positive_int, default=2, help="evaluated windows")
    p.add_argument("--calib-windows", type=positive_int, default=2,
                   help="calibration windows (sensitivities)")
    p.add_argument("--tokens", type=positive_int,
                   help="tokens the cost model prices per GEMM (default: --seq-len)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("-o", "--out", help="write the searched configuration as a rules file "
                   "(TOML) for numfab eval --config; several budgets: one file each, "
                   "OUT's stem suffixed _0, _1, ...")
    p.add_argument("--results", help="write everything (sensitivities, costs, uniform "
                   "and searched points, choices) as JSON for numfab report")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", type=device_arg, default="auto", metavar="DEVICE",
                   help=DEVICE_HELP)
    p.set_defaults(func=_cmd_search)
