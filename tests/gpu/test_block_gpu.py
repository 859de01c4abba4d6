"""Block formats' GPU path (formats/_gpu/block.py, formats/_gpu/f32.py) against the CPU
path, bit for bit, without a GPU: CPU torch tensors inside ``formats._gpu.emulate()`` take
the GPU code with its Triton kernels run by Triton's interpreter.

Every named block format, BFP, grouped integers (zero points included), 2-D tiles, another
axis, each scale rule, scale-rounding mode and fused-kernel case (element kinds, division
kinds, scale sources), on random inputs with NaN, Inf, signed zeros, subnormals, huge
values, midpoints and partial blocks, as float32, bfloat16, float16 (and float64) tensors:
``quantize`` results, and ``encode``'s codes, scales, tensor scale, statistics and
``dequantize``, equal the CPU's (NaN compares as NaN: the payload of a NaN produced by
arithmetic is the hardware's, x86 propagating an operand's and NVIDIA's GPUs giving
0x7FFFFFFF). CI runs a fixed subset of the inputs; NUMFAB_FULL=1 runs more shapes, seeds
and rule combinations. benchmarks/gpu_block_check.py is the same comparison at scale on
a GPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

import formats
from formats import BlockScaled, Rounding, ScaleRule, _gpu
from formats import _kernels as K

FULL = os.environ.get("NUMFAB_FULL") == "1"


def _b(body: str) -> BlockScaled:
    fmt = formats.parse(f"block<{body}>")
    assert isinstance(fmt, BlockScaled)
    return fmt


def _named(name: str) -> BlockScaled:
    fmt = formats.parse(name)
    assert isinstance(fmt, BlockScaled)
    return fmt


def _with(name: str, **kw: Any) -> BlockScaled:
    return dataclasses.replace(_named(name), **kw)


#: every named block format, and the families and cases of the GPU path
FORMATS = [_named(n) for n in formats.NAMED_BLOCKS] + [
    _named("bfp8_b16"), _named("bfp4_b8"),
    _named("int4_g128"), _named("int4_g32_bfloat16"), _named("int8_g64_float32"),
    _named("int4_g32_float8_e8m0fnu"), _named("int4_g16_ue4m3"), _named("uint4_g128_asym"),
    _named("uint4_g32_asym_float8_e8m0fnu"), _named("uint8_g16_asym_ue5m3"),
    # scale rules on MX and NVFP4 (MXFP4 under FLOOR is named)
    _with("mxfp4", scale_rule="ceil"), _with("mxfp4", scale_rule="even"),
    _with("mxfp4", scale_rule="rceil"), _with("mxfp4", scale_rule="mse"),
    _with("nvfp4", scale_rule="rceil"), _with("nvfp4", scale_rule="mse"),
    # scale rounding of NEAREST scales
    _with("nvfp4", scale_rounding="toward_zero"), _with("nvfp4", scale_rounding="up"),
    _with("int4_g32", scale_rounding="down"), _with("int4_g32", scale_rounding="nearest_away"),
    # fused-kernel cases: element kinds (fnuz, unsigned minifloat, unsigned integer, wide
    # minifloats reaching float32's subnormals), division kinds 1 and 2, a power-of-two
    # scale with a tensor scale, a block wider than one program's chunk
    _b("float8_e4m3fnuz;float8_e8m0fnu;32;floor"), _b("ue4m3;float8_e8m0fnu;16;floor"),
    _b("uint4;float8_e8m0fnu;32;floor"), _b("bfloat16;float8_e8m0fnu;32;floor"),
    _b("float16;float8_e8m0fnu;8;ceil"), _b("float8_e4m3fn;bfloat16;32;nearest;tensor=float32"),
    _b("float16;bfloat16;32;nearest"), _b("float4_e2m1fn;float8_e8m0fnu;16;floor;tensor=float32"),
    _b("int8;float16;8192;nearest"), _b("float8_e4m3fn;float8_e8m0fnu;8192;even"),
    _b("float4_e2m1fn;float8_e8m0fnu;32;mse;tensor=float32"),
    # elements without a fused kernel, a scale without a float32 fast path
    _b("nf4;float16;64;nearest"), _b("bipolar3;float8_e8m0fnu;32;rceil"),
    _b("float8_e4m3fn;float32;32;nearest"),
    # 2-D tiles, another axis
    _b("float8_e4m3fn;float8_e8m0fnu;4x8;floor"), _b("float4_e2m1fn;float8_e4m3fn;4x4;nearest"),
    _b("float4_e2m1fn;float8_e8m0fnu;32;floor;axis=0"), _b("int4_narrow;float16;16;nearest;axis=1"),
]
IDS = [str(f) for f in FORMATS]



DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]


@contextlib.contextmanager
def _emulated() -> Iterator[None]:
    """The GPU path through Triton's interpreter; its numpy arithmetic's warnings (on
    lanes a kernel discards, e.g. a division by a zero scale) are not the code's."""
    with _gpu.emulate(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _data(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random float64 values, a magnitude per row spanning 2**-12..2**12 and outliers,
    with runs of special values written over them: signed zeros (a whole block of them),
    tiny values (float32/float16 subnormals, a float64 subnormal), huge values (beyond
    float16's range, float32's max, beyond float32's), multiples of 1/4 (ties of small
    formats), one NaN, one +Inf and one -Inf."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-12, 13, (*shape[:-1], 1)))
    x[rng.random(shape) < 0.01] *= 1000.0
    flat = x.reshape(-1)
    n = flat.size
    runs = [
        np.where(rng.random(40) < 0.5, 0.0, -0.0),
        np.array([1e-40, -3e-42, 1e-45, 2.0**-149, 3e-8, -6e-8, 1e-310, 2.0**-126]),
        rng.standard_normal(20) * 1e-41,
        np.array([7e4, -6.6e4, 3.3e38, -3.4e38, 1e39, 1e300, 2.0**127, 65504.0]),
        rng.integers(-24, 25, 40) / 4.0,
        np.array([np.nan]), np.array([np.inf]), np.array([-np.inf]),
    ]
    for run in runs:
        at = int(rng.integers(0, max(1, n - run.size + 1)))
        k = min(run.size, n - at)
        flat[at:at + k] = run[:k]
    return x


def _shapes(fmt: BlockScaled) -> list[tuple[int, ...]]:
    """Shapes for ``fmt``: whole blocks (the fused path) and partial ones."""
    bs = fmt.block_size
    if isinstance(bs, tuple):
        return [(9, 21), (2, 8, 8)] + ([(3, 17, 30)] if FULL else [])
    if fmt.axis == 0:
        return [(2 * bs + 5, 3)] + ([(bs, 2, 4)] if FULL else [])
    if fmt.axis == 1:
        return [(3, bs + 4, 2)]
    if bs > 1024:
        return [(2, bs), (1, bs + 5)]
    shapes = [(6, 2 * bs), (3, bs + bs // 2 + 3)]
    if FULL:
        shapes += [(2, 3, 4 * bs), (1, 7), (40, 8 * bs)]
    return shapes


def _tensor(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    with np.errstate(over="ignore"):
        return torch.from_numpy(_data(shape, seed)).to(dtype)


def _seeds() -> range:
    return range(4) if FULL else range(1)


def _bits(t: torch.Tensor) -> torch.Tensor:
    ints = {8: torch.int64, 4: torch.int32, 2: torch.int16}
    return t.view(ints[t.element_size()])


def _same_floats(got: Any, want: Any, what: str) -> None:
    """Equal bit for bit where not NaN, NaN at the same places."""
    g = got.detach().cpu() if isinstance(got, torch.Tensor) else torch.from_numpy(got)
    w = want.detach().cpu() if isinstance(want, torch.Tensor) else torch.from_numpy(
        np.array(want))
    assert g.dtype == w.dtype and g.shape == w.shape, (what, g.dtype, w.dtype, g.shape, w.shape)
    gn, wn = torch.isnan(g), torch.isnan(w)
    assert torch.equal(gn, wn), f"{what}: NaN at {int((gn != wn).sum())} other places"
    diff = _bits(g) != _bits(w)
    diff &= ~gn
    assert not diff.any(), (f"{what}: {int(diff.sum())} of {g.numel()} differ, first at "
                            f"{diff.nonzero()[0].tolist()}: {g[diff][:4]} vs {w[diff][:4]}")


def _same_ints(got: Any, want: np.ndarray, what: str) -> None:
    assert isinstance(got, torch.Tensor), what
    expect = {np.dtype(np.uint8): torch.uint8, np.dtype(np.uint16): torch.uint16}.get(
        want.dtype, torch.int64)
    assert got.dtype == expect, (what, got.dtype, want.dtype)
    assert tuple(got.shape) == want.shape, (what, tuple(got.shape), want.shape)
    g = got.cpu().to(torch.int64)
    w = torch.from_numpy(want.astype(np.int64))
    assert torch.equal(g, w), f"{what}: {int((g != w).sum())} of {g.numel()} differ"


def _cpu(op: Any, x: torch.Tensor) -> Any:
    """The CPU path's result (the MSE rule's squared errors overflow float64 on inputs
    near 1e300, with numpy's warning)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        return op(x)


# CI: every format from float32 and bfloat16 (the fused kernel's inputs), float16 and
# float64 (the composed path) for every third format; NUMFAB_FULL=1: every pair
@pytest.mark.parametrize(("fmt", "dtype"), [
    (f, d) for i, f in enumerate(FORMATS) for j, d in enumerate(DTYPES)
    if FULL or j < 2 or i % 3 == 0], ids=str)
def test_quantize_matches_cpu(fmt: BlockScaled, dtype: torch.dtype) -> None:
    for shape in _shapes(fmt):
        for seed in _seeds():
            x = _tensor(shape, dtype, seed)
            want = _cpu(fmt.quantize, x)
            with _emulated():
                got = fmt.quantize(x)
            _same_floats(got, want, f"{fmt} {dtype} {shape} seed {seed}")


@pytest.mark.parametrize("dtype", DTYPES[:2] + (DTYPES[2:] if FULL else []), ids=str)
@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_encode_matches_cpu(fmt: BlockScaled, dtype: torch.dtype) -> None:
    for shape in _shapes(fmt):
        for seed in _seeds():
            x = _tensor(shape, dtype, seed)
            want = _cpu(fmt.encode, x)
            with _emulated():
                got = fmt.encode(x)
                vals = got.dequantize()
            what = f"{fmt} {dtype} {shape} seed {seed}"
            _same_ints(got.codes, want.codes, f"{what} codes")
            _same_ints(got.scales, want.scales, f"{what} scales")
            _same_ints(got.saturated, want.saturated, f"{what} saturated")
            _same_ints(got.flushed, want.flushed, f"{what} flushed")
            if want.zeros is None:
                assert got.zeros is None
            else:
                _same_ints(got.zeros, want.zeros, f"{what} zeros")
            if want.tensor_scale is None:
                assert got.tensor_scale is None
            else:
                assert got.tensor_scale.dtype == torch.float64 and got.tensor_scale.ndim == 0
                _same_floats(got.tensor_scale, np.array(want.tensor_scale), f"{what} ts")
            assert isinstance(vals, torch.Tensor) and vals.device == x.device
            _same_floats(vals, want.dequantize(), f"{what} dequantize")
            if fmt.scale.bits <= 16:  # what formats.pack packs
                assert got.pack() == want.pack()


def test_quantize_out_and_layouts() -> None:
    """``out=`` receives the result; non-contiguous inputs and other axes give what the
    CPU gives."""
    fmt = _named("mxfp8_e4m3")
    x = _tensor((64, 6), torch.float32, 3)
    want = fmt.quantize(x.t())
    with _emulated():
        out = torch.empty(6, 64)
        got = fmt.quantize(x.t(), out=out)
        assert got is out
        _same_floats(out, want, "out")
        out_t = torch.empty(64, 6).t()
        assert fmt.quantize(x.t(), out=out_t) is out_t
    _same_floats(out_t, want, "out, non-contiguous")


def test_gpu_path_rejects_bad_input() -> None:
    fmt = _named("mxfp4")
    with _emulated():
        with pytest.raises(TypeError, match="x must be a float16, bfloat16, float32 or "
                                            "float64 tensor"):
            fmt.quantize(torch.ones(4, 32, dtype=torch.int32))
        with pytest.raises(ValueError, match="out must be a torch tensor of shape"):
            fmt.quantize(torch.ones(4, 32), out=torch.empty(4, 32, dtype=torch.float64))
        with pytest.raises(ValueError, match="out must be a torch tensor of shape"):
            fmt.quantize(torch.ones(4, 32), out=np.empty((4, 32), np.float32))
        with pytest.raises(ValueError, match="rank >= 1"):
            fmt.encode(torch.tensor(1.0))


def test_pairwise_sum_is_numpys() -> None:
    """The MSE rule's error sums add in numpy's order (its pairwise summation), which
    decides ties between candidate scales; random rows rarely show the order, so check it
    here directly on sums whose rounding depends on it."""
    with _emulated():
        gpu_block = _gpu.kernels("block")
    rng = np.random.default_rng(10)
    for n in [*range(1, 20), 31, 32, 33, 64, 100, 128, 129, 136, 300, 1000]:
        v = rng.standard_normal((50, n)) * np.exp2(rng.integers(-40, 40, (50, n)))
        got = gpu_block._pairwise_sum(torch.from_numpy(v))
        _same_floats(got, v.sum(axis=1), f"n={n}")


def test_kernels_compile_for_h100() -> None:
    """The interpreter runs the kernels' Python, not Triton's compiler: compile them for
    sm_90 (Triton ships ptxas; no GPU needed) and read the PTX for what would break
    bit-identity: only IEEE divisions (div.rn.f64, div.rn.f32), no fused multiply-add, no
    flush-to-zero; and vector loads, which the speed needs."""
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    res = subprocess.run([sys.executable, "-m", "tests.gpu._compile"] + (["all"] if FULL else []),
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(lines) >= 5
    for case in lines:
        assert set(case["fp"]) <= {"div.rn.f64", "div.rn.f32"}, case
        assert not case["ftz"], case
        assert case["vector_loads"], case


# --- the ports of formats/_gpu/f32.py, one function at a time ----------------------------
@functools.cache
def _probes() -> ModuleType:
    with _emulated():
        _gpu.kernels("f32")
        import tests.gpu._probes as probes
    return probes


MINIFLOATS = ["float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "float6_e3m2fn",
              "float8_e4m3fnuz", "ue4m3", "bfloat16", "float16", "e3m4b5"]
MODES = [m for m in Rounding if m is not Rounding.STOCHASTIC]


# CI: three shapes (signed, fnuz, unsigned); the scalar tests run elem through the float32
# fast path for every small format too. NUMFAB_FULL=1: all nine.
@pytest.mark.parametrize("name", MINIFLOATS if FULL else
                         ["float8_e4m3fn", "float8_e4m3fnuz", "ue4m3"])
def test_elem_matches_numba(name: str) -> None:
    """F.elem, every deterministic mode and overflow policy, on the format's values,
    midpoints, +-1 ulp, out-of-range values, specials and random float32 bit patterns:
    the same bits and bad counts as the numba kernel."""
    from tests.formats.inputs import rounding_inputs

    fmt = formats.parse(name)
    assert isinstance(fmt, formats.Minifloat)
    rng = np.random.default_rng(7)
    x = np.concatenate([rounding_inputs(fmt, np.float32, limit=None if FULL else 400),
                        rng.integers(0, 2**32, 4096 if FULL else 1024,
                                     dtype=np.uint64).astype(np.uint32).view(np.float32)])
    xb = torch.from_numpy(x.view(np.int32).copy())
    kern = _probes().elem_kernel
    from formats._enums import Special

    fnuz = fmt.special is Special.FNUZ
    for pol in fmt.allowed_overflow:
        c = fmt._f32_consts[pol.code]
        for mode in MODES:
            want = np.empty_like(x.view(np.uint32))
            nbad = K.quantize_f32(x.view(np.uint32), want, c, fmt.signed, fnuz, mode.code)
            out = torch.empty_like(xb)
            bad = torch.empty_like(xb)
            with _emulated():
                kern[(1,)](xb, out, bad, x.size, MODE=mode.code, SIGNED=fmt.signed, FNUZ=fnuz,
                           c0=int(c.lsb), c1=int(c.emin_bits), c2=float(c.cadd),
                           c3=float(c.unit), c4=float(c.half_unit), c5=int(c.max_bits),
                           c6=int(c.over_bits), c7=int(c.nan_bits), c8=int(c.below_bits),
                           c9=int(c.nan_bad), BLOCK=triton_block(x.size))
            assert np.array_equal(out.numpy().view(np.uint32), want), (name, pol, mode)
            assert int(bad.sum()) == nbad, (name, pol, mode)


def triton_block(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def test_to_float32_odd_matches_numba() -> None:
    rng = np.random.default_rng(8)
    q = np.concatenate([
        rng.standard_normal(2000) * np.exp2(rng.integers(-160, 140, 2000)),
        rng.integers(0, 2**63, 2000, dtype=np.int64).view(np.float64),
        [0.0, -0.0, np.inf, -np.inf, np.nan, 3.5e38, -3.5e38, 1e-46, 2.0**-150, 1e-320],
    ])
    want = np.empty(q.size, np.uint32)
    K.scale_targets_odd(q, 1.0, 1.0, want)
    out = torch.empty(q.size, dtype=torch.int32)
    with _emulated():
        _probes().odd_kernel[(1,)](torch.from_numpy(q), out, q.size,
                                   BLOCK=triton_block(q.size))
    got = out.numpy().view(np.uint32)
    nan = np.isnan(q)
    assert np.array_equal(got[~nan], want[~nan])
    assert np.isnan(got[nan].view(np.float32)).all()


@pytest.mark.parametrize("name", ["mxfp4", "mxfp8_e4m3", "mxfp8_e5m2", "mxint8",
                                  "block<bfloat16;float8_e8m0fnu;32;floor>"])
def test_pow2_scale_matches_numba(name: str) -> None:
    """F.pow2_scale under each rule against K.pow2_scales on float32 magnitudes."""
    base = formats.parse(name)
    assert isinstance(base, BlockScaled)
    rng = np.random.default_rng(9)
    a = np.abs(np.concatenate([
        rng.integers(0, 0x7F800000, 3000, dtype=np.int64).astype(np.uint32).view(np.float32),
        np.float32(2.0) ** np.arange(-149, 128, dtype=np.float32),
        np.float32([0.0, 6.0, 5.999, 448.0, 447.9, 1.5, 1.75, 3.4e38])]).astype(np.float64))
    for code, rule in enumerate(("floor", "ceil", "even", "rceil")):  # the kernels' codes
        if rule == "even" and not isinstance(base.element, formats.Minifloat):
            continue
        fmt = dataclasses.replace(base, scale_rule=ScaleRule(rule))
        p = fmt._pow2
        want = np.empty_like(a)
        K.pow2_scales(a, code, p, want)
        out = torch.empty(a.size, dtype=torch.float64)
        with _emulated():
            _probes().pow2_kernel[(1,)](torch.from_numpy(a), out, a.size,
                                        RULE=code,
                                        EMAX_ELEM=p.emax_elem, ELEM_MAX=p.elem_max,
                                        MAN_ELEM=p.man_elem, LO=p.lo, HI=p.hi,
                                        BLOCK=triton_block(a.size))
        assert np.array_equal(out.numpy(), want), (name, rule)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", ["nvfp4", "nvint4",
                                  "block<float8_e4m3fn;bfloat16;32;nearest;tensor=float32>"])
def test_quantize_plain_data_matches_cpu(name: str, dtype: torch.dtype) -> None:
    """Plain normal data, no special values: the fused kernel's programs mostly take the
    fast quotient (the special runs of the other tests send them to the exact one)."""
    fmt = _named(name) if "<" not in name else _b(name[6:-1])
    rng = np.random.default_rng(12)
    x = torch.from_numpy(rng.standard_normal((64, 256)) * 3.0).to(dtype)
    want = _cpu(lambda t: torch.from_numpy(np.asarray(fmt.quantize(t.float().numpy()))),
                x).to(dtype)
    with _emulated():
        got = fmt.quantize(x)
    _same_floats(got, want, f"{name} {dtype}")
