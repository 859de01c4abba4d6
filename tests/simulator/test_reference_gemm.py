"""simulator.gemm against the exact-rational reference (simulator.reference) for every
accumulator setting, on small shapes."""

from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np
import pytest

from formats import Rounding, parse
from simulator import Accumulator, gemm, quantize_operand
from simulator.reference import ref_gemm_operands, ref_round


def _data(m: int, k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Operands with magnitudes spread over many binades and some cancellation."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)) * np.exp2(rng.integers(-6, 7, (m, k)))
    b = rng.standard_normal((k, n)) * np.exp2(rng.integers(-6, 7, (k, n)))
    b[:, 0] = -b[:, 1]  # column 0 cancels column 1's terms
    return a, b


def _compare(a, b, af, bf, acc, out_format=None) -> None:  # type: ignore[no-untyped-def]
    got = gemm(a, b, a_format=af, b_format=bf, accumulator=acc, out_format=out_format)
    opa = quantize_operand(a, af, "a")
    opb = quantize_operand(b, bf, "b", k_axis=-2)
    ref = ref_gemm_operands(opa, opb, acc)
    ts = Fraction(opa.tensor_scale) * Fraction(opb.tensor_scale)
    want = np.empty(got.shape)
    for i, row in enumerate(ref):
        for j, v in enumerate(row):
            if isinstance(v, float):
                want[i, j] = v
            elif out_format is not None:
                r = ref_round(v * ts, parse(out_format), Rounding.NEAREST_EVEN)
                want[i, j] = float(r)
            else:
                want[i, j] = float(v * ts)
    np.testing.assert_array_equal(got, want)


FULL = os.environ.get("NUMFAB_FULL") == "1"

ACCS = [
    Accumulator("float32"),
    Accumulator("float16"),
    Accumulator("bfloat16"),
    Accumulator("e5m10", rounding="toward_zero"),
    Accumulator("float16", rounding="up"),
    Accumulator("float16", rounding="down"),
    Accumulator("float16", rounding="nearest_away"),
    Accumulator("e4m5", overflow="saturate"),
    Accumulator("e3m6"),
    Accumulator("float16", order="pairwise"),
    Accumulator("bfloat16", order="pairwise", rounding="toward_zero"),
    Accumulator("float16", order="tree", tree_width=4),
    Accumulator("float16", order="tree", tree_width=8, tree_format="e6m12",
                tree_rounding="toward_zero"),
    Accumulator("float16", chunk=8),
    Accumulator("bfloat16", chunk=16, chunk_format="float16"),
    Accumulator("float16", order="pairwise", chunk=8),
    Accumulator("float32", product_format="float16"),
    Accumulator("float32", product_format="bfloat16", product_rounding="toward_zero"),
    Accumulator("float16", rounding="stochastic", seed=7),
    Accumulator("bfloat16", rounding="stochastic", seed=3, rand_bits=4),
    Accumulator("float16", order="pairwise", rounding="stochastic", seed=11),
    Accumulator("float64"),
    Accumulator(None),
    Accumulator("exact", product_format="bfloat16"),
    Accumulator("float32", product_format="e4m3"),
    Accumulator("float32", rounding="toward_zero", order="fused", tree_width=4, align_bits=13),
    Accumulator("float16", rounding="toward_zero", order="fused", tree_width=8, align_bits=10,
                chunk=32),
    Accumulator("float32", order="fused", tree_width=16, align_bits=24,
                align_rounding="nearest_even"),
    Accumulator("bfloat16", order="fused", tree_width=4, align_bits=12, align_acc=False),
    Accumulator("float16", rounding="stochastic", seed=5, order="fused", tree_width=4,
                align_bits=14),
]


# CI: one accumulator per behaviour (each compiles its own kernels and the exact
# reference is slow); NUMFAB_FULL=1 runs every one. Left out of CI: the plain repeats of
# float16 in other modes/orders, which the hypothesis test of test_gemm_api and the
# apytypes comparison cover too.
CI_ACCS = ["float32,nearest_even", "float16,nearest_even", "float16,toward_zero",
           "float16,down", "e4m5,nearest_even,overflow=saturate",
           "bfloat16,toward_zero,pairwise", "float16,nearest_even,tree8@e6m12,tree_rounding="
           "toward_zero", "bfloat16,nearest_even,chunk16->float16",
           "float32,nearest_even,products@bfloat16,product_rounding=toward_zero",
           "bfloat16,stochastic,seed=3,rand_bits=4", "exact", "exact,products@bfloat16",
           "float16,toward_zero,fused8w10,chunk32->float32",
           "bfloat16,nearest_even,fused4w12,align_acc=false"]


def _ci(accs: list[Accumulator]) -> list[Accumulator]:
    if FULL:
        return accs
    chosen = [a for a in accs if str(a) in CI_ACCS]
    assert len(chosen) == len(CI_ACCS), [str(a) for a in chosen]
    return chosen


@pytest.mark.parametrize("acc", _ci(ACCS), ids=str)
def test_float_accumulators_against_reference(acc: Accumulator) -> None:
    """e4m3 x e5m2 products keep every float64 sum exact (the kernel's shortcut);
    float16 x float16 products span more than 53 bits (TwoSum and round-to-odd)."""
    a, b = _data(3, 37, 4, seed=len(str(acc)))
    _compare(a, b, "e4m3", "e5m2", acc)
    a = a * np.exp2(np.arange(37) % 9 - 4)
    if acc.exact:
        # the exact accumulator keeps at most 62 significant bits (a documented limit)
        with pytest.raises(ValueError, match="at most 62 significant bits"):
            gemm(a, b, a_format="float16", b_format="float16", accumulator=acc)
    elif acc.tree_width is not None and acc.order.value == "tree":
        # an exact adder-tree group must fit float64's 53 bits (a documented limit)
        with pytest.raises(ValueError, match="beyond float64's exact 53"):
            gemm(a, b, a_format="float16", b_format="float16", accumulator=acc)
    else:
        _compare(a, b, "float16", "float16", acc)


BLOCK_ACCS = [Accumulator("float16"), Accumulator("float32"),
              Accumulator("float16", order="tree", tree_width=32),
              Accumulator("bfloat16", order="tree", tree_width=16), Accumulator(None),
              # a fused step spanning two NVFP4 blocks (each product scaled by its own)
              Accumulator("float32", rounding="toward_zero", order="fused", tree_width=32,
                          align_bits=13, chunk=64)]
BLOCK_FMTS = ["mxfp4", "mxfp8_e4m3", "nvfp4", "bfp8_b16", "mxint8", "nvfp4"]


# CI: each format with one accumulator, each accumulator once (NUMFAB_FULL=1: all pairs)
@pytest.mark.parametrize(("fmt", "acc"), [
    (f, a) for i, f in enumerate(BLOCK_FMTS) for j, a in enumerate(BLOCK_ACCS)
    if FULL or i == j], ids=str)
def test_block_gemm_against_reference(fmt: str, acc: Accumulator) -> None:
    a, b = _data(2, 80, 3, seed=5)
    block = parse(fmt).block_size
    if acc.order.value == "tree" and acc.tree_width is not None and acc.tree_width > block:
        acc = Accumulator(acc.format, order="tree", tree_width=block)
    _compare(a, b, fmt, fmt, acc)


@pytest.mark.parametrize("acc", [
    Accumulator("int16"), Accumulator("int16", overflow="saturate"), Accumulator("int32"),
    Accumulator("int12", order="pairwise", overflow="saturate"),
    Accumulator("int14", order="tree", tree_width=4, overflow="saturate"),
], ids=str)
def test_integer_accumulators_against_reference(acc: Accumulator) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (3, 40)).astype(np.float64)
    b = rng.integers(-128, 128, (40, 4)).astype(np.float64)
    _compare(a, b, "int8", "int8", acc)
    # the integer result equals numpy's int64 product wrapped/clamped at the end only
    # when nothing overflows on the way: a int32 accumulator is numpy's product
    if str(acc.format) == "int32":
        got = gemm(a, b, a_format="int8", b_format="int8", accumulator=acc)
        np.testing.assert_array_equal(got, a.astype(np.int64) @ b.astype(np.int64))


