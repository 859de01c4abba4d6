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
import functools
import math
from typing import Any

import numpy as np
import torch

from formats import BlockScaled, parse

__all__ = ["column_amax", "gptq", "hadamard_matrix", "rearrange", "rotate", "smooth_scales"]


@functools.lru_cache(maxsize=16)
def _sylvester(n: int) -> np.ndarray:
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(n)


def hadamard_matrix(n: int) -> torch.Tensor:
    """The n x n orthonormal Sylvester-Hadamard matrix (symmetric, its own inverse);
    ``n`` a power of two."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"a Hadamard block must be a power of two, not {n}")
    return torch.from_numpy(_sylvester(n))


def rotate(x: torch.Tensor, block: int) -> torch.Tensor:
    """``x`` times the block-diagonal Hadamard matrix (blocks of ``block`` along the last
    dimension, which ``block`` must divide): ``rotate(rotate(x)) == x`` to rounding."""
    k = x.shape[-1]
    if k % block:
        raise ValueError(f"Hadamard block {block} does not divide K={k}")
    h = hadamard_matrix(block).to(x.dtype)
    return (x.reshape(*x.shape[:-1], k // block, block) @ h).reshape(x.shape)


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
        return torch.zeros(x.shape[1], dtype=x.dtype)
    return x.abs().amax(dim=0)


def rearrange(act_amax: torch.Tensor) -> torch.Tensor:
    """A permutation of the input channels sorting them by calibrated magnitude, so that
    outlier channels share blocks instead of inflating the scale of many."""
    return torch.argsort(act_amax, stable=True)


def _column_quantizer(fmt: Any, w: np.ndarray) -> Any:
    """``quant(col_index, column) -> quantized column`` for weight ``w`` (rows, K):
    scalar formats round each value; block formats (blocks along K) take each block's
    scale (and zero point) from the block's current weights when its first column comes
    (the tensor scale from the initial weights), then round ``w / s`` with the element
    format (saturating, as the format's encoder does)."""
    if not isinstance(fmt, BlockScaled):
        return lambda j, col: np.asarray(fmt.quantize(col), np.float64)
    if not isinstance(fmt.block_size, int):
        raise ValueError(f"gptq takes 1-D blocks along K, not tiles {fmt.block_size}")
    f1 = dataclasses.replace(fmt, axis=-1)
    bs = fmt.block_size
    ts = 1.0
    if fmt.tensor_scale is not None:
        ts = float(f1.encode(w).tensor_scale or 1.0)
    state: dict[str, Any] = {}

    def quant(j: int, col: np.ndarray) -> np.ndarray:
        if (j >= 0 and j % bs == 0) or "s" not in state:
            blk = state["w"][:, j : j + bs]
            if fmt.tensor_scale is not None:
                # the same tensor scale: a row holding the initial maximum joins the block
                extra = np.zeros((1, blk.shape[1]))
                extra[0, 0] = state["wmax"]
                enc = f1.encode(np.concatenate([blk, extra]))
                state["s"] = fmt.scale.decode(enc.scales[:-1, 0]) * ts
            else:
                enc = f1.encode(blk)
                state["s"] = fmt.scale.decode(enc.scales[:, 0])
            state["z"] = enc.zeros[:, 0].astype(np.float64) if enc.zeros is not None else 0.0
        s, z = state["s"], state["z"]
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(s > 0, col / s, 0.0) + z
        e = np.asarray(fmt.element.quantize(v, overflow="saturate"), np.float64)
        return (e - z) * s

    state["w"] = w
    state["wmax"] = float(np.abs(w).max(initial=0.0))
    return quant


def gptq(weight: torch.Tensor, hessian: torch.Tensor, fmt: Any, *, damp: float = 0.01,
         act_order: bool = False) -> torch.Tensor:
    """GPTQ-quantized ``weight`` (out, K) for inputs with ``hessian = X.T @ X`` (K, K).

    Columns are quantized one at a time by the format's quantizer (``fmt``: scalar, or
    block-scaled with blocks along K), each column's error spread over the columns not
    yet quantized through the inverse Hessian's Cholesky factor. ``act_order``: columns
    in order of decreasing Hessian diagonal (block scales then come from the initial
    weights, as GPTQ's static groups). Returns the quantized weight (float64, the
    original column order).
    """
    fmt = parse(fmt)
    if isinstance(damp, bool) or not isinstance(damp, (int, float)) or not 0 < damp < math.inf:
        raise ValueError(f"damp must be a positive finite number (the fraction of the "
                         f"Hessian's mean diagonal added to it, e.g. 0.01), not {damp!r}")
    W = weight.detach().to(torch.float64).clone()
    H = hessian.detach().to(torch.float64).clone()
    K = W.shape[1]
    if H.shape != (K, K):
        raise ValueError(f"hessian must be ({K}, {K}) for a weight of K={K}, not "
                         f"{tuple(H.shape)}")
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    perm = torch.argsort(torch.diag(H), descending=True) if act_order else torch.arange(K)
    initial = W.numpy().copy()
    W = W[:, perm]
    H = H[perm][:, perm]
    H += damp * torch.mean(torch.diag(H)) * torch.eye(K, dtype=H.dtype)
    L, info = torch.linalg.cholesky_ex(H)
    if int(info):
        raise ValueError(f"gptq: the Hessian dampened by damp={damp} is not positive "
                         "definite (non-finite calibration inputs, or damp too small for "
                         "float64); pass finite inputs or a larger damp (gptq_damp)")
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)
    Wn = W.numpy()  # shares memory with W
    Q = np.zeros_like(Wn)
    quant: Any
    if act_order and isinstance(fmt, BlockScaled):
        # static groups: each column takes its original block's scales, computed from
        # the initial weights
        bs = fmt.block_size
        assert isinstance(bs, int)
        blocks: dict[int, Any] = {}

        def quant(i: int, col: np.ndarray) -> np.ndarray:
            b = int(perm[i]) // bs
            if b not in blocks:
                qb = _column_quantizer(fmt, initial)
                qb(b * bs, initial[:, b * bs])  # fixes the block's scales
                blocks[b] = qb
            return blocks[b](b * bs + 1, col) if bs > 1 else blocks[b](-1, col)
    else:
        quant = _column_quantizer(fmt, Wn)
    for i in range(K):
        col = Wn[:, i].copy()
        q = quant(i, col)
        Q[:, i] = q
        err = (col - q) / float(Hinv[i, i])
        if i + 1 < K:
            Wn[:, i + 1:] -= np.outer(err, Hinv[i, i + 1:].numpy())
    out = np.empty_like(Q)
    out[:, perm.numpy()] = Q
    return torch.from_numpy(out)
