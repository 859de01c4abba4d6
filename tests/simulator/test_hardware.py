"""Seed-hardware GEMMs against direct integer / float64 products."""

from __future__ import annotations

import numpy as np
import pytest

import formats
from simulator import Accumulator, bipolar_gemm, gemm, grouped_gemm, llm_int8_gemm, lut_gemm


def _ints(shape, bits, seed):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    return rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), shape).astype(np.float64)


@pytest.mark.parametrize("method", ["fused", "planes", "pairs"])
@pytest.mark.parametrize(("ab", "bb"), [(2, 2), (4, 4), (3, 8), (8, 4)])
def test_bipolar_equals_integer_gemm(ab: int, bb: int, method: str) -> None:
    a, b = _ints((17, 70), ab, 1), _ints((70, 9), bb, 2)
    r = bipolar_gemm(a, b, a_format=f"int{ab}", b_format=f"int{bb}", method=method)
    np.testing.assert_array_equal(r.out, a.astype(np.int64) @ b.astype(np.int64))
    assert r.ops["plane_pairs"] == ab * bb
    assert r.ops["binary_macs"] == 17 * 9 * 70 * ab * bb


def test_bipolar_native_operands() -> None:
    f = formats.parse("bipolar3")
    rng = np.random.default_rng(3)
    a = rng.choice(f.finite_values(), (5, 33))
    b = rng.choice(formats.parse("bipolar2").finite_values(), (33, 4))
    r = bipolar_gemm(a, b, a_format="bipolar3", b_format="bipolar2", method="pairs")
    np.testing.assert_array_equal(r.out, a.astype(np.int64) @ b.astype(np.int64))
    mixed = bipolar_gemm(_ints((5, 33), 4, 4), b, a_format="int4", b_format="bipolar2")
    np.testing.assert_array_equal(mixed.out, _ints((5, 33), 4, 4).astype(np.int64)
                                  @ b.astype(np.int64))


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize(("wf", "group"), [("int4", 4), ("int2", 2), ("bipolar3", 3),
                                           ("int8", 5)])
def test_lut_gemm_exact_table_equals_gemm(wf: str, group: int, symmetric: bool) -> None:
    rng = np.random.default_rng(5)
    x = np.asarray(formats.parse("e4m3").quantize(rng.standard_normal((6, 50))))
    f = formats.parse(wf)
    w = rng.choice(f.finite_values(), (50, 7))
    r = lut_gemm(x, w, w_format=wf, group=group, symmetric=symmetric)
    want = gemm(x, w, a_format="e4m3", b_format=None if wf.startswith("int") else "float32",
                accumulator=None)
    np.testing.assert_array_equal(r.out, want)
    assert r.ops["lookups"] == 6 * 7 * (-(-50 // group)) * (f.bits)


def test_bipolar_fused_wide_falls_back() -> None:
    # K (2**na - 1)(2**nb - 1) beyond 2**24: float64 BLAS, still exact
    a, b = _ints((3, 600), 8, 11), _ints((600, 4), 8, 12)
    a[0] = -128  # extreme values: the widest sums
    b[:, 0] = -128
    r = bipolar_gemm(a, b, a_format="int8", b_format="int8")
    np.testing.assert_array_equal(r.out, a.astype(np.int64) @ b.astype(np.int64))


@pytest.mark.parametrize("table", [None, "float16", "int8"])
@pytest.mark.parametrize(("wf", "group", "symmetric"), [("int4", 4, True), ("int2", 3, False),
                                                       ("bipolar2", 2, True)])
def test_lut_gemm_fused_equals_lookup(wf: str, group: int, symmetric: bool,
                                      table: str | None) -> None:
    # the one-matmul form reproduces the bit-serial lookups exactly wherever it runs
    rng = np.random.default_rng(13)
    x = np.asarray(formats.parse("e4m3").quantize(rng.standard_normal((9, 41))))
    w = rng.choice(formats.parse(wf).finite_values(), (41, 6))
    for scale in ("table", "row"):
        kw = {"w_format": wf, "group": group, "symmetric": symmetric, "table_format": table,
              "table_scale": scale}
        fused = lut_gemm(x, w, x_format="e4m3", method="fused", **kw)
        look = lut_gemm(x, w, x_format="e4m3", method="lookup", **kw)
        np.testing.assert_array_equal(fused.out, look.out)
        assert look.info["method"] == "lookup"
        # per-table int scales are arbitrary float64 factors: no exact BLAS form
        assert fused.info["method"] == ("lookup" if (table, scale) == ("int8", "table")
                                        else "fused")


def test_lut_gemm_row_scale_integer_sums() -> None:
    rng = np.random.default_rng(14)
    x = rng.standard_normal((5, 32))
    w = _ints((32, 3), 4, 15)
    r = lut_gemm(x, w, w_format="int4", table_format="int8", table_scale="row")
    s = r.info["table_scales"]
    assert s.shape == (5,)
    # output = (integer lookups sum * row scale - rowsum(x)) / 2: recover the integers
    ints = (2 * r.out + x.sum(axis=1, keepdims=True)) / s[:, None]
    np.testing.assert_allclose(ints, np.rint(ints), atol=1e-6)
    exact = lut_gemm(x, w, w_format="int4").out
    assert np.abs(r.out - exact).max() <= s.max() / 2 * 8 * 15 / 2


def test_lut_gemm_quantized_table() -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 64))
    w = _ints((64, 8), 4, 7)
    exact = lut_gemm(x, w, w_format="int4").out
    q8 = lut_gemm(x, w, w_format="int4", table_format="int8")
    err = np.abs(q8.out - exact).max()
    # each lookup errs by at most half its table's step; 16 groups per plane, planes
    # weighted 1+2+4+8, halved by the two's-complement conversion
    bound = (q8.info["table_scales"].max() / 2) * 16 * (1 + 2 + 4 + 8) / 2
    assert 0 < err <= bound
    q2 = lut_gemm(x, w, w_format="int4", table_format="int4").out
    assert np.abs(q2 - exact).max() > err


