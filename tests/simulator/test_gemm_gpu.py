"""simulator.gemm on the GPU path (simulator/_gemm_gpu.py, simulator/_triton_gemm.py)
against the CPU path, bit for bit (signed zeros included), run by Triton's interpreter
(formats._gpu.emulate): every accumulator setting through both the float32 and the
float64 kernel, the provable BLAS shortcuts (int8 and float64 matmul), block-scaled and
encoded operands, batches, the epilogue, errors. benchmarks/bench_gpu_gemm.py repeats the
comparison on a GPU at large shapes."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from formats import _gpu, parse
from simulator import Accumulator, Codes, Datapath, gemm
from simulator import _gemm_gpu as GG


@pytest.fixture(autouse=True)
def _emulated() -> Iterator[None]:
    with _gpu.emulate():
        yield
    GG.FORCE_FLOAT64[0] = False


def _data(seed: int, M: int, K: int, N: int, spread: int, batch: tuple[int, ...] = ()
          ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(batch + (M, K)) * 2.0 ** rng.integers(-spread, spread + 1,
                                                                 batch + (M, K))
    b = rng.standard_normal((K, N)) * 2.0 ** rng.integers(-spread, spread + 1, (K, N))
    return a, b


def _same(ref: np.ndarray, got: Any) -> None:
    g = got.numpy() if isinstance(got, torch.Tensor) else got
    assert g.shape == ref.shape
    assert g.dtype == np.float64
    bad = ref.view(np.int64) != g.view(np.int64)
    # NaN payloads may differ; NaN positions must not
    bad &= ~(np.isnan(ref) & np.isnan(g))
    assert not bad.any(), (f"{int(bad.sum())} of {bad.size} differ, first at "
                           f"{np.argwhere(bad)[0]}: cpu {ref[bad][:4]} gpu {g[bad][:4]}")


def _compare(acc: Any, af: str, bf: str, *, M: int = 5, K: int = 40, N: int = 7,
             spread: int = 3, seed: int = 0, force64: bool = False,
             batch: tuple[int, ...] = ()) -> str:
    a, b = _data(seed, M, K, N, spread, batch)
    ref = gemm(a, b, a_format=af, b_format=bf, accumulator=acc)
    GG.FORCE_FLOAT64[0] = force64
    got = gemm(torch.from_numpy(a), torch.from_numpy(b), a_format=af, b_format=bf,
               accumulator=acc)
    assert isinstance(got, torch.Tensor)
    _same(ref, got)
    return GG.LAST[0]


FULL = os.environ.get("NUMFAB_FULL") == "1"

# (accumulator, a format, b format, K, spread, the path the float32-allowed run takes).
# CI runs these K (the interpreter's time grows with K); NUMFAB_FULL=1 runs K * 3 + 1
# and every setting through the float64 kernel too (CI: the settings marked below)
SETTINGS = [
    ("float16", "e4m3", "e4m3", 21, 3, "float32 kernel"),
    ("float32", "e4m3", "e4m3", 21, 3, "float32 kernel"),
    ("bfloat16,toward_zero", "e4m3", "e4m3", 21, 3, "float32 kernel"),
    ("e5m7,up", "e4m3", "e4m3", 21, 3, "float32 kernel"),
    ("e3m4,nearest_away", "e4m3", "e4m3", 21, 1, "float32 kernel"),
    ("e5m10,down,overflow=saturate", "e5m2", "e4m3", 21, 4, "float32 kernel"),
    ("e4m3,nearest_even,overflow=saturate", "e4m3", "e4m3", 21, 4, "float32 kernel"),
    ("float16,up,inf_on_overflow", "e5m2", "e5m2", 21, 6, "float32 kernel"),
    ("float32,toward_zero", "e4m3", "e4m3", 21, 8, "float64 kernel"),
    ("float16,stochastic,seed=3", "e4m3", "e4m3", 21, 3, "float64 kernel"),
    ("e8m13,toward_zero,fused8w13,align_from=exponents,chunk16->float32", "e4m3",
     "e4m3", 37, 6, "float32 kernel"),
    ("e8m13,toward_zero,fused32w13,align_from=exponents", "e4m3", "e5m2", 37, 6,
     "float32 kernel"),
    ("e8m13,nearest_even,fused8w10,align_rounding=up", "e4m3", "e4m3", 21, 6,
     "float64 kernel"),
    ("float16,nearest_even,fused4w12,align_acc=false", "e4m3", "e4m3", 22, 6,
     "float32 kernel"),
    ("float32,toward_zero,fused16w25,align_from=exponents,inf_on_overflow", "bfloat16",
     "bfloat16", 37, 10, "float64 kernel"),
    ("float16,nearest_even,fused8w11,align_rounding=nearest_away", "e4m3", "e4m3", 21, 4,
     "float32 kernel"),
    ("float32,nearest_even,tree32", "mxfp4", "mxfp4", 64, 4, None),
    ("float16,nearest_even,tree16", "mxfp8_e4m3", "mxfp4", 37, 6, None),
    ("float16,nearest_even", "nvfp4", "nvfp4", 32, 3, "float32 kernel"),
    ("bfloat16,nearest_even,tree4", "nvfp4", "e4m3", 32, 3, "float32 kernel"),
    ("float16,nearest_even,chunk16->float32", "e4m3", "e4m3", 37, 3, "float32 kernel"),
    ("bfloat16,toward_zero,tree4@e5m7,chunk8->float16", "e4m3", "e4m3", 21, 3,
     "float64 kernel"),
    ("float16,nearest_even,products@fixed<4,6>", "e4m3", "e4m3", 21, 3, "float64 kernel"),
    ("float16,nearest_even,products@e3m2,product_rounding=toward_zero", "e4m3", "e4m3",
     21, 3, "float64 kernel"),
    ("float32,nearest_even,tree32", "int4_g32", "int4_g32", 64, 2, "float64 kernel"),
]
# the float32-kernel settings CI also runs through the float64 kernel
BOTH_IN_CI = {"float16", "e5m7,up", "e8m13,toward_zero,fused8w13,align_from=exponents,"
              "chunk16->float32", "float16,nearest_even"}


@pytest.mark.parametrize("acc,af,bf,K,spread,path", SETTINGS)
def test_gpu_equals_cpu(acc: str, af: str, bf: str, K: int, spread: int,
                        path: str | None) -> None:
    K = K * 3 + 1 if FULL else K
    took = _compare(acc, af, bf, K=K, spread=spread)
    if path is not None:
        assert took == path
    if took == "float32 kernel" and (FULL or acc in BOTH_IN_CI):
        # the general float64 kernel, for the same setting
        assert _compare(acc, af, bf, K=K, spread=spread, seed=1, force64=True) == \
            "float64 kernel"


@pytest.mark.parametrize("acc,af,bf,K,path", [
    ("int32", "int8", "int8", 24, "int8"),
    ("int16", "int8", "int8", 24, "float64 kernel"),
    ("int12,overflow=saturate", "int8", "int8", 24, "float64 kernel"),
    ("int10", "int8", "int8", 24, "float64 kernel"),
    ("fixed<20,4>", "int4", "int4", 24, "int8"),
    ("fixed<10,3>,overflow=saturate", "fixed<3,2>", "int4", 24, "float64 kernel"),
    ("exact", "e2m1", "e2m1", 24, "float64 matmul"),
    ("exact", "e4m3", "e4m3", 24, "float64 matmul"),
    ("float64", "e4m3", "e4m3", 24, "float64 matmul"),
])
def test_integer_and_exact(acc: str, af: str, bf: str, K: int, path: str) -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(-127, 128, (6, K)).astype(np.float64)
    b = rng.integers(-127, 128, (K, 9)).astype(np.float64)
    if af.startswith(("e", "fixed")):
        a, b = a / 16, b / 16
    ref = gemm(a, b, a_format=af, b_format=bf, accumulator=acc)
    got = gemm(torch.from_numpy(a), torch.from_numpy(b), a_format=af, b_format=bf,
               accumulator=acc)
    _same(ref, got)
    assert GG.LAST[0] == path
    GG.FORCE_FLOAT64[0] = True
    _same(ref, gemm(torch.from_numpy(a), torch.from_numpy(b), a_format=af, b_format=bf,
                    accumulator=acc))
    assert GG.LAST[0] == "float64 kernel"


def test_specials_batches_and_epilogue() -> None:
    # NaN / Inf operands, a batch broadcast against one b, out_format with rounding
    a, b = _data(3, 6, 17, 5, 4, batch=(2, 1))
    a[0, 0, 0, 3] = np.inf
    a[1, 0, 2, 7] = np.nan
    b[5, 1] = -np.inf
    for acc in ("float16", "e8m13,toward_zero,fused8w13,align_from=exponents"):
        ref = gemm(a, b, a_format="e5m2", b_format="e5m2", accumulator=acc)
        _same(ref, gemm(torch.from_numpy(a), torch.from_numpy(b), a_format="e5m2",
                        b_format="e5m2", accumulator=acc))
    dp = Datapath.parse("a=e4m3 b=e4m3 acc=float16,toward_zero out=e4m3,toward_zero")
    a, b = _data(4, 7, 20, 6, 3)
    ref = gemm(a, b, datapath=dp)
    _same(ref, gemm(torch.from_numpy(a), torch.from_numpy(b), datapath=dp))
    # NVFP4's tensor scale, applied in the epilogue
    ref = gemm(a * 100, b, a_format="nvfp4", b_format="nvfp4", accumulator="float32",
               out_format="bfloat16")
    _same(ref, gemm(torch.from_numpy(a * 100), torch.from_numpy(b), a_format="nvfp4",
                    b_format="nvfp4", accumulator="float32", out_format="bfloat16"))
    # K = 0: the empty sum
    z = gemm(torch.zeros((3, 0)), torch.zeros((0, 4)), accumulator="float16")
    assert z.shape == (3, 4) and not bool(z.any())


def test_encoded_operands() -> None:
    # codes of a scalar format and an MX encoding blocked along K (b's axis 0), given
    # as the CPU's numpy and as the GPU path's torch tensors: the same values, bits
    rng = np.random.default_rng(8)
    fa = parse("e4m3")
    fb = dataclasses.replace(parse("mxfp4"), axis=0)
    a = rng.standard_normal((5, 64))
    b = rng.standard_normal((64, 6))
    ca = fa.encode(a)
    ref = gemm(Codes(ca, fa), fb.encode(b), accumulator="float16")
    got = gemm(Codes(torch.from_numpy(ca.astype(np.int64)), fa),
               fb.encode(torch.from_numpy(b)), accumulator="float16")
    _same(ref, got)


def test_errors_match_the_cpu() -> None:
    a, b = _data(6, 4, 40, 5, 6)
    for acc in ("e4m3,nearest_even,overflow=error", "float16,up,overflow=error"):
        with pytest.raises(ValueError) as cpu:
            gemm(a * 100, b, a_format="e5m2", b_format="e5m2", accumulator=acc)
        with pytest.raises(ValueError) as gpu:
            gemm(torch.from_numpy(a * 100), torch.from_numpy(b), a_format="e5m2",
                 b_format="e5m2", accumulator=acc)
        assert str(gpu.value) == str(cpu.value)
    with pytest.raises(ValueError, match="must agree"):
        gemm(torch.zeros((3, 4)), torch.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN or Inf"):
        gemm(torch.tensor([[np.inf, 1.0]]), torch.ones((2, 2)), a_format="e5m2",
             b_format="e5m2", accumulator="int32")
    with pytest.raises(ValueError, match="grid"):
        gemm(torch.full((2, 3), 0.5), torch.ones((3, 2)), a_format="e4m3",
             b_format="e4m3", accumulator="int16")
    with pytest.raises(TypeError, match="fallback"):
        gemm(torch.ones((2, 2)), torch.ones((2, 2)), fallback=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("acc,af,bf,K", [
    ("float16,pairwise", "e4m3", "e4m3", 19),
    ("float16,stochastic,seed=9,pairwise,chunk8->float32", "e4m3", "e4m3", 21),
    ("e4m3,nearest_even,pairwise,overflow=error", "e4m3", "e4m3", 17),
    ("int12,pairwise", "int8", "int8", 13),
] + ([
    ("bfloat16,toward_zero,pairwise,chunk8->float32", "e4m3", "e5m2", 37),
    ("float32,pairwise", "nvfp4", "nvfp4", 48),
] if FULL else []))
def test_pairwise(acc: str, af: str, bf: str, K: int) -> None:
    a, b = _data(7, 5, K, 6, 3)
    if af == "int8":
        a, b = np.round(a * 20), np.round(b * 20)
    try:
        ref = gemm(a, b, a_format=af, b_format=bf, accumulator=acc)
    except ValueError as exc:
        with pytest.raises(ValueError) as got:
            gemm(torch.from_numpy(a), torch.from_numpy(b), a_format=af, b_format=bf,
                 accumulator=acc)
        assert str(got.value) == str(exc)
        return
    _same(ref, gemm(torch.from_numpy(a), torch.from_numpy(b), a_format=af, b_format=bf,
                    accumulator=acc))
    assert GG.LAST[0].endswith("kernel")


def test_what_the_gpu_cannot_run_falls_back_only_when_allowed() -> None:
    a, b = _data(7, 5, 9, 6, 3)
    acc = "float16,pairwise"
    ref = gemm(a, b, a_format="e4m3", b_format="e4m3", accumulator=acc)
    old = GG.PAIRWISE_MEMORY[0]
    GG.PAIRWISE_MEMORY[0] = 1000
    try:
        with pytest.raises(ValueError, match="GiB allowed.*fallback=True"):
            gemm(torch.from_numpy(a), torch.from_numpy(b), a_format="e4m3",
                 b_format="e4m3", accumulator=acc)
        got = gemm(torch.from_numpy(a), torch.from_numpy(b), a_format="e4m3",
                   b_format="e4m3", accumulator=acc, fallback=True)
    finally:
        GG.PAIRWISE_MEMORY[0] = old
    assert isinstance(got, torch.Tensor)
    _same(ref, got)


def test_named_silicon_models_on_the_gpu_path() -> None:
    # CI: one by name (SETTINGS holds the others' datapaths); NUMFAB_FULL=1: three
    models = [("h100_fp8_fast_accum", "e4m3", "e5m2")] + ([
        ("h100_fp8_scaled_mm", "e4m3", "e4m3"), ("h100_fp16_triton", "float16", "float16"),
    ] if FULL else [])
    for name, fa, fb in models:
        acc = Accumulator.named(name)
        assert _compare(acc, fa, fb, K=150 if FULL else 33, spread=5,
                        seed=11).endswith("kernel")


def _both(a: np.ndarray, b: np.ndarray, force64: bool = False, **kw: Any) -> str:
    """CPU vs GPU path on one pair (errors: the same message); the GPU path taken."""
    try:
        ref = gemm(a, b, **kw)
    except ValueError as exc:
        with pytest.raises(ValueError) as got:
            gemm(torch.from_numpy(a), torch.from_numpy(b), **kw)
        assert str(got.value) == str(exc)
        return GG.LAST[0]
    GG.FORCE_FLOAT64[0] = force64
    _same(ref, gemm(torch.from_numpy(a), torch.from_numpy(b), **kw))
    GG.FORCE_FLOAT64[0] = False
    return GG.LAST[0]


def test_review_cases() -> None:
    """Cases a review found wrong: each once failed."""
    rng = np.random.default_rng(0)
    # fused without align_acc into float32 / 24-bit accumulators: no float32 shortcut
    a = rng.standard_normal((3, 16)) * 2.0 ** rng.integers(-8, 8, (3, 16))
    b = rng.standard_normal((16, 3)) * 2.0 ** rng.integers(-8, 8, (16, 3))
    a[:, :4] = 400.0
    b[:4, :] = 400.0
    for acc in ("float32,toward_zero,fused4w13,align_acc=false",
                "e7m23,nearest_even,fused4w13,align_acc=false"):
        _both(a, b, a_format="e4m3", b_format="e4m3", accumulator=acc)
    # a scale of p bits adds p bits to a product (15 * 15 = 225)
    ia = np.full((3, 64), 127.0)
    ia[:, ::3] = 125.0
    b = rng.integers(235, 251, (64, 5)).astype(np.float64)
    _both(ia * 1.875, b, a_format="int8_g64_ue4m3", b_format="int10",
          accumulator="float32,nearest_even,tree64")
    # operand exponents below float32's normal range
    a = (1 + rng.integers(0, 8, (2, 8)) / 8) * 2.0**-140
    b = (1 + rng.integers(0, 8, (8, 3)) / 8) * 2.0**100
    _both(a, b, a_format="e9m3", b_format="e9m3",
          accumulator="e8m13,toward_zero,fused4w10,align_from=exponents")
    # a padded term of the last fused step reads no scale (here: the next row's NaN)
    a = rng.standard_normal((2, 32))
    a[1, 0] = np.nan
    _both(a, rng.standard_normal((32, 3)), a_format="mxfp8_e4m3", b_format="mxfp8_e4m3",
          accumulator="float16,toward_zero,fused12w10")
    # an exact one-term sum of -x * 0 is +0.0, as the kernels' sums from +0.0
    for acc in ("exact", "float64", "float32", "float16,down"):
        _both(-np.full((2, 1), 0.5), np.zeros((1, 3)), a_format="e4m3", b_format="e4m3",
              accumulator=acc)
    # several addends off an integer grid: the CPU reports the row's last one
    for a, b in ((np.array([[700.0, 0.75]]), np.array([[100.0], [1.0]])),
                 (np.array([[0.75, 700.0]]), np.array([[1.0], [100.0]]))):
        _both(a, b, a_format="float16", b_format="float16",
              accumulator="int16,products@e5m2")


def test_operand_inputs_like_the_cpu() -> None:
    big = np.array([[np.finfo(np.float64).max, 1.0]])
    with pytest.raises(ValueError) as cpu:
        gemm(big, np.ones((2, 2)))
    with pytest.raises(ValueError) as gpu:
        gemm(torch.from_numpy(big), torch.ones((2, 2), dtype=torch.float64))
    assert str(gpu.value) == str(cpu.value)
    ints = np.array([[2**60, 1]], dtype=np.int64)
    with pytest.raises(ValueError) as cpu:
        gemm(ints, np.ones((2, 2), np.int64))
    with pytest.raises(ValueError) as gpu:
        gemm(torch.from_numpy(ints), torch.ones((2, 2), dtype=torch.int64))
    assert str(gpu.value) == str(cpu.value)
    with pytest.raises(TypeError) as cpu:
        gemm(np.ones((2, 2), bool), np.ones((2, 2)))
    with pytest.raises(TypeError) as gpu:
        gemm(torch.ones((2, 2), dtype=torch.bool), torch.ones((2, 2)))
    assert str(gpu.value) == str(cpu.value)
    u = np.arange(6, dtype=np.uint16).reshape(2, 3)
    _same(gemm(u, u.T.astype(np.float32)), gemm(torch.from_numpy(u),
                                                torch.from_numpy(u.T.astype(np.float32))))
    fa = parse("e4m3")
    codes = fa.encode(np.arange(6.0).reshape(2, 3))
    _same(gemm(Codes(codes, fa), np.ones((3, 2))),
          gemm(Codes(codes, fa), torch.ones((3, 2))))
