"""A plain Triton matrix multiply (tl.dot, float32 accumulator), the probe's target for
Triton's tensor-core path. Private: :func:`simulator.probe.gpu_dot` calls it."""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl


@triton.jit
def _mm(a_ptr, b_ptr, c_ptr, M, N, sam, sak, sbk, sbn, scm, scn, K: tl.constexpr,
        BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):  # pragma: no cover
    pm = tl.program_id(0)
    pn = tl.program_id(1)
    rm = pm * BM + tl.arange(0, BM)
    rn = pn * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    # K a constant: Triton's interpreter (CI) cannot loop to a runtime bound
    for k0 in tl.range(0, K, BK):
        a = tl.load(a_ptr + rm[:, None] * sam + (k0 + rk)[None, :] * sak,
                    mask=(rm[:, None] < M) & ((k0 + rk)[None, :] < K), other=0.0)
        b = tl.load(b_ptr + (k0 + rk)[:, None] * sbk + rn[None, :] * sbn,
                    mask=((k0 + rk)[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc = tl.dot(a, b, acc)
    tl.store(c_ptr + rm[:, None] * scm + rn[None, :] * scn, acc,
             mask=(rm[:, None] < M) & (rn[None, :] < N))


def matmul(a: Any, b: Any, bk: int = 64) -> Any:
    """``a @ b`` (torch tensors (M, K), (K, N) of one dtype on a GPU) -> float32."""
    import torch

    M, K = a.shape
    N = b.shape[1]
    c = torch.empty((M, N), dtype=torch.float32, device=a.device)
    grid = (triton.cdiv(M, 64), triton.cdiv(N, 64))
    _mm[grid](a, b, c, M, N, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
              c.stride(0), c.stride(1), K=K, BM=64, BN=64, BK=bk)
    return c
