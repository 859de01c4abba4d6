"""Bipolar-INT against its definition, and sub-byte packing."""

from __future__ import annotations

import numpy as np
import pytest

import formats
from formats import BipolarInt


@pytest.mark.parametrize("n", range(1, 13))
def test_bipolar_every_code(n: int) -> None:
    f = BipolarInt(n)
    codes = np.arange(2**n)
    # definition: bit i weighs +2**i when set, -2**i when clear
    want = np.array([sum((1 if (u >> i) & 1 else -1) * 2**i for i in range(n)) for u in codes])
    np.testing.assert_array_equal(f.decode(codes), want)
    np.testing.assert_array_equal(want, 2 * codes - (2**n - 1))
    np.testing.assert_array_equal(f.encode(want.astype(np.float64)), codes)
    # two's complement s <-> bipolar 2s+1, and the code is s with its top bit inverted
    s = np.arange(-(2 ** (n - 1)), 2 ** (n - 1))
    c = f.from_twos_complement(s)
    np.testing.assert_array_equal(f.decode(c), 2 * s + 1)
    np.testing.assert_array_equal(f.to_twos_complement(c), s)
    np.testing.assert_array_equal(c, (s & (2**n - 1)) ^ (1 << (n - 1)))
    assert set(np.abs(f.finite_values()) % 2) == {1}  # odd integers, no zero


def test_bipolar_rounding() -> None:
    f = BipolarInt(3)
    x = np.array([0.0, -0.0, 0.3, -0.3, 1.9, 2.0, 2.1, 100.0, -100.0])
    np.testing.assert_array_equal(f.quantize(x), [1, -1, 1, -1, 1, 1, 3, 7, -7])
    with pytest.raises(ValueError, match="s must be in -4..3"):
        f.from_twos_complement(np.array([4]))


@pytest.mark.parametrize("bits", [*range(1, 17), 17, 23, 24, 31, 32])
def test_pack_round_trip(bits: int) -> None:
    rng = np.random.default_rng(bits)
    for count in (0, 1, 7, 8, 1001):
        codes = rng.integers(0, 2**bits, count)
        data = formats.pack(codes, bits)
        assert data.dtype == np.uint8 and data.size == (count * bits + 7) // 8
        np.testing.assert_array_equal(formats.unpack(data, bits, count), codes)


def test_pack_layout() -> None:
    np.testing.assert_array_equal(formats.pack(np.array([1, 2, 3]), 4), [0x21, 0x03])
    # 6-bit: four codes in three bytes, little-endian bit stream
    codes = np.array([0b000001, 0b000010, 0b000011, 0b111111])
    stream = sum(int(c) << (6 * i) for i, c in enumerate(codes))
    np.testing.assert_array_equal(formats.pack(codes, 6), list(stream.to_bytes(3, "little")))


@pytest.mark.parametrize("bits", [17, 24, 31, 32])
def test_pack_wide_layout(bits: int) -> None:
    """Codes wider than 16 bits (a float32 scale's): the same little-endian bit stream,
    against Python's integers."""
    codes = np.random.default_rng(bits).integers(0, 2**bits, 37)
    stream = sum(int(c) << (bits * i) for i, c in enumerate(codes))
    want = list(stream.to_bytes((37 * bits + 7) // 8, "little"))
    np.testing.assert_array_equal(formats.pack(codes, bits), want)


def test_block_pack_float32_scales() -> None:
    """A block format with float32 scales packs (its 32-bit scale codes) and unpacks to
    the same values."""
    f = formats.parse("int8_g64_float32")
    x = np.random.default_rng(3).standard_normal((4, 128)).astype(np.float32)
    enc = f.encode(x)
    data = enc.pack()
    assert len(data) == 4 * 128 + 8 * 4
    back = f.unpack(data, (4, 128))
    np.testing.assert_array_equal(back.dequantize(), enc.dequantize())
    np.testing.assert_array_equal(back.scales, enc.scales)
