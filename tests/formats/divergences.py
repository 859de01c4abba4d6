"""numfab's record of where an oracle and numfab disagree, each with its reason.

This is the one place these are kept; tests consult it and README links here.
"""

from __future__ import annotations

#: (oracle, format, what) -> reason
DIVERGENCES: dict[tuple[str, str, str], str] = {
    ("ml_dtypes", "float4_e2m1fn", "NaN input"): (
        "ml_dtypes turns NaN into -0 in formats without NaN; numfab gives +0 under "
        "saturate and raises under overflow='error' (there is no NaN to give)."
    ),
    ("ml_dtypes", "float6_e2m3fn", "NaN input"): "as float4_e2m1fn",
    ("ml_dtypes", "float6_e3m2fn", "NaN input"): "as float4_e2m1fn",
    ("ml_dtypes", "float8_e8m0fnu", "ties"): (
        "E8M0 has no mantissa bits, so nearest-even must look at the exponent field's parity "
        "(as gfloat and the OCP MX rule do); ml_dtypes 0.6 rounds every tie up (the open "
        "upstream fix). numfab follows the code-parity rule; ties are checked against the "
        "exact reference and gfloat instead."
    ),
    ("gfloat", "float8_e8m0fnu", "below 2**-127"): (
        "gfloat 0.5 rounds inputs below E8M0's least value 2**-127 to 2**-128 (or 0) under "
        "nearest and toward-zero, values E8M0 cannot hold; numfab clamps them to 2**-127 "
        "(E8M0 has no zero and no subnormals). Checked against the exact reference instead."
    ),
    ("torch", "float8_e4m3fn", "overflow"): (
        "torch saturates E4M3FN overflow (and +-Inf) to +-448; ml_dtypes and numfab's default "
        "give NaN. numfab matches torch with overflow='saturate'."
    ),
}
