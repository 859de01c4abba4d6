"""Seed claim: with a Hadamard rotation NVINT4 overtakes NVFP4 (W4A4).

    .venv/bin/python examples/nvint4_vs_nvfp4.py [TOKENS]
"""

import sys

from _compare import compare, verdict

from numfab.evaluate import EvalConfig

n = int(sys.argv[1]) if len(sys.argv) > 1 else 512
pts = {}
for f in ("nvint4", "nvfp4"):
    for had in (False, True):
        pts[f + (" + hadamard" if had else "")] = EvalConfig("smollm2", weights=f, acts=f,
                                                             hadamard=had, tokens=n)
r = compare(pts)
print("plain:   ", verdict(r, "nvint4", "nvfp4"))
print("rotated: ", verdict(r, "nvint4 + hadamard", "nvfp4 + hadamard"))
