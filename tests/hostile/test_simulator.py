"""Hostile input to simulator/: every refusal a clear error naming the parameter and what
is allowed, every accepted input a value checked against exact Python-int / Fraction
arithmetic (never against numfab's own output)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import torch

from simulator import Accumulator, gemm


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


@pytest.mark.parametrize("bits", [32, 48], ids=lambda b: f"int{b}")
def test_gemm_int32_operands_wrap_in_integer_accumulator(bits: int) -> None:
    a = np.array([[2**24 + 1, -(2**30) + 7, 2**29]], np.int32)
    b = np.array([[3, -1], [5, 2**20], [7, 1]], np.int32)
    got = gemm(a, b, accumulator=f"int{bits}")
    # wrapping is modular: wrapping each partial sum equals wrapping the exact sum
    ref = [[_wrap(v, bits) for v in row] for row in _exact(a, b)]
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
     r"a holds integers beyond 2\*\*53"),
], ids=["int32-full-range", "int64-beyond-int53", "uint64-2**53", "int64-beyond-2**53"])
def test_gemm_integer_operands_beyond_float64_refused(a: Any, b: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gemm(a, b, accumulator=None)


@pytest.mark.parametrize(("a", "b", "exc", "match"), [
    (np.array([[True]]), np.array([[True]]), TypeError,
     r"a must hold real numbers \(float16/32/64 or integers\), not dtype bool"),
    (np.ones((1, 1)), np.array([[1j]]), TypeError,
     r"b must hold real numbers \(float16/32/64 or integers\), not dtype complex128"),
    (np.array([[1]], object), np.ones((1, 1)), TypeError,
     r"a must hold real numbers \(float16/32/64 or integers\), not dtype object"),
    (np.ones(3, np.float32), np.ones((3, 2), np.float32), ValueError,
     r"a must have at least 2 dimensions, not shape \(3,\)"),
    (np.ones((2, 3), np.float32), np.float32(1.0), ValueError,
     r"b must have at least 2 dimensions, not shape \(\)"),
    (np.ones((2, 3), np.float32), np.ones((4, 2), np.float32), ValueError,
     r"a is \(\.\.\., M, K=3\) and b is \(\.\.\., K=4, N\): the K dimensions must agree"),
    (np.ones((2, 2, 3), np.float32), np.ones((3, 3, 2), np.float32), ValueError,
     r"batch dimensions of a \(2,\) and b \(3,\) do not broadcast"),
    (np.ones((2, 32), np.float32), np.ones((16, 2), np.float32), ValueError,
     r"K=32.*K=16.*the K dimensions must agree"),
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
