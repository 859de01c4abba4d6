"""Seed claim: NVFP4's E4M3 scales over 16 elements beat MXFP4's power-of-two scales over
32 (same FP4 E2M1 elements), for weights and activations.

    .venv/bin/python examples/mxfp4_vs_nvfp4_scales.py [TOKENS]
"""

import sys

from _compare import compare, verdict

from numfab.evaluate import EvalConfig

n = int(sys.argv[1]) if len(sys.argv) > 1 else 512
r = compare({f: EvalConfig("smollm2", weights=f, acts=f, tokens=n)
             for f in ("mxfp4", "nvfp4", "block<e2m1;e8m0;16;floor>")})
print(verdict(r, "nvfp4", "mxfp4"))
print("(block<e2m1;e8m0;16;floor>: power-of-two scales over 16 elements, to separate the "
      "block size from the scale format)")
