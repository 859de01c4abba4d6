"""Bit-true GEMM: quantized operands, a modelled accumulator, the exact-rounding epilogue."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np

from formats import (
    BlockEncoded,
    BlockScaled,
    FixedBase,
    Format,
    InputArray,
    Integer,
    Minifloat,
    Overflow,
    Rounding,
    parse,
)
from formats.odd import add_odd_array, pair_odd_array

from . import _kernels as K
from .accumulator import Accumulator, Order

__all__ = ["Codes", "Operand", "gemm", "quantize_operand"]


@dataclasses.dataclass(frozen=True)
class Codes:
    """An operand given as codes of a scalar format: ``gemm`` multiplies exactly the
    values ``format.decode(codes)`` (no rounding of its own). Block-scaled operands are
    given as the :class:`formats.BlockEncoded` their format's ``encode`` returns."""

    codes: Any
    format: Any

    def __post_init__(self) -> None:
        f = parse(self.format, parameter="format")
        if not isinstance(f, Format):
            raise TypeError(f"Codes takes codes of a scalar format, not of the block format "
                            f"{f}; pass the BlockEncoded that {f}.encode returns")
        object.__setattr__(self, "format", f)

_MODE = {m: m.code for m in Rounding}
_POLICY = {m.value: m.code for m in Overflow}


@dataclasses.dataclass
class Operand:
    """A quantized GEMM operand with K as its last axis.

    elements : element values (..., R, K), float64 (float32 for formats whose values all
        are float32 numbers, as rounded by the fused float32 kernel; block formats: zero
        point removed); a transposed view where the operand was (..., K, R)
    scales : float64 block scales (..., R, nblocks) or None; ``block`` elements per scale
    tensor_scale : float (1.0 when the format has none)
    fmt : the operand's format (scalar or block)
    """

    elements: np.ndarray
    scales: np.ndarray | None
    block: int
    tensor_scale: float
    fmt: Any

    def dequantize(self) -> np.ndarray:
        """The operand's values (without the tensor scale), K last (float64, or float32
        where :attr:`elements` is)."""
        if self.scales is None:
            return self.elements
        s = np.repeat(self.scales, self.block, axis=-1)[..., : self.elements.shape[-1]]
        return self.elements * s


def _bits_of(v: np.ndarray) -> np.ndarray:
    """Significant bits of each nonzero finite float64."""
    m, _ = np.frexp(np.abs(v))
    mi = (m * 2.0**53).astype(np.int64)
    low = mi & -mi
    return 53 - np.log2(low).astype(np.int64)


def _source_dtype(x: Any) -> np.dtype:
    """The numpy dtype the user's input has (before formats' input conversion turns
    integers into float64)."""
    if type(x).__module__.startswith("torch") and hasattr(x, "dtype"):
        name = str(x.dtype).removeprefix("torch.")
        try:
            return np.dtype(name)
        except TypeError:
            return np.dtype(np.float32)  # bfloat16 and other torch-only floats
    return x.dtype if isinstance(x, np.ndarray) else np.asarray(x).dtype


def _infer(x: np.ndarray, src: np.dtype, torch_dtype: Any, name: str) -> Format:
    """The format of an operand passed without ``<name>_format``: that of its dtype
    (``src``, as the user passed it; ``x`` the converted values)."""
    if torch_dtype is not None and "bfloat16" in str(torch_dtype):
        return parse("bfloat16")
    if src.kind in "iu":
        signed = src.kind == "i"
        if src.itemsize <= 4:
            return Integer(src.itemsize * 8, signed=signed)
        # 64-bit integers: the 53-bit integers float64 holds exactly
        fmt = Integer(53, signed=signed)
        if x.size and (float(x.min()) < fmt.min or float(x.max()) > fmt.max):
            raise ValueError(f"{name} holds {src} values outside {fmt}'s range "
                             f"{fmt.min:.0f}..{fmt.max:.0f}; 64-bit integer operands take "
                             f"the integers float64 holds exactly (pass {name}_format= to "
                             "round them)")
        return fmt
    dt = x.dtype
    if dt == np.float16:
        return parse("float16")
    if dt == np.float32:
        return parse("float32")
    if dt == np.float64:
        with np.errstate(over="ignore"):
            ok = np.array_equal(x.astype(np.float32).astype(np.float64), x, equal_nan=True)
        if ok:
            return parse("float32")
        raise ValueError(f"{name} holds float64 values that float32 cannot hold exactly; "
                         f"pass {name}_format= (e.g. 'float32' to round them) — products of "
                         "two float64 numbers are not exact in float64")
    raise TypeError(f"{name} must hold floats or integers, not {dt}")


