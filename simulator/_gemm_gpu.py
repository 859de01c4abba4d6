"""``simulator.gemm`` on CUDA tensors: operands quantized on the device, the same data
checks and provable shortcuts as the CPU path, the Triton kernel
(:mod:`simulator._triton_gemm`) and the epilogue, all without a host copy of the data.

Chosen by where the data lives (a torch tensor on a CUDA device, or any torch tensor
inside :func:`formats.gpu.emulate`, which runs the kernels through Triton's
interpreter: how CI tests this path). Results are the CPU path's bit for bit; the tests
(tests/simulator/test_gemm_gpu.py) and benchmarks/bench_gpu_gemm.py compare them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np

from formats import BlockEncoded, BlockScaled, FixedBase, Format, Integer, Minifloat, Rounding
from formats import gpu as fgpu

from .accumulator import Accumulator, Order

_FRAC = (1 << 52) - 1
#: tile sides of the float32 and float64 kernels (and the interpreter's, smaller)
_TILES = {True: (64, 64, 4), False: (32, 32, 4)}
_TILE_INTERP = (16, 16, 1)
#: the path the last GPU gemm took ("int8", "float64 matmul", "float32 kernel", "float64
#: kernel"), and a test switch keeping the float32 kernel off: what the tests read
#: to compare every path against the CPU
LAST: list[str] = [""]
FORCE_FLOAT64: list[bool] = [False]


class GpuUnsupported(ValueError):
    """What the GPU path cannot run (a product beyond the device's free memory, the
    pairwise order's addends beyond PAIRWISE_MEMORY): ``gemm(..., fallback=True)``
    computes it on the host instead."""


def wanted(*xs: Any) -> bool:
    """Whether any operand (a tensor, or the codes of an encoded one) takes the GPU."""
    for x in xs:
        c = getattr(x, "codes", x)
        if fgpu.on_gpu(c):
            return True
    return False


def _kernels() -> Any:
    """simulator._triton_gemm, imported on first use in the process's Triton mode."""
    fgpu.kernels("scalar")  # records the mode; a clear error where Triton is missing
    from . import _triton_gemm

    return _triton_gemm


@dataclasses.dataclass
class GpuOperand:
    """An operand on the device, K last: elements (..., R, K) float64 (or float32 where
    every value is a float32 number), scales float64 (..., R, nblocks) or None."""

    elements: Any
    scales: Any
    block: int
    tensor_scale: float
    fmt: Any


def _torch() -> Any:
    import torch

    return torch


def _device_of(*xs: Any) -> Any:
    for x in xs:
        c = getattr(x, "codes", x)
        if fgpu.is_torch(c):
            return c.device
    raise AssertionError("no torch operand")


def _infer(x: Any, name: str) -> Format:
    """The format of a torch operand passed without ``<name>_format`` (as the CPU path's
    dtype inference: float64 must hold float32 values)."""
    from formats import parse

    torch = _torch()
    dt = x.dtype
    if dt in (torch.float16, torch.bfloat16, torch.float32):
        return parse(str(dt).removeprefix("torch."))
    if dt == torch.float64:
        y = x.to(torch.float32).to(torch.float64)
        if bool(((y == x) | (x != x)).all()):
            return parse("float32")
        raise ValueError(f"{name} holds float64 values that float32 cannot hold exactly; "
                         f"pass {name}_format= (e.g. 'float32' to round them) — products of "
                         "two float64 numbers are not exact in float64")
    signed = {torch.int8: True, torch.int16: True, torch.int32: True, torch.uint8: False,
              torch.uint16: False, torch.uint32: False}
    if dt in signed:
        return Integer(dt.itemsize * 8, signed=signed[dt])
    if dt in (torch.int64, torch.uint64):
        fmt = Integer(53, signed=dt == torch.int64)
        src = "int64" if dt == torch.int64 else "uint64"
        if x.numel() and (float(x.min()) < fmt.min or float(x.max()) > fmt.max):
            raise ValueError(f"{name} holds {src} values outside {fmt}'s range "
                             f"{fmt.min:.0f}..{fmt.max:.0f}; 64-bit integer operands take "
                             f"the integers float64 holds exactly (pass {name}_format= to "
                             "round them)")
        return fmt
    raise TypeError(f"{name} must hold floats or integers, not {dt}")


def quantize_operand(x: Any, fmt: Any, name: str, k_axis: int, device: Any = None
                     ) -> GpuOperand:
    """:func:`simulator.gemm.quantize_operand` on the device."""
    from formats import parse

    from .gemm import Codes

    torch = _torch()

    def k_last(v: Any) -> Any:
        return v.transpose(-1, -2) if k_axis == -2 else v

    if isinstance(x, (Codes, BlockEncoded)):
        f = x.format
        if fmt is not None and parse(fmt, parameter=f"{name}_format") != f:
            raise ValueError(f"{name}_format {parse(fmt)} differs from the format of the "
                             f"encoded operand {name} ({f}); leave {name}_format out")
        codes = x.codes
        if not fgpu.is_torch(codes):
            codes = torch.as_tensor(np.asarray(codes), device=device)
        if codes.dim() < 2:
            raise ValueError(f"{name} must have at least 2 dimensions, not shape "
                             f"{tuple(codes.shape)}")
        if isinstance(x, Codes):
            vals = f.decode(codes, dtype=torch.float64)  # type: ignore[union-attr]
            return GpuOperand(k_last(vals), None, 1, 1.0, f)
        if not isinstance(f.block_size, int):
            raise ValueError(f"{name}: gemm blocks along K and takes 1-D blocks, not tiles "
                             f"{f.block_size} ({f})")
        ax, want = f.axis % codes.dim(), codes.dim() + k_axis
        if ax != want:
            where = "the last" if k_axis == -1 else "the second-to-last"
            raise ValueError(f"{name} is blocked along axis {ax} of shape "
                             f"{tuple(codes.shape)}; its blocks must run along K, {where} "
                             f"axis ({want})")
        grid = f.block_grid(tuple(codes.shape))
        if tuple(x.scales.shape) != tuple(grid):
            raise ValueError(f"{name}'s scales have shape {tuple(x.scales.shape)}; codes of "
                             f"shape {tuple(codes.shape)} in blocks of {f.block_size} along "
                             f"axis {ax} need {grid}")
        if not fgpu.is_torch(x.scales):
            def dev_t(v: Any) -> Any:
                return None if v is None else torch.as_tensor(np.asarray(v), device=device)
            x = dataclasses.replace(x, codes=codes, scales=dev_t(x.scales),
                                    zeros=dev_t(x.zeros))
        return _block_operand(x, f, ax)
    if not fgpu.is_torch(x):
        raise TypeError(f"{name}: the GPU gemm takes torch tensors (on the device of the "
                        f"other operand), not {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have at least 2 dimensions, not shape {tuple(x.shape)}")
    if x.is_complex() or x.dtype == torch.bool:
        from formats import InputArray

        InputArray(x.detach()[(0,) * x.dim()].cpu().numpy(), name)  # the CPU's own error
        raise TypeError(f"{name} must hold real numbers, not {x.dtype}")
    if fmt is None:
        fmt = _infer(x, name)
    else:
        try:
            fmt = parse(fmt)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name}_format: {exc}") from None
    xk = k_last(x)
    if isinstance(fmt, BlockScaled):
        if not isinstance(fmt.block_size, int):
            raise ValueError(f"{name}_format {fmt}: gemm blocks along K and takes 1-D "
                             f"blocks, not tiles {fmt.block_size}")
        f1 = dataclasses.replace(fmt, axis=-1)
        if xk.shape[-1] == 0:
            el = torch.empty(xk.shape, dtype=torch.float64, device=x.device)
            return GpuOperand(el, torch.empty(xk.shape[:-1] + (0,), dtype=torch.float64,
                                              device=x.device), fmt.block_size, 1.0, fmt)
        src = xk if xk.dtype in (torch.float32, torch.float64) else xk.to(torch.float64)
        enc = f1.encode(src.contiguous())
        return _block_operand(enc, fmt, xk.dim() - 1)
    if not isinstance(fmt, Format):
        raise TypeError(f"{name}_format must be a format or its name, not {fmt!r}")
    if not (x.is_floating_point()):
        xk = xk.to(torch.float64)
    if isinstance(fmt, Minifloat) and fmt._fast_f32 and xk.dtype in (
            torch.float16, torch.bfloat16, torch.float32):
        return GpuOperand(fmt.quantize(xk.to(torch.float32)), None, 1, 1.0, fmt)
    q = fmt.quantize(xk.to(torch.float64))
    return GpuOperand(q, None, 1, 1.0, fmt)


