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
import numbers
from typing import Any

import numpy as np

from formats import BipolarInt, BlockScaled, InputArray, Integer, Minifloat, parse
from formats.odd import add_odd_array

from . import _kernels as K_
from .gemm import _coerce_acc, gemm, quantize_operand

__all__ = ["HwResult", "bipolar_gemm", "grouped_gemm", "llm_int8_gemm", "lut_gemm"]


@dataclasses.dataclass
class HwResult:
    """A hardware GEMM's output (float64 or int64, (M, N)) and its operation counts."""

    out: np.ndarray
    ops: dict[str, int]
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def _matrix(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(InputArray(x, name).array, np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, not shape {arr.shape}")
    return arr


def _check_k(a: np.ndarray, b: np.ndarray, names: str = "ab") -> None:
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"{names[0]} is (M, K={a.shape[1]}) and {names[1]} is "
                         f"(K={b.shape[0]}, N): the K dimensions must agree")


def _int_operand(x: np.ndarray, fmt: Any, name: str) -> tuple[np.ndarray, int]:
    """Bipolar values (odd integers) and bit count of an Integer or BipolarInt operand."""
    f = parse(fmt, parameter=f"{name}_format")
    if isinstance(f, BipolarInt):
        if not np.array_equal(np.asarray(f.quantize(x)), x):
            raise ValueError(f"{name} must hold {f} values (odd integers "
                             f"{f.min:g}..{f.max:g})")
        return x, f.bits
    if isinstance(f, Integer) and f.signed and not f.narrow:
        if not np.array_equal(np.rint(x), x) or (x.size and (x.min() < f.min
                                                             or x.max() > f.max)):
            raise ValueError(f"{name} must hold {f} integers ({f.min:g}..{f.max:g})")
        return 2.0 * x + 1.0, f.bits  # lossless two's complement -> bipolar: v = 2s + 1
    raise ValueError(f"{name}_format must be a bipolar<n> or signed int<n> format, not {f}")


_METHODS = ("fused", "planes", "pairs")


def _flag(value: Any, parameter: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{parameter} must be True or False, not {value!r}")
    return bool(value)


def _exact_matmul(a: np.ndarray, b: np.ndarray, span: float, f32: bool = True) -> np.ndarray:
    """``a @ b`` of float64 matrices whose every partial sum is an integer multiple of
    the values' common quantum below ``2**span`` of it: exact in float32 BLAS when
    ``span <= 24`` (and ``f32``: the quantum and values within float32's range), in
    float64 BLAS when ``span <= 53`` (the caller checks that)."""
    if span <= 24 and f32:
        return (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float64)
    return a.astype(np.float64, copy=False) @ b.astype(np.float64, copy=False)


def bipolar_gemm(a: Any, b: Any, *, a_format: Any, b_format: Any,
                 method: str = "fused") -> HwResult:
    """Bipolar-INT GEMM by +-1 bit-planes: ``A = sum_i 2**i S_i`` with ``S_i`` in {-1, +1}
    (bit set: +1), likewise ``B``; ``A @ B = sum_ij 2**(i+j) S_i @ T_j``, each plane pair a
    binary matmul (XNOR-popcount on hardware: ``S.T = K - 2 popcount(s xor t)``).

    Two's-complement ``int<n>`` operands convert losslessly (``v = 2s + 1``) and the
    result converts back: ``A_int @ B_int = (A_b @ B_b - rowsum(A_b) - colsum(B_b) + K)/4``.
    The output is the exact integer product (int64): every binary matmul and shift-add is
    integer arithmetic, and the hardware's sum over plane pairs is exact.

    ``method``: ``"pairs"`` runs every plane pair as its own binary matmul (float32 BLAS on
    +-1 matrices, exact for K < 2**24) and shift-adds the results, as the hardware does;
    ``"planes"`` sums A's planes first (``n_a`` times fewer matmuls); ``"fused"`` (default)
    sums both, one exact matmul ``A_b @ B_b`` (float32 BLAS while
    ``K (2**n_a - 1)(2**n_b - 1) < 2**24``, float64 below 2**53, else ``"planes"``): the
    same integers, since ``sum_ij 2**(i+j) S_i T_j = (sum_i 2**i S_i)(sum_j 2**j T_j)``
    exactly. The operation counts are the hardware's in every case.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(_METHODS)}, not {method!r}")
    A = _matrix(a, "a")
    B = _matrix(b, "b")
    _check_k(A, B)
    K = A.shape[1]
    if K >= 2**24:
        raise ValueError(f"K must be below 2**24 for exact float32 binary matmuls, not {K}")
    av, na = _int_operand(A, a_format, "a")
    bv, nb = _int_operand(B, b_format, "b")
    bound = K * (2**na - 1) * (2**nb - 1)
    if method == "fused" and bound < 2**53:
        # K = 0: no products, a bound of 0 (its span taken as 0 bits)
        out = _exact_matmul(av, bv, np.log2(max(bound, 1))).astype(np.int64)
    else:
        ua = ((av + (2**na - 1)) / 2).astype(np.int64)  # codes: bit i set <=> plane i +1
        ub = ((bv + (2**nb - 1)) / 2).astype(np.int64)
        sa = [(2 * ((ua >> i) & 1) - 1).astype(np.float32) for i in range(na)]
        tb = [(2 * ((ub >> j) & 1) - 1).astype(np.float32) for j in range(nb)]
        out = np.zeros((A.shape[0], B.shape[1]), np.int64)
        # exact: |A_b| < 2**na, so |A_b @ T_j| < K * 2**na, checked below 2**24
        if method == "pairs" or K * 2**na >= 2**24:
            for i in range(na):
                for j in range(nb):
                    out += (sa[i] @ tb[j]).astype(np.int64) << (i + j)
        else:
            abip = sum((s * np.float32(2**i) for i, s in enumerate(sa)), np.zeros_like(sa[0]))
            for j in range(nb):
                out += (abip @ tb[j]).astype(np.int64) << j
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
    return HwResult(out, ops, {"method": method})


def lut_gemm(x: Any, w: Any, *, w_format: Any, x_format: Any = None, group: int = 4,
             symmetric: bool = True, table_format: Any = None, table_scale: str = "table",
             method: str = "fused") -> HwResult:
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
    quantizes entries symmetrically to integers ``k`` with scale ``amax / (2**(n-1) - 1)``:
    one scale per table (``table_scale="table"``, each row-and-group) or one per row of
    ``x`` shared by its tables (``"row"``, per-token; lookups then sum integers and the
    scale multiplies the row's sum once).

    Lookups accumulate in float64, in the order planes, then groups. ``method="lookup"``
    runs exactly that (a numba gather per plane); ``"fused"`` (default) computes the same
    sums as one matrix product ``T @ L`` of the stored entries and lookup counts
    ``L[g, p, n] = sum_j +-2**j [plane j of column n reads entry p of group g]``, in BLAS,
    where every partial sum is provably exact (each entry a multiple of the entries'
    smallest set bit, all sums below 2**53 of it; 2**24 for float32 BLAS) so the order
    cannot matter; otherwise it falls back to ``"lookup"``. ``info["method"]`` says which
    ran.
    """
    if method not in ("fused", "lookup"):
        raise ValueError(f"method must be 'fused' or 'lookup', not {method!r}")
    if table_scale not in ("table", "row"):
        raise ValueError(f"table_scale must be 'table' or 'row', not {table_scale!r}")
    X = _matrix(x, "x")
    Wm = _matrix(w, "w")
    _check_k(X, Wm, "xw")
    if isinstance(group, bool) or not isinstance(group, int) or not 1 <= group <= 8:
        raise ValueError(f"group must be an int in 1..8, not {group!r}")
    symmetric = _flag(symmetric, "symmetric")
    if x_format is not None:
        X = np.asarray(quantize_operand(X, x_format, "x").dequantize(), np.float64)
    wv, nb = _int_operand(Wm, w_format, "w")
    M, K = X.shape
    N = Wm.shape[1]
    G = -(-K // group)
    if G * group == K:
        Xp = np.ascontiguousarray(X)
    else:
        Xp = np.zeros((M, G * group))
        Xp[:, :K] = X
    Xg = Xp.reshape(M, G, group)
    # table[m, g, p] = sum_i sign_i(p) x[m, g, i], sign_i(p) = +1 where bit i of p is set,
    # built a bit at a time (sums in order i = 0, 1, ...); with ``symmetric`` only the
    # stored half, whose last sign is +1
    pats = np.arange(2**group)
    half = 2 ** (group - 1)
    stored = np.empty((M, G, half if symmetric else 2**group))
    K_.lut_table(Xg, symmetric, stored)
    tf = parse(table_format, parameter="table_format") if table_format is not None else None
    info: dict[str, Any] = {}
    row_scale = None
    # every entry is a multiple of the activations' smallest set bit (a sum of such
    # multiples; float rounding never lowers a value's lowest set bit) ...
    quantum: float | None = None
    if tf is not None:
        if isinstance(tf, Integer):
            qmax = 2 ** (tf.bits - 1) - 1
            axes = (2,) if table_scale == "table" else (1, 2)
            amax = np.abs(stored).max(axis=axes, keepdims=True)
            scale = np.where(amax > 0, amax / qmax, 1.0)
            stored = np.rint(stored / scale).clip(-qmax, qmax)
            if table_scale == "table":
                stored = stored * scale
                info["table_scales"] = scale[..., 0]
                quantum = 0.0  # ... but arbitrary float64 scales: no common quantum
            else:
                row_scale = scale[:, 0, :]  # (M, 1): the integers' sum is scaled once
                info["table_scales"] = row_scale[:, 0]
                quantum = 1.0  # ... or integers
        elif isinstance(tf, Minifloat):
            stored = np.asarray(tf.quantize(stored), np.float64)
        else:
            raise ValueError(f"table_format must be an int<n> or float format, not {tf}")
    cdt = np.uint8 if nb <= 8 else (np.uint16 if nb <= 16 else np.int64)
    uwp = np.zeros((G * group, N), cdt)
    uwp[:K] = (wv + (2**nb - 1)) / 2
    out = None
    if method == "fused" and quantum != 0.0:
        mx, _, bad = K_.mag_stats(stored.reshape(-1))
        if quantum is None:
            _, lowe, bad_x = K_.data_stats(Xp.reshape(-1))
            quantum = 2.0 ** int(lowe) if lowe < 4096 else 1.0
            bad += bad_x
        if bad == 0:
            span = float(np.log2(G * (2.0**nb - 1) * mx / quantum)) if mx > 0 else 0.0
            if span <= 53:
                P = stored.shape[2]
                L = np.zeros((G, P, N), np.float32 if nb <= 24 else np.float64)
                K_.lut_weights(uwp.reshape(G, group, N), nb, group, symmetric, L)
                f32 = quantum >= 2.0**-149 and mx < 2.0**100
                out = _exact_matmul(stored.reshape(M, G * P), L.reshape(G * P, N), span, f32)
                info["method"] = "fused"
    if out is None:
        info["method"] = "lookup"
        table = stored
        if symmetric:
            # pattern p with last sign -1 reads -stored[complement(p)]
            comp = (2**group - 1) - pats
            table = np.concatenate([-stored[:, :, (comp[:half] - half)], stored], axis=2)
        out = np.zeros((M, N))
        table = np.ascontiguousarray(table)
        for j in range(nb):
            bits = (uwp >> j) & 1
            idx = (bits.reshape(G, group, N) << np.arange(group)[None, :, None]).sum(axis=1)
            # out += 2**j * sum over groups of table[m, g, idx[g, n]] (no M*N*G array)
            K_.lut_lookup(table, np.ascontiguousarray(idx), out, 2.0**j)
    if row_scale is not None:
        out = out * row_scale
    fw = parse(w_format)
    if isinstance(fw, Integer):
        out = (out - Xp.sum(axis=1, keepdims=True)) / 2
    ops = {"table_entries": M * G * (2 ** (group - 1) if symmetric else 2**group),
           "table_adds": M * G * (2 ** (group - 1) if symmetric else 2**group),
           "lookups": M * N * G * nb, "lookup_adds": M * N * G * nb,
           "shift_adds": M * N * nb}
    return HwResult(out, ops, info)


def grouped_gemm(x: Any, w: Any, *, x_format: Any = "int8", w_format: Any = "int4_g128",
                 accumulator: Any = "float32", compare: bool = True) -> HwResult:
    """MixPE-style GEMM: integer activations ``x`` (M x K, per-tensor format) times
    group-quantized weights ``w`` (K x N, a block format with integer elements along K,
    zero points allowed). Per group ``g``: an exact integer partial sum
    ``P_g = sum_k x_k (w_k - z_g)``; then one dequantization per group, ``P_g * s_g``
    (a shift when ``s_g`` is a power of two), accumulated over groups in ``accumulator``
    (sequential, each addition rounded once). With ``compare`` (default),
    ``info["dequant_first"]`` holds the dequantize-first result (``simulator.gemm`` with
    the same accumulator, every product added and rounded) to compare.
    """
    X = _matrix(x, "x")
    Wm = _matrix(w, "w")
    _check_k(X, Wm, "xw")
    fw = parse(w_format, parameter="w_format")
    compare = _flag(compare, "compare")
    if not isinstance(fw, BlockScaled) or not isinstance(fw.element, Integer):
        raise ValueError(f"w_format must be a block format with integer elements "
                         f"(e.g. int4_g128, uint4_g128_asym), not {fw}")
    acc = _coerce_acc(accumulator)
    if acc.is_integer:
        raise ValueError("grouped_gemm's accumulator sums dequantized group sums and must "
                         "be a float format or exact")
    opx = quantize_operand(X, x_format, "x")
    if opx.scales is not None or not isinstance(opx.fmt, Integer):
        raise ValueError(f"x_format must be an integer format (e.g. int8), not {opx.fmt}")
    opw = quantize_operand(Wm, fw, "w", k_axis=-2)  # elements (N, K) = code - zero
    xi, we = opx.elements, opw.elements
    M, K = xi.shape
    N = we.shape[0]
    gs = fw.block_size
    if not isinstance(gs, int):
        raise ValueError(f"w_format must have 1-D blocks along K, not tiles {gs}")
    G = -(-K // gs)
    scale = opw.scales  # (N, G)
    assert scale is not None
    pow2 = bool(np.all(np.frexp(scale[scale > 0])[0] == 0.5))
    fmt = acc.format
    # one group at a time (no M x N x G array): the group's integer partial sums are exact
    # in float32 BLAS below 2**24, in float64 below 2**53
    bound = gs * float(np.abs(xi).max(initial=0.0)) * float(np.abs(we).max(initial=0.0))
    if bound >= 2.0**53:
        raise ValueError(f"group partial sums reach {bound:.3g}, beyond float64's exact "
                         "2**53; use narrower integer formats or smaller groups")
    dt = np.float32 if bound < 2.0**24 else np.float64
    xs: np.ndarray = xi.astype(dt)
    ws: np.ndarray = we.astype(dt)
    total = np.empty((M, N))
    # rows in chunks: the per-group temporaries stay a fraction of the operands' size
    rows = max(32, (M * K + K * N) // (16 * max(N, 1)))
    for r0 in range(0, M, rows):
        tot = np.zeros((min(rows, M - r0), N))
        for g in range(G):
            k0, k1 = g * gs, min((g + 1) * gs, K)
            psum = (xs[r0 : r0 + rows, k0:k1] @ ws[:, k0:k1].T).astype(np.float64)
            add = psum * scale[None, :, g] * opw.tensor_scale
            if fmt is None or str(fmt) == "float64":
                tot = tot + add
            else:
                tot = np.asarray(fmt.quantize(add_odd_array(tot, add), rounding=acc.rounding),
                                 np.float64)
        total[r0 : r0 + rows] = tot
    ops = {"int_macs": M * N * K, "group_partial_sums": M * N * G,
           "dequant_shifts" if pow2 else "dequant_multiplies": M * N * G,
           "float_adds": M * N * G}
    info: dict[str, Any] = {"pow2_scales": pow2}
    if compare:
        info["dequant_first"] = gemm(X, Wm, a_format=x_format, b_format=fw, accumulator=acc)
    return HwResult(total, ops, info)


def llm_int8_gemm(x: Any, w: Any, *, threshold: float = 6.0,
                  accumulator: Any = "float32") -> HwResult:
    """LLM.int8() decomposition: input channels (columns of ``x``) with any
    ``|x| >= threshold`` stay in float16 (with their rows of ``w``) and multiply in
    float16 with ``accumulator``; the rest is int8 vector-wise: each row of ``x`` and each
    column of ``w`` scaled by absmax/127, rounded (nearest-even), an exact int32 GEMM,
    dequantized by the two scales. The output is the sum of both parts (float64)."""
    X = _matrix(x, "x")
    Wm = _matrix(w, "w")
    _check_k(X, Wm, "xw")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a positive finite number, not {threshold!r}")
    if not 0 < threshold < np.inf:
        raise ValueError(f"threshold must be a positive finite number (input channels with "
                         f"|x| >= threshold stay in float16; LLM.int8() uses 6.0), not "
                         f"{threshold!r}")
    if not np.isfinite(X).all() or not np.isfinite(Wm).all():
        raise ValueError("x and w must be finite")
    outl = np.abs(X).max(axis=0, initial=0.0) >= threshold
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
