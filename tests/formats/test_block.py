"""Block-scaled formats against torchao (MX and NVFP4 on CPU), gfloat and hand cases."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch

import formats
from formats import BlockScaled, ScaleRule

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
