"""Quantization techniques that work with any formats/ format (block formats included).

Each is a function on plain tensors, used by :mod:`simulator.torch` per layer:

- :func:`hadamard_matrix` / :func:`rotate`: orthonormal Walsh-Hadamard rotation, full
  (K a power of two) or block-diagonal (blocks of the format's block size, as MR-GPTQ).
- :func:`smooth_scales`: SmoothQuant's per-input-channel migration scales.
- :func:`gptq`: GPTQ (Frantar et al. 2023) whose rounding step is the format's own
  quantizer, block scales taken from the (updated) weights as the format defines them.
- :func:`rearrange`: the channel order that puts outlier channels into shared blocks
  ("Accurate Block Quantization in LLMs with Outliers").
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from formats import BlockScaled, parse

__all__ = ["column_amax", "gptq", "hadamard_matrix", "rearrange", "rotate", "smooth_scales"]


def hadamard_matrix(n: int) -> torch.Tensor:
    """The n x n orthonormal Sylvester-Hadamard matrix (symmetric, its own inverse),
    float64; ``n`` a power of two. :func:`rotate` multiplies by it."""
    return rotate(torch.eye(n, dtype=torch.float64), n)


def rotate(x: torch.Tensor, block: int) -> torch.Tensor:
    """``x`` times the block-diagonal Hadamard matrix (blocks of ``block`` along the last
    dimension, which ``block`` must divide): ``rotate(rotate(x)) == x`` to rounding.

    Computed as the fast Walsh-Hadamard transform in x's dtype on x's device: log2(block)
    stages of butterflies ``(a + b, a - b)`` (Sylvester order), then one multiplication
    by ``1 / sqrt(block)`` (exact where block is a power of four). Additions and one
    product in a fixed order: the same bits on every device, unlike a matrix product,
    whose summation order is the BLAS library's.
    """
    if block < 1 or block & (block - 1):
        raise ValueError(f"a Hadamard block must be a power of two, not {block}")
    k = x.shape[-1]
    if k % block:
        raise ValueError(f"Hadamard block {block} does not divide K={k}")
    y = x.reshape(-1, block)
    h = 1
    while h < block:
        pairs = y.reshape(-1, block // (2 * h), 2, h)
        a, b = pairs[:, :, 0], pairs[:, :, 1]
        y = torch.stack((a + b, a - b), dim=2).reshape(-1, block)
        h *= 2
    # a product by a Python float: the scalar is rounded to x's dtype on every device
    # (torch divides by a scalar through its reciprocal on CUDA, not on the CPU)
    return (y * (1.0 / math.sqrt(block))).reshape(x.shape)


def smooth_scales(act_amax: torch.Tensor, weight: torch.Tensor, alpha: float) -> torch.Tensor:
    """SmoothQuant: ``s_j = max|X_j|**alpha / max|W_j|**(1 - alpha)`` per input channel
    j (x / s and W * s leave x @ W.T unchanged); channels that are all zero get 1."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"smoothquant alpha must be in [0, 1], not {alpha}")
    wmax = column_amax(weight).to(torch.float64)
    amax = act_amax.to(torch.float64)
    s = amax.clamp(min=1e-5) ** alpha / wmax.clamp(min=1e-5) ** (1 - alpha)
    return torch.where((amax > 0) & (wmax > 0), s, torch.ones_like(s))


def column_amax(x: torch.Tensor) -> torch.Tensor:
    """Per-column max |x| of a (rows, K) matrix; 0 for every column of one with no rows."""
    if x.shape[0] == 0:
        return torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
    return x.abs().amax(dim=0)


def rearrange(act_amax: torch.Tensor) -> torch.Tensor:
    """A permutation of the input channels sorting them by calibrated magnitude, so that
    outlier channels share blocks instead of inflating the scale of many."""
    return torch.argsort(act_amax, stable=True)


def _values(a: Any, device: torch.device) -> torch.Tensor:
    """Values a format gave back (a torch tensor, or numpy where formats/ has no device
    kernels for the call) as float64 on ``device``."""
    if isinstance(a, torch.Tensor):
        return a.to(device=device, dtype=torch.float64)
    return torch.from_numpy(np.asarray(a, np.float64)).to(device)


