"""Bit-exact against ml_dtypes: every code decodes alike; values, midpoints and +-1 ulp
(float32 inputs only: ml_dtypes rounds float64 twice) encode alike."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import formats
from tests.formats.inputs import rounding_inputs

TYPES = [
    "float8_e3m4", "float8_e4m3", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e4m3b11fnuz",
    "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu", "float6_e2m3fn", "float6_e3m2fn",
    "float4_e2m1fn", "bfloat16",
]


def _view(dt: np.dtype, bits: int) -> np.dtype:
    return np.dtype(np.uint16) if bits > 8 else np.dtype(np.uint8)


@pytest.mark.parametrize("name", TYPES)
def test_decode_every_code(name: str) -> None:
    fmt = formats.parse(name)
    dt = np.dtype(getattr(ml_dtypes, name))
    codes = np.arange(fmt.num_codes, dtype=_view(dt, fmt.bits))
    with np.errstate(invalid="ignore"):
        # sub-byte ml_dtypes types store one code per byte
        want = codes.view(dt).astype(np.float64)
    got = fmt.decode(codes)
    np.testing.assert_array_equal(got, want)
    fin = ~np.isnan(want)
    assert np.array_equal(np.signbit(got[fin]), np.signbit(want[fin]))


@pytest.mark.parametrize("name", TYPES)
def test_encode_matches(name: str) -> None:
    fmt = formats.parse(name)
    dt = np.dtype(getattr(ml_dtypes, name))
    x = rounding_inputs(fmt, np.float32)
    if not fmt.has_nan:
        x = x[~np.isnan(x)]  # divergence recorded in tests/formats/divergences.py
    if fmt.man_bits == 0:
        # ml_dtypes rounds E8M0 ties up (tests/formats/divergences.py): leave ties out
        v = fmt.finite_values()
        ties = np.concatenate([(v[:-1] + v[1:]) / 2, [fmt.max * 1.5]]).astype(np.float32)
        x = x[~np.isin(np.abs(x), ties)]
        # ml_dtypes also rounds float32 subnormal inputs (below 2**-126) up a binade
        x = x[~(np.abs(x) < 2.0**-126)]
    with np.errstate(over="ignore", invalid="ignore"):
        want = x.astype(dt)
    want_codes = want.view(_view(dt, fmt.bits)) if fmt.bits >= 8 else want.view(np.uint8)
    got = fmt.encode(x)
    want_nan = np.isnan(want.astype(np.float32))
    got_nan = np.isnan(fmt.decode(got))
    assert np.array_equal(got_nan, want_nan), x[got_nan != want_nan][:10]
    mismatch = (got != want_codes) & ~want_nan
    assert not mismatch.any(), list(zip(x[mismatch][:8], got[mismatch][:8],
                                        want_codes[mismatch][:8]))
    # quantize agrees with the same cast
    q = fmt.quantize(x)
    np.testing.assert_array_equal(q, want.astype(np.float32))


@pytest.mark.parametrize("name", ["float16", "float32"])
def test_encode_ieee_numpy(name: str) -> None:
    """float16/float32 against numpy's own casts from float64 (IEEE RNE, overflow to Inf)."""
    fmt = formats.parse(name)
    dt = np.dtype(name)
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(20000) * 10.0 ** rng.integers(-45, 40, 20000),
                        rounding_inputs(formats.parse("float16"), np.float64)])
    with np.errstate(over="ignore"):
        want = x.astype(dt)
    got = fmt.encode(x)
    ui = np.uint16 if name == "float16" else np.uint32
    nan = np.isnan(want)
    np.testing.assert_array_equal(got[~nan], want.view(ui)[~nan])
    assert np.isnan(fmt.decode(got[nan])).all()
