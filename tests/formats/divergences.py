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
        "exact reference and gfloat instead. ml_dtypes also maps float32 subnormal inputs "
        "(2**-127 itself included) one binade up; numfab matches the exact reference."
    ),
    ("gfloat", "float8_e8m0fnu", "below 2**-127"): (
        "gfloat 0.5 rounds inputs below E8M0's least value 2**-127 to 2**-128 (or 0) under "
        "nearest and toward-zero, values E8M0 cannot hold; numfab clamps them to 2**-127 "
        "(E8M0 has no zero and no subnormals). Checked against the exact reference instead."
    ),
    ("torchao", "mx*", "scale code 0"): (
        "torchao 0.18 divides the elements of a block whose E8M0 scale is 2**-127 by 2**-126 "
        "(a clamp to float32's smallest normal, for Triton) but dequantizes with 2**-127, and "
        "its RCEIL path multiplies such blocks by 1.0; numfab uses the stored scale both ways."
    ),
    ("torchao", "mx*", "rceil near powers of two"): (
        "torchao computes ceil(log2(amax / max_pos)) with a float32 log2, so for amax/max_pos "
        "a few ulps above a power of two it picks the scale one binade too small; numfab takes "
        "the least power of two with max_pos * 2**k >= amax, exactly."
    ),
    ("torchao", "mx*", "Inf in a block"): (
        "torchao's FLOOR gives a block holding Inf the scale code 255 - emax_elem; numfab gives "
        "the NaN scale (the block decodes to NaN), as for NaN, per OCP MX v1.0 section 6.3."
    ),
    ("torchao", "nvfp4", "scales below 2**-6"): (
        "torchao clamps NVFP4 block scales to the smallest normal E4M3 (2**-6) where the "
        "smallest subnormal is meant (reported upstream); numfab rounds amax/6 to E4M3 with "
        "subnormals, so small blocks keep their precision."
    ),
    ("torchao", "nvfp4", "element division"): (
        "torchao multiplies elements by a float32 reciprocal of the scale (two roundings); "
        "NVFP4 divides by the quantized scale, which numfab does exactly. They differ only where "
        "the reciprocal's rounding moves a quotient across an E2M1 rounding boundary."
    ),
    ("torch", "float8_e4m3fn", "overflow"): (
        "torch saturates E4M3FN overflow (and +-Inf) to +-448; ml_dtypes and numfab's default "
        "give NaN. numfab matches torch with overflow='saturate'."
    ),
    ("apytypes", "float8 operands", "fp16 accumulator"): (
        "apytypes 0.5.1 multiplies fp8-format operands wrongly when the accumulator is fp16 "
        "(tiny products become 2**-20, subnormal operands mis-multiply, +inf then -inf gives "
        "-inf; cf. apytypes#742); operands are cast to fp32 first (exact) in our oracle tests."
    ),
    ("apytypes", "*", "fused products"): (
        "apytypes rounds every product to the accumulator format before adding it (not "
        "fused); the oracle tests model that with Accumulator(product_format=<the "
        "accumulator's format>). For fp32 accumulation of fp8 products both coincide."
    ),
    ("apytypes", "*", "sign of exact zero sums"): (
        "x + (-x) is -0 under rounding toward -inf in apytypes (IEEE 754 6.3); numfab's "
        "accumulator gives +0 in every mode. Values compare equal; tests compare values."
    ),
    ("torch", "*", "NaN codes"): (
        "torch keeps a NaN's sign and payload through casts and products; numfab's RTL emits "
        "one canonical NaN code per format (formats' nan_code). rtl.reference maps every "
        "reference NaN to that code before comparing."
    ),
    ("IEEE 754", "rtl FloatMac/BlockDot", "sign of exact zero sums"): (
        "the RTL accumulators follow simulator.Accumulator (x + (-x) = +0 in every rounding "
        "mode, -0 only for -0 + -0), not IEEE 754 6.3's -0 under rounding down, so hardware "
        "and simulator agree bit for bit."
    ),
}
