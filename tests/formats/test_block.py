"""Block-scaled formats against torchao (MX and NVFP4 on CPU), gfloat and hand cases."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import formats
from formats import BlockScaled

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    from torchao.prototype.mx_formats.config import ScaleCalculationMode
    from torchao.prototype.mx_formats.constants import DTYPE_FP6_E2M3, DTYPE_FP6_E3M2
    from torchao.prototype.mx_formats.kernels import unpack_uint4
    from torchao.prototype.mx_formats.mx_tensor import to_mx
    from torchao.prototype.mx_formats.nvfp4_tensor import (
        NVFP4Tensor,
        per_tensor_amax_to_scale,
    )
    logging.disable(logging.NOTSET)

TORCHAO_ELEM = {
    "mxfp8_e4m3": torch.float8_e4m3fn,
    "mxfp8_e5m2": torch.float8_e5m2,
    "mxfp6_e2m3": DTYPE_FP6_E2M3,
    "mxfp6_e3m2": DTYPE_FP6_E3M2,
    "mxfp4": torch.float4_e2m1fn_x2,
}


def _data(rows: int = 256, cols: int = 512, seed: int = 0) -> np.ndarray:
    """Random rows whose magnitudes span 2**-8 .. 2**8, with an outlier here and there."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols)) * np.exp2(rng.uniform(-8, 8, (rows, 1)))
    x[rng.random((rows, cols)) < 0.002] *= 300
    return x.astype(np.float32)


def _torchao_mx(x: np.ndarray, name: str, rule: str) -> tuple[np.ndarray, np.ndarray]:
    t = torch.from_numpy(x)
    ed = TORCHAO_ELEM[name]
    scale, data = to_mx(t, ed, 32, ScaleCalculationMode(rule), is_swizzled_scales=False)
    if ed == torch.float4_e2m1fn_x2:
        codes = unpack_uint4(data.view(torch.uint8)).reshape(t.shape)
    else:
        codes = data.view(torch.uint8)
    return scale.view(torch.uint8).numpy(), codes.numpy()


@pytest.mark.parametrize("rule", ["floor", "ceil", "even", "rceil"])
@pytest.mark.parametrize("name", list(TORCHAO_ELEM))
def test_mx_against_torchao(name: str, rule: str) -> None:
    base = formats.parse(name)
    fmt = BlockScaled(base.element, base.scale, 32, scale_rule=rule)
    x = _data()
    enc = fmt.encode(x)
    ts, tc = _torchao_mx(x, name, rule)
    amax = np.abs(x.reshape(-1, 32)).max(axis=1).reshape(ts.shape)
    # torchao divides by 2**-126 where the scale code is 0 (divergences.py): none here
    assert (ts > 0).all()
    keep = np.ones(ts.shape, bool)
    if rule == "rceil":
        # torchao rounds log2(amax / max_pos) to float32 before ceil (divergences.py)
        d = (amax / np.float32(fmt.elem_max)).astype(np.float32)
        quirk = np.ceil(np.log2(d.astype(np.float64)).astype(np.float32))
        exact = np.ceil(np.log2(amax.astype(np.float64) / fmt.elem_max))
        keep = quirk == exact
        assert keep.mean() > 0.99
    np.testing.assert_array_equal(enc.scales[keep], ts[keep])
    rows_keep = np.repeat(keep, 32, axis=1)
    np.testing.assert_array_equal(enc.codes[rows_keep], tc[rows_keep])


