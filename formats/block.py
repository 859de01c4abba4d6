"""Block-scaled formats: OCP MX, NVFP4/NVINT4, block floating point, grouped integers.

A block-scaled format is composed of scalar formats: each block of ``block_size``
elements shares one scale (a code of the ``scale`` format); each element is a code of the
``element`` format; NVFP4-style formats add one float32 tensor scale. Values are
``element * scale (* tensor_scale)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from . import _kernels as K
from ._base import Format, _Input
from ._enums import Rounding, _Choice
from .minifloat import Minifloat

__all__ = ["BlockEncoded", "BlockScaled", "ScaleRule"]


class ScaleRule(_Choice):
    """How a block's scale follows from its largest magnitude ``amax``."""

    #: OCP MX v1.0 section 6.3: 2**(floor(log2(amax)) - emax_elem); may clip the block max
    FLOOR = "floor"
    #: 2**ceil(log2(amax)) / 2**emax_elem: never clips, may waste the top binade
    CEIL = "ceil"
    #: FLOOR applied to amax rounded (ties away) to the element's precision (torchao EVEN)
    EVEN = "even"
    #: amax / elem_max rounded up to the scale format (NVIDIA cuBLAS / Blackwell)
    RCEIL = "rceil"
    #: amax / elem_max rounded to the scale format with ``scale_rounding`` (NVFP4, INT groups)
    NEAREST = "nearest"
    #: least squared error per block among candidate scales: FLOOR's power of two times
    #: 2**-1, 1, 2 (power-of-two scales), or amax / elem_max * c rounded to the scale format
    #: for c in 1, 0.95, ..., 0.5; ties go to the earlier candidate
    MSE = "mse"