def _column_quantizer(fmt: Any, w: torch.Tensor) -> Any:
    """``quant(col_index, column) -> quantized column`` for weight ``w`` (rows, K, float64,
    updated in place by the caller): scalar formats round each value; block formats
    (blocks along K) take each block's scale (and zero point) from the block's current
    weights when its first column comes (the tensor scale from the initial weights),
    then round ``w / s`` with the element format (saturating, as the format's encoder
    does). Everything stays on w's device."""
    dev = w.device
    if not isinstance(fmt, BlockScaled):
        return lambda j, col: _values(fmt.quantize(col), dev)
    if not isinstance(fmt.block_size, int):
        raise ValueError(f"gptq takes 1-D blocks along K, not tiles {fmt.block_size}")
    f1 = dataclasses.replace(fmt, axis=-1)
    bs = fmt.block_size
    ts = 1.0
    if fmt.tensor_scale is not None:
        ts = float(f1.encode(w).tensor_scale or 1.0)
    # the tensor scale's maximum: a row holding it joins each block (same tensor scale)
    extra = torch.zeros(1, bs, dtype=torch.float64, device=dev)
    if w.numel():
        extra[0, 0] = w.abs().amax()
    state: dict[str, Any] = {}

    def quant(j: int, col: torch.Tensor) -> torch.Tensor:
        if (j >= 0 and j % bs == 0) or "s" not in state:
            blk = w[:, j : j + bs]
            if fmt.tensor_scale is not None:
                enc = f1.encode(torch.cat([blk, extra[:, : blk.shape[1]]]))
                state["s"] = _values(fmt.scale.decode(enc.scales[:-1, 0]), dev) * ts
            else:
                enc = f1.encode(blk)
                state["s"] = _values(fmt.scale.decode(enc.scales[:, 0]), dev)
            state["z"] = _values(enc.zeros[:, 0], dev) if enc.zeros is not None else 0.0
        s, z = state["s"], state["z"]
        v = torch.where(s > 0, col / s, 0.0) + z
        e = _values(fmt.element.quantize(v, overflow="saturate"), dev)
        return (e - z) * s

    return quant


def gptq(weight: torch.Tensor, hessian: torch.Tensor, fmt: Any, *, damp: float = 0.01,
         act_order: bool = False) -> torch.Tensor:
    """GPTQ-quantized ``weight`` (out, K) for inputs with ``hessian = X.T @ X`` (K, K).

    Columns are quantized one at a time by the format's quantizer (``fmt``: scalar, or
    block-scaled with blocks along K), each column's error spread over the columns not
    yet quantized through the inverse Hessian's Cholesky factor. ``act_order``: columns
    in order of decreasing Hessian diagonal (ties in column order; block scales then
    come from the initial weights, as GPTQ's static groups). Runs with torch ops on the
    weight's device (the Cholesky factorisations are the device's: LAPACK on the CPU,
    cuSOLVER on CUDA, which may differ in the last bits). Returns the quantized weight
    (float64, the original column order, on the weight's device).

    Raises
    ------
    ValueError
        ``damp`` not a positive finite number; ``hessian`` not (K, K) or on another
        device than ``weight``; the dampened Hessian not positive definite
    """
    fmt = parse(fmt)
    if isinstance(damp, bool) or not isinstance(damp, (int, float)) or not 0 < damp < math.inf:
        raise ValueError(f"damp must be a positive finite number (the fraction of the "
                         f"Hessian's mean diagonal added to it, e.g. 0.01), not {damp!r}")
    W = weight.detach().to(torch.float64).clone()
    dev = W.device
    if hessian.device != dev:
        raise ValueError(f"hessian must be on the weight's device ({dev}), not "
                         f"{hessian.device}")
    H = hessian.detach().to(torch.float64).clone()
    K = W.shape[1]
    if H.shape != (K, K):
        raise ValueError(f"hessian must be ({K}, {K}) for a weight of K={K}, not "
                         f"{tuple(H.shape)}")
    dead = torch.diag(H) == 0
    H.diagonal().masked_fill_(dead, 1.0)
    W.masked_fill_(dead, 0.0)
    perm = torch.argsort(torch.diag(H), descending=True, stable=True) if act_order else \
        torch.arange(K, device=dev)
    initial = W.clone()
    W = W[:, perm]
    H = H[perm][:, perm]
    H += damp * torch.mean(torch.diag(H)) * torch.eye(K, dtype=H.dtype, device=dev)
    L, info = torch.linalg.cholesky_ex(H)
    if int(info):
        raise ValueError(f"gptq: the Hessian dampened by damp={damp} is not positive "
                         "definite (non-finite calibration inputs, or damp too small for "
                         "float64); pass finite inputs or a larger damp (gptq_damp)")
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)
    Q = torch.zeros_like(W)
    quant: Any
    if act_order and isinstance(fmt, BlockScaled):
        # static groups: each column takes its original block's scales, computed from
        # the initial weights; the column loop runs on the host, so it reads the order
        # (K integers) there once
        bs = fmt.block_size
        assert isinstance(bs, int)
        order = perm.tolist()
        blocks: dict[int, Any] = {}

        def quant(i: int, col: torch.Tensor) -> torch.Tensor:
            b = order[i] // bs
            if b not in blocks:
                qb = _column_quantizer(fmt, initial)
                qb(b * bs, initial[:, b * bs])  # fixes the block's scales
                blocks[b] = qb
            return blocks[b](b * bs + 1, col) if bs > 1 else blocks[b](-1, col)
    else:
        quant = _column_quantizer(fmt, W)
    for i in range(K):
        col = W[:, i].clone()
        q = quant(i, col)
        Q[:, i] = q
        err = (col - q) / Hinv[i, i]
        if i + 1 < K:
            W[:, i + 1:] -= torch.outer(err, Hinv[i, i + 1:])
    out = torch.empty_like(Q)
    out[:, perm] = Q
    return out