def _block_operand(enc: Any, f: Any, ax: int) -> GpuOperand:
    torch = _torch()
    bs = f.block_size
    el = f.element.decode(enc.codes, dtype=torch.float64)
    sc = f.scale.decode(enc.scales, dtype=torch.float64)
    # (the block grid already has its blocks last: codes (..., K, ...) -> scales
    # (..., nblocks))
    el = el.movedim(ax, -1)
    if enc.zeros is not None:
        z = enc.zeros.to(torch.float64)
        el = el - z.repeat_interleave(bs, dim=-1)[..., : el.shape[-1]]
    ts = 1.0 if enc.tensor_scale is None else float(enc.tensor_scale)
    return GpuOperand(el, sc, bs, ts, f)


def value_bits(op: GpuOperand) -> int:
    """The most significant bits any finite nonzero element of ``op`` has."""
    torch = _torch()
    v = op.elements.to(torch.float64).reshape(-1)
    v = v[torch.isfinite(v) & (v != 0)]
    if not v.numel():
        return 0
    m, _ = torch.frexp(v.abs())
    mi = (m * 2.0**53).to(torch.int64)
    low = mi & -mi
    return int((54 - torch.frexp(low.to(torch.float64))[1].to(torch.int64)).max())


def _stats(v: Any) -> tuple[float, float, bool]:
    """simulator.gemm._stats on the device: (largest finite magnitude, smallest power of
    two dividing every finite nonzero value (1.0 if none), all finite)."""
    torch = _torch()
    x = v.to(torch.float64).reshape(-1)
    if not x.numel():
        return 0.0, 1.0, True
    b = x.view(torch.int64)
    ex = (b >> 52) & 2047
    sig = (b & _FRAC) | ((ex > 0).to(torch.int64) << 52)
    low = sig & -sig
    el = torch.frexp(low.to(torch.float64).clamp_min(1.0))[1].to(torch.int64) - 1
    e = ex.clamp_min(1) - 1075 + el
    ok = ex != 2047
    nz = sig != 0
    lowe = torch.where(ok & nz, e, torch.full_like(e, 4096)).min()
    mx = torch.where(ok, x.abs(), torch.zeros_like(x)).max()
    nbad = (~ok).sum()
    mx_f, lowe_i, bad = (float(mx), int(lowe), int(nbad))
    return mx_f, (2.0 ** lowe_i if lowe_i < 4096 else 1.0), bad == 0


