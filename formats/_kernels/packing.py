"""Sub-byte packing of codes into a little-endian bit stream (:mod:`formats.packing`)."""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .._jit import PJIT as _PJIT

__all__ = ["pack_bits", "unpack_bits"]


@numba.njit(**_PJIT)
def pack_bits(codes, out, bits):  # pragma: no cover - jitted
    """Little-endian bit stream: code i occupies bits [i*bits, (i+1)*bits)."""
    nbytes = out.size
    for byte in prange(nbytes):
        acc = np.int64(0)
        start = byte * 8
        first = start // bits
        last = min((start + 7) // bits, codes.size - 1)
        for k in range(first, last + 1):
            off = k * bits - start
            c = np.int64(codes[k]) & ((np.int64(1) << bits) - 1)
            acc |= (c << off) if off >= 0 else (c >> -off)
        out[byte] = acc & 0xFF


@numba.njit(**_PJIT)
def unpack_bits(data, out, bits):  # pragma: no cover - jitted
    for k in prange(out.size):
        start = k * bits
        acc = np.int64(0)
        b0 = start >> 3
        b1 = (start + bits - 1) >> 3
        for b in range(b0, b1 + 1):
            off = b * 8 - start
            v = np.int64(data[b])
            acc |= (v << off) if off >= 0 else (v >> -off)
        out[k] = acc & ((np.int64(1) << bits) - 1)
