"""gemm's interface: bad input, batching, torch, the CLI, and hypothesis vs the reference."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from numfab.cli import main
from simulator import Accumulator, gemm, quantize_operand
from simulator.reference import ref_gemm_operands


@pytest.mark.parametrize(("call", "match"), [
    (lambda: gemm(np.ones((2, 3)), np.ones((4, 2))), "K dimensions must agree"),
    (lambda: gemm(np.ones((2, 2, 3)), np.ones((3, 3, 2))), "do not broadcast"),
    (lambda: gemm(np.ones(3), np.ones((3, 2))), "at least 2 dimensions"),
    (lambda: gemm(np.ones((2, 3)), np.ones((3, 2)), a_format="nope"), "a_format: unknown"),
    (lambda: gemm(np.full((2, 3), 0.1), np.ones((3, 2))), "float32 cannot hold exactly"),
    (lambda: gemm(np.full((2, 3), 1 + 2.0**-23), np.full((3, 2), 1 + 2.0**-30),
                  a_format="float32", b_format="float64"), "not exact in float64"),
    (lambda: Accumulator("float32", order="diagonal"), "order must be one of"),
    (lambda: Accumulator("float32", rounding="bankers"), "rounding must be one of"),
    (lambda: Accumulator("float32", order="tree"), "tree_width must be a positive int"),
    (lambda: Accumulator("float32", tree_width=4), "need order='tree'"),
    (lambda: Accumulator("float16", rounding="stochastic"), "needs seed="),
    (lambda: Accumulator("int32", overflow="inf"), "overflow for int32 must be one of"),
    (lambda: Accumulator("int32", chunk=8), "floating-point accumulator"),
    (lambda: Accumulator("mxfp4"), "must be a scalar format"),
    (lambda: Accumulator("uint16"), "must be signed"),
    (lambda: Accumulator("float32", order="tree", tree_width=8, chunk=12),
     "multiple of tree_width"),
    (lambda: gemm(np.ones((2, 64)), np.ones((64, 2)), a_format="mxfp4", b_format="mxfp4",
                  accumulator=Accumulator("float32", order="tree", tree_width=64)),
     "must divide a's block size"),
])
def test_bad_input(call, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()


def test_integer_overflow_error_names_element_and_step() -> None:
    a = np.full((2, 4), 100.0)
    b = np.full((4, 3), 100.0)
    with pytest.raises(ValueError, match=r"output element \(0, 0\) in addition step 3"):
        gemm(a, b, a_format="int8", b_format="int8",
             accumulator=Accumulator("int16", overflow="error"))
    wrapped = gemm(a, b, a_format="int8", b_format="int8", accumulator="int16")
    assert wrapped[0, 0] == ((40000 + 2**15) % 2**16) - 2**15
    sat = gemm(a, b, a_format="int8", b_format="int8",
               accumulator=Accumulator("int16", overflow="saturate"))
    assert sat[0, 0] == 2**15 - 1


def test_batched_and_torch() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4, 40)).astype(np.float32)
    b = rng.standard_normal((40, 5)).astype(np.float32)
    acc = Accumulator("float16")
    got = gemm(a, b, a_format="e4m3", b_format="e4m3", accumulator=acc)
    assert got.shape == (3, 4, 5)
    for i in range(3):
        np.testing.assert_array_equal(got[i], gemm(a[i], b, a_format="e4m3",
                                                   b_format="e4m3", accumulator=acc))
    t = gemm(torch.from_numpy(a), torch.from_numpy(b), a_format="e4m3", b_format="e4m3",
             accumulator=acc)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_array_equal(t.numpy(), got)


# CI: 8 random settings (each compiles its kernels); NUMFAB_FULL=1: 25
@settings(max_examples=25 if os.environ.get("NUMFAB_FULL") == "1" else 8, deadline=None)
@given(st.sampled_from(["e4m3", "e5m2", "e3m2", "e2m1", "int4", "bfloat16"]),
       st.sampled_from(["float16", "bfloat16", "e5m7", "e4m6", "float32"]),
       st.sampled_from(["nearest_even", "toward_zero", "up", "down", "nearest_away"]),
       st.sampled_from(["sequential", "pairwise", "tree"]),
       st.integers(1, 3), st.integers(1, 40), st.integers(1, 3), st.integers(0, 2**16))
def test_random_settings_against_reference(fmt: str, accf: str, mode: str, order: str,
                                           m: int, k: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)) * 4
    b = rng.standard_normal((k, n)) * 4
    acc = Accumulator(accf, rounding=mode, order=order,
                      tree_width=4 if order == "tree" else None, overflow="saturate")
    got = gemm(a, b, a_format=fmt, b_format=fmt, accumulator=acc)
    ref = ref_gemm_operands(quantize_operand(a, fmt), quantize_operand(b, fmt, k_axis=-2),
                            acc)
    want = np.array([[float(Fraction(v)) for v in row] for row in ref])
    np.testing.assert_array_equal(got, want)


def test_cli_gemm(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gemm", "--a-format", "mxfp4", "--b-format", "mxfp4", "--acc", "float16",
                 "--m", "8", "--n", "8", "--k", "256"]) == 0
    out = capsys.readouterr().out
    assert "reference: exact" in out and "max_abs_error" in out and "ulp error" in out
    assert main(["gemm", "--acc", "nope"]) == 2
    assert "unknown format name" in capsys.readouterr().err
