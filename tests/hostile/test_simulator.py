"""Hostile input to simulator/: every refusal a clear error naming the parameter and what
is allowed, every accepted input a value checked against exact Python-int / Fraction
arithmetic (never against numfab's own output)."""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from simulator import (
    Accumulator,
    bipolar_gemm,
    gemm,
    grouped_gemm,
    llm_int8_gemm,
    lut_gemm,
    techniques,
)
from simulator.torch import LayerSpec, QuantLayer, fake_quant, simulate


def _exact(a: Any, b: Any) -> list[list[int]]:
    """a @ b in Python integers."""
    a_, b_ = np.asarray(a).tolist(), np.asarray(b).tolist()
    return [[sum(int(a_[i][k]) * int(b_[k][j]) for k in range(len(b_)))
             for j in range(len(b_[0]))] for i in range(len(a_))]


def _wrap(v: int, bits: int) -> int:
    """v in a bits-bit two's-complement register (wrapping)."""
    return (v + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1)


# --- gemm: K = 0, M = 0, N = 0 ------------------------------------------------------

_EMPTY_FORMATS = [None, "e4m3", "mxfp4", "nvfp4", "mxfp8_e4m3", "int4_g32"]
_EMPTY_ACCS = {
    "float32": Accumulator("float32"),
    "down": Accumulator("float32", rounding="down"),
    "pairwise": Accumulator("bfloat16", order="pairwise"),
    "tree4": Accumulator("float16", order="tree", tree_width=4),
    "chunk8": Accumulator("float16", chunk=8),
    "exact": Accumulator(None),
    "int32": Accumulator("int32"),
}


@pytest.mark.parametrize("acc", list(_EMPTY_ACCS), ids=str)
@pytest.mark.parametrize("fmt", _EMPTY_FORMATS, ids=str)
def test_gemm_k0_is_the_empty_sum(fmt: str | None, acc: str) -> None:
    # the sum of no products is +0 whatever the formats (the accumulator starts at +0)
    a = np.zeros((2, 0), np.float32)
    b = np.zeros((0, 3), np.float32)
    out = gemm(a, b, a_format=fmt, b_format=fmt, accumulator=_EMPTY_ACCS[acc])
    assert out.shape == (2, 3)
    assert all(Fraction(float(v)) == 0 for v in out.ravel())
    assert not np.signbit(out).any()


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4", None], ids=str)
@pytest.mark.parametrize(("ashape", "bshape", "oshape"), [
    ((0, 32), (32, 3), (0, 3)), ((2, 32), (32, 0), (2, 0)), ((4, 2, 0), (0, 3), (4, 2, 3)),
    ((0, 2, 32), (32, 3), (0, 2, 3)),
], ids=["M0", "N0", "batched-K0", "batch0"])
def test_gemm_empty_dimensions(fmt: str | None, ashape: tuple[int, ...],
                               bshape: tuple[int, ...], oshape: tuple[int, ...]) -> None:
    out = gemm(np.zeros(ashape, np.float32), np.zeros(bshape, np.float32), a_format=fmt,
               b_format=fmt)
    assert out.shape == oshape
    assert not out.any() and not np.signbit(out).any()


# --- gemm: integer operands as documented (dtype inferred, exact) -------------------

_INT_CASES = {
    "int32-above-2**24": (np.array([[2**24 + 1, -(2**30) + 7]], np.int32),
                          np.array([[3], [5]], np.int32)),
    "int32-max-times-int22": (np.array([[2**31 - 1, -(2**31)]], np.int32),
                              np.array([[2**21 + 1], [-(2**21)]], np.int32)),
    "uint32-max": (np.array([[2**32 - 1, 2**31]], np.uint32),
                   np.array([[255], [3]], np.uint8)),
    "int64-as-int53": (np.array([[2**52 - 1, -(2**52)]], np.int64),
                       np.array([[1], [1]], np.int64)),
    "uint64": (np.array([[2**40 + 3]], np.uint64), np.array([[2**12 - 1]], np.uint64)),
    "int16-x-int32": (np.array([[-(2**15), 2**15 - 1]], np.int16),
                      np.array([[2**31 - 1], [-(2**31)]], np.int32)),
    "python-ints": ([[1, -2], [3, 4]], [[5], [6]]),
}