@dataclasses.dataclass(frozen=True)
class BlockScaled:
    """A block-scaled format.

    Parameters
    ----------
    element : scalar format of the elements (any :class:`Format`)
    scale : scalar format of the per-block scale; a format with no mantissa bits (E8M0)
        holds powers of two and takes the exponent rules FLOOR/CEIL/EVEN/RCEIL
    block_size : elements per block along ``axis`` (int), or a tuple ``(rows, cols)`` for
        2-D tiles over the last two axes
    axis : the axis blocked by an int ``block_size``
    scale_rule : a :class:`ScaleRule`
    tensor_scale : format of an extra per-tensor scale ``amax / (elem_max * scale_max)``
        (NVFP4: float32), or None
    scale_rounding : rounding of ``amax / elem_max`` into a scale format with mantissa
        bits under ``ScaleRule.NEAREST``

    A block at the edge of a tensor whose length is not a multiple of the block size is a
    partial block: its scale comes from the elements it has. Elements are rounded
    nearest-even after division by the (already quantized) scale and saturate at the
    element format's largest value (OCP MX v1.0 section 6.3: "clamped to the maximum
    normal"); a block holding NaN or Inf gets the NaN scale where the scale format has one
    (its values all decode as NaN, as section 6.3 allows), else the largest scale.
    """

    element: Format
    scale: Format
    block_size: int | tuple[int, int]
    axis: int = -1
    scale_rule: ScaleRule = ScaleRule.FLOOR
    tensor_scale: Format | None = None
    scale_rounding: Rounding = Rounding.NEAREST_EVEN

    def __post_init__(self) -> None:
        if not isinstance(self.element, Format):
            raise TypeError(f"element must be a scalar Format, not {self.element!r}")
        if not isinstance(self.scale, Format):
            raise TypeError(f"scale must be a scalar Format, not {self.scale!r}")
        if self.scale.max <= 0:
            raise ValueError(f"scale format {self.scale} has no positive values")
        object.__setattr__(self, "scale_rule", ScaleRule.coerce(self.scale_rule, "scale_rule"))
        object.__setattr__(
            self, "scale_rounding", Rounding.coerce(self.scale_rounding, "scale_rounding")
        )
        bs = self.block_size
        if isinstance(bs, tuple):
            if len(bs) != 2 or not all(isinstance(b, int) and b > 0 for b in bs):
                raise ValueError(
                    f"block_size must be a positive int or a (rows, cols) tuple, not {bs!r}"
                )
        elif isinstance(bs, bool) or not isinstance(bs, int) or bs <= 0:
            raise ValueError(f"block_size must be a positive int or (rows, cols), not {bs!r}")
        if isinstance(self.axis, bool) or not isinstance(self.axis, int):
            raise TypeError(f"axis must be an int, not {self.axis!r}")
        if self.pow2_scale and self.scale_rule is ScaleRule.NEAREST:
            object.__setattr__(self, "scale_rule", ScaleRule.RCEIL)
        if not self.pow2_scale and self.scale_rule in (
            ScaleRule.FLOOR, ScaleRule.CEIL, ScaleRule.EVEN
        ):
            raise ValueError(
                f"scale_rule {self.scale_rule.value!r} needs a power-of-two scale format "
                f"(no mantissa bits), not {self.scale}; use 'nearest' or 'rceil'"
            )
        if self.scale_rule is ScaleRule.EVEN and not isinstance(self.element, Minifloat):
            raise ValueError("scale_rule 'even' needs a minifloat element format")

    # --- facts --------------------------------------------------------------------------
    @property
    def pow2_scale(self) -> bool:
        """Whether the scale format holds only powers of two (E8M0-like)."""
        return isinstance(self.scale, Minifloat) and self.scale.man_bits == 0

    @property
    def block_numel(self) -> int:
        bs = self.block_size
        return bs[0] * bs[1] if isinstance(bs, tuple) else bs

    @property
    def elem_max(self) -> float:
        return float(self.element.max)

    @property
    def emax_elem(self) -> int:
        """Exponent of the element format's largest value (OCP MX's emax_elem)."""
        return math.floor(math.log2(self.elem_max))

    @property
    def bits_per_element(self) -> float:
        """Element bits plus the block scale amortised over a full block (the tensor
        scale, if any, is amortised per tensor by :attr:`BlockEncoded.bits_per_element`)."""
        return self.element.bits + self.scale.bits / self.block_numel

    @property
    def bits(self) -> int:
        return self.element.bits

    def __str__(self) -> str:
        from .names import canonical_name

        return canonical_name(self)  # type: ignore[arg-type]

    # --- blocking -----------------------------------------------------------------------
    def _blocks(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        """View ``x`` as (nblocks, block_numel) float64 rows padded with zeros, and a
        function putting such rows back into ``x``'s shape."""
        if isinstance(self.block_size, tuple):
            if x.ndim < 2:
                raise ValueError(
                    f"2-D tiles {self.block_size} need an input of rank >= 2, not {x.ndim}"
                )
            br, bc = self.block_size
            *lead, m, n = x.shape
            mp, np_ = -(-m // br) * br, -(-n // bc) * bc
            xp = np.zeros((*lead, mp, np_), np.float64)
            xp[..., :m, :n] = x
            t = xp.reshape(*lead, mp // br, br, np_ // bc, bc)
            k = len(lead)
            t = np.moveaxis(t, k + 1, k + 2)  # (..., mb, nb, br, bc)
            grid = t.shape[:-2]
            rows = np.ascontiguousarray(t).reshape(-1, br * bc)

            def back(r: np.ndarray) -> np.ndarray:
                u = np.moveaxis(r.reshape(*grid, br, bc), k + 2, k + 1)
                return u.reshape(*lead, mp, np_)[..., :m, :n]

            return rows, (back, grid)
        if x.ndim == 0:
            raise ValueError("block formats need an array of rank >= 1")
        if not -x.ndim <= self.axis < x.ndim:
            raise ValueError(f"axis must be in {-x.ndim}..{x.ndim - 1} for rank {x.ndim}, "
                             f"not {self.axis}")
        bs = self.block_size
        xm = np.moveaxis(x, self.axis, -1)
        *lead, n = xm.shape
        npad = -(-n // bs) * bs
        xp = np.zeros((*lead, npad), np.float64)
        xp[..., :n] = xm
        grid = (*lead, npad // bs)
        rows = xp.reshape(-1, bs)
        axis = self.axis

        def back1(r: np.ndarray) -> np.ndarray:
            return np.moveaxis(r.reshape(*lead, npad)[..., :n], -1, axis)

        return rows, (back1, grid)

    # --- scales -------------------------------------------------------------------------
    def _scale_values(
        self, amax: np.ndarray, ts: float, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Quantized scale values (float64) for finite block maxima ``amax`` (the blocks'
        ``rows`` are needed by the MSE rule)."""
        sc = self.scale
        rule = self.scale_rule
        target = amax / ts
        if rule is ScaleRule.MSE:
            assert rows is not None
            return self._mse_scales(target, ts, rows)
        if self.pow2_scale:
            assert isinstance(sc, Minifloat)
            rule_code = {ScaleRule.FLOOR: 0, ScaleRule.CEIL: 1, ScaleRule.EVEN: 2,
                         ScaleRule.RCEIL: 3, ScaleRule.MSE: 0}[rule]
            man = self.element.man_bits if isinstance(self.element, Minifloat) else 0
            out = np.empty(target.size, np.float64)
            K.pow2_scales(
                np.ascontiguousarray(target, np.float64).reshape(-1), rule_code,
                self.emax_elem, self.elem_max, man, sc.emin, sc.emax, out,
            )
            return out.reshape(target.shape)
        mode = Rounding.UP if rule is ScaleRule.RCEIL else self.scale_rounding
        return np.asarray(sc.quantize(target / self.elem_max, mode, "saturate"), np.float64)

    def _mse_scales(self, target: np.ndarray, ts: float, rows: np.ndarray) -> np.ndarray:
        sc = self.scale
        if self.pow2_scale:
            base = dataclasses.replace(self, scale_rule=ScaleRule.FLOOR)._scale_values(
                target * ts, ts)
            lo, hi = sc.smallest_normal, sc.max
            cands = [np.clip(base * f, lo, hi) for f in (1.0, 2.0, 0.5)]
        else:
            cands = [
                np.asarray(sc.quantize(target / self.elem_max * c, self.scale_rounding,
                                       "saturate"), np.float64)
                for c in np.linspace(1.0, 0.5, 11)
            ]
        x = np.where(np.isfinite(rows), rows, 0.0).astype(np.float64)
        best = cands[0]
        best_err = np.full(x.shape[0], np.inf)
        for cand in cands:
            s_all = cand * ts
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.where(s_all[:, None] > 0, x / s_all[:, None], 0.0)
            q = np.asarray(self.element.quantize(y, overflow="saturate")) * s_all[:, None]
            err = ((q - x) ** 2).sum(axis=1)
            better = err < best_err
            best = np.where(better, cand, best)
            best_err = np.where(better, err, best_err)
        return best

    # --- public API ---------------------------------------------------------------------
    def encode(self, x: Any) -> BlockEncoded:
        """Quantize ``x`` (numpy or torch, any rank) into element codes and block scales."""
        inp = _Input(x)
        arr = inp.array.astype(np.float64)
        rows, (back, grid) = self._blocks(arr)
        finite = np.isfinite(rows)
        bad_block = ~finite.all(axis=1)
        mag = np.where(finite, np.abs(rows), 0.0)
        amax = mag.max(axis=1) if rows.shape[1] else np.zeros(rows.shape[0])
        svals, ts = self._block_scales(amax, bad_block, rows)
        ts_code = ts if self.tensor_scale is not None else None
        s_all = svals * ts
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = np.where(s_all[:, None] > 0, rows / s_all[:, None], 0.0)
        scaled = np.where(finite, scaled, rows)
        codes = self.element.encode(scaled, overflow="saturate")
        vals = self.element.decode(codes)
        saturated = (np.abs(scaled) > self.elem_max) & finite
        flushed = (vals == 0) & (rows != 0) & finite
        scodes = self.scale.encode(svals, overflow="saturate")
        full_codes = back(codes.astype(np.float64)).astype(self.element.code_dtype)
        return BlockEncoded(
            format=self,
            codes=full_codes,
            scales=scodes.reshape(grid),
            tensor_scale=ts_code,
            saturated=saturated.sum(axis=1).reshape(grid),
            flushed=flushed.sum(axis=1).reshape(grid),
            torch_like=inp.torch_like,
        )

    def _block_scales(
        self, amax: np.ndarray, bad: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """Scale values per block (NaN for blocks holding NaN/Inf, or the largest scale
        where the scale format has no NaN) and the tensor scale (1.0 if none)."""
        ts = 1.0
        if self.tensor_scale is not None:
            tmax = float(amax.max()) if amax.size else 0.0
            ideal = tmax / (self.elem_max * float(self.scale.max))
            ts = float(self.tensor_scale.quantize(ideal, overflow="saturate")) if ideal > 0 else 1.0
            ts = ts or 1.0
        svals = self._scale_values(amax, ts, rows)
        if bad.any():
            svals = np.where(bad, np.nan if self.scale.has_nan else float(self.scale.max), svals)
        return svals, ts

    def unpack(self, data: bytes, shape: tuple[int, ...]) -> BlockEncoded:
        """Inverse of :meth:`BlockEncoded.pack` for a tensor of ``shape`` (diagnostics
        are not stored: they come back as zeros)."""
        from .packing import unpack

        shape = tuple(int(d) for d in shape)
        n = int(np.prod(shape))
        _, (_, grid) = self._blocks(np.zeros(shape))
        nblocks = int(np.prod(grid))
        eb = -(-n * self.element.bits // 8)
        sb = -(-nblocks * self.scale.bits // 8)
        want = eb + sb + (4 if self.tensor_scale is not None else 0)
        if len(data) != want:
            raise ValueError(f"data must hold {want} bytes for {self} and shape {shape}, "
                             f"not {len(data)}")
        buf = np.frombuffer(data, np.uint8)
        codes = unpack(buf[:eb], self.element.bits, n).reshape(shape)
        scales = unpack(buf[eb:eb + sb], self.scale.bits, nblocks).reshape(grid)
        ts = None
        if self.tensor_scale is not None:
            ts = float(np.frombuffer(data[eb + sb:], "<f4")[0])
        zeros = np.zeros(grid, np.int64)
        return BlockEncoded(self, codes, scales, ts, zeros, zeros)

    def quantize(self, x: Any) -> Any:
        """``encode(x).dequantize()``: the fake-quantized tensor, same type/shape/dtype.

        float32 input blocked along its last axis takes a fused path (block maxima, scale,
        division rounded to odd, the element format's fast quantizer, multiplication) that
        equals ``encode(x).dequantize()`` rounded to float32."""
        inp = _Input(x)
        arr = inp.array
        if (arr.dtype == np.float32 and isinstance(self.block_size, int) and arr.ndim >= 1
                and self.axis in (-1, arr.ndim - 1) and arr.shape[-1] % self.block_size == 0
                and arr.size and self.element.bits < 24):
            rows = arr.reshape(-1, self.block_size)
            amax = np.empty(rows.shape[0], np.float64)
            bad = np.empty(rows.shape[0], np.bool_)
            K.block_amax(rows, amax, bad)
            svals, ts = self._block_scales(amax, bad, rows)
            s_all = svals * ts
            y = np.empty_like(rows)
            if self.pow2_scale and self.tensor_scale is None:
                # dividing by a power of two is exact (float32 subnormal results round to
                # zero in every element format either way)
                K.block_multiply(rows, 1.0 / s_all, y)
            else:
                K.block_divide_odd(rows, s_all, y)
            y = self.element.quantize(y, overflow="saturate", out=y)
            K.block_multiply(y, s_all, y)
            out = y.reshape(arr.shape)
            if inp.torch_like is not None:
                import torch

                return torch.from_numpy(out).to(inp.torch_like.device)
            return out
        enc = self.encode(x)
        out = enc.dequantize()
        inp = _Input(x)
        if inp.torch_like is not None:
            import torch

            return torch.from_numpy(out.astype(np.float32)).to(inp.torch_like.dtype).to(
                inp.torch_like.device
            )
        return out.astype(inp.array.dtype) if not inp.scalar else float(out)


@dataclasses.dataclass(frozen=True, eq=False)
class BlockEncoded:
    """Element codes, block scale codes and tensor scale of a block-scaled tensor.

    Attributes
    ----------
    codes : element codes, the input's shape
    scales : scale codes, one per block (shape: the block grid)
    tensor_scale : the float32 tensor scale value, or None
    saturated, flushed : per block, how many elements clipped at the element format's
        largest value / became zero although nonzero (diagnostics)
    """

    format: BlockScaled
    codes: np.ndarray
    scales: np.ndarray
    tensor_scale: float | None
    saturated: np.ndarray
    flushed: np.ndarray
    torch_like: Any = None

    def dequantize(self) -> np.ndarray:
        """The values: element * scale (* tensor scale), float64, the input's shape."""
        f = self.format
        ev = f.element.decode(self.codes)
        sv = f.scale.decode(self.scales) * (self.tensor_scale or 1.0)
        rows, (back, grid) = f._blocks(ev)
        vals = rows * sv.reshape(-1)[:, None]
        return back(vals)

    @property
    def numel(self) -> int:
        return int(self.codes.size)

    def pack(self) -> bytes:
        """The documented byte layout: element codes in C order packed with
        :func:`formats.pack` (little-endian bit stream, so 4-bit codes go two a byte, low
        nibble first), then the scale codes of the block grid in C order packed the same
        way, then the tensor scale as a little-endian float32 if the format has one. The
        shape is not stored; :meth:`BlockScaled.unpack` takes it."""
        from .packing import pack

        f = self.format
        parts = [pack(self.codes, f.element.bits).tobytes(),
                 pack(self.scales, f.scale.bits).tobytes()]
        if self.tensor_scale is not None:
            parts.append(np.array([self.tensor_scale], "<f4").tobytes())
        return b"".join(parts)

    @property
    def nbytes(self) -> int:
        """Storage: packed element codes + packed scale codes (+ 4 bytes tensor scale)."""
        f = self.format
        return (
            -(-self.numel * f.element.bits // 8)
            + -(-self.scales.size * f.scale.bits // 8)
            + (4 if self.tensor_scale is not None else 0)
        )

    @property
    def bits_per_element(self) -> float:
        """Stored bits per element, the tensor scale amortised over this tensor."""
        f = self.format
        extra = 32 / self.numel if self.tensor_scale is not None and self.numel else 0.0
        return f.element.bits + self.scales.size * f.scale.bits / max(self.numel, 1) + extra



