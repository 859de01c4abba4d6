"""Seed claim: NF4 weights (normal-quantile table) beat FP4 E2M1 weights, both with
per-group-of-64 absmax scales; activations unquantized.

    .venv/bin/python examples/nf4_vs_fp4_weights.py [TOKENS]
"""

import sys

from _compare import compare, verdict

from numfab.evaluate import EvalConfig

n = int(sys.argv[1]) if len(sys.argv) > 1 else 512
r = compare({f: EvalConfig("smollm2", weights=f, tokens=n)
             for f in ("block<nf4;float32;64;nearest>", "block<e2m1;float32;64;nearest>")})
print(verdict(r, "block<nf4;float32;64;nearest>", "block<e2m1;float32;64;nearest>"))
