"""Seed claim: FP8 activations beat INT8 activations; weights bf16. FP8 is scaled per
tensor, INT8 per token (numfab eval's defaults: the INT8 side gets the finer scales).

    .venv/bin/python examples/fp8_vs_int8_acts.py [TOKENS]
"""

import sys

from _compare import compare, verdict

from numfab.evaluate import EvalConfig

n = int(sys.argv[1]) if len(sys.argv) > 1 else 512
r = compare({f: EvalConfig("smollm2", weights="bfloat16", acts=f, tokens=n)
             for f in ("float8_e4m3fn", "float8_e5m2", "int8")})
print(verdict(r, "float8_e4m3fn", "int8"))