@pytest.mark.parametrize("case", list(_INT_CASES), ids=str)
def test_gemm_integer_operands_exact(case: str) -> None:
    a, b = _INT_CASES[case]
    got = gemm(a, b, accumulator=None)
    ref = _exact(a, b)
    # the exact sum correctly rounded to float64 (Python's int -> float rounds correctly)
    assert got.tolist() == [[float(v) for v in row] for row in ref]


def test_gemm_int32_operands_wrap_in_integer_accumulator() -> None:
    # one accumulator only: each integer-accumulator kernel costs seconds to compile
    a = np.array([[2**24 + 1, -(2**30) + 7, 2**29], [2**31 - 1, 1, -(2**31)]], np.int32)
    b = np.array([[3, -1], [5, 2**20], [7, 1]], np.int32)
    got = gemm(a, b, accumulator="int32")
    # wrapping is modular: wrapping each partial sum equals wrapping the exact sum
    ref = [[_wrap(v, 32) for v in row] for row in _exact(a, b)]
    assert got.tolist() == ref


def test_gemm_int32_torch_operands_exact() -> None:
    a = torch.tensor([[2**24 + 1, 2**30 - 1]], dtype=torch.int32)
    b = torch.tensor([[3], [-5]], dtype=torch.int32)
    got = gemm(a, b, accumulator=None)
    assert isinstance(got, torch.Tensor)
    assert int(got[0, 0]) == (2**24 + 1) * 3 + (2**30 - 1) * -5


@pytest.mark.parametrize(("a", "b", "match"), [
    (np.array([[2**31 - 1]], np.int32), np.array([[2**31 - 1]], np.int32),
     r"products of a's and b's values need 31 \+ 31 > 53 significant bits \(int32 x int32\)"
     r".*must add to at most 53"),
    (np.array([[2**52 + 1]], np.int64), np.array([[1]], np.int64),
     r"a holds int64 values outside int53's range -4503599627370496\.\.4503599627370495"),
    (np.array([[1]], np.uint64), np.array([[2**53]], np.uint64),
     r"b holds uint64 values outside uint53's range 0\.\.9007199254740991"),
    (np.array([[2**53 + 2]], np.int64), np.array([[1]], np.int64),
     r"a holds int64 values outside int53's range .*64-bit integer operands take the integers "
     r"float64 holds exactly"),
], ids=["int32-full-range", "int64-beyond-int53", "uint64-2**53", "int64-beyond-2**53"])
def test_gemm_integer_operands_beyond_float64_refused(a: Any, b: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gemm(a, b, accumulator=None)


@pytest.mark.parametrize(("a", "b", "exc", "match"), [
    (np.array([[True]]), np.array([[True]]), TypeError,
     r"a must hold real numbers \(float16/32/64, integers, Fractions\), not dtype bool"),
    (np.ones((1, 1)), np.array([[1j]]), TypeError,
     r"b must hold real numbers \(float16/32/64, integers, Fractions\), not dtype "
     r"complex128"),
    (np.array([["a"]], object), np.ones((1, 1)), TypeError,
     r"a must hold real numbers \(float, int, Fraction, Decimal\), not str"),
    (np.ones(3, np.float32), np.ones((3, 2), np.float32), ValueError,
     r"a must have at least 2 dimensions, not shape \(3,\)"),
    (np.ones((2, 3), np.float32), np.float32(1.0), ValueError,
     r"b must have at least 2 dimensions, not shape \(\)"),
    (np.ones((2, 3), np.float32), np.ones((4, 2), np.float32), ValueError,
     r"a of shape \(2, 3\) is \(\.\.\., M, K=3\) and b of shape \(4, 2\) is "
     r"\(\.\.\., K=4, N\): the K dimensions must agree"),
    (np.ones((2, 2, 3), np.float32), np.ones((3, 3, 2), np.float32), ValueError,
     r"batch dimensions of a \(2,\) and b \(3,\) do not broadcast"),
    (np.ones((2, 32), np.float32), np.ones((16, 2), np.float32), ValueError,
     r"a of shape \(2, 32\) is \(\.\.\., M, K=32\) and b of shape \(16, 2\) is "
     r"\(\.\.\., K=16, N\)"),
], ids=["bool", "complex", "object", "1-D-a", "0-D-b", "K-differs", "batch-mismatch",
        "K-differs-blocks"])
def test_gemm_bad_operands(a: Any, b: Any, exc: type[Exception], match: str) -> None:
    fmt = "mxfp4" if a.shape[-1:] == (32,) else None
    with pytest.raises(exc, match=match):
        gemm(a, b, a_format=fmt, b_format=fmt)


@pytest.mark.parametrize("acc", ["int32", None], ids=["int32", "exact"])
@pytest.mark.parametrize(("which", "bad"), [("a", np.nan), ("a", np.inf), ("b", -np.inf)],
                         ids=["a-nan", "a-inf", "b-ninf"])
def test_gemm_nonfinite_with_integer_accumulator(acc: str | None, which: str,
                                                 bad: float) -> None:
    a = np.ones((2, 3), np.float32)
    b = np.ones((3, 2), np.float32)
    (a if which == "a" else b)[1, 1] = bad
    with pytest.raises(ValueError, match=rf"{which} holds NaN or Inf, which the "
                       rf"{acc or 'exact'} accumulator cannot hold; integer and exact "
                       "accumulators take finite operands"):
        gemm(a, b, accumulator=acc)


# --- simulator.torch: rules, empty layers, LayerSpec fields -------------------------

def _linear(fan_in: int, fan_out: int) -> nn.Linear:
    """nn.Linear, whose initialisation warns for an empty weight (torch's warning, pinned
    here so that warnings stay errors)."""
    if fan_in and fan_out:
        return nn.Linear(fan_in, fan_out)
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        return nn.Linear(fan_in, fan_out)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))