@pytest.mark.parametrize("tensor_scale", [False, True])
def test_nvfp4_against_torchao(tensor_scale: bool) -> None:
    x = _data(128, 256, seed=3)
    t = torch.from_numpy(x)
    pts = per_tensor_amax_to_scale(torch.max(torch.abs(t))) if tensor_scale else None
    nv = NVFP4Tensor.to_nvfp4(t, block_size=16, per_tensor_scale=pts,
                              is_swizzled_scales=False, use_triton_kernel=False)
    ts = nv.scale.view(torch.uint8).numpy()
    tc = unpack_uint4(nv.qdata.view(torch.uint8)).reshape(t.shape).numpy()
    base = formats.parse("nvfp4")
    fmt = base if tensor_scale else BlockScaled(base.element, base.scale, 16,
                                                scale_rule="nearest")
    enc = fmt.encode(x)
    if tensor_scale:
        assert enc.tensor_scale == pytest.approx(float(pts), rel=0, abs=0)
    # torchao clamps scales below 2**-6 (the smallest normal E4M3) up to 2**-6: compare
    # the blocks whose scale is normal (divergences.py)
    normal = (enc.scales & 0x78) != 0
    assert normal.mean() > 0.3  # rows span 2**16: with one tensor scale, many are tiny
    np.testing.assert_array_equal(enc.scales[normal], ts[normal])
    # torchao multiplies by a float32 reciprocal instead of dividing (divergences.py):
    # elements must agree wherever that product rounds like the exact quotient
    s = formats.parse("e4m3").decode(enc.scales).reshape(-1, 1)
    s_all = s * (enc.tensor_scale or 1.0)
    xr = x.reshape(-1, 16).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if tensor_scale:
            inv = (np.float32(1.0) / np.float32(enc.tensor_scale)).astype(np.float32)
            rec = (inv / s.astype(np.float32)).astype(np.float32)
        else:
            rec = (np.float32(1.0) / s.astype(np.float32)).astype(np.float32)
        prod = np.nan_to_num((x.reshape(-1, 16) * rec).astype(np.float32))
    e2m1 = formats.parse("e2m1")
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = np.where(s_all > 0, xr / s_all, 0.0)
    agree = e2m1.encode(prod, overflow="saturate") == e2m1.encode(exact, overflow="saturate")
    normal_el = np.repeat(normal.reshape(-1, 1), 16, axis=1)
    same = agree & normal_el
    assert same.sum() > 0.999 * normal_el.sum()
    np.testing.assert_array_equal(enc.codes.reshape(-1, 16)[same], tc.reshape(-1, 16)[same])


def test_floor_rule_clips_block_max() -> None:
    """OCP MX FLOOR: 957 in an MXFP8 E4M3 block becomes 896, and the clip is counted."""
    x = np.zeros(32)
    x[0], x[1] = 957.0, 1.0
    enc = formats.parse("mxfp8_e4m3").encode(x)
    assert enc.dequantize()[0] == 896.0
    assert enc.saturated.tolist() == [1]
    assert formats.parse("e8m0").decode(enc.scales).tolist() == [2.0]


def test_outlier_flushes_small_elements() -> None:
    x = np.full(32, 1e-3)
    x[5] = 1000.0
    enc = formats.parse("mxfp4").encode(x)
    # scale 2**(floor(log2 1000) - 2) = 128: 1000/128 = 7.8 saturates to 6, 1e-3/128 -> 0
    assert enc.flushed.tolist() == [31] and enc.saturated.tolist() == [1]
    assert enc.dequantize()[5] == 768.0


GFLOAT = {"mxfp4": "format_info_mxfp4_e2m1", "mxfp8_e4m3": "format_info_mxfp8_e4m3",
          "mxfp6_e2m3": "format_info_mxfp6_e2m3", "mxint8_full": "format_info_mxint8"}


@pytest.mark.parametrize("name", list(GFLOAT))
def test_mx_against_gfloat(name: str) -> None:
    """gfloat's OCP MX blocks (FLOOR rule, nearest-even, saturating); gfloat keeps
    MXINT8's -2.0, as numfab's mxint8_full does."""
    import gfloat
    import gfloat.formats as gf

    fi = getattr(gf, GFLOAT[name])
    x = _data(16, 64, seed=5).astype(np.float64)
    got = formats.parse(name).quantize(x)
    want = np.stack([
        np.concatenate([gfloat.quantize_block(fi, blk, gfloat.compute_scale_amax)
                        for blk in row.reshape(-1, 32)])
        for row in x
    ])
    np.testing.assert_array_equal(got, want)


def test_mxint8_minus_two_policy() -> None:
    """MXINT8 elements are int8 * 2**-6. mxint8 keeps the symmetric range (-127..127, as
    microxcaling clamps); mxint8_full also uses the code -128 (-2.0, as gfloat)."""
    x = np.zeros(32)
    x[0] = -1.999  # amax 1.999: scale 2**0
    assert formats.parse("mxint8").quantize(x)[0] == -127 / 64
    assert formats.parse("mxint8_full").quantize(x)[0] == -2.0
    assert formats.parse("mxint8").encode(x).codes[0] == 129
    assert formats.parse("mxint8_full").encode(x).codes[0] == 128


