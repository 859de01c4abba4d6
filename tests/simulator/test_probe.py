"""probe_accumulator: it infers known datapaths from simulator.gemm run as a black box
(the same probes run on a GPU's matmul), and refuses what it cannot probe."""

from __future__ import annotations

import os

import numpy as np
import pytest

from simulator import Accumulator
from simulator.probe import gemm_dot, probe_accumulator, simulated_dot, validation_set

FULL = os.environ.get("NUMFAB_FULL") == "1"


# CI: the H100's FP8 datapath and one where the probes must choose among models;
# NUMFAB_FULL=1 adds the other two
@pytest.mark.parametrize(("acc", "fmt", "out"), [p for i, p in enumerate([
    # the H100's FP8 datapath (simulator.silicon): 32 terms, 13-bit window from the
    # operands' exponents, truncation, a 14-bit register promoted every 128 products
    ("e8m13,toward_zero,fused32w13,align_from=exponents,chunk128->float32", "e4m3",
     "float32"),
    # a wide window with rounding (its step rounding observable), bfloat16 operands
    ("float32,nearest_even,fused8w26,align_rounding=nearest_even", "bfloat16", "float32"),
    # products summed apart from the accumulator, bfloat16 output
    ("float32,toward_zero,fused16w24,align_acc=false", "bfloat16", "bfloat16"),
    # plain float32 per-add accumulation
    ("float32,toward_zero", "float16", "float32"),
]) if FULL or i in (0, 2)], ids=lambda x: str(x))
def test_probe_recovers_known_datapaths(acc: str, fmt: str, out: str) -> None:
    truth = Accumulator.parse(acc)
    r = probe_accumulator(simulated_dot(truth, fmt, fmt, out), fmt, out_format=out,
                          k_max=256, checks=512)
    assert r.accumulator == truth, str(r)
    assert (r.checked, r.mismatches) == (512, 0)
    assert "reproduced bit for bit" in str(r)


def test_gemm_dot_embeds_probes_on_the_diagonal() -> None:
    a, b = validation_set("e4m3", count=40, k_max=37, seed=3)
    got = gemm_dot(lambda A, B: A @ B)(a, b)
    assert got.shape == (40,)
    np.testing.assert_array_equal(got, (a * b).sum(1))  # exact: e4m3 products in float64


def test_probe_bad_input() -> None:
    dot = simulated_dot(Accumulator("float32"), "e4m3")
    with pytest.raises(TypeError, match="dot must be a callable"):
        probe_accumulator("cublas", "e4m3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a_format must be a floating-point"):
        probe_accumulator(dot, "int8")
    with pytest.raises(ValueError, match="unknown"):
        probe_accumulator(dot, "e9m9x")
    with pytest.raises(ValueError, match="k_max must be an int >= 8"):
        probe_accumulator(dot, "e4m3", k_max=2)
    with pytest.raises(ValueError, match="returned 1 values for"):
        probe_accumulator(lambda a, b: np.zeros(1), "e4m3")


def test_probe_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from numfab.cli import main

    assert main(["probe-accumulator", "--target", "simulated", "--model",
                 "h100_bf16_triton", "--a", "bfloat16", "--k-max", "64", "--checks",
                 "128"]) == 0
    out = capsys.readouterr().out
    assert "terms fused per step:  16" in out and "inf_on_overflow" in out
    assert main(["probe-accumulator", "--target", "simulated"]) == 2
    assert "needs --model" in capsys.readouterr().err
    assert main(["probe-accumulator", "--target", "scaled_mm", "--device", "cpu"]) == 2
    assert "CUDA device" in capsys.readouterr().err