@pytest.mark.parametrize("regex", ["[", "(a", "*x", "a{2,1}"], ids=str)
def test_simulate_invalid_regex_rule(regex: str) -> None:
    m = _model()
    with pytest.raises(ValueError, match=rf"rule 're:{re.escape(regex)}': "
                       rf"'{re.escape(regex)}' is not a valid regular expression \("):
        simulate(m, {"re:" + regex: LayerSpec(weight="int8")})
    assert not any(isinstance(x, QuantLayer) for x in m.modules())


@pytest.mark.parametrize(("spec", "match"), [
    ({"wieght": "int8"}, r"unknown LayerSpec field\(s\) 'wieght' \(did you mean 'weight'\?\)"
                         r"; valid fields: weight, act, output, kv, granularity"),
    ({"weight": "int8", "hadamard_blocks": 4},
     r"unknown LayerSpec field\(s\) 'hadamard_blocks' \(did you mean 'hadamard_block'\?\)"),
    ({"zzz": 1}, r"unknown LayerSpec field\(s\) 'zzz'; valid fields: weight, act"),
], ids=["wieght", "hadamard_blocks", "zzz"])
def test_simulate_unknown_spec_keys(spec: dict[str, Any], match: str) -> None:
    with pytest.raises(TypeError, match=r"rule '\*': " + match):
        simulate(_model(), {"*": spec})


def test_simulate_rule_value_error_names_rule() -> None:
    with pytest.raises(ValueError, match=r"rule '0': gptq_damp must be a positive finite"):
        simulate(_model(), {"0": {"weight": "int4", "gptq": True, "gptq_damp": -5}})


