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


def _cmd_search(args: argparse.Namespace) -> int:
    from . import lm
    from ._io import atomic_write, check_output_file
    from .evaluate import resolve_device, text
    from .models import load_model
    from .search import group_costs, layer_groups, measure, rules_for, search

    cands = parse_candidates(args.candidates)
    out_path = check_output_file(args.out, "--out") if args.out else None
    dev = resolve_device(args.device, "--device")
    loaded = load_model(args.model, args.dtype, dev)
    model = loaded.model.to(dev)
    txt = lm.read_corpus(args.data) if args.data else text()
    wins = lm.windows(lm.tokenize(loaded.tokenizer, txt), args.seq_len, args.windows)
    ref = lm.reference(loaded, wins, dev, None)
    blocks = None
    if args.blocks:
        try:
            blocks = [int(b) for b in args.blocks.split(",")]
        except ValueError:
            raise ValueError(f"--blocks {args.blocks!r}: comma-separated block indices") \
                from None
    groups = layer_groups(model, blocks)
    if not groups:
        raise ValueError(f"--blocks {args.blocks}: no Linear layers in those blocks")
    tokens = args.tokens or args.seq_len
    costs = group_costs(model, groups, cands, tokens)
    uniform = {c.name: {k: float(v[:, i].sum()) for k, v in costs.items()}
               for i, c in enumerate(cands)}
    budgets = [parse_budget(b, uniform) for b in args.budget]
    pins: dict[str, str] = {}
    for p in args.pin or ():
        layer, eq, cname = p.partition("=")
        if not eq or not layer or not cname:
            raise ValueError(f"--pin {p!r}: give layer=candidate (e.g. "
                             f"model.layers.0.mlp.down_proj={cands[-1].name})")
        pins[layer] = cname
    res = search(model, wins, ref, dev, cands, budgets, blocks=blocks, tokens=tokens,
                 estimator=args.estimator, pins=pins)
    rows = []
    for c in cands:
        m = measure(model, wins, ref, dev, {n: c for g in groups for n in g})
        rows.append({"config": f"all {c.name}", **uniform[c.name], "kl": m["kl"],
                     "perplexity": m["perplexity"], "top1_agreement": m["top1_agreement"]})
    for pt in res.points:
        rows.append({"config": "searched " + ",".join(f"{k}<={v:.4g}"
                                                       for k, v in pt["budget"].items()),
                     **pt["totals"], "predicted": pt["predicted"], "kl": pt["kl"],
                     "perplexity": pt["perplexity"], "top1_agreement": pt["top1_agreement"],
                     "choice": {",".join(g): cands[pt["choice"][gi]].name
                                for gi, g in enumerate(groups)}})
    if out_path is not None and res.points:
        rules = rules_for(res.assignment(0))
        lines = []
        for pattern, spec in rules:
            lines.append(f"[{json.dumps(pattern)}]")
            for field in ("weight", "act", "granularity", "act_granularity"):
                v = getattr(spec, field)
                if v is not None and not (field.endswith("granularity") and v == "auto"):
                    lines.append(f"{field} = {json.dumps(str(v))}")
            lines.append("")
        atomic_write(out_path, "\n".join(lines))
    if args.json:
        print(json.dumps({"estimator": args.estimator, "groups": len(groups), "rows": rows}))
    else:
        print(f"{len(groups)} layer groups, {len(cands)} candidates, estimator "
              f"{args.estimator}, {wins.shape[0]} windows x {wins.shape[1]} tokens")
        print(f"{'configuration':42s} {'energy pJ/tok':>14s} {'weight bytes':>13s} "
              f"{'KL':>9s} {'ppl':>9s} {'top1':>6s}")
        for r in rows:
            print(f"{r['config'][:42]:42s} {r['energy']:14.4g} {r['bytes']:13.4g} "
                  f"{r['kl']:9.4g} {r['perplexity']:9.4g} {r['top1_agreement']:6.3f}")
        if out_path is not None:
            print(f"wrote {out_path} (the first budget's configuration; numfab eval "
                  "--config takes it)")
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
    p.add_argument("--budget", action="append", required=True,
                   help="key=value[,key=value]: energy (pJ per token), bytes (weights) or "
                   "area; a value may name a candidate (its uniform total). Repeat for a "
                   "front")
    p.add_argument("--estimator", choices=("fisher", "measured"), default="fisher",
                   help="sensitivity: second-order Fisher estimate (fast, default) or "
                   "the measured KL with one group quantized (exact, slow)")
    p.add_argument("--blocks", help="search only these transformer blocks (e.g. 0,1,2)")
    p.add_argument("--pin", action="append", help="layer=candidate (repeatable)")
    p.add_argument("--data", help="calibration/evaluation text (default: the bundled text)")
    p.add_argument("--seq-len", type=positive_int, default=512, help="tokens per window")
    p.add_argument("--windows", type=positive_int, default=2, help="windows")
    p.add_argument("--tokens", type=positive_int,
                   help="tokens the cost model prices per GEMM (default: --seq-len)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("-o", "--out", help="write the first budget's configuration as a rules "
                   "file (TOML) for numfab eval --config")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", type=device_arg, default="auto", metavar="DEVICE",
                   help=DEVICE_HELP)
    p.set_defaults(func=_cmd_search)