def _layout(op: GpuOperand, batch: tuple[int, ...]) -> tuple[Any, Any]:
    torch = _torch()
    own = tuple(op.elements.shape[:-2])
    n_own = math.prod(own) if own else 1
    idx = torch.arange(n_own, device=op.elements.device).reshape(own).broadcast_to(
        batch).reshape(-1).contiguous()
    return op.elements.reshape((n_own,) + tuple(op.elements.shape[-2:])), idx


def _float_ok32(fmt: Any, full: bool) -> bool:
    """A minifloat float32 rounds into exactly as float64 does (full: any precision up
    to float32's; else at most 22 significant bits, for rounding to odd first)."""
    return (isinstance(fmt, Minifloat) and fmt.emin >= -126 and fmt.lsb_exp_min >= -149
            and fmt.precision <= (24 if full else 22))


def _plain32(acc: Accumulator) -> bool:
    """A float32 accumulator whose every addition is IEEE's float32 addition."""
    return (str(acc.format) == "float32" and acc.rounding is Rounding.NEAREST_EVEN
            and acc.overflow is not None and acc.overflow.value == "inf")


def f32_tier(acc: Accumulator, stats: Any, J: int, W: int, elem_f32: bool,
             pbits: tuple[int, int], sbits: tuple[int, int],
             emins: tuple[int, int] | None = None) -> bool:
    """Whether the float32 kernel gives the float64 kernel's results bit for bit.

    It does when (1) every element value and scale is a float32 number (``elem_f32``,
    checked on the data); (2) every product, adder-tree sum and scaled addend is exact
    in float32: a product has at most ``pbits`` = the operands' precisions added, a tree
    sum at most floor(log2(W * max|a| * max|b| / (qa * qb))) + 1 bits (qa, qb: the
    largest powers of two dividing every element), and block scales add their formats'
    precision (``sbits``; 0 for powers of two: 15 * 15 needs 4 + 4 bits) -- together at
    most 24; (3) every
    value lies on a grid no finer than 2**-149 (the fused adder's: 2**-126 after its
    w-bit window, so that exponents read from float32 bits are the float64 ones) and no
    sum can leave float32's range (the accumulator's bound, as the CPU's exact-add proof
    computes it, far below 2**126); operands whose exponents the fused adder reads
    (align_from='exponents') have formats with emin >= -126; (4) each rounding is of the
    same real: an accumulator of at most 22 significant bits is reached by rounding to
    odd in float32 (>= 2 spare bits, as float64 to odd is for the CPU: Boldo & Melquiond
    2008), float32 itself with
    nearest-even and Inf on overflow is IEEE's own addition, and the fused adder's
    aligned step sum is exact in float32 (w + 2 + ceil(log2(n + 2)) <= 24) and rounded
    once; chunk promotion into float32 or such a format; (5) no stochastic rounding, no
    rounded products or tree sums, no integer or exact accumulator, and for the fused
    adder truncation or a nearest mode for the shifted-out bits (directed modes depend
    on bits float32 would lose below 2**-149)."""
    fmt = acc.format
    if not elem_f32 or not isinstance(fmt, Minifloat) or acc.rounding is Rounding.STOCHASTIC:
        return False
    if acc.product_format is not None or acc.tree_format is not None:
        return False
    if not all(s[2] for s in stats):
        return False
    (ea, qa, _), (eb, qb, _), (sa_max, sa_q, _), (sb_max, sb_q, _) = stats
    if ea == 0 or eb == 0:
        return False
    fused = acc.order is Order.FUSED
    if W == 1 or fused:
        tbits = pbits[0] + pbits[1]
    else:
        tbits = math.floor(math.log2(W * ea * eb / (qa * qb))) + 1
    if tbits + sbits[0] + sbits[1] > 24:
        return False
    if sa_q * sb_q < 2.0**-149 or sa_max * sb_max > 2.0**100:
        return False
    q_add = qa * qb * sa_q * sb_q
    max_add = W * ea * eb * sa_max * sb_max
    if fused:
        w = acc.align_bits
        assert w is not None
        if w + 2 + math.ceil(math.log2(W + 2)) > 24 or q_add < 2.0 ** (w - 126):
            return False
        if acc.align_rounding not in (Rounding.NEAREST_EVEN, Rounding.NEAREST_AWAY,
                                      Rounding.TOWARD_ZERO):
            return False
        # align_acc: the exact step sum rounded once (any precision up to float32's);
        # else the aligned products' sum is added to the accumulator through rounding
        # to odd, as a sequential step
        if not (_float_ok32(fmt, True) if acc.align_acc else
                _plain32(acc) or _float_ok32(fmt, False)):
            return False
        # the operands' exponents (align_from='exponents') read from float32 bits:
        # normal float32 numbers only
        if emins is not None and min(emins) < -126:
            return False
    elif q_add < 2.0**-149:
        return False
    if qa * qb < 2.0**-149:
        return False
    bound = J * max_add
    growth = math.exp(J * math.log1p(fmt.eps)) * 2.0
    top = min(fmt.max, (bound + J * fmt.smallest_subnormal) * growth) + max_add
    if top * 8 * (W + 2) >= 2.0**126:
        return False
    if not fused and not (_plain32(acc) or _float_ok32(fmt, False)):
        return False
    if acc.chunk is not None:
        cf = acc.chunk_format
        if not (str(cf) == "float32" or _float_ok32(cf, False)):
            return False
    return True