_EMPTY_SPECS = {
    "fake": LayerSpec(weight="int8", act="int8"),
    "bit-true-mxfp4": LayerSpec(weight="mxfp4", act="mxfp4", accumulator="float32"),
    "tensor-scaled": LayerSpec(weight="int4", granularity="tensor", act="int8",
                               act_granularity="tensor", output="e4m3"),
    "bit-true-exact": LayerSpec(weight="nvfp4", accumulator="exact"),
    "gptq": LayerSpec(weight="int4", gptq=True),
    "smoothquant": LayerSpec(weight="mxfp4", rearrange=True, smoothquant=0.5),
    "outliers": LayerSpec(weight="int4", outliers=6.0),
    "clip": LayerSpec(weight="int4", clip="mse"),
}


@pytest.mark.parametrize("spec", list(_EMPTY_SPECS), ids=str)
@pytest.mark.parametrize(("fan_in", "fan_out", "xshape"), [
    (0, 4, (2, 0)), (4, 0, (2, 4)), (4, 3, (0, 4)),
], ids=["in0", "out0", "tokens0"])
def test_simulate_empty_linear(spec: str, fan_in: int, fan_out: int,
                               xshape: tuple[int, ...]) -> None:
    lin = _linear(fan_in, fan_out)
    with torch.no_grad():
        lin.bias.copy_(torch.arange(fan_out) + 0.5)
    m = nn.Sequential(lin)
    x = torch.ones(xshape)
    sim = simulate(m, _EMPTY_SPECS[spec])
    if _EMPTY_SPECS[spec].needs_calibration:
        sim.calibrate([x])
    y = sim(x)
    sim.restore()
    assert tuple(y.shape) == xshape[:-1] + (fan_out,)
    # no input features: every output is the empty sum (0) plus the bias, exactly
    if fan_in == 0:
        assert [[Fraction(float(v)) for v in row] for row in y.tolist()] == \
            [[Fraction(2 * j + 1, 2) for j in range(fan_out)]] * xshape[0]


@pytest.mark.parametrize(("kw", "exc", "match"), [
    (dict(gptq_damp=-5), ValueError, r"gptq_damp must be a positive finite number .*not -5"),
    (dict(gptq_damp=0), ValueError, r"gptq_damp must be a positive finite number .*not 0"),
    (dict(gptq_damp=math.nan), ValueError, r"gptq_damp must be a positive finite.*not nan"),
    (dict(gptq_damp=math.inf), ValueError, r"gptq_damp must be a positive finite.*not inf"),
    (dict(gptq_damp=True), TypeError, r"gptq_damp must be a positive finite.*not True"),
    (dict(gptq_damp="0.1"), TypeError, r"gptq_damp must be a positive finite.*not '0\.1'"),
    (dict(outliers=-1.0), ValueError, r"outliers must be a positive finite threshold on \|x\|"
                                      r".*not -1\.0"),
    (dict(outliers=0), ValueError, r"outliers must be a positive finite threshold.*not 0"),
    (dict(outliers=math.inf), ValueError, r"outliers must be a positive finite.*not inf"),
    (dict(outliers="6"), TypeError, r"outliers must be None or a positive finite threshold"),
    (dict(outliers=6.0, accumulator="float32"), ValueError,
     r"outliers \(LLM\.int8\(\) decomposition\) runs as fake quantization.*accumulator="),
    (dict(hadamard="block", hadamard_block=True), TypeError,
     r"hadamard_block must be an int \(a power of two\), not True"),
    (dict(hadamard="block", hadamard_block=4.0), TypeError,
     r"hadamard_block must be an int \(a power of two\), not 4\.0"),
    (dict(hadamard="block", hadamard_block=0), ValueError,
     r"hadamard_block must be a positive power of two \(1, 2, 4, \.\.\.\), not 0"),
    (dict(hadamard="block", hadamard_block=-4), ValueError,
     r"hadamard_block must be a positive power of two .*not -4"),
    (dict(hadamard="block", hadamard_block=12), ValueError,
     r"hadamard_block must be a positive power of two .*not 12"),
    (dict(hadamard="full", hadamard_block=4), ValueError,
     r"hadamard_block applies to hadamard='block', not 'full'"),
    (dict(smoothquant=1.5), ValueError, r"smoothquant \(alpha\) must be in \[0, 1\], not 1\.5"),
    (dict(smoothquant=-0.1), ValueError, r"smoothquant \(alpha\) must be in \[0, 1\]"),
    (dict(smoothquant=math.nan), ValueError, r"smoothquant \(alpha\) must be in \[0, 1\]"),
    (dict(smoothquant=True), TypeError, r"smoothquant must be None or the migration strength"
                                        r" alpha, a number in \[0, 1\], not True"),
    (dict(rearrange=1), TypeError, r"rearrange must be True or False, not 1"),
    (dict(gptq="yes"), TypeError, r"gptq must be True or False, not 'yes'"),
    (dict(act_order=None), TypeError, r"act_order must be True or False, not None"),
    (dict(granularity="group:0"), ValueError,
     r"granularity must be .*'group:<k>' \(k a positive integer\), not 'group:0'"),
    (dict(act_granularity="group:-3"), ValueError,
     r"act_granularity must be .*'group:<k>' \(k a positive integer\), not 'group:-3'"),
], ids=lambda v: str(v) if not isinstance(v, dict) else
    "-".join(f"{k}={v[k]}" for k in v))
