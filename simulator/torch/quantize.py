"""Fake quantization of torch tensors through formats/' kernels, straight-through.

Every quantization of a tensor is one call of the torch custom op
``numfab::fake_quant(x, fmt, whole)`` (:func:`quantize_op`): its fake kernel gives the
result's shape and dtype, so a simulated model runs under ``torch.compile`` (and CUDA
graphs) with the op as an opaque node, and its gradient is the identity
(straight-through). The op works where the tensor lives: a CPU tensor is quantized by
formats/' numba kernels through numpy (zero-copy views); a CUDA tensor is handed to the
format as a tensor, which formats/ quantizes on its device (no host copy).

Both paths quantize the same values: float64 tensors from float64, every other float
dtype from its float32 value (exact), the result rounded once to the tensor's dtype.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
import torch

from formats import BlockScaled, Integer, Lut, ScaleRule, on_gpu, parse

from .spec import check_granularity, fmt_of

__all__ = ["fake_quant", "quantize_op"]


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
    """``x`` quantized to ``fmt`` along its last dimension (K), in x's dtype and on its
    device, with a straight-through gradient (the identity).

    Raises
    ------
    TypeError
        ``x`` is not a floating-point torch tensor
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, not {type(x).__name__}")
    if fmt is None:
        return x
    fmt = fmt_of(fmt, "fmt")
    check_granularity(granularity, fmt, "granularity")
    return quantize(x, scaled(fmt, granularity, x.shape[-1], x.numel()),
                    whole=granularity == "tensor")


def quantize(x: torch.Tensor, f: Any, whole: bool = False) -> torch.Tensor:
    """``x`` in the resolved format ``f`` (blocks along the last dimension; ``whole``:
    one block spanning the tensor), straight-through, through :func:`quantize_op`."""
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor (float16, bfloat16, float32 "
                        f"or float64) to quantize, not {x.dtype}")
    if x.numel() == 0:
        return x
    if isinstance(f, BlockScaled) and f.axis != -1 and isinstance(f.block_size, int):
        f = dataclasses.replace(f, axis=-1)
    # the op's output is contiguous (its fake kernel says so): give it a contiguous input
    xc = x.contiguous()
    if torch.compiler.is_compiling():
        return quantize_op(xc, str(f), whole)
    if (torch.is_grad_enabled() and x.requires_grad) or type(x) is not torch.Tensor \
            or x.device.type not in ("cpu", "cuda"):
        # autograd, tensor subclasses (fake, functorch, DTensor) and meta tensors: the op
        return quantize_op(xc, _name(f), whole)
    # eager without a gradient: the op's body itself (what the op runs), without the
    # dispatcher's Python layers (~50 us a call on a GPU model's hot path)
    return _quantize(xc, _name(f), whole)


def _name(f: Any) -> str:
    """``str(f)``, remembered for hashable (frozen) formats."""
    try:
        return _names(f)
    except TypeError:  # a format holding an unhashable field
        return str(f)


@functools.lru_cache(maxsize=256)
def _names(f: Any) -> str:
    return str(f)


@functools.lru_cache(maxsize=256)
def _format(name: str) -> Any:
    """The format named ``name`` (the op carries formats by name: ``parse(str(f)) == f``)."""
    return parse(name)


@torch.library.custom_op("numfab::fake_quant", mutates_args=())
def quantize_op(x: torch.Tensor, fmt: str, whole: bool) -> torch.Tensor:
    """``numfab::fake_quant``: contiguous float tensor ``x`` quantized to the format named
    ``fmt`` (blocks along the last dimension; ``whole``: one block spanning the tensor),
    a new contiguous tensor of x's shape, dtype and device."""
    return _quantize(x, fmt, whole)


def _quantize(x: torch.Tensor, fmt: str, whole: bool) -> torch.Tensor:
    """The body of :func:`quantize_op`."""
    f = _format(fmt)
    blocked = isinstance(f, BlockScaled)
    if blocked and whole:
        shape: tuple[int, ...] = (1, x.numel())
    elif blocked and isinstance(f.block_size, int):
        shape = (-1, x.shape[-1])
    else:
        shape = tuple(x.shape)
    wide = x.dtype == torch.float64
    with np.errstate(all="ignore"):
        if on_gpu(x):
            # bfloat16 goes in as it is: formats/ quantize it from its float32 value and
            # round the result to bfloat16, as the CPU path does (float16 does not: a
            # block format would round float16 results from float64)
            t = x if wide or x.dtype in (torch.float32, torch.bfloat16) else \
                x.to(torch.float32)
            q = f.quantize(t.reshape(shape))
            return q.reshape(x.shape).to(x.dtype)
        arr = x.detach().to(torch.float64 if wide else torch.float32).numpy()
        qa = np.asarray(f.quantize(arr.reshape(shape)), arr.dtype).reshape(arr.shape)
    return torch.from_numpy(qa).to(x.dtype)


@quantize_op.register_fake
def _(x: torch.Tensor, fmt: str, whole: bool) -> torch.Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _straight_through(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
    return grad, None, None


quantize_op.register_autograd(_straight_through)
