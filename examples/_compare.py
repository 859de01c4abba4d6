"""Shared by the example scripts: evaluate a few points on SmolLM2 and print a table."""

from __future__ import annotations

import sys

from numfab.evaluate import EvalConfig, evaluate


def compare(points: dict[str, EvalConfig]) -> dict[str, dict[str, float]]:
    """Evaluate each labelled point; print perplexity, KL and top-1 agreement."""
    out = {}
    print(f"{'point':34s} {'bits w/a':>10s} {'ppl':>8s} {'KL':>9s} {'top1':>6s}")
    for label, cfg in points.items():
        r = evaluate(cfg)
        out[label] = r
        print(f"{label:34s} {r['bits_weights']:4.3g}/{r['bits_acts']:<5.3g} "
              f"{r['perplexity']:8.3f} {r['kl']:9.5f} {r['top1_agreement']:6.3f}")
        sys.stdout.flush()
    print(f"(reference perplexity {next(iter(out.values()))['reference_perplexity']:.3f})")
    return out


def verdict(results: dict[str, dict[str, float]], a: str, b: str) -> str:
    """Which of two points has the lower KL divergence, and by what factor."""
    ka, kb = results[a]["kl"], results[b]["kl"]
    lo, hi = (a, b) if ka <= kb else (b, a)
    ratio = max(ka, kb) / max(min(ka, kb), 1e-12)
    return f"{lo} is closer to the reference than {hi} (KL {ratio:.2f}x lower)"