@functools.lru_cache(maxsize=256)
def _consts(acc: Accumulator, W: int, has_scale: bool, grid: int, f32: bool,
            emins: tuple[int, int] | None, K: int) -> dict[str, Any]:
    """The kernel's compile-time constants for one accumulator configuration."""
    from . import _kernels as CK
    from .gemm import _MODE, _POLICY

    def mf(fmt: Any, mode: Rounding, policy: Any = None, rbits: int = 0,
           inf_always: bool = False) -> tuple[int, int, float, int, int, int]:
        pol = CK.OINF_ALL if inf_always else _POLICY[fmt._policy(policy).value]
        return (fmt.man_bits, fmt.emin, float(fmt.max), _MODE[mode], pol, rbits)

    c: dict[str, Any] = dict(K=K, W=W, F32=f32, HAS_SCALE=has_scale)
    # products
    pf = acc.product_format
    if pf is None:
        c.update(PK=0, P_MAN=0, P_EMIN=0, P_MAXV=0.0, P_MODE=0, P_POL=0, P_FB=0)
    elif isinstance(pf, FixedBase):
        c.update(PK=2, P_MAN=0, P_EMIN=float(-pf.max_neg_int), P_MAXV=float(pf.max_int),
                 P_MODE=_MODE[acc.product_rounding], P_POL=_POLICY[pf._policy(None).value],
                 P_FB=-pf.ulp_exp)
    else:
        m = mf(pf, acc.product_rounding)
        c.update(PK=1, P_MAN=m[0], P_EMIN=m[1], P_MAXV=m[2], P_MODE=m[3], P_POL=m[4],
                 P_FB=0)
    tf = acc.tree_format
    if tf is None:
        c.update(TK=0, T_MAN=0, T_EMIN=0, T_MAXV=0.0, T_MODE=0, T_POL=0)
    else:
        m = mf(tf, acc.tree_rounding)
        c.update(TK=1, T_MAN=m[0], T_EMIN=m[1], T_MAXV=m[2], T_MODE=m[3], T_POL=m[4])
    fmt = acc.format
    acc_int = fmt is None or isinstance(fmt, FixedBase)
    c.update(ERR=acc.overflow is not None and acc.overflow.value == "error",
             STOCHASTIC=acc.rounding is Rounding.STOCHASTIC, ACC_INT=acc_int,
             GRID_SCALE=float(2.0**grid))
    if acc_int:
        c.update(AK=0, A_MAN=0, A_EMIN=0, A_MAXV=0.0, A_MODE=0, A_POL=0, A_RBITS=0)
        if fmt is None:
            c.update(I_BITS=0, I_LO=0, I_HI=0, I_WRAP=False)
        else:
            c.update(I_BITS=fmt.bits, I_LO=-fmt.max_neg_int, I_HI=fmt.max_int,
                     I_WRAP=_POLICY[acc.overflow.value] not in (CK.SAT, CK.OERR))
    else:
        c.update(I_BITS=0, I_LO=0, I_HI=0, I_WRAP=False)
        m = mf(fmt, acc.rounding, acc.overflow, acc.rand_bits or 0, acc.inf_on_overflow)
        if str(fmt) == "float64":
            kind = 0
        elif f32 and _plain32(acc):
            kind = 0  # IEEE float32 addition (nearest-even, Inf on overflow)
        elif f32 and str(fmt) == "float16" and m[3] == CK.RNE and m[4] in (
                CK.OINF, CK.OINF_ALL):
            # the hardware's float32 -> float16 conversion (IEEE nearest-even; Triton's
            # interpreter converts to bfloat16 by truncation, so bfloat16 takes kind 1)
            kind = 2
        else:
            kind = 1
        c.update(AK=kind, A_MAN=m[0], A_EMIN=m[1], A_MAXV=m[2], A_MODE=m[3], A_POL=m[4],
                 A_RBITS=m[5])
    cfmt = acc.chunk_format
    if acc.chunk is None:
        c.update(CHUNK_J=0, CK=0, C_MAN=0, C_EMIN=0, C_MAXV=0.0, C_POL=0)
    else:
        m = mf(cfmt, Rounding.NEAREST_EVEN)
        kind = 0 if str(cfmt) == "float64" or (f32 and str(cfmt) == "float32") else 1
        c.update(CHUNK_J=acc.chunk // W, CK=kind, C_MAN=m[0], C_EMIN=m[1], C_MAXV=m[2],
                 C_POL=m[4])
    if acc.order is Order.FUSED:
        assert acc.align_bits is not None
        c.update(FUSE_W=acc.align_bits, FUSE_MODE=_MODE[acc.align_rounding],
                 FUSE_ACC=acc.align_acc, BY_OPS=emins is not None,
                 EMIN_OA=emins[0] if emins else 0, EMIN_OB=emins[1] if emins else 0)
    else:
        c.update(FUSE_W=0, FUSE_MODE=0, FUSE_ACC=False, BY_OPS=False, EMIN_OA=0,
                 EMIN_OB=0)
    return c