def test_layerspec_fields(kw: dict[str, Any], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        LayerSpec(weight="int4", **kw)


@pytest.mark.parametrize(("spec", "fan_in", "match"), [
    (LayerSpec(weight="int4", hadamard="block", hadamard_block=8), 12,
     r"layer '0': Hadamard block 8 must be a power of two dividing K=12"),
    (LayerSpec(weight="int4", hadamard="full"), 12,
     r"layer '0': hadamard='full' needs K a power of two, not 12"),
    (LayerSpec(weight="int4", hadamard="full"), 0,
     r"layer '0': hadamard='full' needs K a power of two, not 0"),
    (LayerSpec(weight="int4", hadamard_block=4), 8,
     r"layer '0': hadamard_block=4 needs hadamard='block'"),
    (LayerSpec(weight="int4", act_order=True), 8, r"layer '0': act_order needs gptq=True"),
], ids=["block-not-dividing", "full-not-pow2", "full-K0", "block-without-hadamard",
        "act_order-without-gptq"])
def test_simulate_layer_checks(spec: LayerSpec, fan_in: int, match: str) -> None:
    m = nn.Sequential(_linear(fan_in, 4))
    with pytest.raises(ValueError, match=match):
        simulate(m, spec)
    assert isinstance(m[0], nn.Linear)


def test_simulate_merged_rules_conflict_names_layer() -> None:
    with pytest.raises(ValueError, match=r"layer '2' \(rules merged\): outliers \(LLM\.int8"):
        simulate(_model(), [("*", LayerSpec(weight="int4", accumulator="float32")),
                            ("2", {"outliers": 6.0})])


def test_hadamard_block_one_is_the_identity() -> None:
    m = _model()
    x = torch.linspace(-2, 2, 24).reshape(3, 8)
    ref = m(x).detach()
    with simulate(m, LayerSpec(hadamard="block", hadamard_block=1)) as sm:
        assert torch.equal(sm(x).detach(), ref)


@pytest.mark.parametrize(("hessian", "damp", "match"), [
    (torch.full((4, 4), math.nan), 0.01,
     r"gptq: the Hessian dampened by damp=0\.01 is not positive definite"),
    (torch.eye(4), -1.0, r"damp must be a positive finite number .*not -1\.0"),
], ids=["nan-hessian", "negative-damp"])
def test_gptq_bad_hessian_or_damp(hessian: torch.Tensor, damp: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        techniques.gptq(torch.ones(2, 4), hessian, "int4", damp=damp)


# --- Accumulator, gemm's format arguments -------------------------------------------

@pytest.mark.parametrize(("kw", "exc", "match"), [
    (dict(format=123), TypeError, r"format: format name must be a str, not int"),
    (dict(format="bogus"), ValueError, r"format: unknown format name 'bogus'"),
    (dict(format="mxfp4"), ValueError, r"format must be a scalar format, not the block"),
    (dict(order="zigzag"), ValueError,
     r"order must be one of 'sequential', 'pairwise', 'tree', 'fused' \(or the enum\), "
     r"not 'zigzag'"),
    (dict(order=None), ValueError, r"order must be one of 'sequential', 'pairwise', 'tree', "
     r"'fused'"),
    (dict(order="tree", tree_width=0), ValueError,
     r"tree_width must be a positive int with order 'tree', not 0"),
    (dict(order="tree", tree_width=-1), ValueError, r"tree_width must be a positive int.*-1"),
    (dict(order="tree", tree_width=True), ValueError,
     r"tree_width must be a positive int.*not True"),
    (dict(tree_width=4), ValueError, r"tree_width and tree_format need order='tree'"),
    (dict(chunk=0), ValueError, r"chunk must be a positive int or None, not 0"),
    (dict(chunk=-1), ValueError, r"chunk must be a positive int or None, not -1"),
    (dict(chunk=2.5), ValueError, r"chunk must be a positive int or None, not 2\.5"),
    (dict(rounding="banker"), ValueError,
     r"rounding must be one of 'nearest_even', .*'stochastic' \(or the enum\), not 'banker'"),
    (dict(overflow="explode"), ValueError,
     r"overflow must be one of 'saturate', 'inf', 'nan', 'wrap', 'error'.*not 'explode'"),
    (dict(format="float16", rounding="stochastic", seed=1, rand_bits=0), ValueError,
     r"rand_bits must be an int in 1\.\.40 for float16, not 0"),
    (dict(format="float16", seed=1.5), TypeError, r"seed must be an int, not 1\.5"),
    (dict(order="tree", tree_width=4, tree_format="int8"), ValueError,
     r"tree_format must be a Minifloat, not int8"),
    (dict(chunk_format=None), ValueError, r"chunk_format must be a Minifloat, not None"),
], ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else str(v))
def test_accumulator_bad_arguments(kw: dict[str, Any], exc: type[Exception],
                                   match: str) -> None:
    with pytest.raises(exc, match=match):
        Accumulator(**kw)


@pytest.mark.parametrize(("kw", "exc", "match"), [
    (dict(accumulator=5), TypeError, r"accumulator must be an Accumulator, its text \(e\.g\. "
                                     r"'float32,nearest_even,tree32'\), a format, or None "
                                     r"\(exact\), not int"),
    (dict(out_format="zz"), ValueError, r"out_format: unknown format name 'zz'"),
    (dict(out_format=5), TypeError, r"out_format: format name must be a str, not int"),
    (dict(out_format="mxfp4"), ValueError, r"out_format must be a scalar format, not mxfp4"),
    (dict(a_format=5), TypeError, r"a_format: format name must be a str, not int"),
    (dict(b_format="block<e4m3;e8m0;4x4;floor>"), ValueError,
     r"b_format block<.*>: gemm blocks along K and takes 1-D blocks, not tiles \(4, 4\)"),
], ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else str(v))
def test_gemm_bad_format_arguments(kw: dict[str, Any], exc: type[Exception],
                                   match: str) -> None:
    with pytest.raises(exc, match=match):
        gemm(np.ones((2, 4), np.float32), np.ones((4, 2), np.float32), **kw)


# --- the seed hardware's GEMMs --------------------------------------------------------

_I = np.ones((2, 4))
_W = np.ones((4, 2))


@pytest.mark.parametrize(("call", "exc", "match"), [
    (lambda: bipolar_gemm(_I, np.ones((5, 2)), a_format="int4", b_format="int4"), ValueError,
     r"a is \(M, K=4\) and b is \(K=5, N\): the K dimensions must agree"),
    (lambda: bipolar_gemm(np.ones((2, 2, 4)), _W, a_format="int4", b_format="int4"),
     ValueError, r"a must be a 2-D matrix, not shape \(2, 2, 4\)"),
    (lambda: bipolar_gemm(_I, _W, a_format="e4m3", b_format="int4"), ValueError,
     r"a_format must be a bipolar<n> or signed int<n> format, not float8_e4m3fn"),
    (lambda: bipolar_gemm(_I, _W, a_format="int4", b_format="uint4"), ValueError,
     r"b_format must be a bipolar<n> or signed int<n> format, not uint4"),
    (lambda: bipolar_gemm(_I, _W, a_format=None, b_format="int4"), TypeError,
     r"a_format: format name must be a str, not NoneType"),
    (lambda: bipolar_gemm(_I * 9, _W, a_format="int4", b_format="int4"), ValueError,
     r"a must hold int4 integers \(-8\.\.7\)"),
    (lambda: bipolar_gemm(_I * 2, _W, a_format="bipolar4", b_format="int4"), ValueError,
     r"a must hold bipolar4 values \(odd integers -15\.\.15\)"),
    (lambda: bipolar_gemm(_I, _W, a_format="int4", b_format="int4", method="x"), ValueError,
     r"method must be one of fused, planes, pairs, not 'x'"),
    (lambda: lut_gemm(_I, _W, w_format="int4", group=0), ValueError,
     r"group must be an int in 1\.\.8, not 0"),
    (lambda: lut_gemm(_I, _W, w_format="int4", group=9), ValueError,
     r"group must be an int in 1\.\.8, not 9"),
    (lambda: lut_gemm(_I, _W, w_format="int4", group=True), ValueError,
     r"group must be an int in 1\.\.8, not True"),
    (lambda: lut_gemm(_I, np.ones((5, 2)), w_format="int4"), ValueError,
     r"x is \(M, K=4\) and w is \(K=5, N\): the K dimensions must agree"),
    (lambda: lut_gemm(_I, _W, w_format="int4", symmetric="no"), TypeError,
     r"symmetric must be True or False, not 'no'"),
    (lambda: lut_gemm(_I, _W, w_format="int4", table_format="mxfp4"), ValueError,
     r"table_format must be an int<n> or float format, not mxfp4"),
    (lambda: lut_gemm(_I, _W, w_format="int4", table_format="zz"), ValueError,
     r"table_format: unknown format name 'zz'"),
    (lambda: lut_gemm(_I, _W * 0.5, w_format="int4"), ValueError,
     r"w must hold int4 integers \(-8\.\.7\)"),
    (lambda: grouped_gemm(_I, _W, w_format="int4_g0"), ValueError,
     r"w_format: block_size must be a positive int or a \(rows, cols\) tuple of them, not 0"),
    (lambda: grouped_gemm(_I, _W, w_format="e4m3"), ValueError,
     r"w_format must be a block format with integer elements"),
    (lambda: grouped_gemm(_I, np.ones((5, 2))), ValueError,
     r"x is \(M, K=4\) and w is \(K=5, N\): the K dimensions must agree"),
    (lambda: grouped_gemm(_I, _W, x_format="mxint8"), ValueError,
     r"x_format must be an integer format \(e\.g\. int8\), not mxint8"),
    (lambda: grouped_gemm(_I, _W, accumulator=5), TypeError,
     r"accumulator must be an Accumulator, its text .*, a format, or None \(exact\)"),
    (lambda: grouped_gemm(_I, _W, accumulator="int32"), ValueError,
     r"grouped_gemm's accumulator .* must be a float format or exact"),
    (lambda: grouped_gemm(_I, _W, compare="no"), TypeError,
     r"compare must be True or False, not 'no'"),
    (lambda: llm_int8_gemm(_I, _W, threshold=-1), ValueError,
     r"threshold must be a positive finite number \(input channels with \|x\| >= threshold"),
    (lambda: llm_int8_gemm(_I, _W, threshold=math.nan), ValueError,
     r"threshold must be a positive finite number .*not nan"),
    (lambda: llm_int8_gemm(_I, _W, threshold="6"), TypeError,
     r"threshold must be a positive finite number, not '6'"),
], ids=["bip-K", "bip-3d", "bip-float", "bip-uint", "bip-None", "bip-range", "bip-even",
        "bip-method", "lut-group0", "lut-group9", "lut-groupTrue", "lut-K", "lut-symmetric",
        "lut-table-block", "lut-table-unknown", "lut-w-frac", "grp-g0", "grp-float", "grp-K",
        "grp-x-block", "grp-acc-type", "grp-acc-int", "grp-compare", "int8-neg", "int8-nan",
        "int8-str"])
def test_hardware_bad_input(call: Any, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize(("m", "k", "n"), [(0, 4, 2), (2, 0, 3), (2, 4, 0)],
                         ids=["M0", "K0", "N0"])
@pytest.mark.parametrize("which", ["bipolar", "lut", "grouped", "llm_int8"], ids=str)
def test_hardware_empty_dimensions(which: str, m: int, k: int, n: int) -> None:
    x, w = np.zeros((m, k)), np.zeros((k, n))
    if which == "bipolar":
        r = bipolar_gemm(x, w, a_format="int4", b_format="int4")
    elif which == "lut":
        r = lut_gemm(x, w, w_format="int4")
    elif which == "grouped":
        r = grouped_gemm(x, w, w_format="int4_g32")
    else:
        r = llm_int8_gemm(x, w)
    # the empty sum: zeros of shape (M, N)
    assert r.out.shape == (m, n)
    assert all(Fraction(int(v) if r.out.dtype.kind == "i" else float(v)) == 0
               for v in r.out.ravel())


# --- simulate's config and helpers ----------------------------------------------------

@pytest.mark.parametrize(("call", "exc", "match"), [
    (lambda: simulate(_model(), 5), TypeError,
     r"config must be a LayerSpec, a mapping \{pattern: LayerSpec or dict\} or a list"),
    (lambda: simulate(_model(), {5: LayerSpec()}), TypeError,
     r"layer patterns must be strings, not 5"),
    (lambda: simulate("m", LayerSpec()), TypeError,
     r"model must be a torch\.nn\.Module, not str"),
    (lambda: simulate(_model(), {"*": "int8"}), TypeError,
     r"rule '\*': spec must be a LayerSpec or a dict, not str"),
    (lambda: simulate(_model(), {"zz": LayerSpec(weight="int8")}), ValueError,
     r"pattern 'zz' matches no layer; layers: 0, 2"),
    (lambda: simulate(_model(), [("*",)]), TypeError,
     r"config entries must be \(pattern, spec\) pairs, not \('\*',\)"),
    (lambda: LayerSpec(accumulator=5), TypeError,
     r"accumulator must be None \(fake quantization\), an Accumulator, a format or its name"),
    (lambda: LayerSpec(accumulator="zz"), ValueError,
     r"accumulator: format: unknown format name 'zz'"),
    (lambda: LayerSpec(weight="zz"), ValueError, r"weight: unknown format name 'zz'"),
    (lambda: LayerSpec(hadamard=True), ValueError,
     r"hadamard must be None, 'full' or 'block', not True"),
    (lambda: LayerSpec(clip=1), ValueError, r"clip must be None or 'mse', not 1"),
    (lambda: LayerSpec(weight="mxfp4", granularity="channel"), ValueError,
     r"granularity='channel' with block format mxfp4: .*leave it 'auto'"),
    (lambda: fake_quant(np.ones((2, 4)), "int8"), TypeError,
     r"x must be a torch\.Tensor, not ndarray"),
    (lambda: fake_quant(torch.ones(2, 4), "int8", "zz"), ValueError,
     r"granularity must be 'auto', 'none', 'tensor', 'channel' or 'group:<k>'"),
    (lambda: simulate(nn.Sequential(nn.Conv2d(2, 2, 1)),
                      LayerSpec(weight="int8", accumulator="float32")), ValueError,
     r"layer '0' \(Conv2d\): bit-true routing through simulator\.gemm takes nn\.Linear"),
], ids=["config-int", "pattern-int", "model-str", "spec-str", "no-match", "pair-short",
        "acc-int", "acc-unknown", "weight-unknown", "hadamard-bool", "clip-int",
        "block-granularity", "fake_quant-numpy", "fake_quant-granularity", "conv-bit-true"])
def test_simulate_bad_config(call: Any, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        call()
