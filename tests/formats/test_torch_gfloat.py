"""Against torch's float8 casts and gfloat (rounding modes and saturation)."""

from __future__ import annotations

import gfloat
import numpy as np
import pytest
import torch
from gfloat.formats import (
    format_info_ocp_e2m1,
    format_info_ocp_e2m3,
    format_info_ocp_e3m2,
    format_info_ocp_e4m3,
    format_info_ocp_e5m2,
    format_info_ocp_e8m0,
)

import formats
from formats import Rounding
from tests.formats.inputs import rounding_inputs

TORCH = {
    "float8_e4m3fn": (torch.float8_e4m3fn, "saturate"),  # torch saturates (divergences.py)
    "float8_e5m2": (torch.float8_e5m2, None),
    "float8_e4m3fnuz": (torch.float8_e4m3fnuz, None),
    "float8_e5m2fnuz": (torch.float8_e5m2fnuz, None),
}


@pytest.mark.parametrize("name", list(TORCH))
def test_torch_float8(name: str) -> None:
    fmt = formats.parse(name)
    dt, overflow = TORCH[name]
    x = rounding_inputs(fmt, np.float32)
    if name == "float8_e4m3fn":
        x = x[~np.isinf(x)]  # torch maps +-Inf to +-448 even though E4M3FN has NaN
    want = torch.from_numpy(x).to(dt).view(torch.uint8).numpy()
    got = fmt.encode(x, overflow=overflow)
    want_nan = np.isnan(fmt.decode(want))
    assert np.array_equal(np.isnan(fmt.decode(got)), want_nan)
    np.testing.assert_array_equal(got[~want_nan], want[~want_nan])
    # and through torch tensors in and out
    q = fmt.quantize(torch.from_numpy(x), overflow=overflow)
    ref = torch.from_numpy(x).to(dt).to(torch.float32)
    assert torch.equal(torch.nan_to_num(q, nan=7.0), torch.nan_to_num(ref, nan=7.0))


def test_torch_e4m3fn_default_differs_on_overflow() -> None:
    """The recorded divergence is real: our default (NaN) differs from torch (448)."""
    f = formats.parse("float8_e4m3fn")
    assert np.isnan(f.quantize(np.float32(1000.0)))
    assert torch.tensor(1000.0).to(torch.float8_e4m3fn).float().item() == 448.0


GFLOAT = {
    "float8_e4m3fn": format_info_ocp_e4m3,
    "float8_e5m2": format_info_ocp_e5m2,
    "float6_e3m2fn": format_info_ocp_e3m2,
    "float6_e2m3fn": format_info_ocp_e2m3,
    "float4_e2m1fn": format_info_ocp_e2m1,
    "float8_e8m0fnu": format_info_ocp_e8m0,
}
MODES = {
    Rounding.NEAREST_EVEN: gfloat.RoundMode.TiesToEven,
    Rounding.NEAREST_AWAY: gfloat.RoundMode.TiesToAway,
    Rounding.TOWARD_ZERO: gfloat.RoundMode.TowardZero,
    Rounding.UP: gfloat.RoundMode.TowardPositive,
    Rounding.DOWN: gfloat.RoundMode.TowardNegative,
}


@pytest.mark.parametrize("mode", list(MODES), ids=lambda m: m.value)
@pytest.mark.parametrize("name", list(GFLOAT))
@pytest.mark.parametrize("sat", [True, False], ids=["sat", "nonsat"])
def test_gfloat_modes(name: str, mode: Rounding, sat: bool) -> None:
    fmt = formats.parse(name)
    fi = GFLOAT[name]
    x = rounding_inputs(fmt, np.float32).astype(np.float64)
    x = x[~np.isnan(x)]
    if not fmt.signed:
        x = x[x > 0]
    if name == "float8_e8m0fnu":
        x = x[x >= fmt.smallest_normal]  # gfloat underflows to 2**-128 (divergences.py)
    if not sat and not fmt.has_nan:
        return  # gfloat raises for overflow without NaN/Inf; our saturate case covers it
    want = gfloat.round_ndarray(fi, x, MODES[mode], sat=sat)
    got = fmt.quantize(x, mode, "saturate" if sat else None)
    assert np.array_equal(got, want, equal_nan=True), [
        (a, b, c) for a, b, c in zip(x, got, want) if not (b == c or (b != b and c != c))
    ][:5]