def _f32_exact(x: np.ndarray, x32: np.ndarray) -> bool:
    """Whether the float64 array ``x`` holds float32 numbers (``x32`` its float32 cast)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.array_equal(x32, x) or np.array_equal(x32, x, equal_nan=True))


def _encoded_operand(x: Any, fmt: Any, name: str, k_axis: int) -> Operand:
    """The operand of already-encoded codes (and block scales): their exact values,
    nothing re-derived; blocks must run along K."""
    f = x.format
    if fmt is not None and parse(fmt, parameter=f"{name}_format") != f:
        raise ValueError(f"{name}_format {parse(fmt)} differs from the format of the encoded "
                         f"operand {name} ({f}); leave {name}_format out")
    codes = np.asarray(x.codes)
    if codes.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions, not shape {codes.shape}")
    if isinstance(x, Codes):
        vals = np.asarray(f.decode(codes), np.float64)
        return Operand(np.swapaxes(vals, -1, -2) if k_axis == -2 else vals, None, 1, 1.0, f)
    if not isinstance(f.block_size, int):
        raise ValueError(f"{name}: gemm blocks along K and takes 1-D blocks, not tiles "
                         f"{f.block_size} ({f})")
    ax, want = f.axis % codes.ndim, codes.ndim + k_axis
    if ax != want:
        where = "the last" if k_axis == -1 else "the second-to-last"
        raise ValueError(f"{name} is blocked along axis {ax} of shape {codes.shape}; its "
                         f"blocks must run along K, {where} axis ({want})")
    bs, kd = f.block_size, codes.shape[ax]
    grid = f.block_grid(codes.shape)
    scales = np.asarray(x.scales)
    if scales.shape != grid:
        raise ValueError(f"{name}'s scales have shape {scales.shape}; codes of shape "
                         f"{codes.shape} in blocks of {bs} along axis {ax} need {grid}")
    el = np.moveaxis(np.asarray(f.element.decode(codes), np.float64), ax, -1)
    if x.zeros is not None:
        el = el - np.repeat(np.asarray(x.zeros, np.float64), bs, axis=-1)[..., :kd]
    sc = np.asarray(f.scale.decode(scales), np.float64)
    ts = 1.0 if x.tensor_scale is None else float(x.tensor_scale)
    return Operand(el, sc, bs, ts, f)


def quantize_operand(x: Any, fmt: Any, name: str = "a", *, k_axis: int = -1) -> Operand:
    """Quantize ``x`` to ``fmt`` (scalar or block-scaled; blocks along ``k_axis``) and
    return it with K as the last axis (scalar formats: a transposed view when
    ``k_axis=-2``, no copy)."""
    if isinstance(x, (Codes, BlockEncoded)):
        return _encoded_operand(x, fmt, name, k_axis)
    inp = InputArray(x, name)
    arr = np.asarray(inp.array)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions, not shape {arr.shape}")
    tdt = getattr(x, "dtype", None) if type(x).__module__.startswith("torch") else None
    if fmt is None:
        fmt = _infer(arr, _source_dtype(x), tdt, name)
    else:
        try:
            fmt = parse(fmt)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name}_format: {exc}") from None

    def k_last(v: np.ndarray) -> np.ndarray:
        return np.swapaxes(v, -1, -2) if k_axis == -2 else v

    if isinstance(fmt, BlockScaled):
        if not isinstance(fmt.block_size, int):
            raise ValueError(f"{name}_format {fmt}: gemm blocks along K and takes 1-D blocks, "
                             f"not tiles {fmt.block_size}")
        f1 = dataclasses.replace(fmt, axis=-1)
        xk = np.asarray(k_last(arr), np.float64)
        Kd = xk.shape[-1]
        # rows counted explicitly: reshape(-1, 0) cannot infer them when K = 0
        x2 = xk.reshape(math.prod(xk.shape[:-1]), Kd)
        nbk = -(-Kd // fmt.block_size)
        el = np.empty(x2.shape)
        sc = np.empty((x2.shape[0], nbk))
        if Kd == 0:
            # no elements, no blocks: the operand contributes an empty sum (see gemm)
            return Operand(el.reshape(xk.shape), sc.reshape(xk.shape[:-1] + (0,)),
                           fmt.block_size, 1.0, fmt)
        # rows in chunks (blocks lie along K, rows are independent): encoding's
        # temporaries stay a fraction of the operand. A tensor scale depends only on the
        # largest finite magnitude of the whole tensor: each chunk carries one extra row
        # holding it, so every chunk derives the same tensor scale (the row is dropped)
        step = max(1, min(x2.shape[0], (1 << 16) // max(Kd, 1), -(-x2.shape[0] // 8)))
        step = max(step, -(-x2.shape[0] // 64))
        extra = None
        if fmt.tensor_scale is not None:
            extra = np.zeros((1, Kd))
            extra[0, 0] = K.mag_stats(np.ascontiguousarray(x2).ravel())[0]
        ts = 1.0
        for r0 in range(0, x2.shape[0], step):
            chunk = x2[r0 : r0 + step]
            n_rows = chunk.shape[0]
            enc = f1.encode(chunk if extra is None else np.concatenate([chunk, extra]))
            e = fmt.element.decode(enc.codes[:n_rows]).astype(np.float64)
            if enc.zeros is not None:
                z = enc.zeros.astype(np.float64)
                e = e - np.repeat(z, fmt.block_size, axis=-1)[..., :Kd]
            el[r0 : r0 + step] = e
            sc[r0 : r0 + step] = fmt.scale.decode(enc.scales[:n_rows])
            if enc.tensor_scale is not None:
                ts = float(enc.tensor_scale)
        return Operand(el.reshape(xk.shape), sc.reshape(xk.shape[:-1] + (nbk,)),
                       fmt.block_size, ts, fmt)
    if not isinstance(fmt, Format):
        raise TypeError(f"{name}_format must be a format or its name, not {fmt!r}")
    if isinstance(fmt, Minifloat) and fmt._fast_f32 and arr.dtype in (np.float64, np.float32):
        x32 = arr.astype(np.float32)
        if arr.dtype == np.float32 or _f32_exact(arr, x32):
            # float32 numbers: the fused float32 kernel rounds them identically, faster
            return Operand(k_last(np.asarray(fmt.quantize(x32))), None, 1, 1.0, fmt)
    q = np.asarray(fmt.quantize(np.asarray(arr, np.float64)), np.float64)
    return Operand(k_last(q), None, 1, 1.0, fmt)


def _value_bits(op: Operand) -> int:
    """The most significant bits any finite nonzero element value of ``op`` has."""
    v = np.asarray(op.elements, np.float64).ravel()
    v = v[np.isfinite(v) & (v != 0)]
    return int(_bits_of(v).max()) if v.size else 0


def _stats(v: np.ndarray) -> tuple[float, float, bool]:
    """(largest magnitude, smallest power of two dividing every nonzero value, all
    finite) of the data (1.0 as the power of two of all-zero data)."""
    mx, lowe, bad = K.data_stats(np.asarray(v, np.float64).ravel(order="K"))
    return float(mx), (2.0 ** int(lowe) if lowe < 4096 else 1.0), bad == 0


def _rounder(fmt: Any, mode: Rounding, policy: Any = None, rbits: int = 0,
             inf_always: bool = False) -> Any:
    if fmt is None:
        return K.make_rounder(0, ())
    pol = K.OINF_ALL if inf_always else _POLICY[fmt._policy(policy).value]
    if isinstance(fmt, FixedBase):
        return K.make_rounder(2, (-fmt.ulp_exp, float(-fmt.max_neg_int), float(fmt.max_int),
                                  _MODE[mode], pol))
    return K.make_rounder(1, (fmt.man_bits, fmt.emin + 1023, float(fmt.max), _MODE[mode],
                              pol, rbits))


@functools.lru_cache(maxsize=64)
def _kernel(acc: Accumulator, W: int, has_scale: bool, grid: int, exact_add: bool,
            round_products: bool, emins: tuple[int, int] | None = None) -> Any:
    prod = _rounder(acc.product_format if round_products else None, acc.product_rounding)
    tree = _rounder(acc.tree_format, acc.tree_rounding)
    fmt = acc.format
    acc_int = fmt is None or isinstance(fmt, FixedBase)
    err = acc.overflow is not None and acc.overflow.value == "error"
    if acc_int:
        add = K.make_adder(0, None)
        add_int = K.make_int_adder(0, 0, 0, 0) if fmt is None else K.make_int_adder(
            fmt.bits, -fmt.max_neg_int, fmt.max_int, _POLICY[acc.overflow.value])
    else:
        add_int = K.make_int_adder(0, 0, 0, 0)
        if str(fmt) == "float64":
            add = K.make_adder(0, None)
        else:
            add = K.make_adder(2 if exact_add else 1,
                               _rounder(fmt, acc.rounding, acc.overflow, acc.rand_bits or 0,
                                        acc.inf_on_overflow))
    wide = K.make_adder(1, _rounder(acc.chunk_format, Rounding.NEAREST_EVEN)) \
        if str(acc.chunk_format) != "float64" else K.make_adder(0, None)
    chunk_j = 0 if acc.chunk is None else acc.chunk // W
    if acc.order is Order.FUSED:
        assert isinstance(fmt, Minifloat) and acc.align_bits is not None
        fround = _rounder(fmt, acc.rounding, acc.overflow, acc.rand_bits or 0,
                          acc.inf_on_overflow)
        return K.make_gemm(W, has_scale, False, chunk_j, acc.rounding is Rounding.STOCHASTIC,
                           err, prod, tree, add, wide, False, add_int, grid,
                           acc.align_bits, _MODE[acc.align_rounding], acc.align_acc, fround,
                           emins)
    return K.make_gemm(W, has_scale, acc.order is Order.PAIRWISE, chunk_j,
                       acc.rounding is Rounding.STOCHASTIC, err, prod, tree, add, wide,
                       acc_int, add_int, grid)


def _coerce_acc(accumulator: Any) -> Accumulator:
    if isinstance(accumulator, Accumulator):
        return accumulator
    if accumulator is None or isinstance(accumulator, (str, Format)):
        return _acc_of(accumulator)
    raise TypeError(f"accumulator must be an Accumulator, its text (e.g. "
                    f"'float32,nearest_even,tree32'), a format, or None (exact), not "
                    f"{type(accumulator).__name__}")


@functools.lru_cache(maxsize=64)
def _acc_of(fmt: Any) -> Accumulator:
    return Accumulator.parse(fmt) if isinstance(fmt, str) else Accumulator(format=fmt)


def gemm(a: Any, b: Any, *, a_format: Any = None, b_format: Any = None,
         accumulator: Any = "float32", out_format: Any = None,
         datapath: Any = None, fallback: bool = False) -> Any:
    """Bit-true matrix product ``a @ b`` of quantized operands.

    ``a`` and ``b`` may also be already encoded: a :class:`Codes` (codes of a scalar
    format) or the :class:`formats.BlockEncoded` a block format's ``encode`` returns (A
    blocked along its last axis, B along its second-to-last, i.e. K), with scales, zero
    points and tensor scale; ``gemm`` then multiplies exactly those values, as it does
    for the values they decode to, and re-derives nothing (RTL golden vectors rely on it).

    Parameters
    ----------
    datapath : a :class:`~simulator.Datapath` (or its text): its operand formats and
        accumulator, in place of ``a_format``, ``b_format`` and ``accumulator`` (which are
        its shorthand and must then be left out)
    a, b : arrays (numpy or torch) of shapes (..., M, K) and (..., K, N); leading
        (batch) dimensions broadcast
    a_format, b_format : scalar or block-scaled formats (blocks along K) the operands are
        quantized to first (the format's default rounding and overflow). ``None``: the
        operand's own dtype (float16, bfloat16, float32, int8..int32, uint8..uint32;
        int64 / uint64 as int53 / uint53, the integers float64 holds exactly; float64
        input must hold float32 values)
    accumulator : an :class:`Accumulator`, or a format / name for a sequential
        nearest-even accumulator of that format, or ``None`` / ``"exact"``
    out_format : the output's format (one nearest-even rounding of the accumulator's
        value times the tensor scales); ``None``: float64
    fallback : operands on a CUDA device are computed there (see below); where the GPU
        path cannot run a product (beyond the device's free memory; the pairwise order's
        addends beyond ``simulator._gemm_gpu.PAIRWISE_MEMORY``) it raises, unless
        ``fallback=True``: then the host computes it and the result goes back to the device

    On the GPU: torch tensors on a CUDA device (or the codes of encoded operands there)
    are quantized, multiplied and accumulated on that device by Triton kernels that
    transcribe the CPU kernel step by step, bit-identical to it for every accumulator
    setting, the random stream of stochastic rounding included; the result is a CUDA
    float64 tensor. A float32 kernel runs where it provably gives the float64 kernel's
    bits (simulator._gemm_gpu.f32_tier); exact sums take an int8 tensor-core matmul
    (integers of at most 8 bits, partial sums below 2**31) or a float64 matmul. Needs
    Triton (``pip install 'numfab[gpu]'``).

    Numerics: each product ``a*b`` of element values is exact: the operands' significant
    bits must add to at most 53 (formats wider than that together, such as int32 x int32,
    are accepted when their values are: ``ValueError`` otherwise), optionally rounded to
    ``product_format``; with block formats the
    addend of K-range ``k0..k1`` (one product, or one adder-tree group, within one block
    of each operand) is ``sum * (scale_a * scale_b)`` (OCP MX v1.0 section 6.2 Dot),
    exact whenever scales are powers of two (MX, BFP) or the product fits 53 bits (NVFP4),
    else rounded to nearest in float64. Tensor scales (NVFP4) multiply the final value,
    as cuBLAS's alpha does. Returns float64 values (..., M, N) (torch if an input was);
    K = 0 gives +0 everywhere (the empty sum: the accumulator's starting value).

    Raises
    ------
    TypeError
        operands that are not real numbers (bool, complex, object), formats of the wrong
        kind
    ValueError
        operands of fewer than 2 dimensions, K or batch dimensions that disagree, products
        beyond 53 significant bits, NaN / Inf with an integer or exact accumulator
    """
    dp = None
    out_rounding: Any = Rounding.NEAREST_EVEN
    out_overflow: Any = None
    if datapath is not None:
        from .datapath import Datapath

        dp = Datapath.parse(datapath) if isinstance(datapath, str) else datapath
        if not isinstance(dp, Datapath):
            raise TypeError(f"datapath must be a Datapath or its text, not "
                            f"{type(datapath).__name__}")
        if a_format is not None or b_format is not None or not (
                isinstance(accumulator, str) and accumulator == "float32"):
            raise ValueError("give either datapath= or a_format/b_format/accumulator, not both")
        if dp.b is None:
            raise ValueError(f"datapath {dp} is a conversion (b=none): it multiplies "
                             f"nothing; its arithmetic is {dp.out}.quantize(values, "
                             f"rounding={dp.out_rounding.value!r})")
        if dp.out is not None:
            if out_format is not None:
                raise ValueError(f"give either out_format or a datapath with out=, not both "
                                 f"(the datapath rounds its outputs to {dp.out})")
            out_format, out_rounding, out_overflow = dp.out, dp.out_rounding, dp.out_overflow
        a_format, b_format, accumulator = dp.a, dp.b, dp.accumulator
    acc = _coerce_acc(accumulator)
    if not isinstance(fallback, bool):
        raise TypeError(f"fallback must be a bool, not {fallback!r}")
    from . import _gemm_gpu

    if _gemm_gpu.wanted(a, b):
        return _gpu_gemm(a, b, a_format, b_format, acc, dp, out_format, out_rounding,
                         out_overflow, fallback)
    torch_out = any(type(t).__module__.startswith("torch") for t in (a, b))
    opa = quantize_operand(a, a_format, "a")
    opb = quantize_operand(b, b_format, "b", k_axis=-2)
    batch, out_fmt = _check_pair(opa, opb, dp, _value_bits, out_format, out_rounding,
                                 out_overflow)
    vals = _run(opa, opb, acc, batch)
    ts = opa.tensor_scale * opb.tensor_scale
    res = _epilogue(vals, ts, out_fmt, out_rounding, out_overflow)
    if torch_out:
        import torch
        return torch.from_numpy(res)
    return res


def _check_pair(opa: Any, opb: Any, dp: Any, value_bits: Any, out_format: Any,
                out_rounding: Any, out_overflow: Any) -> tuple[tuple[int, ...], Any]:
    """The checks of a quantized operand pair (CPU or GPU operands: ``value_bits`` reads
    an operand's data): K agrees, the datapath's terms, products within float64's 53
    bits, batch dimensions broadcast, the output format. Returns (batch, out format)."""
    ka, kb = opa.elements.shape[-1], opb.elements.shape[-1]
    if ka != kb:
        sb = tuple(opb.elements.shape[:-2]) + tuple(opb.elements.shape[:-3:-1])
        raise ValueError(f"a of shape {tuple(opa.elements.shape)} is (..., M, K={ka}) and b "
                         f"of shape {sb} is (..., K={kb}, N): the K dimensions must agree")
    if dp is not None and dp.terms is not None and ka > dp.terms:
        raise ValueError(f"K={ka} is more than the datapath's terms={dp.terms}: its PE keeps "
                         f"no running sum and adds exactly {dp.terms} products per output "
                         f"({dp})")
    # products are exact in float64 when the operands' significant bits add to <= 53
    if opa.fmt.precision + opb.fmt.precision > 53:
        # the formats allow wider products than float64 holds: the values decide
        va, vb = value_bits(opa), value_bits(opb)
        if va + vb > 53:
            raise ValueError(f"products of a's and b's values need {va} + {vb} > 53 "
                             f"significant bits ({opa.fmt} x {opb.fmt}) and are not exact "
                             "in float64; the operands' significant bits must add to at "
                             "most 53 (choose narrower operand formats)")
    try:
        batch = np.broadcast_shapes(tuple(opa.elements.shape[:-2]),
                                    tuple(opb.elements.shape[:-2]))
    except ValueError:
        raise ValueError(f"batch dimensions of a {tuple(opa.elements.shape[:-2])} and b "
                         f"{tuple(opb.elements.shape[:-2])} do not broadcast") from None
    out_fmt = None
    if out_format is not None:
        try:
            out_fmt = parse(out_format)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"out_format: {exc}") from None
        if not isinstance(out_fmt, Format):
            raise ValueError(f"out_format must be a scalar format, not {out_fmt}")
        if str(out_fmt) == "float64" and out_rounding is Rounding.NEAREST_EVEN \
                and out_overflow is None:
            out_fmt = None  # float64 nearest-even: the default result itself
        elif out_fmt.precision > 51:
            raise ValueError(f"out_format must have at most 51 significant bits (the one "
                             f"rounding goes through float64 rounded to odd), not "
                             f"{out_fmt.precision} ({out_fmt})")
    return batch, out_fmt


def _gpu_gemm(a: Any, b: Any, a_format: Any, b_format: Any, acc: Accumulator, dp: Any,
              out_format: Any, out_rounding: Any, out_overflow: Any, fallback: bool) -> Any:
    """gemm on the device of its CUDA operands (see :mod:`simulator._gemm_gpu`)."""
    from . import _gemm_gpu as G

    dev = G._device_of(a, b)
    for x, name in ((a, "a"), (b, "b")):
        c = getattr(x, "codes", x)
        if G.fgpu.is_torch(c) and c.device != dev:
            raise ValueError(f"a and b must be on one device: {name} is on {c.device}, the "
                             f"other on {dev}")
    opa = G.quantize_operand(a, a_format, "a", -1, dev)
    opb = G.quantize_operand(b, b_format, "b", -2, dev)
    batch, out_fmt = _check_pair(opa, opb, dp, G.value_bits, out_format, out_rounding,
                                 out_overflow)
    try:
        vals = G.run(opa, opb, acc, batch)
    except G.GpuUnsupported:
        if not fallback:
            raise
        return _host_gemm(a, b, a_format, b_format, acc, out_format, out_rounding,
                          out_overflow)
    ts = opa.tensor_scale * opb.tensor_scale
    return G.epilogue(vals, ts, out_fmt, out_rounding, out_overflow)


def _host_gemm(a: Any, b: Any, a_format: Any, b_format: Any, acc: Accumulator,
               out_format: Any, out_rounding: Any, out_overflow: Any) -> Any:
    """The CPU path for CUDA operands (``fallback=True``): copied to the host, computed,
    the result copied back to the operands' device."""
    import torch

    from . import _gemm_gpu as G

    dev = G._device_of(a, b)

    def host(x: Any) -> Any:
        if isinstance(x, Codes):
            return Codes(x.codes.cpu().numpy(), x.format)
        if isinstance(x, BlockEncoded):
            return x._on_host()
        return x.detach().cpu().numpy() if G.fgpu.is_torch(x) else x

    opa = quantize_operand(host(a), a_format, "a")
    opb = quantize_operand(host(b), b_format, "b", k_axis=-2)
    batch, out_fmt = _check_pair(opa, opb, None, _value_bits, out_format, out_rounding,
                                 out_overflow)
    res = _epilogue(_run(opa, opb, acc, batch), opa.tensor_scale * opb.tensor_scale,
                    out_fmt, out_rounding, out_overflow)
    return torch.from_numpy(res).to(dev)

def _layout(op: Operand, batch: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(operand stacked over its own batch, index of each broadcast batch element)."""
    own = op.elements.shape[:-2]
    n_own = int(np.prod(own)) if own else 1
    idx = np.broadcast_to(np.arange(n_own).reshape(own), batch).reshape(-1)
    return op.elements.reshape((n_own,) + op.elements.shape[-2:]), np.ascontiguousarray(idx)


def _run(opa: Operand, opb: Operand, acc: Accumulator,
         batch: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray | None, int]:
    """The accumulator's values: (hi, lo or None, grid) with value = (hi + lo) * 2**-grid."""
    Kd = opa.elements.shape[-1]
    M, N = opa.elements.shape[-2], opb.elements.shape[-2]
    A, ia = _layout(opa, batch)
    Bt, ib = _layout(opb, batch)
    shape = batch + (M, N)
    fmt = acc.format
    W = acc.tree_width if acc.order in (Order.TREE, Order.FUSED) else 1
    assert W is not None
    has_scale = opa.scales is not None or opb.scales is not None
    check_trees(acc, opa, opb, W)
    # the fused adder's alignment rounds terms (to at most twice their magnitude, on a
    # grid no finer than theirs): no BLAS fast path, no exact-tree check
    fused = acc.order is Order.FUSED
    rounded = acc.product_format is not None or acc.tree_format is not None or fused
    J = -(-Kd // W)
    if not has_scale and not rounded:
        # a cheap first look (a bound on each operand's quantum from its format and its
        # smallest magnitude) usually suffices to prove the BLAS fast path exact
        qs = (_quick_stats(opa), _quick_stats(opb), (1.0, 1.0, True), (1.0, 1.0, True))
        hit = _fast_exact(opa, opb, acc, qs, J, W, A.shape, Bt.shape, ia, ib, shape)
        if hit is not None:
            return hit
    ea, qa, fa = _stats(A)
    eb, qb, fb = _stats(Bt)
    sa_max, sa_q, fsa = _stats(opa.scales) if opa.scales is not None else (1.0, 1.0, True)
    sb_max, sb_q, fsb = _stats(opb.scales) if opb.scales is not None else (1.0, 1.0, True)
    finite = fa and fb and fsa and fsb
    stats = ((ea, qa, fa), (eb, qb, fb), (sa_max, sa_q, fsa), (sb_max, sb_q, fsb))
    q_add, bound, span = check_stats(acc, stats, J, W)
    if not rounded:
        hit = _fast_exact(opa, opb, acc, stats, J, W, A.shape, Bt.shape, ia, ib, shape)
        if hit is not None:
            return hit
    grid = grid_of(acc, span, finite and bound > 0, q_add)
    # Provable shortcuts, decided from the data: (1) rounding a product to product_format
    # is the identity when the format holds every product (precision: the operands'
    # significand bits; range: qa*qb and ea*eb); (2) every float64 sum acc + addend is
    # exact when all values are multiples of q_add (rounding never lowers a value's
    # lowest set bit) and stay below 2**53 * q_add: the accumulator's magnitude is at
    # most min(its format's max, (bound + J * s) * (1 + 2**-man)**J), each rounding
    # growing a value by at most one ulp: a relative 2**-man for normal results, at most
    # one smallest subnormal s below (directed rounding can lift a tiny sum to s). Then
    # TwoSum and rounding to odd are skipped.
    pf = acc.product_format
    round_products = pf is not None and not (
        finite and isinstance(pf, Minifloat) and str(pf) != "float64"
        and opa.fmt.precision + opb.fmt.precision <= pf.precision
        and (qa * qb >= pf.smallest_subnormal or ea * eb == 0) and ea * eb <= pf.max)
    exact_add = False
    if finite and isinstance(fmt, Minifloat) and str(fmt) != "float64" and bound > 0:
        growth = math.exp(J * math.log1p(fmt.eps)) * 2.0
        top = min(fmt.max, (bound + J * fmt.smallest_subnormal) * growth) + bound
        exact_add = math.log2(top / q_add) <= 52
    emins = operand_emins(acc, opa, opb)
    kern = _kernel(acc, W, has_scale, grid, exact_add, round_products, emins)
    Bk = np.ascontiguousarray(np.swapaxes(Bt, -1, -2), np.float64)
    # scalar operands: one scale of 1 spanning all of K
    if opa.scales is None:
        sA, bsA = np.ones((A.shape[0], M, 1)), Kd
    else:
        sA, bsA = np.ascontiguousarray(opa.scales.reshape(A.shape[:2] + (-1,))), opa.block
    if opb.scales is None:
        sB, bsB = np.ones((Bt.shape[0], 1, N)), Kd
    else:
        sB = np.ascontiguousarray(np.swapaxes(opb.scales.reshape(Bt.shape[:2] + (-1,)), -1, -2))
        bsB = opb.block
    nrows = ia.size * M
    out = np.empty((nrows, N))
    acc_int = fmt is None or isinstance(fmt, FixedBase)
    lo = np.zeros((nrows, N)) if acc_int else np.zeros((1, 1))  # written only for integers
    bad = np.full(nrows, -1, np.int64)
    off = np.zeros(nrows, np.uint8)
    kern(np.ascontiguousarray(A, np.float64), Bk, ia, ib, sA, sB, bsA, bsB,
         out, lo, np.int64(acc.seed or 0), bad, off)
    if off.any():
        t = int(np.flatnonzero(off)[0])
        if off[t] == 2:
            raise ValueError(f"an addend of output row {t} became NaN or Inf (a product or "
                             f"tree sum overflowed its format), which the {fmt or 'exact'} "
                             "accumulator cannot hold")
        raise ValueError(f"products of output row {t} do not lie on the {fmt or 'exact'} "
                         "accumulator's grid; set product_format to round them first")
    if (bad >= 0).any():
        t = int(np.flatnonzero(bad >= 0)[0])
        step, n = divmod(int(bad[t]), N)
        where = np.unravel_index(t * N + n, shape)
        raise ValueError(f"accumulator {fmt} overflowed at output element {tuple(map(int, where))} "
                         f"in addition step {step} (overflow='error')")
    if fmt is None or isinstance(fmt, FixedBase):
        return out.reshape(shape), lo.reshape(shape), grid
    return out.reshape(shape), None, 0


def _quick_stats(op: Operand) -> tuple[float, float, bool]:
    """(largest magnitude, a power of two dividing every value, all finite) of a scalar
    operand, cheaply: every nonzero value of a minifloat is a multiple of the ulp of the
    binade of its smallest nonzero magnitude (ulps grow with the binade); integer and
    fixed-point values are multiples of their ulp; other formats: of the smallest lowest
    set bit of their values."""
    mx, mn, bad = K.mag_stats(op.elements.ravel(order="K"))
    f = op.fmt
    if isinstance(f, Minifloat):
        # the LSB of mn's binade: its leading one at bit floor(log2 mn), precision bits
        q = 2.0 ** max(math.frexp(mn)[1] - f.precision, f.lsb_exp_min) if mn < math.inf \
            else 1.0
    else:
        q = 2.0 ** f.lsb_exp_min
    return float(mx), q, bad == 0


def _bounds(stats: Any, J: int, W: int, rounded: bool) -> tuple[float, ...]:
    """Quantum and bound of the addends and of every partial sum, and the span in bits.

    Element products are multiples of qa*qb; rounding a value (to the product or tree
    format) never makes its lowest set bit smaller, so rounded products and tree sums are
    multiples of qa*qb too, and at most twice their exact magnitude (at most W * ea * eb
    per group); the scales multiply both."""
    (ea, qa, fa), (eb, qb, fb), (sa_max, sa_q, fsa), (sb_max, sb_q, fsb) = stats
    finite = fa and fb and fsa and fsb
    q_el = qa * qb
    max_el = W * ea * eb * (2.0 if rounded else 1.0)
    q_add = q_el * sa_q * sb_q
    bound = J * max_el * sa_max * sb_max
    span = math.log2(bound / q_add) if finite and bound > 0 else -math.inf
    return q_el, max_el, q_add, bound, span


def _fast_exact(opa: Operand, opb: Operand, acc: Accumulator, stats: Any, J: int, W: int,
                ashape: tuple[int, ...], bshape: tuple[int, ...], ia: np.ndarray,
                ib: np.ndarray, shape: tuple[int, ...]) -> Any:
    """The BLAS fast path, or None where it is not provably exact.

    Every partial sum, in any order and grouping, is a multiple of q_add no larger than
    `bound`; when that fits the accumulator's precision and range (and float64's 53
    bits), no addition ever rounds or overflows, so the result is the exact sum, which
    float64 BLAS computes exactly (float32 BLAS too within 24 bits and float32's range).
    """
    if not exact_fits(acc, stats, J, W):
        return None
    _, _, q_add, bound, span = _bounds(stats, J, W, False)
    da = opa.dequantize().reshape(ashape)
    db = opb.dequantize().reshape(bshape)
    f32 = span <= 24 and q_add >= 2.0**-149 and bound < 2.0**127
    da = da.astype(np.float32 if f32 else np.float64, copy=False)
    db = db.astype(np.float32 if f32 else np.float64, copy=False)
    if ia.size == 1:
        hi = np.matmul(da[0], db[0].T)
    else:
        hi = np.matmul(da[ia], np.swapaxes(db[ib], -1, -2))
    return hi.astype(np.float64, copy=False).reshape(shape), None, 0


def check_trees(acc: Accumulator, opa: Any, opb: Any, W: int) -> None:
    """An adder-tree group lies within one block of each block-scaled operand (the
    fused adder scales each product itself: its steps may span blocks)."""
    for op, name in ((opa, "a"), (opb, "b")):
        if op.scales is not None and W > 1 and op.block % W and acc.order is Order.TREE:
            raise ValueError(f"tree_width ({W}) must divide {name}'s block size ({op.block}): "
                             "an adder-tree group lies within one block")


def exact_fits(acc: Accumulator, stats: Any, J: int, W: int) -> bool:
    """Whether every partial sum, in any order and grouping, is exact in the accumulator
    (a multiple of q_add no larger than `bound`, within its precision and range and
    float64's 53 bits): then a BLAS computes the exact sum (CPU and GPU shortcuts)."""
    if not all(st[2] for st in stats):
        return False
    _, _, q_add, bound, span = _bounds(stats, J, W, False)
    fmt = acc.format
    if span > 53:
        return False
    if fmt is None:
        return True
    if isinstance(fmt, FixedBase):
        grid_q = 2.0 ** fmt.ulp_exp
        return (q_add >= grid_q and math.log2(q_add / grid_q).is_integer()
                and bound <= fmt.max)
    return _fits(fmt, span, bound, q_add) and (
        acc.chunk is None or _fits(acc.chunk_format, span, bound, q_add))


def check_stats(acc: Accumulator, stats: Any, J: int, W: int) -> tuple[float, float, float]:
    """The data checks of both paths (stats: (max, quantum, finite) of a, b and their
    scales): an exact adder tree within float64's 53 bits, finite operands for integer
    and exact accumulators. Returns (q_add, bound, span) of :func:`_bounds`."""
    fused = acc.order is Order.FUSED
    rounded = acc.product_format is not None or acc.tree_format is not None or fused
    (_, _, fa), (_, _, fb), (_, _, fsa), (_, _, fsb) = stats
    finite = fa and fb and fsa and fsb
    q_el, max_el, q_add, bound, span = _bounds(stats, J, W, rounded)
    if finite and W > 1 and not fused and max_el > 0 and math.log2(max_el / q_el) > 53:
        raise ValueError(f"an adder tree of width {W} over these operands spans "
                         f"{math.log2(max_el / q_el):.0f} bits, beyond float64's exact 53; "
                         "use a smaller tree_width or narrower operand formats")
    fmt = acc.format
    if not finite and (fmt is None or isinstance(fmt, FixedBase)):
        which = "a" if not (fa and fsa) else "b"
        raise ValueError(f"{which} holds NaN or Inf, which the {fmt or 'exact'} accumulator "
                         "cannot hold; integer and exact accumulators take finite operands")
    return q_add, bound, span


def grid_of(acc: Accumulator, span: float, nonzero: bool, q_add: float) -> int:
    """The integer grid 2**-grid of an exact (the data's quantum) or fixed-point
    accumulator; 0 for floats."""
    fmt = acc.format
    if fmt is None:
        if span > 62:
            raise ValueError(f"the exact accumulator holds sums of at most 62 significant "
                             f"bits; these operands span {span:.0f} (use a float64 or "
                             "float32 accumulator)")
        return -int(math.log2(q_add)) if nonzero else 0
    if isinstance(fmt, FixedBase):
        return -fmt.ulp_exp
    return 0


def operand_emins(acc: Accumulator, opa: Any, opb: Any) -> tuple[int, int] | None:
    """The operands' formats' emin where the fused adder aligns by operand exponents
    (align_from='exponents': scalar minifloats, products not rounded), else None."""
    if acc.order is not Order.FUSED or acc.align_from != "exponents":
        return None
    for op, name in ((opa, "a"), (opb, "b")):
        if not isinstance(op.fmt, Minifloat) or op.scales is not None or \
                acc.product_format is not None:
            raise ValueError(f"align_from='exponents' takes the exponents of scalar "
                             f"minifloat operands (products not rounded); {name} is "
                             f"{op.fmt}")
    return (opa.fmt.emin, opb.fmt.emin)


def _fits(fmt: Minifloat, span: float, bound: float, q: float) -> bool:
    if str(fmt) == "float64":
        return span <= 53
    return span <= fmt.precision and bound <= fmt.max and q >= fmt.smallest_subnormal


def _two_prod(x: np.ndarray, y: float) -> tuple[np.ndarray, np.ndarray]:
    """Dekker's TwoProduct: p + e == x * y exactly (no overflow/underflow)."""
    p = x * y
    c = 134217729.0
    xh = x * c
    xh = xh - (xh - x)
    xl = x - xh
    yh = y * c
    yh = yh - (yh - y)
    yl = y - yh
    e = ((xh * yh - p) + xh * yl + xl * yh) + xl * yl
    return p, e


def _epilogue(vals: tuple[np.ndarray, np.ndarray | None, int], ts: float,
              out_fmt: Any, rounding: Any = Rounding.NEAREST_EVEN,
              overflow: Any = None) -> np.ndarray:
    """Apply the tensor scales and round once: to float64 (nearest-even) or to
    ``out_fmt`` with ``rounding`` and ``overflow`` (through round-to-odd, which keeps at
    least two more bits than any ``out_fmt`` the epilogue takes, so the single rounding
    in every deterministic mode is of the exact value)."""
    hi, lo, grid = vals
    if lo is None and out_fmt is None:
        if ts == 1.0:
            return hi
        with np.errstate(all="ignore"):
            return hi * ts  # the one nearest-even rounding to float64
    with np.errstate(all="ignore"):
        if lo is None:
            # hi * ts exactly as a TwoProduct pair, rounded to odd
            exact = hi if ts == 1.0 else pair_odd_array(*_two_prod(hi, ts))
        else:
            h2, l2 = hi * 2.0 ** -grid, lo * 2.0 ** -grid
            if ts == 1.0:
                a, b = h2, l2
            else:
                p1, e1 = _two_prod(h2, ts)
                a, b = p1, e1 + l2 * ts
            if out_fmt is None:
                return a + b
            exact = add_odd_array(a, b)
        return np.asarray(out_fmt.quantize(exact, rounding, overflow), np.float64)
