"""Sub-byte packing of codes into bytes."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _kernels as K
from ._base import check_int, code_dtype

__all__ = ["pack", "unpack"]


def pack(codes: Any, bits: int) -> np.ndarray:
    """Pack ``bits``-wide codes (1..32) into a little-endian bit stream of bytes.

    Code ``i`` occupies stream bits ``[i*bits, (i+1)*bits)``, bit ``k`` of the stream being
    bit ``k % 8`` of byte ``k // 8``. So 4-bit codes go two per byte, low nibble first;
    6-bit codes four per three bytes; 8, 16 and 32 bits are the usual little-endian bytes
    (32: a float32 scale's codes). The last byte is zero-padded. The input is flattened in
    C order.
    """
    bits = check_int(bits, "bits", 1, 32)
    arr = np.asarray(codes)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"codes must be integers, not dtype {arr.dtype}")
    flat = np.ascontiguousarray(arr).reshape(-1)
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= (1 << bits)):
        raise ValueError(f"codes must be in 0..{(1 << bits) - 1} for bits={bits}")
    out = np.zeros((flat.size * bits + 7) // 8, np.uint8)
    if flat.size:
        K.pack_bits(flat.astype(np.int64), out, bits)
    return out


def unpack(data: Any, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack`: the first ``count`` codes of the byte stream ``data``."""
    bits = check_int(bits, "bits", 1, 32)
    arr = np.asarray(data)
    if arr.dtype != np.uint8:
        raise TypeError(f"data must be a uint8 array, not dtype {arr.dtype}")
    count = check_int(count, "count", 0, (arr.size * 8) // bits)
    out = np.empty(count, code_dtype(bits))
    if count:
        K.unpack_bits(np.ascontiguousarray(arr).reshape(-1), out, bits)
    return out