def test_grouped_gemm_late_dequant() -> None:
    rng = np.random.default_rng(8)
    x = _ints((4, 256), 8, 9)
    w = rng.standard_normal((256, 5))
    for wf in ("int4_g64", "uint4_g64_asym", "int4_g64_float8_e8m0fnu"):
        exact = grouped_gemm(x, w, w_format=wf, accumulator=None)
        # late dequantization equals dequantize-first when both are exact
        np.testing.assert_array_equal(exact.out, exact.info["dequant_first"])
        r = grouped_gemm(x, w, w_format=wf, accumulator="float16")
        assert r.ops["group_partial_sums"] == 4 * 5 * 4
        assert ("dequant_shifts" in r.ops) == wf.endswith("e8m0fnu")
        # fp16 rounding only 4 times per output (once per group) vs 256 times first
        e_late = np.abs(r.out - exact.out).max()
        e_first = np.abs(r.info["dequant_first"] - exact.out).max()
        assert e_late <= e_first


def test_llm_int8() -> None:
    rng = np.random.default_rng(10)
    x = rng.standard_normal((8, 64))
    x[:, [3, 40]] *= 20  # outlier channels
    w = rng.standard_normal((64, 6)) * 0.1
    r = llm_int8_gemm(x, w, threshold=6.0)
    np.testing.assert_array_equal(r.info["outlier_columns"], [3, 40])
    exact = x @ w
    assert np.abs(r.out - exact).max() < 0.05 * np.abs(exact).max()
    naive = llm_int8_gemm(x, w, threshold=1e9)  # no decomposition: int8 everywhere
    # int8 vector-wise part, independently: numpy int64 GEMM of the rounded operands
    xs = np.abs(x).max(axis=1, keepdims=True) / 127
    ws = np.abs(w).max(axis=0, keepdims=True) / 127
    xi = np.rint(x / xs).astype(np.int64)
    wi = np.rint(w / ws).astype(np.int64)
    np.testing.assert_array_equal(naive.out, (xi @ wi) * xs * ws)
    assert np.abs(r.out - exact).max() < np.abs(naive.out - exact).max()
    assert r.ops["fp16_macs"] == 8 * 6 * 2


def test_hardware_bad_input() -> None:
    with pytest.raises(ValueError, match="K dimensions must agree"):
        bipolar_gemm(np.ones((2, 3)), np.ones((4, 2)), a_format="int4", b_format="int4")
    with pytest.raises(ValueError, match="a must hold int4 integers"):
        bipolar_gemm(np.full((2, 3), 9.0), np.ones((3, 2)), a_format="int4", b_format="int4")
    with pytest.raises(ValueError, match="odd integers"):
        bipolar_gemm(np.full((2, 3), 2.0), np.ones((3, 2)), a_format="bipolar3",
                     b_format="int4")
    with pytest.raises(ValueError, match="bipolar<n> or signed int<n>"):
        lut_gemm(np.ones((2, 3)), np.ones((3, 2)), w_format="e4m3")
    with pytest.raises(ValueError, match="group must be an int in 1..8"):
        lut_gemm(np.ones((2, 3)), np.ones((3, 2)), w_format="int4", group=0)
    with pytest.raises(ValueError, match="method"):
        lut_gemm(np.ones((2, 3)), np.ones((3, 2)), w_format="int4", method="gather")
    with pytest.raises(ValueError, match="table_scale"):
        lut_gemm(np.ones((2, 3)), np.ones((3, 2)), w_format="int4", table_scale="block")
    with pytest.raises(ValueError, match="method"):
        bipolar_gemm(np.ones((2, 3)), np.ones((3, 2)), a_format="int4", b_format="int4",
                     method="xnor")
    with pytest.raises(ValueError, match="block format with integer elements"):
        grouped_gemm(np.ones((2, 3)), np.ones((3, 2)), w_format="mxfp4")
    with pytest.raises(ValueError, match="must be a float format or exact"):
        grouped_gemm(np.ones((2, 3)), np.ones((3, 2)), accumulator=Accumulator("int32"))