def test_special_blocks() -> None:
    f = formats.parse("mxfp8_e4m3")
    x = np.zeros((4, 32))
    x[1, 3] = np.nan
    x[2, 7] = -np.inf
    x[2, 0] = 1.0
    x[3] = 1e-45  # below every scale: scale clamps at 2**-127 and elements flush
    enc = f.encode(x)
    e8 = formats.parse("e8m0")
    sc = e8.decode(enc.scales)
    assert sc[0] == 2.0**-127  # all-zero block: the least scale, zeros come back
    assert np.isnan(sc[1]) and np.isnan(sc[2])
    d = enc.dequantize()
    assert (d[0] == 0).all() and np.isnan(d[1]).all() and np.isnan(d[2]).all()
    assert (d[3] == 0).all() and enc.flushed[3] == 32
    # amax 3e38 -> scale 2**(127 - 8); 3e38 / 2**119 = 451 > 448: FLOOR clips all 32
    big = f.encode(np.full(32, 3e38))
    assert big.scales.tolist() == [127 + 127 - 8] and big.saturated.tolist() == [32]
    fp4 = formats.parse("mxfp4")
    assert np.isnan(fp4.quantize(np.array([np.nan] + [1.0] * 31))).all()


def test_partial_blocks_2d_tiles_any_axis() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 37))
    f = formats.parse("mxfp4")
    q = f.quantize(x)
    assert q.shape == x.shape
    # the partial last block (5 elements) takes its scale from those 5 elements
    alone = f.quantize(x[:, 32:])
    np.testing.assert_array_equal(q[:, 32:], alone)
    # axis=0 equals quantizing the transpose along the last axis
    f0 = BlockScaled(f.element, f.scale, 32, axis=0)
    np.testing.assert_array_equal(f0.quantize(x.T), q.T)
    # 2-D tiles: each 4x8 tile shares one scale
    t = BlockScaled(f.element, f.scale, (4, 8))
    enc = t.encode(x)
    assert enc.scales.shape == (2, 5)
    np.testing.assert_array_equal(t.quantize(x)[:4, :8], f.quantize(x[:4, :8].reshape(1, 32)
                                                                    ).reshape(4, 8))
    # rank 3, torch in -> torch out
    t3 = torch.from_numpy(rng.standard_normal((2, 3, 64)).astype(np.float32))
    q3 = f.quantize(t3)
    assert isinstance(q3, torch.Tensor) and q3.shape == t3.shape
    np.testing.assert_array_equal(q3.numpy(), f.quantize(t3.numpy()))


def test_bits_and_bytes() -> None:
    x = np.ones((4, 64), np.float32)
    assert formats.parse("mxfp4").bits_per_element == 4.25
    assert formats.parse("nvfp4").bits_per_element == 4.5
    enc = formats.parse("nvfp4").encode(x)
    assert enc.bits_per_element == 4.5 + 32 / 256
    assert enc.nbytes == 256 // 2 + 16 + 4
    assert formats.parse("mxfp6_e3m2").encode(x).nbytes == 256 * 6 // 8 + 8


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: BlockScaled(formats.parse("e2m1"), formats.parse("e8m0"), 0), "block_size"),
        (lambda: BlockScaled(formats.parse("e2m1"), formats.parse("e8m0"), (4, 0)), "block_size"),
        (lambda: BlockScaled(formats.parse("e2m1"), formats.parse("e8m0"), 32,
                             scale_rule="median"), "scale_rule must be one of"),
        (lambda: BlockScaled(formats.parse("e2m1"), formats.parse("e4m3"), 32,
                             scale_rule="floor"), "needs a power-of-two scale"),
        (lambda: BlockScaled(formats.parse("e2m1"), formats.Lut((-1.0, 0.0)), 32),
         "no positive values"),
        (lambda: formats.parse("mxfp4").encode(np.zeros((2, 3))) and
         BlockScaled(formats.parse("e2m1"), formats.parse("e8m0"), 32, axis=2).encode(
             np.zeros((2, 3))), "axis must be in -2..1"),
        (lambda: BlockScaled(formats.parse("e2m1"), formats.parse("e8m0"), (2, 2)).encode(
            np.zeros(3)), "rank >= 2"),
        (lambda: formats.parse("int4_g128_float8"), "unknown format name|group scale"),
        (lambda: formats.parse("bfp1_b8"), "mantissa bits"),
        (lambda: BlockScaled(formats.parse("int4"), formats.parse("fp16"), 32,
                             scale_rule="nearest", zero_point=True), "unsigned integer"),
        (lambda: BlockScaled(formats.parse("uint4"), formats.parse("fp16"), 32,
                             scale_rule="mse", zero_point=True), "symmetric"),
        (lambda: BlockScaled(formats.parse("uint4"), formats.parse("ue4m3"), 16,
                             scale_rule="nearest", tensor_scale=formats.parse("fp32"),
                             zero_point=True), "tensor_scale"),
        (lambda: formats.parse("int4_g128_asym"), "unknown format name"),
    ],
)
def test_block_bad_input(call, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()


def test_names_round_trip() -> None:
    for name, f in formats.NAMED_BLOCKS.items():
        assert str(f) == name and formats.parse(name) == f
    for name in ["bfp8_b16", "bfp4_b8", "int4_g128", "int8_g32_bfloat16", "int4_g64_ue4m3",
                 "uint4_g128_asym", "uint8_g32_asym_bfloat16",
                 "block<uint3;bfloat16;16;nearest;zero_point>",
                 "block<float4_e2m1fn;float8_e8m0fnu;16x16;floor>",
                 "block<nf4;float16;64;nearest;axis=0>"]:
        f = formats.parse(name)
        assert formats.parse(str(f)) == f


FAST_BLOCK = [
    "mxfp4", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "nvfp4", "nvint4",
    "mxint8", "mxint8_full", "int4_g32", "bfp6_b16", "int4_g32_float32", "int8_g32_bfloat16",
    "int4_g32_ue4m3", "int4_g32_ue5m3", "int4_g32_float8_e8m0fnu", "uint4_g32_asym",
    "block<float4_e2m1fn;float8_e8m0fnu;32;ceil>", "block<float4_e2m1fn;float8_e8m0fnu;32;even>",
    "block<float4_e2m1fn;float8_e8m0fnu;32;rceil>",
    "block<float6_e3m2fn;float16;16;nearest;tensor=float32>",  # division path
    "block<float4_e2m1fn;ue4m3;16;rceil;tensor=float32>",
    "block<nf4;float16;64;nearest>",  # lookup-table element: unfused path
]


@pytest.mark.parametrize("name", FAST_BLOCK)
def test_fast_quantize_equals_encode_dequantize(name: str) -> None:
    """The fused float32 path equals encode().dequantize() rounded to float32, specials
    and tiny/huge blocks included."""
    f = formats.parse(name)
    x = _data(32, 128, seed=11)
    x[0, :7] = [np.nan, 1.0, -np.inf, 0.0, -0.0, 3e38, -1e-40]
    x[1] = 0.0
    x[2] = 1e-42
    q = f.quantize(x)
    ref = f.encode(x).dequantize().astype(np.float32)
    assert q.dtype == np.float32
    np.testing.assert_array_equal(q, ref)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, width=32), min_size=32, max_size=32),
       st.sampled_from(["mxfp4", "mxfp8_e4m3", "mxfp6_e2m3", "mxint8"]))
