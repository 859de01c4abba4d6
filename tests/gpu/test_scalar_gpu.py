"""The scalar formats' GPU kernels (formats/_gpu/scalar.py) against the CPU kernels, bit
for bit, run by Triton's interpreter (formats._gpu.emulate): every code of every format
up to 8 bits and its midpoints, +-1 ulp, specials and out-of-range values, in every
rounding mode and overflow policy, from float32/float16/bfloat16/float64 tensors; wider
formats on random inputs. benchmarks/gpu_exhaustive.py repeats this on a GPU at scale."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import formats
from formats import Minifloat, Overflow, Rounding, Special, _gpu
from tests.formats.inputs import rounding_inputs

FULL = os.environ.get("NUMFAB_FULL") == "1"

SMALL = [
    "float8_e4m3fn", "float8_e4m3", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
    "float8_e4m3b11fnuz", "float8_e3m4", "float6_e2m3fn", "float6_e3m2fn", "float4_e2m1fn",
    "float8_e8m0fnu", "ue4m3", "ue8m0", "e3m4b5", "int4", "uint8", "int8", "fixed<3,4>",
    "fixed<-2,6>", "nf4", "fp4_lut", "bipolar3",
]
# formats the names do not reach: no subnormals (no zero) with IEEE specials, unsigned
# without subnormals, no mantissa bits with subnormals
ODD = [
    Minifloat(4, 3, 7, Special.IEEE, subnormals=False),
    Minifloat(3, 2, 3, Special.FN, subnormals=False, signed=False),
    Minifloat(5, 0, 15, Special.FINITE),
]
# CI: one of each kind (a 16-bit float, wider than the input, integer, fixed point, 64-bit
# codes); NUMFAB_FULL=1 adds the rest
WIDE = ["bfloat16", "e11m20", "int16", "fixed<12,10>", "float64"] + (
    ["float16", "tfloat32", "e5m10", "float32", "e8m23", "int32"] if FULL else [])
MODES = list(Rounding)


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    # the interpreter computes with numpy, which warns on NaN/overflow arithmetic that the
    # kernels mask out on purpose
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _fmt(f: object) -> formats.Format:
    return f if isinstance(f, formats.Format) else formats.parse(str(f))


def _bits(t: torch.Tensor) -> torch.Tensor:
    """A tensor's bits (codes as int64, values as their same-width integer view)."""
    if t.is_floating_point():
        view = {2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]
        return t.view(view).to(torch.int64)
    return t.to(torch.int64)


def _same(cpu: torch.Tensor, gpu: torch.Tensor, what: str) -> None:
    assert cpu.dtype == gpu.dtype and cpu.shape == gpu.shape, (what, cpu.dtype, gpu.dtype)
    a, b = _bits(cpu), _bits(gpu)
    bad = (a != b).nonzero().flatten()
    assert bad.numel() == 0, (what, bad.numel(), [(int(a[i]), int(b[i])) for i in bad[:4]])


def _compare(fmt: formats.Format, x: torch.Tensor, mode: Rounding, pol: Overflow | None,
             seed: int | None) -> None:
    kw = {"seed": seed} if mode is Rounding.STOCHASTIC else {}
    what = f"{fmt} {mode.value} {pol} {x.dtype}"
    try:
        c_cpu = fmt.encode(x, mode, pol, **kw)
    except ValueError as exc:  # overflow='error' on out-of-range input: the GPU agrees
        with _gpu.emulate(), pytest.raises(ValueError, match=re.escape(str(exc))):
            fmt.encode(x, mode, pol, **kw)
        return
    q_cpu = fmt.quantize(x, mode, pol, **kw)
    with _gpu.emulate():
        c_gpu = fmt.encode(x, mode, pol, **kw)
        q_gpu = fmt.quantize(x, mode, pol, **kw)
    _same(c_cpu, c_gpu, "encode " + what)
    _same(q_cpu, q_gpu, "quantize " + what)


def _policies(fmt: formats.Format) -> list[Overflow | None]:
    return [None, *fmt.allowed_overflow]


# CI: one format of each shape and convention (IEEE, fn, fnuz, biased, unsigned, no
# mantissa, 4/6/8 bits, integer, fixed point, tables, the ODD shapes); NUMFAB_FULL=1: all
CI_SMALL = ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float6_e3m2fn",
            "float4_e2m1fn", "float8_e8m0fnu", "ue4m3", "e3m4b5", "int4", "fixed<-2,6>",
            "nf4", "bipolar3"]


