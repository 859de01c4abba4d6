"""simulator.gemm against apytypes (sequential accumulation with a custom floating-point
accumulator, rounding after every addition). apytypes rounds each product to the
accumulator format first and needs fp32 operands (tests/formats/divergences.py)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from apytypes import APyFloatAccumulatorContext, APyFloatArray
from apytypes import QuantizationMode as Q

import formats
from simulator import Accumulator, gemm

MODES = {"nearest_even": Q.TIES_EVEN, "toward_zero": Q.TO_ZERO, "up": Q.TO_POS,
         "down": Q.TO_NEG, "nearest_away": Q.TIES_AWAY}
ACC = {"float32": (8, 23, 127), "float16": (5, 10, 15), "bfloat16": (8, 7, 127)}


def apy_gemm(a: np.ndarray, b: np.ndarray, acc: str, mode: str) -> np.ndarray:
    A = APyFloatArray.from_float(np.ascontiguousarray(a), 8, 23, 127)
    B = APyFloatArray.from_float(np.ascontiguousarray(b), 8, 23, 127)
    assert np.array_equal(A.to_numpy(), a) and np.array_equal(B.to_numpy(), b)
    e, m, bias = ACC[acc]
    with APyFloatAccumulatorContext(exp_bits=e, man_bits=m, bias=bias, quantization=MODES[mode]):
        return np.asarray((A @ B).to_numpy(), np.float64)


def ours(a: np.ndarray, b: np.ndarray, fmt: str, acc: str, mode: str) -> np.ndarray:
    return gemm(a, b, a_format=fmt, b_format=fmt, accumulator=Accumulator(
        acc, rounding=mode, product_format=acc, product_rounding=mode))


def _operands(fmt: str, seed: int, m: int = 64, k: int = 256, n: int = 64) -> tuple[
        np.ndarray, np.ndarray]:
    """Half the rows normal-ish data, half drawn from every value of the format."""
    f = formats.parse(fmt)
    rng = np.random.default_rng(seed)
    vals = f.finite_values()
    a = f.quantize(rng.standard_normal((m, k)) * np.exp2(rng.integers(-4, 4, (m, 1))))
    b = f.quantize(rng.standard_normal((k, n)))
    a[: m // 4] = rng.choice(vals, (m // 4, k)) * 2.0 ** -4
    b[:, : n // 4] = rng.choice(vals, (k, n // 4)) * 2.0 ** -4
    return f.quantize(a), f.quantize(b)


CASES = [(acc, mode) for acc in ("float32", "float16") for mode in MODES
         if acc == "float16" or mode in ("nearest_even", "toward_zero")]


FMTS = ["float8_e4m3fn", "float8_e5m2"]


# CI: every (accumulator, mode) once, the operand format alternating; NUMFAB_FULL=1: both
@pytest.mark.parametrize(("fmt", "acc", "mode"), [
    (f, acc, mode) for i, (acc, mode) in enumerate(CASES) for j, f in enumerate(FMTS)
    if os.environ.get("NUMFAB_FULL") == "1" or i % 2 == j])
def test_random_64x64x256(fmt: str, acc: str, mode: str) -> None:
    a, b = _operands(fmt, seed=len(fmt) * 100 + len(acc) * 10 + list(MODES).index(mode))
    got = ours(a, b, fmt, acc, mode)
    want = apy_gemm(a, b, acc, mode)
    np.testing.assert_array_equal(got, want)


def test_bfloat16_accumulator() -> None:
    a, b = _operands("float8_e4m3fn", seed=3, m=16, k=512, n=16)
    np.testing.assert_array_equal(ours(a, b, "float8_e4m3fn", "bfloat16", "nearest_even"),
                                  apy_gemm(a, b, "bfloat16", "nearest_even"))


@pytest.mark.parametrize("mode", list(MODES))
def test_edge_cases(mode: str) -> None:
    rows = [
        ([-256.0, 256.0], [128.0, 256.0]),        # a product overflows fp16 before the add
        ([2.0**-12, 2.0**-12], [2.0**-12, 2.0**-13]),  # products in fp16's subnormal range
        ([4096.0, -4096.0], [4096.0, 4096.0]),    # inf + -inf
        ([1.0, 1024.0, -1024.0], [1.0, 1.0, 1.0]),  # cancellation
        ([57344.0, 57344.0], [1.0, 1.0]),         # the sum overflows
        ([2.0**-14, -2.0**-15, 2.0**-16], [2.0**-2, 2.0**-3, 2.0**-4]),  # subnormal sums
    ]
    for xs, ys in rows:
        a = np.array([xs])
        b = np.array([ys]).T.copy()
        got = ours(a, b, "float8_e5m2", "float16", mode)
        want = apy_gemm(a, b, "float16", mode)
        assert got[0, 0] == want[0, 0] or (math.isnan(got[0, 0]) and math.isnan(want[0, 0])), (
            xs, ys, got, want)
