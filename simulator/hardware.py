"""GEMMs of the seed hardware, bit-true, with operation counts for the cost model.

- :func:`bipolar_gemm`: bipolar-INT bit-plane GEMM (APT-LLM, arXiv:2409.17870).
- :func:`lut_gemm`: LUT Tensor Core mpGEMM (table precompute, symmetrised lookup,
  bit-serial over weight bit-planes; arXiv:2408.06003).
- :func:`grouped_gemm`: MixPE-style per-group integer partial sums with late
  dequantization (arXiv:2411.16158).
- :func:`llm_int8_gemm`: LLM.int8() mixed-precision decomposition (arXiv:2208.07339).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from formats import BipolarInt, BlockScaled, Integer, Minifloat, parse
from formats._base import _Input

from . import _kernels as K_
from .accumulator import Accumulator
from .gemm import _odd, _two_sum, gemm, quantize_operand

__all__ = ["HwResult", "bipolar_gemm", "grouped_gemm", "llm_int8_gemm", "lut_gemm"]


@dataclasses.dataclass
class HwResult:
    """A hardware GEMM's output (float64 or int64, (M, N)) and its operation counts."""

    out: np.ndarray
    ops: dict[str, int]
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def _matrix(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(_Input(x, name).array, np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, not shape {arr.shape}")
    return arr


def _check_k(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"a is (M, K={a.shape[1]}) and b is (K={b.shape[0]}, N): the K "
                         "dimensions must agree")


def _int_operand(x: np.ndarray, fmt: Any, name: str) -> tuple[np.ndarray, int]:
    """Bipolar values (odd integers) and bit count of an Integer or BipolarInt operand."""
    f = parse(fmt)
    if isinstance(f, BipolarInt):
        if not np.array_equal(np.asarray(f.quantize(x)), x):
            raise ValueError(f"{name} must hold {f} values (odd integers "
                             f"{f.min:g}..{f.max:g})")
        return x, f.bits
    if isinstance(f, Integer) and f.signed and not f.narrow:
        if not np.array_equal(np.rint(x), x) or x.min() < f.min or x.max() > f.max:
            raise ValueError(f"{name} must hold {f} integers ({f.min:g}..{f.max:g})")
        return 2.0 * x + 1.0, f.bits  # lossless two's complement -> bipolar: v = 2s + 1
    raise ValueError(f"{name}_format must be a bipolar<n> or signed int<n> format, not {f}")


def bipolar_gemm(a: Any, b: Any, *, a_format: Any, b_format: Any,
                 pairs: bool = False) -> HwResult:
    """Bipolar-INT GEMM by +-1 bit-planes: ``A = sum_i 2**i S_i`` with ``S_i`` in {-1, +1}
    (bit set: +1), likewise ``B``; ``A @ B = sum_ij 2**(i+j) S_i @ T_j``, each plane pair a
    binary matmul (XNOR-popcount on hardware: ``S.T = K - 2 popcount(s xor t)``).

    Two's-complement ``int<n>`` operands convert losslessly (``v = 2s + 1``) and the
    result converts back: ``A_int @ B_int = (A_b @ B_b - rowsum(A_b) - colsum(B_b) + K)/4``.
    The output is the exact integer product (int64). Binary matmuls run as float32 BLAS
    on +-1 matrices (exact for K < 2**24); ``pairs=False`` sums A's planes first (the
    same integers, ``n_a`` times fewer BLAS calls), ``pairs=True`` runs every plane pair.
    """
    A = _matrix(a, "a")
    B = _matrix(b, "b")
    _check_k(A, B)
    K = A.shape[1]
    if K >= 2**24:
        raise ValueError(f"K must be below 2**24 for exact float32 binary matmuls, not {K}")
    av, na = _int_operand(A, a_format, "a")
    bv, nb = _int_operand(B, b_format, "b")
    ua = ((av + (2**na - 1)) / 2).astype(np.int64)  # codes: bit i set <=> plane i is +1
    ub = ((bv + (2**nb - 1)) / 2).astype(np.int64)
    sa = [(2 * ((ua >> i) & 1) - 1).astype(np.float32) for i in range(na)]
    tb = [(2 * ((ub >> j) & 1) - 1).astype(np.float32) for j in range(nb)]
    out = np.zeros((A.shape[0], B.shape[1]), np.int64)
    if pairs:
        for i in range(na):
            for j in range(nb):
                out += (sa[i] @ tb[j]).astype(np.int64) << (i + j)
    else:
        abip = sum((s * np.float32(2**i) for i, s in enumerate(sa)), np.zeros_like(sa[0]))
        for j in range(nb):
            # exact: |A_b| < 2**na, so |A_b @ T_j| < K * 2**na < 2**24 is checked below
            if K * 2**na < 2**24:
                out += (abip @ tb[j]).astype(np.int64) << j
            else:
                for i in range(na):
                    out += (sa[i] @ tb[j]).astype(np.int64) << (i + j)
    fa, fb = parse(a_format), parse(b_format)
    if isinstance(fa, Integer) or isinstance(fb, Integer):
        # back to two's complement where an operand was converted
        a_b, b_b = av.astype(np.int64), bv.astype(np.int64)
        if isinstance(fa, Integer) and isinstance(fb, Integer):
            out = (out - a_b.sum(1, keepdims=True) - b_b.sum(0, keepdims=True) + K) // 4
        elif isinstance(fa, Integer):
            out = (out - b_b.sum(0, keepdims=True)) // 2
        else:
            out = (out - a_b.sum(1, keepdims=True)) // 2
    M, N = out.shape
    words = -(-K // 64)
    ops = {"plane_pairs": na * nb, "binary_macs": M * N * K * na * nb,
           "xnor_popcount_words": M * N * words * na * nb,
           "shift_adds": M * N * na * nb, "conversions": (M * K if isinstance(fa, Integer)
                                                          else 0)
           + (K * N if isinstance(fb, Integer) else 0)}
    return HwResult(out, ops)


def lut_gemm(x: Any, w: Any, *, w_format: Any, x_format: Any = None, group: int = 4,
             symmetric: bool = True, table_format: Any = None) -> HwResult:
    """LUT Tensor Core mpGEMM ``x @ w`` with low-bit integer weights.

    For each row of ``x`` and each group of ``group`` consecutive K indices, a table
    holds the signed sums ``sum_i s_i x_i`` for every sign pattern ``s`` in {-1,+1}**g;
    with ``symmetric`` only the 2**(g-1) patterns whose last sign is +1 are stored and the
    others are their negations. Weights (``int<n>`` two's complement or ``bipolar<n>``)
    are split into +-1 bit-planes; the output is bit-serial: ``sum_j 2**j sum_groups
    T[pattern of plane j]``, converted back to two's complement as
    ``x @ w_int = (x @ w_b - rowsum(x)) / 2``.

    ``table_format``: ``None`` keeps table entries exact (float64 sums of the quantized
    activations); a float format rounds each entry (nearest-even); an ``int<n>`` format
    quantizes each table symmetrically with its own scale ``amax / (2**(n-1) - 1)`` (the
    per-table INT8 quantization of the paper). Lookups accumulate in float64.
    """
    X = _matrix(x, "x")
    Wm = _matrix(w, "w")
    _check_k(X, Wm)
    if isinstance(group, bool) or not isinstance(group, int) or not 1 <= group <= 8:
        raise ValueError(f"group must be an int in 1..8, not {group!r}")
    if x_format is not None:
        X = quantize_operand(X, x_format, "x").dequantize()
    wv, nb = _int_operand(Wm, w_format, "w")
    M, K = X.shape
    N = Wm.shape[1]
    G = -(-K // group)
    Xp = np.zeros((M, G * group))
    Xp[:, :K] = X
    Xg = Xp.reshape(M, G, group)
    # table[m, g, p] = sum_i sign_i(p) x[m, g, i], sign_i(p) = +1 where bit i of p is set
    pats = np.arange(2**group)
    signs = (2 * ((pats[:, None] >> np.arange(group)) & 1) - 1).astype(np.float64)
    table = np.einsum("mgi,pi->mgp", Xg, signs)
    tf = parse(table_format) if table_format is not None else None
    info: dict[str, Any] = {}
    if tf is not None:
        if isinstance(tf, Integer):
            qmax = 2 ** (tf.bits - 1) - 1
            amax = np.abs(table).max(axis=2, keepdims=True)
            scale = np.where(amax > 0, amax / qmax, 1.0)
            table = np.rint(table / scale).clip(-qmax, qmax) * scale
            info["table_scales"] = scale[..., 0]
        elif isinstance(tf, Minifloat):
            table = np.asarray(tf.quantize(table), np.float64)
        else:
            raise ValueError(f"table_format must be an int<n> or float format, not {tf}")
    if symmetric:
        half = 2 ** (group - 1)
        stored = table[:, :, half:]  # last sign +1
        # pattern p with last sign -1 reads -stored[complement(p)]
        comp = (2**group - 1) - pats
        table = np.concatenate([-stored[:, :, (comp[:half] - half)], stored], axis=2)
    uw = ((wv + (2**nb - 1)) / 2).astype(np.int64)
    uwp = np.zeros((G * group, N), np.int64)
    uwp[:K] = uw
    out = np.zeros((M, N))
    table = np.ascontiguousarray(table)
    for j in range(nb):
        bits = (uwp >> j) & 1
        idx = (bits.reshape(G, group, N) << np.arange(group)[None, :, None]).sum(axis=1)
        # out += 2**j * sum over groups of table[m, g, idx[g, n]] (numba, no M*N*G array)
        K_.lut_lookup(table, np.ascontiguousarray(idx), out, 2.0**j)
    fw = parse(w_format)
    if isinstance(fw, Integer):
        out = (out - Xp.sum(axis=1, keepdims=True)) / 2
    ops = {"table_entries": M * G * (2 ** (group - 1) if symmetric else 2**group),
           "table_adds": M * G * (2 ** (group - 1) if symmetric else 2**group),
           "lookups": M * N * G * nb, "lookup_adds": M * N * G * nb,
           "shift_adds": M * N * nb}
    return HwResult(out, ops, info)


def grouped_gemm(x: Any, w: Any, *, x_format: Any = "int8", w_format: Any = "int4_g128",
                 accumulator: Any = "float32") -> HwResult:
    """MixPE-style GEMM: integer activations ``x`` (M x K, per-tensor format) times
    group-quantized weights ``w`` (K x N, a block format with integer elements along K,
    zero points allowed). Per group ``g``: an exact integer partial sum
    ``P_g = sum_k x_k (w_k - z_g)``; then one dequantization per group, ``P_g * s_g``
    (a shift when ``s_g`` is a power of two), accumulated over groups in ``accumulator``
    (sequential, each addition rounded once). ``info["dequant_first"]`` holds the
    dequantize-first result (``simulator.gemm`` with the same accumulator) to compare.
    """
    X = _matrix(x, "x")
    Wm = _matrix(w, "w")
    _check_k(X, Wm)
    fw = parse(w_format)
    if not isinstance(fw, BlockScaled) or not isinstance(fw.element, Integer):
        raise ValueError(f"w_format must be a block format with integer elements "
                         f"(e.g. int4_g128, uint4_g128_asym), not {fw}")
    acc = accumulator if isinstance(accumulator, Accumulator) else Accumulator(accumulator)
    if acc.is_integer:
        raise ValueError("grouped_gemm's accumulator sums dequantized group sums and must "
                         "be a float format or exact")
    opx = quantize_operand(X, x_format, "x")
    if opx.scales is not None:
        raise ValueError("x_format must be a scalar format (e.g. int8)")
    opw = quantize_operand(Wm, fw, "w", k_axis=-2)  # elements (N, K) = code - zero
    xi, we = opx.elements, opw.elements
    M, K = xi.shape
    N = we.shape[0]
    gs = fw.block_size
    if not isinstance(gs, int):
        raise ValueError(f"w_format must have 1-D blocks along K, not tiles {gs}")
    G = -(-K // gs)
    pad = G * gs - K
    xg = np.pad(xi, ((0, 0), (0, pad))).reshape(M, G, gs)
    wg = np.pad(we, ((0, 0), (0, pad))).reshape(N, G, gs)
    # exact: integer products summed within one group stay far below 2**53
    psum = np.einsum("mgk,ngk->mng", xg, wg)
    scale = opw.scales  # (N, G)
    assert scale is not None
    pow2 = bool(np.all(np.frexp(scale[scale > 0])[0] == 0.5))
    fmt = acc.format
    total = np.zeros((M, N))
    for g in range(G):
        add = psum[:, :, g] * scale[None, :, g] * opw.tensor_scale
        if fmt is None or str(fmt) == "float64":
            total = total + add
        else:
            s, e = _two_sum(total, add)
            total = np.asarray(fmt.quantize(_odd(s, e), rounding=acc.rounding), np.float64)
    first = gemm(X, Wm, a_format=x_format, b_format=fw, accumulator=acc)
    ops = {"int_macs": M * N * K, "group_partial_sums": M * N * G,
           "dequant_shifts" if pow2 else "dequant_multiplies": M * N * G,
           "float_adds": M * N * G}
    return HwResult(total, ops, {"dequant_first": first, "pow2_scales": pow2})


def llm_int8_gemm(x: Any, w: Any, *, threshold: float = 6.0,
                  accumulator: Any = "float32") -> HwResult:
    """LLM.int8() decomposition: input channels (columns of ``x``) with any
    ``|x| >= threshold`` stay in float16 (with their rows of ``w``) and multiply in
    float16 with ``accumulator``; the rest is int8 vector-wise: each row of ``x`` and each
    column of ``w`` scaled by absmax/127, rounded (nearest-even), an exact int32 GEMM,
    dequantized by the two scales. The output is the sum of both parts (float64)."""
    X = _matrix(x, "x")
    Wm = _matrix(w, "w")
    _check_k(X, Wm)
    if not np.isfinite(X).all() or not np.isfinite(Wm).all():
        raise ValueError("x and w must be finite")
    outl = np.abs(X).max(axis=0) >= threshold
    out = np.zeros((X.shape[0], Wm.shape[1]))
    if outl.any():
        out += gemm(X[:, outl], Wm[outl], a_format="float16", b_format="float16",
                    accumulator=accumulator)
    keep = ~outl
    if keep.any():
        xs = np.abs(X[:, keep]).max(axis=1, keepdims=True) / 127
        ws = np.abs(Wm[keep]).max(axis=0, keepdims=True) / 127
        xs[xs == 0] = 1.0
        ws[ws == 0] = 1.0
        xq = np.rint(X[:, keep] / xs)
        wq = np.rint(Wm[keep] / ws)
        acc32 = gemm(xq, wq, a_format="int8", b_format="int8", accumulator="int32")
        out += acc32 * xs * ws
    M, N = out.shape
    ko = int(outl.sum())
    ops = {"fp16_macs": M * N * ko, "int8_macs": M * N * (X.shape[1] - ko),
           "dequant_multiplies": 2 * M * N}
    return HwResult(out, ops, {"outlier_columns": np.flatnonzero(outl)})
