"""Fake quantization of torch tensors through formats/' kernels, straight-through."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from formats import BlockScaled, Integer, Lut, ScaleRule, parse

from .spec import check_granularity, fmt_of

__all__ = ["fake_quant"]


def rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` as a (rows, K) matrix, K its last dimension (rows counted explicitly:
    reshape(-1, 0) cannot infer them for an empty K)."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


def scaled(fmt: Any, g: str, k: int, numel: int) -> Any:
    """The format a tensor is quantized in at granularity ``g`` (K = ``k``)."""
    if isinstance(fmt, BlockScaled) or fmt is None:
        return fmt
    if g == "auto":
        g = "channel" if isinstance(fmt, (Integer, Lut)) else "none"
    if g == "none":
        return fmt
    size = numel if g == "tensor" else k if g == "channel" else int(g.split(":")[1])
    # an empty tensor has nothing to scale: a block of one keeps the format valid
    size = max(size, 1)
    return BlockScaled(fmt, parse("float32"), size, scale_rule=ScaleRule.NEAREST)


def fake_quant(x: torch.Tensor, fmt: Any, granularity: str = "auto") -> torch.Tensor:
    """``x`` quantized to ``fmt`` along its last dimension (K), in x's dtype, with a
    straight-through gradient (the identity). Runs formats/' float32 kernels."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, not {type(x).__name__}")
    if fmt is None:
        return x
    fmt = fmt_of(fmt, "fmt")
    check_granularity(granularity, fmt, "granularity")
    if x.numel() == 0:
        return x
    return quantize(x, scaled(fmt, granularity, x.shape[-1], x.numel()),
                     whole=granularity == "tensor")


def quantize(x: torch.Tensor, f: Any, whole: bool = False) -> torch.Tensor:
    """``x`` in the resolved format ``f`` (blocks along the last dimension; ``whole``:
    one block spanning the tensor), straight-through."""
    if x.numel() == 0:
        return x
    k = x.shape[-1]
    # float32 kernels for float32/16-bit tensors; float64 tensors round from float64
    wide = x.dtype == torch.float64
    arr = x.detach().to(torch.float64 if wide else torch.float32).contiguous().numpy()
    if isinstance(f, BlockScaled) and whole:
        arr2 = arr.reshape(1, -1)
    elif isinstance(f, BlockScaled) and isinstance(f.block_size, int):
        arr2 = arr.reshape(-1, k)
    else:
        arr2 = arr
    if isinstance(f, BlockScaled) and f.axis != -1 and isinstance(f.block_size, int):
        f = dataclasses.replace(f, axis=-1)
    with np.errstate(all="ignore"):
        q = np.asarray(f.quantize(arr2), arr.dtype).reshape(arr.shape)
    qt = torch.from_numpy(q).to(x.dtype)
    if x.requires_grad:
        return x + (qt - x).detach()
    return qt
