"""Seed claim: at block size 32, MXINT8 is as accurate as (or better than) MXFP8 E4M3.

Weights and activations of every SmolLM2 transformer Linear in each format.
    .venv/bin/python examples/mxint8_vs_mxfp8.py [TOKENS]
"""

import sys

from _compare import compare, verdict

from numfab.evaluate import EvalConfig

n = int(sys.argv[1]) if len(sys.argv) > 1 else 512
r = compare({f: EvalConfig("smollm2", weights=f, acts=f, tokens=n)
             for f in ("mxint8", "mxfp8_e4m3", "mxfp8_e5m2")})
print(verdict(r, "mxint8", "mxfp8_e4m3"))