def test_mx_properties(vals: list[float], name: str) -> None:
    f = formats.parse(name)
    x = np.array(vals, np.float32).reshape(1, 32)
    enc = f.encode(x)
    q = f.quantize(x)
    np.testing.assert_array_equal(q, enc.dequantize().astype(np.float32))
    np.testing.assert_array_equal(f.quantize(q), q)  # FLOOR keeps the scale: idempotent
    s = float(formats.parse("e8m0").decode(enc.scales).reshape(-1)[0])
    unsat = np.abs(x / s) <= f.elem_max
    grid = np.unique(f.element.finite_values())
    e = (x / s)[unsat].astype(np.float64)
    j = np.clip(np.searchsorted(grid, e, side="right") - 1, 0, grid.size - 2)
    half_gap = (grid[j + 1] - grid[j]) / 2
    assert (np.abs(q[unsat] / s - e) <= half_gap).all()


@pytest.mark.parametrize("name", ["mxfp4", "nvfp4", "mxfp6_e3m2", "int4_g32", "mxint8",
                                  "uint4_g32_asym"])
def test_packed_layout_round_trip(name: str) -> None:
    f = formats.parse(name)
    x = _data(6, 96, seed=4)
    enc = f.encode(x)
    data = enc.pack()
    assert len(data) == enc.nbytes
    back = f.unpack(data, x.shape)
    np.testing.assert_array_equal(back.codes, enc.codes)
    np.testing.assert_array_equal(back.scales, enc.scales)
    if enc.zeros is not None:
        assert back.zeros is not None
        np.testing.assert_array_equal(back.zeros, enc.zeros)
    np.testing.assert_array_equal(back.dequantize(), enc.dequantize())
    with pytest.raises(ValueError, match="data must hold"):
        f.unpack(data[:-1], x.shape)
    if name == "mxfp4":  # first byte: elements 0 and 1, low nibble first
        assert data[0] == int(enc.codes[0, 0]) | (int(enc.codes[0, 1]) << 4)