def test_out_format_and_tensor_scale_round_once() -> None:
    a, b = _data(3, 32, 4, seed=9)
    _compare(a, b, "nvfp4", "nvfp4", Accumulator("float32"), out_format="bfloat16")
    _compare(a, b, "e4m3", "e4m3", Accumulator("float32"), out_format="e4m3")


def test_overflow_and_specials() -> None:
    big = np.full((1, 4), 57344.0)
    _compare(big, big.T.copy(), "e5m2", "e5m2", Accumulator("float16"))  # overflows to inf
    _compare(big, big.T.copy(), "e5m2", "e5m2", Accumulator("float16", overflow="saturate"))
    with pytest.raises(ValueError, match=r"overflowed at output element \(0, 0\) in addition "
                                         r"step 0"):
        gemm(big, big.T.copy(), a_format="e5m2", b_format="e5m2",
             accumulator=Accumulator("float16", overflow="error"))
    nan = np.array([[1.0, math.nan]])
    got = gemm(nan, np.ones((2, 1)), a_format="float16", b_format="float16")
    assert math.isnan(got[0, 0])


def test_subnormal_sums() -> None:
    """fp16 accumulation of products in fp16's subnormal range."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((4, 24)) * 2.0**-9
    b = rng.standard_normal((24, 4)) * 2.0**-9
    _compare(a, b, "e5m2", "e5m2", Accumulator("float16"))
    _compare(a, b, "e5m2", "e5m2", Accumulator("float16", rounding="stochastic", seed=2))


@pytest.mark.parametrize("mode", ["up", "down", "nearest_even"])
def test_directed_rounding_lifts_tiny_sums(mode: str) -> None:
    """Sums far below the accumulator's smallest subnormal: rounding up (down for
    negatives) lifts each to one subnormal, so the accumulator grows by far more than a
    relative ulp per step; the exact-add shortcut must not assume otherwise."""
    rng = np.random.default_rng(11)
    a = rng.standard_normal((3, 64)) * 2.0**-45  # products ~2**-90, fp16 subnormal 2**-24
    b = rng.standard_normal((64, 4)) * 2.0**-45
    _compare(a, b, "mxfp4", "mxfp4",
             Accumulator("float16", rounding=mode, order="tree", tree_width=8))


def test_fused_adder_hand_examples() -> None:
    """The fused multi-term adder by hand: with a 13-bit window and truncation, 1 + 2**-13
    is kept and 1 + 2**-14 is lost (as an H100's FP8 tensor core does, issue 19);
    cancellation inside one step keeps nothing the window shifted out; the accumulator
    aligned with the step's products (align_acc) or added after them."""
    fused = Accumulator("float32", rounding="toward_zero", order="fused", tree_width=4,
                        align_bits=13)

    def dot(xs: list[float], acc: Accumulator = fused) -> float:
        return float(gemm(np.array([xs]), np.ones((len(xs), 1)), accumulator=acc)[0, 0])

    assert dot([1.0, 2.0**-13]) == 1.0 + 2.0**-13
    assert dot([1.0, 2.0**-14]) == 1.0
    assert dot([1.0, 2.0**-14], Accumulator("float32")) == 1.0 + 2.0**-14
    # 1, -1 and 2**-20 in one step: aligned to 2**0, the small term is shifted out
    assert dot([1.0, -1.0, 2.0**-20]) == 0.0
    # ... but alone in the next step (after the accumulator cancelled to 0) it survives
    assert dot([1.0, -1.0, 0.0, 0.0, 2.0**-20]) == 2.0**-20
    # truncation toward zero of a negative term: -2**-14 - 2**-15 shifted to 0 beside 1
    assert dot([1.0, -(2.0**-14) - 2.0**-15]) == 1.0
    assert dot([1.0, -(2.0**-14) - 2.0**-15],
               Accumulator("float32", rounding="toward_zero", order="fused", tree_width=4,
                           align_bits=13, align_rounding="down")) == 1.0 - 2.0**-13
    # the accumulator (1) and the next step's 2**-20: aligned together, lost; the
    # products alone (align_acc=False): exact 2**-20, then added in float32
    sep = Accumulator("float32", rounding="toward_zero", order="fused", tree_width=4,
                      align_bits=13, align_acc=False)
    assert dot([1.0, 0, 0, 0, 2.0**-20]) == 1.0
    assert dot([1.0, 0, 0, 0, 2.0**-20], sep) == 1.0 + 2.0**-20


@pytest.mark.parametrize(("kw", "match"), [
    ({"order": "fused", "tree_width": 4}, "align_bits"),
    ({"order": "fused", "tree_width": 4, "align_bits": 50}, r"1\.\.49"),
    ({"order": "fused", "tree_width": 4, "align_bits": 13, "format": "int16"}, "Minifloat"),
    ({"order": "fused", "tree_width": 4, "align_bits": 13, "tree_format": "e6m12"},
     "tree_format"),
    ({"align_bits": 13}, "need order='fused'"),
    ({"align_rounding": "nearest_even"}, "needs order='fused'"),
    ({"order": "fused", "tree_width": 4, "align_bits": 13, "align_rounding": "stochastic"},
     "deterministic"),
    ({"order": "fused", "tree_width": 4, "align_bits": 13, "chunk": 6}, "multiple"),
])
def test_fused_adder_bad_settings(kw: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=match):
        Accumulator(**kw)


@pytest.mark.parametrize("acc", ["float16,nearest_even,fused4w13",
                                 "float16,toward_zero,fused4w13,inf_on_overflow",
                                 "float16,down,inf_on_overflow",
                                 "float16,up,fused8w20,align_from=exponents,inf_on_overflow"])
def test_overflow_against_reference(acc: str) -> None:
    """Sums beyond float16 (e5m2 57344**2): the fused adder once its accumulator is
    Inf, and inf_on_overflow in directed modes (Inf where IEEE gives the largest value),
    the kernel against the exact reference."""
    a = np.full((1, 8), 57344.0)
    b = np.full((8, 2), 57344.0)
    b[:, 1] = -1.0
    _compare(a, b, "e5m2", "e5m2", Accumulator.parse(acc))
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 40)) * 2.0**rng.integers(0, 14, (3, 40))
    b = rng.standard_normal((40, 3)) * 2.0**rng.integers(0, 6, (40, 3))
    _compare(a, b, "float16", "float16", Accumulator.parse(acc))