def _precision(f: Any) -> int:
    """Significant bits of a format's element values (block formats: their element's)."""
    e = f.element if isinstance(f, BlockScaled) else f
    p = getattr(e, "precision", None)
    return int(p) if p is not None else 53


def _scale_bits(op: GpuOperand) -> int:
    """Bits a block scale adds to a product: its format's precision (x * s of a p-bit s
    needs bits(x) + p), 0 for powers of two (and no scales)."""
    if op.scales is None:
        return 0
    p = _precision(op.fmt.scale)
    return 0 if p <= 1 else p


def run(opa: GpuOperand, opb: GpuOperand, acc: Accumulator,
        batch: tuple[int, ...]) -> tuple[Any, Any, int]:
    """simulator.gemm._run on the device: (hi, lo or None, grid) with value = (hi + lo)
    * 2**-grid, torch float64 tensors of shape batch + (M, N)."""
    from .gemm import check_stats, check_trees, grid_of, operand_emins

    torch = _torch()
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
    fused = acc.order is Order.FUSED
    rounded = acc.product_format is not None or acc.tree_format is not None or fused
    J = -(-Kd // W)
    ea, qa, fa = _stats(A)
    eb, qb, fb = _stats(Bt)
    sa = _stats(opa.scales) if opa.scales is not None else (1.0, 1.0, True)
    sb = _stats(opb.scales) if opb.scales is not None else (1.0, 1.0, True)
    finite = fa and fb and sa[2] and sb[2]
    stats = ((ea, qa, fa), (eb, qb, fb), sa, sb)
    q_add, bound, span = check_stats(acc, stats, J, W)
    if not rounded and not FORCE_FLOAT64[0]:
        hit = _fast_exact(opa, opb, acc, stats, J, W, A, Bt, ia, ib, shape)
        if hit is not None:
            return hit
    grid = grid_of(acc, span, finite and bound > 0, q_add)
    emins = operand_emins(acc, opa, opb)
    # elem_f32 is one of f32_tier's conditions: the pass over the data runs only where
    # the others hold
    f32 = not FORCE_FLOAT64[0] and f32_tier(
        acc, stats, J, W, True, (_precision(opa.fmt), _precision(opb.fmt)),
        (_scale_bits(opa), _scale_bits(opb)), emins) and all(_f32_exact(x) for x in (
            A, Bt) + tuple(o.scales for o in (opa, opb) if o.scales is not None))
    LAST[0] = "float32 kernel" if f32 else "float64 kernel"
    dt = torch.float32 if f32 else torch.float64
    dev = A.device
    acc_int = fmt is None or isinstance(fmt, FixedBase)
    _check_memory(dev, (A.numel() + Bt.numel()) * dt.itemsize
                  + ia.numel() * M * N * 8 * (3 if acc_int else 1), shape)
    At = A.transpose(-1, -2).to(dt).contiguous()
    Bk = Bt.transpose(-1, -2).to(dt).contiguous()
    # an operand without scales: one scale of 1 spanning all of K (as on the CPU)
    if opa.scales is None:
        sA, nba, bsa = torch.ones((A.shape[0], M, 1), dtype=dt, device=dev), 1, max(Kd, 1)
    else:
        sA = opa.scales.reshape(A.shape[:2] + (-1,)).to(dt).contiguous()
        nba, bsa = sA.shape[-1], opa.block
    if opb.scales is None:
        sB, nbb, bsb = torch.ones((Bt.shape[0], 1, N), dtype=dt, device=dev), 1, max(Kd, 1)
    else:
        sB = opb.scales.reshape(Bt.shape[:2] + (-1,)).transpose(-1, -2).to(dt).contiguous()
        nbb, bsb = sB.shape[-2], opb.block
    nbat = ia.numel()
    nrows = nbat * M
    acc_int = fmt is None or isinstance(fmt, FixedBase)
    out = torch.empty((nrows, N), dtype=torch.float64, device=dev)
    lo = torch.zeros((nrows, N) if acc_int else (1,), dtype=torch.float64, device=dev)
    consts = _consts(acc, W, has_scale, grid, f32, emins, Kd)
    bad = torch.full((nrows, N) if consts["ERR"] else (1,), -1, dtype=torch.int32,
                     device=dev)
    off = torch.zeros((nrows, N) if acc_int else (1,), dtype=torch.int32, device=dev)
    if nrows and N and Kd:
        if acc.order is Order.PAIRWISE:
            _pairwise(At, Bk, ia, ib, sA, sB, out, lo, bad, off, M, N, nba, nbb, bsa, bsb,
                      acc, consts, nbat)
        else:
            _launch(At, Bk, ia, ib, sA, sB, out, lo, bad, off, M, N, nba, nbb, bsa, bsb,
                    acc.seed or 0, consts, nbat)
    elif nrows and N:
        out.zero_()
    if acc_int and bool((off > 0).any()):
        # off holds (step + 1) * 4 + kind of an element's last offending addend; the CPU
        # reports, for the first such row, the kind of its last one in (step, n) order
        n_idx = torch.arange(N, device=dev, dtype=torch.int64)
        order = torch.where(off > 0, (off.to(torch.int64) // 4 - 1) * N + n_idx, -1)
        t = int(torch.nonzero((off > 0).any(dim=1))[0, 0])
        kind = int(off[t, int(order[t].argmax())]) % 4
        if kind == 2:
            raise ValueError(f"an addend of output row {t} became NaN or Inf (a product or "
                             f"tree sum overflowed its format), which the {fmt or 'exact'} "
                             "accumulator cannot hold")
        raise ValueError(f"products of output row {t} do not lie on the {fmt or 'exact'} "
                         "accumulator's grid; set product_format to round them first")
    if consts["ERR"] and bool((bad >= 0).any()):
        n_idx = torch.arange(N, device=dev, dtype=torch.int64)
        keyv = torch.where(bad >= 0, bad.to(torch.int64) * N + n_idx,
                           torch.full_like(bad, -1, dtype=torch.int64))
        keyv = torch.where(keyv >= 0, keyv, torch.full_like(keyv, 2**62))
        first = keyv.amin(dim=1)
        t = int(torch.nonzero(first < 2**62)[0, 0])
        step, n = divmod(int(first[t]), N)
        where = np.unravel_index(t * N + n, shape)
        raise ValueError(f"accumulator {fmt} overflowed at output element "
                         f"{tuple(map(int, where))} in addition step {step} "
                         "(overflow='error')")
    if acc_int:
        return out.reshape(shape), lo.reshape(shape), grid
    return out.reshape(shape), None, 0


def _check_memory(dev: Any, need: int, shape: tuple[int, ...]) -> None:
    """A clear error (GpuUnsupported) before a product whose buffers exceed the device's
    free memory."""
    torch = _torch()
    if dev.type != "cuda":
        return
    free, total = torch.cuda.mem_get_info(dev)
    if need > free:
        raise GpuUnsupported(f"gemm of output shape {shape} needs {need / 2**30:.2f} GiB on "
                             f"{dev} ({free / 2**30:.2f} GiB free of {total / 2**30:.1f}): "
                             "split it (e.g. over row blocks of a) or pass fallback=True "
                             "for the host path")


def _f32_exact(x: Any) -> bool:
    torch = _torch()
    if x.dtype == torch.float32:
        return True
    if not x.numel():
        return True
    y = x.to(torch.float32).to(x.dtype)
    return bool(((y == x) | (x != x)).all())


def _launch(At: Any, Bk: Any, ia: Any, ib: Any, sA: Any, sB: Any, out: Any, lo: Any,
            bad: Any, off: Any, M: int, N: int, nba: int, nbb: int, bsa: int, bsb: int,
            seed: int, consts: dict[str, Any], nbat: int) -> None:
    import triton

    from formats.gpu import launch

    kern = _kernels().gemm_kernel
    if At.is_cuda:
        bm, bn, nw = _TILES[consts["F32"]]
    else:
        bm, bn, nw = _TILE_INTERP
    # the batch folded into grid axis 0 (axes 1 and 2 hold at most 65535 programs)
    grid = (triton.cdiv(M, bm) * nbat, triton.cdiv(N, bn))
    key = (tuple(sorted(consts.items())), bm, bn)
    # (the interpreter runs numpy: Inf - Inf and casts of Inf warn where CUDA is silent)
    with np.errstate(all="ignore"):
        launch(kern, grid, (At, Bk, ia, ib, sA, sB, out, lo, bad, off, M, N, nba, nbb, bsa,
                            bsb, seed),
               key, lambda: dict(consts, BM=bm, BN=bn), num_warps=nw,
               enable_fp_fusion=False)


#: the most device memory the pairwise order's addends may take (bytes)
PAIRWISE_MEMORY = [4 << 30]


def _pairwise(At: Any, Bk: Any, ia: Any, ib: Any, sA: Any, sB: Any, out: Any, lo: Any,
              bad: Any, off: Any, M: int, N: int, nba: int, nbb: int, bsa: int, bsb: int,
              acc: Accumulator, consts: dict[str, Any], nbat: int) -> None:
    """make_gemm's pairwise order on the device: every addend materialized (rows, N, K),
    then each chunk's tree level by level (one launch per level: adjacent pairs added
    and rounded, an odd last addend moved up), the CPU's step numbering for the random
    stream and the overflow record, and chunked promotion after each chunk."""
    import triton

    from formats.gpu import launch

    torch = _torch()
    kern = _kernels()
    K = consts["K"]
    f32 = consts["F32"]
    acc_int = consts["ACC_INT"]
    dt = torch.int64 if acc_int else (torch.float32 if f32 else torch.float64)
    nrows = nbat * M
    n_el = nrows * N
    cj = K if acc.chunk is None else acc.chunk
    need = n_el * (K + cj + 2) * dt.itemsize
    if need > PAIRWISE_MEMORY[0]:
        raise GpuUnsupported(f"order='pairwise' on the GPU materializes every addend: "
                         f"{nrows} x {N} outputs x K={K} need {need / 2**30:.1f} GiB, more "
                         f"than the {PAIRWISE_MEMORY[0] / 2**30:.1f} GiB allowed "
                         "(simulator._gemm_gpu.PAIRWISE_MEMORY); split the product into "
                         "row blocks or pass fallback=True for the host path")
    dev = At.device
    buf = torch.empty((n_el, K), dtype=dt, device=dev)
    bm, bn, nw = _TILES[f32] if At.is_cuda else _TILE_INTERP
    names = ("K", "F32", "HAS_SCALE", "PK", "P_MAN", "P_EMIN", "P_MAXV", "P_MODE", "P_POL",
             "P_FB", "ACC_INT", "GRID_SCALE")
    ac = {n: consts[n] for n in names}
    grid = (triton.cdiv(M, bm) * nbat, triton.cdiv(N, bn))
    with np.errstate(all="ignore"):
        launch(kern.addends_kernel, grid, (At, Bk, ia, ib, sA, sB, buf, off, M, N, nba, nbb,
                                           bsa, bsb),
               ("addends", tuple(sorted(ac.items())), bm, bn),
               lambda: dict(ac, BM=bm, BN=bn), num_warps=nw, enable_fp_fusion=False)
    pc = {n: consts[n] for n in ("F32", "ERR", "AK", "A_MAN", "A_EMIN", "A_MAXV", "A_MODE",
                                 "A_POL", "A_RBITS", "ACC_INT", "I_BITS", "I_LO", "I_HI",
                                 "I_WRAP")}
    pc["STOCHASTIC"] = consts["STOCHASTIC"]
    errs = torch.full((n_el,), 2**31 - 1, dtype=torch.int32, device=dev)
    ping = torch.empty((n_el, cj // 2 + 1), dtype=dt, device=dev)
    pong = torch.empty_like(ping)
    wide = torch.zeros((n_el,), dtype=dt, device=dev) if acc.chunk is not None else None
    cc = {n: consts[n] for n in ("F32", "CK", "C_MAN", "C_EMIN", "C_MAXV", "C_POL")}
    block = 1024 if At.is_cuda else 256
    cc["BLOCK"] = block
    seed = acc.seed or 0
    step = 0
    for c0 in range(0, K, cj):
        cnt = min(cj, K - c0)
        src, stride, offset = buf, K, c0
        dst = ping
        while cnt > 1:
            half = cnt // 2
            n_items = n_el * (half + 1)
            args = (src, dst, errs, n_el, stride, offset, dst.shape[1], cnt, step, K, seed)
            pcs = dict(pc, BLOCK=block, HALF=half)
            with np.errstate(all="ignore"):
                launch(kern.pair_kernel, (triton.cdiv(n_items, block),), args,
                       ("pair", tuple(sorted(pc.items())), half, block),
                       functools.partial(dict, pcs), enable_fp_fusion=False)
            step += half
            cnt = half + cnt % 2
            src, stride, offset = dst, dst.shape[1], 0
            dst = pong if dst is ping else ping
        if wide is not None:
            with np.errstate(all="ignore"):
                launch(kern.promote_kernel, (triton.cdiv(n_el, block),),
                       (wide, src[:, offset:] if offset else src, n_el, stride),
                       ("promote", tuple(sorted(cc.items()))),
                       functools.partial(dict, cc), enable_fp_fusion=False)
        else:
            res = src[:, offset]
    if wide is not None:
        res = wide
    if acc_int:
        hi = res.to(torch.float64)
        out.copy_(hi.reshape(out.shape))
        lo.copy_((res - hi.to(torch.int64)).to(torch.float64).reshape(lo.shape))
    else:
        out.copy_(res.to(torch.float64).reshape(out.shape))
    if consts["ERR"]:
        bad.copy_(torch.where(errs < 2**31 - 1, errs, torch.full_like(errs, -1)).reshape(
            bad.shape))


def _fast_exact(opa: GpuOperand, opb: GpuOperand, acc: Accumulator, stats: Any, J: int,
                W: int, A: Any, Bt: Any, ia: Any, ib: Any, shape: tuple[int, ...]) -> Any:
    """simulator.gemm._fast_exact on the device: where every partial sum in any order is
    exact in the accumulator (and float64), the product is the exact sum, which a BLAS
    computes exactly: integer operands of at most 8 bits whose every partial sum stays
    below 2**31 take an int8 tensor-core matmul (torch._int_mm, int32 accumulation: exact
    by that bound), the rest a float64 matmul (cuBLAS DGEMM: every product and partial
    sum exact by the 53-bit bound, so its order does not matter)."""
    from .gemm import exact_fits

    torch = _torch()
    if not exact_fits(acc, stats, J, W):
        return None
    (ea, qa, _), (eb, qb, _), _, _ = stats
    da = _dequant(opa).reshape(A.shape)
    db = _dequant(opb).reshape(Bt.shape)
    Kd = A.shape[-1]
    int8 = (opa.scales is None and opb.scales is None and qa >= 1.0 and qb >= 1.0
            and ea <= 127 and eb <= 127 and Kd * ea * eb < 2.0**31)
    if int8:
        try:
            # cuBLASLt's int8 GEMM takes M > 16 and K, N multiples of 8: zero padding
            # (exact: it adds zero products) to those sizes, then the slice
            Mp, Kp = max(A.shape[1], 17), -(-Kd // 8) * 8
            Np = -(-Bt.shape[1] // 8) * 8
            x8 = torch.zeros((A.shape[0], Mp, Kp), dtype=torch.int8, device=A.device)
            y8 = torch.zeros((Bt.shape[0], Np, Kp), dtype=torch.int8, device=A.device)
            x8[:, : A.shape[1], :Kd] = da.to(torch.int8)
            y8[:, : Bt.shape[1], :Kd] = db.to(torch.int8)
            if ia.numel() == 1:
                hi = torch._int_mm(x8[0], y8[0].transpose(0, 1).contiguous())[None]
            else:
                hi = torch.stack([torch._int_mm(x8[i], y8[j].transpose(0, 1).contiguous())
                                  for i, j in zip(ia.tolist(), ib.tolist())])
            hi = hi[:, : A.shape[1], : Bt.shape[1]]
            LAST[0] = "int8"
            return hi.to(torch.float64).reshape(shape), None, 0
        except RuntimeError:
            pass  # a shape cuBLASLt's int8 kernels refuse: the float64 matmul below
    if ia.numel() == 1:
        hi = torch.matmul(da[0], db[0].transpose(0, 1))
    else:
        hi = torch.matmul(da[ia], db[ib].transpose(-1, -2))
    LAST[0] = "float64 matmul"
    # (+ 0.0: a BLAS may return -0.0 for a one-term sum of -x * 0; the kernels' sums start
    # from +0.0, so an exact zero sum is +0.0)
    return hi.to(torch.float64).reshape(shape) + 0.0, None, 0


def _dequant(op: GpuOperand) -> Any:
    torch = _torch()
    el = op.elements.to(torch.float64)
    if op.scales is None:
        return el
    s = op.scales.repeat_interleave(op.block, dim=-1)[..., : el.shape[-1]]
    return el * s


def _pair_odd(hi: Any, lo: Any) -> Any:
    """formats.odd.pair_odd on float64 tensors."""
    torch = _torch()
    hb = hi.view(torch.int64)
    fix = (lo != 0.0) & ((hb & 1) == 0) & (((hb >> 52) & 2047) != 2047)
    step = torch.where((lo > 0.0) == (hi > 0.0), 1, -1).to(torch.int64)
    return (hb + torch.where(fix, step, torch.zeros_like(step))).view(torch.float64)


def _two_prod(x: Any, y: float) -> tuple[Any, Any]:
    """simulator.gemm._two_prod (Dekker) on a float64 tensor, op by op (no contraction)."""
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


def epilogue(vals: tuple[Any, Any, int], ts: float, out_fmt: Any,
             rounding: Any = Rounding.NEAREST_EVEN, overflow: Any = None) -> Any:
    """simulator.gemm._epilogue on the device."""
    hi, lo, grid = vals
    if lo is None and out_fmt is None:
        return hi if ts == 1.0 else hi * ts
    if lo is None:
        exact = hi if ts == 1.0 else _pair_odd(*_two_prod(hi, ts))
    else:
        h2, l2 = hi * 2.0**-grid, lo * 2.0**-grid
        if ts == 1.0:
            a, b = h2, l2
        else:
            p1, e1 = _two_prod(h2, ts)
            a, b = p1, e1 + l2 * ts
        if out_fmt is None:
            return a + b
        s = a + b
        bb = s - a
        exact = _pair_odd(s, (a - (s - bb)) + (b - bb))
    return out_fmt.quantize(exact, rounding, overflow).to(exact.dtype)