@pytest.mark.parametrize("name", (SMALL if FULL else CI_SMALL) + ODD, ids=str)
def test_small_formats_every_code(name: object) -> None:
    """Every value, midpoint, +-1 ulp and special of formats up to 8 bits; every mode and
    policy from float32; decoding every code to float32 and float64."""
    fmt = _fmt(name)
    x = torch.from_numpy(rounding_inputs(fmt, np.float32))
    for mode in MODES:
        for pol in _policies(fmt):
            if pol is Overflow.WRAP:
                xf = x[torch.isfinite(x)]
                _compare(fmt, xf, mode, pol, 11)
                continue
            _compare(fmt, x, mode, pol, 11)
    codes = torch.arange(fmt.valid_codes, dtype=torch.int64).to(
        {1: torch.uint8, 2: torch.uint16}.get(-(-fmt.bits // 8), torch.int64))
    for dtype in (np.float32, np.float64):
        with _gpu.emulate():
            got = fmt.decode(codes, dtype=dtype)
        _same(fmt.decode(codes, dtype=dtype), got, f"decode {fmt} {dtype}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_input_dtypes(dtype: torch.dtype) -> None:
    """16-bit and float64 tensors are read directly; results equal the CPU's."""
    names = SMALL if FULL else ["float8_e4m3fn", "float4_e2m1fn", "ue8m0", "int4", "nf4",
                                 "e5m10"]
    for name in names:
        fmt = _fmt(name)
        x = torch.from_numpy(rounding_inputs(fmt, np.float64, limit=400)).to(dtype)
        for mode in MODES:
            _compare(fmt, x, mode, None, 3)


@pytest.mark.parametrize("name", WIDE)
def test_wide_formats_random(name: str) -> None:
    """Formats beyond 8 bits on random float32/float64 inputs over a wide exponent range."""
    fmt = _fmt(name)
    rng = np.random.default_rng(5)
    n = 3000 if FULL else 600
    bits32 = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    x32 = torch.from_numpy(bits32.view(np.float32).copy())
    x64 = torch.from_numpy(rng.standard_normal(n) * np.exp2(rng.integers(-1080, 1030, n)))
    for mode in MODES:
        for pol in _policies(fmt):
            for x in (x32, x64):
                if pol is Overflow.WRAP:
                    x = x[torch.isfinite(x)]
                _compare(fmt, x, mode, pol, 2**64 - 3)
    # torch holds codes of more than 32 bits as int64: the codes below 2**63
    codes = torch.from_numpy(rng.integers(0, min(fmt.valid_codes, 2**63), n,
                                          dtype=np.uint64).astype(np.int64)).to(
        {1: torch.uint8, 2: torch.uint16}.get(-(-fmt.bits // 8), torch.int64))
    with _gpu.emulate():
        got = fmt.decode(codes)
    _same(fmt.decode(codes), got, f"decode {fmt}")


def test_stochastic_same_stream_and_rand_bits() -> None:
    """A seed gives the same codes on both backends (the counter is the element's flat
    index, whatever the launch's layout); a Generator gives one key on both; rand_bits."""
    fmt = formats.parse("e2m1")
    x = torch.linspace(-7, 7, 3000, dtype=torch.float32).reshape(3, 1000, 1)[:, :, 0]
    for kw in ({"seed": 7}, {"seed": 7, "rand_bits": 3}, {"seed": 2**64 - 1}):
        with _gpu.emulate():
            g = fmt.encode(x, "stochastic", **kw)
        _same(fmt.encode(x, "stochastic", **kw), g, f"stochastic {kw}")
    with _gpu.emulate():
        g = fmt.encode(x, "stochastic", seed=np.random.default_rng(1))
    _same(fmt.encode(x, "stochastic", seed=np.random.default_rng(1)), g, "generator seed")
    # different seeds differ (the comparison above could not see a constant stream)
    with _gpu.emulate():
        assert not torch.equal(fmt.encode(x, "stochastic", seed=1),
                               fmt.encode(x, "stochastic", seed=2))


def test_bad_input_on_the_gpu_path() -> None:
    fmt = formats.parse("e4m3")
    with _gpu.emulate():
        with pytest.raises(ValueError, match="seed"):
            fmt.encode(torch.ones(3), "stochastic")
        with pytest.raises(TypeError, match="float16, bfloat16, float32 or float64"):
            fmt.encode(torch.ones(3, dtype=torch.int64))
        with pytest.raises(ValueError, match=r"codes for float8_e4m3fn must be in 0\.\.255"):
            fmt.decode(torch.tensor([0, 256]))
        with pytest.raises(TypeError, match="codes must be integers"):
            fmt.decode(torch.ones(2))
        with pytest.raises(ValueError, match="out-of-range|out of range"):
            fmt.encode(torch.tensor([1e6]), overflow="error")
        with pytest.raises(ValueError, match="out must be a torch.uint8 tensor"):
            fmt.encode(torch.ones(3), out=torch.empty(4, dtype=torch.uint8))
        with pytest.raises(ValueError, match="cannot wrap"):
            formats.parse("int8").encode(torch.tensor([np.nan]), overflow="wrap")
        # a preallocated output is written and returned
        out = torch.empty(3, dtype=torch.float32)
        assert fmt.quantize(torch.tensor([1.0, 2.0, 1000.0]), overflow="saturate", out=out) is out
        assert out.tolist() == [1.0, 2.0, 448.0]