@pytest.mark.parametrize("name", ["mxfp4", "mxfp8_e4m3", "nvfp4", "int4_g32"])
def test_mse_rule_never_worse_per_block(name: str) -> None:
    """MSE searches candidates that include the base rule's scale (FLOOR for E8M0,
    nearest for the others), so no block's squared error can grow."""
    base = formats.parse(name)
    mse = BlockScaled(base.element, base.scale, base.block_size, scale_rule="mse",
                      tensor_scale=base.tensor_scale)
    x = _data(32, 128, seed=9).astype(np.float64)
    bs = base.block_size
    eb = ((base.encode(x).dequantize() - x) ** 2).reshape(-1, bs).sum(axis=1)
    em = ((mse.encode(x).dequantize() - x) ** 2).reshape(-1, bs).sum(axis=1)
    assert (em <= eb * (1 + 1e-12)).all() and em.sum() < eb.sum()
    np.testing.assert_array_equal(mse.quantize(x.astype(np.float32)),
                                  mse.encode(x.astype(np.float32)).dequantize()
                                  .astype(np.float32))


EXACT_BLOCK = [
    "mxfp4", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxint8", "mxint8_full",
    "nvfp4", "nvint4", "bfp8_b16", "int4_g32", "int4_g32_ue4m3", "int8_g32_bfloat16",
    "int4_g32_float8_e8m0fnu", "uint4_g32_asym", "uint8_g32_asym_ue5m3",
    "block<float4_e2m1fn;float8_e8m0fnu;32;ceil>", "block<float4_e2m1fn;float8_e8m0fnu;32;even>",
    "block<float4_e2m1fn;float8_e8m0fnu;32;rceil>",
    "block<float4_e2m1fn;ue4m3;16;rceil;tensor=float32>",
]


@pytest.mark.parametrize("name", EXACT_BLOCK)
def test_block_against_exact_reference(name: str) -> None:
    """Element, scale and zero-point codes and the tensor scale equal the exact-rational
    reference (formats.reference.ref_block_encode) on float32 data whose row magnitudes
    span 2**-8..2**8 with outliers."""
    from formats.reference import ref_block_encode

    f = formats.parse(name)
    x = _data(8, 64, seed=len(name))
    codes, scales, zeros, ts = ref_block_encode(f, x.tolist())
    enc = f.encode(x)
    np.testing.assert_array_equal(enc.codes, np.array(codes))
    np.testing.assert_array_equal(enc.scales.reshape(-1), np.array(scales))
    if zeros is not None:
        assert enc.zeros is not None
        np.testing.assert_array_equal(enc.zeros.reshape(-1), np.array(zeros))
    assert enc.tensor_scale == ts


def test_asymmetric_groups() -> None:
    f = formats.parse("uint4_g128_asym")
    assert f.zero_point and f.bits_per_element == 4 + (16 + 4) / 128
    x = np.zeros((4, 128))
    x[0] = np.linspace(0.0, 3.0, 128)  # lo = 0: zero point 0, scale 3/15
    x[1] = np.linspace(-3.0, 0.0, 128)  # hi = 0: zero point 15
    x[2] = np.linspace(-1.0, 2.0, 128)  # z = round(1 / 0.2) = 5
    enc = f.encode(x)
    assert enc.zeros is not None
    assert enc.zeros.reshape(-1).tolist() == [0, 15, 5, 0]
    sc = formats.parse("fp16").decode(enc.scales).reshape(-1)
    assert sc[0] == np.float16(0.2) and sc[3] == 0.0  # an all-zero block: scale 0
    d = enc.dequantize()
    assert (d[3] == 0).all() and d[0, 0] == 0.0 and d[1, -1] == 0.0
    assert np.abs(d[:3] - x[:3]).max() <= sc[:3].max() / 2 * (1 + 1e-3)
    # asymmetric beats symmetric on a one-sided block, which wastes half the signed grid
    y = np.random.default_rng(5).random((16, 128)).astype(np.float32)
    e_asym = np.abs(f.quantize(y) - y).mean()
    e_sym = np.abs(formats.parse("int4_g128").quantize(y) - y).mean()
    assert e_asym < 0.6 * e_sym
    np.testing.assert_array_equal(f.quantize(y), f.encode(y).dequantize().astype(np.float32))


def test_quantize_out_and_dtypes() -> None:
    f = formats.parse("nvfp4")
    x = _data(4, 64, seed=8)
    o = np.empty_like(x)
    assert f.quantize(x, out=o) is o
    np.testing.assert_array_equal(o, f.quantize(x))
    o64 = np.empty(x.shape)
    np.testing.assert_array_equal(f.quantize(x.astype(np.float64), out=o64),
                                  f.encode(x).dequantize())
    with pytest.raises(ValueError, match="out must be"):
        f.quantize(x, out=o64)
    for dt in (torch.bfloat16, torch.float16, torch.float64):
        t = torch.from_numpy(x).to(dt)
        assert f.quantize(t).dtype == dt
        assert formats.parse("uint4_g32_asym").quantize(t).dtype == dt
