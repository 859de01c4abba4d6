"""Block-scaled formats: OCP MX, NVFP4/NVINT4, block floating point, grouped integers.

A block-scaled format is composed of scalar formats: each block of ``block_size``
elements shares one scale (a code of the ``scale`` format); each element is a code of the
``element`` format; NVFP4-style formats add one float32 tensor scale. Values are
``element * scale (* tensor_scale)``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np

from . import _gpu
from . import _kernels as K
from ._base import Format, InputArray, check_shape
from ._enums import Choice, Rounding, Special
from .integer import FixedBase, Integer
from .minifloat import Minifloat

__all__ = ["BlockEncoded", "BlockScaled", "ScaleRule"]


class ScaleRule(Choice):
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


#: Largest block (elements per block, or rows * cols of a tile): blocks are materialised
#: whole, and a scale over more than 2**24 elements is a tensor scale in all but name.
MAX_BLOCK = 1 << 24

#: power-of-two scale rules computed inside the fused kernel, with their kernel codes
_POW2_RULES = {ScaleRule.FLOOR: 0, ScaleRule.CEIL: 1, ScaleRule.EVEN: 2, ScaleRule.RCEIL: 3}


@dataclasses.dataclass(frozen=True)
class BlockScaled:
    """A block-scaled format.

    Parameters
    ----------
    element : scalar format of the elements (any :class:`Format`)
    scale : scalar format of the per-block scale; a format with no mantissa bits (E8M0)
        holds powers of two and takes the exponent rules FLOOR/CEIL/EVEN/RCEIL
    block_size : elements per block along ``axis`` (int), or a tuple ``(rows, cols)`` for
        2-D tiles over the last two axes; at most :data:`MAX_BLOCK` (2**24) elements
    axis : the axis blocked by an int ``block_size``
    scale_rule : a :class:`ScaleRule`
    tensor_scale : format of an extra per-tensor scale ``amax / (elem_max * scale_max)``
        (NVFP4: float32), or None
    scale_rounding : rounding of ``amax / elem_max`` into a scale format with mantissa
        bits under ``ScaleRule.NEAREST``
    zero_point : asymmetric blocks (GPTQ/AWQ-style ``uint4_g128_asym``): the element is an
        unsigned integer 0..q, each block stores a scale and an integer zero point z (a
        code of the element format) and values are ``(code - z) * scale``. The block's
        range [lo, hi] = [min(x, 0), max(x, 0)] gives scale = (hi - lo) / q under the
        scale rule, z = round(-lo / scale) clamped to 0..q, code = clamp(round(x / scale)
        + z, 0, q), every round nearest-even (the convention of GPTQ's reference
        quantizer). An all-zero block gets scale 0 and z 0.

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
    zero_point: bool = False

    def __post_init__(self) -> None:
        for name in ("element", "scale", "tensor_scale"):
            fmt = getattr(self, name)
            if fmt is None and name == "tensor_scale":
                continue
            if not isinstance(fmt, Format):
                what = f"the block format {fmt}" if isinstance(fmt, BlockScaled) else repr(fmt)
                raise TypeError(
                    f"{name} must be a scalar Format (Minifloat, Integer, FixedPoint, "
                    f"BipolarInt, Lut), not {what}"
                )
            if fmt.max <= 0:
                raise ValueError(
                    f"{name} format {fmt} has no positive values; a block format needs them"
                )
        object.__setattr__(self, "scale_rule", ScaleRule.coerce(self.scale_rule, "scale_rule"))
        object.__setattr__(
            self, "scale_rounding", Rounding.coerce(self.scale_rounding, "scale_rounding")
        )
        bs = self.block_size
        dims = bs if isinstance(bs, tuple) else (bs,)
        if not (1 <= len(dims) <= 2 and all(
                isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in dims)):
            raise ValueError(
                f"block_size must be a positive int or a (rows, cols) tuple of them, not {bs!r}"
            )
        if self.block_numel > MAX_BLOCK:
            raise ValueError(
                f"block_size must hold at most {MAX_BLOCK} (2**24) elements per block, not "
                f"{bs!r}"
            )
        if isinstance(self.axis, bool) or not isinstance(self.axis, int):
            raise TypeError(f"axis must be an int, not {self.axis!r}")
        if not -64 <= self.axis < 64:
            raise ValueError(f"axis must be in -64..63 (numpy's dimension limit), not {self.axis}")
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
        if not isinstance(self.zero_point, (bool, np.bool_)):
            raise TypeError(f"zero_point must be a bool, not {self.zero_point!r}")
        if self.zero_point:
            e = self.element
            if not (isinstance(e, Integer) and not e.signed):
                raise ValueError(
                    f"zero_point=True needs an unsigned integer element format (uint4, ...), "
                    f"not {e}")
            if self.tensor_scale is not None:
                raise ValueError("zero_point=True does not combine with a tensor_scale")
            if self.scale_rule is ScaleRule.MSE:
                raise ValueError("scale_rule 'mse' is for symmetric blocks; with zero_point "
                                 "use 'nearest' (or 'rceil')")

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
        """Element bits plus the block scale (and zero point) amortised over a full block
        (the tensor scale, if any, is amortised per tensor by :meth:`storage_bits`)."""
        return self.element.bits + self._block_bits / self.block_numel

    @property
    def _block_bits(self) -> int:
        """Stored bits per block besides its elements: the scale code, and the zero-point
        code (an element code) of asymmetric formats."""
        return self.scale.bits + (self.element.bits if self.zero_point else 0)

    @property
    def bits(self) -> int:
        return self.element.bits

    @property
    def precision(self) -> int:
        """The element format's :attr:`~formats.Format.precision`. A zero point does not
        widen it: ``code - z`` of an unsigned element lies in ``-q..q`` (``q`` its
        largest code), as many magnitude bits as ``q``."""
        return self.element.precision

    def block_grid(self, shape: Any) -> tuple[int, ...]:
        """The shape of the scale codes of a tensor of ``shape`` (a tuple of ints): the
        other axes, then the blocks along ``axis`` (2-D tiles: the tiles along the last
        two axes); a partial block at an edge counts as a block.

        Raises
        ------
        ValueError : a shape that is not a tuple of non-negative ints, or one of a rank
            the blocks do not fit (0-d; 1-d under 2-D tiles; ``axis`` out of range)
        """
        dims = check_shape(shape)
        if isinstance(self.block_size, tuple):
            if len(dims) < 2:
                raise ValueError(
                    f"x must have rank >= 2 for the 2-D tiles {self.block_size} of {self}, "
                    f"not rank {len(dims)}")
            *lead, m, n = dims
            # a tile wider than the tensor is one partial tile
            br, bc = max(1, min(self.block_size[0], m)), max(1, min(self.block_size[1], n))
            return (*lead, -(-m // br), -(-n // bc))
        if not dims:
            raise ValueError(
                f"x must be an array of rank >= 1 for the block format {self}, not a 0-d "
                "scalar (blocks run along an axis)")
        if not -len(dims) <= self.axis < len(dims):
            raise ValueError(f"axis must be in {-len(dims)}..{len(dims) - 1} for rank "
                             f"{len(dims)}, not {self.axis}")
        ax = self.axis % len(dims)
        n = dims[ax]
        bs = max(1, min(self.block_size, n))  # a block longer than the axis: one partial
        return (*dims[:ax], *dims[ax + 1:], -(-n // bs))

    def storage_bits(self, shape: Any) -> int:
        """Exact stored bits of a tensor of ``shape`` encoded in this format: every
        element code, per block of :meth:`block_grid` (partial blocks included) a scale
        code and (asymmetric formats) a zero-point code, and the tensor scale once at its
        own format's width (it is a value of that format, so those bits hold it).
        ``BlockScaled.storage_bits(shape) == BlockEncoded.storage_bits`` of any tensor of
        that shape."""
        dims = check_shape(shape)
        nblocks = math.prod(self.block_grid(dims))
        ts = self.tensor_scale.bits if self.tensor_scale is not None else 0
        return math.prod(dims) * self.element.bits + nblocks * self._block_bits + ts

    def __str__(self) -> str:
        from .names import canonical_name

        return canonical_name(self)  # type: ignore[arg-type]

    # --- blocking -----------------------------------------------------------------------
    def _blocks(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        """View ``x`` as (nblocks, block_numel) float64 rows padded with zeros, and a
        function putting such rows back into ``x``'s shape."""
        grid = self.block_grid(x.shape)
        if isinstance(self.block_size, tuple):
            *lead, m, n = x.shape
            mb, nb = grid[-2:]
            br, bc = max(1, min(self.block_size[0], m)), max(1, min(self.block_size[1], n))
            mp, np_ = mb * br, nb * bc
            xp = np.zeros((*lead, mp, np_), np.float64)
            xp[..., :m, :n] = x
            t = xp.reshape(*lead, mb, br, nb, bc)
            k = len(lead)
            t = np.moveaxis(t, k + 1, k + 2)  # (..., mb, nb, br, bc)
            rows = np.ascontiguousarray(t).reshape(-1, br * bc)

            def back(r: np.ndarray) -> np.ndarray:
                u = np.moveaxis(r.reshape(*grid, br, bc), k + 2, k + 1)
                return u.reshape(*lead, mp, np_)[..., :m, :n]

            return rows, (back, grid)
        xm = np.moveaxis(x, self.axis, -1)
        *lead, n = xm.shape
        bs = max(1, min(self.block_size, n))
        npad = grid[-1] * bs
        xp = np.zeros((*lead, npad), np.float64)
        xp[..., :n] = xm
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
            out = np.empty(target.size, np.float64)
            K.pow2_scales(np.ascontiguousarray(target, np.float64).reshape(-1),
                          _POW2_RULES[rule], self._pow2, out)
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
            # blocks of magnitudes near float64's limit square to Inf: no candidate is
            # then better than the first (the block maximum's scale), which stays
            with np.errstate(over="ignore", invalid="ignore"):
                err = ((q - x) ** 2).sum(axis=1)
            better = err < best_err
            best = np.where(better, cand, best)
            best_err = np.where(better, err, best_err)
        return best

    # --- public API ---------------------------------------------------------------------
    def encode(self, x: Any) -> BlockEncoded:
        """Quantize ``x`` (numpy or torch, any rank) into element codes and block scales.

        A torch tensor on a CUDA device is encoded there (:mod:`formats._gpu`), into a
        :class:`BlockEncoded` of torch tensors on that device."""
        if _gpu.on_gpu(x):
            return _gpu.kernels("block").encode(self, x)  # type: ignore[no-any-return]
        inp = InputArray(x)
        arr = inp.array.astype(np.float64)
        rows, (back, grid) = self._blocks(arr)
        finite = np.isfinite(rows)
        bad_block = ~finite.all(axis=1)
        if self.zero_point:
            return self._encode_asym(rows, finite, bad_block, back, grid, inp.torch_like)
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

    def _encode_asym(self, rows: np.ndarray, finite: np.ndarray, bad: np.ndarray, back: Any,
                     grid: tuple[int, ...], torch_like: Any) -> BlockEncoded:
        q = float(self.element.max)
        fin = np.where(finite, rows, 0.0)
        lo = np.minimum(fin.min(axis=1), 0.0) if rows.shape[1] else np.zeros(rows.shape[0])
        hi = np.maximum(fin.max(axis=1), 0.0) if rows.shape[1] else np.zeros(rows.shape[0])
        with np.errstate(over="ignore"):  # a range beyond float64 saturates the scale
            span = hi - lo
        svals, _ = self._block_scales(span, bad, rows)
        ok = svals > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(ok, np.clip(np.rint(-lo / svals), 0.0, q), 0.0)
            r = np.where(ok[:, None], np.rint(rows / svals[:, None]), 0.0) + z[:, None]
        r = np.where(finite, r, 0.0)
        saturated = ((r < 0) | (r > q)) & finite
        codes = np.clip(r, 0.0, q)
        vals = (codes - z[:, None]) * svals[:, None]
        flushed = (vals == 0) & (rows != 0) & finite
        dt = self.element.code_dtype
        return BlockEncoded(
            format=self,
            codes=back(codes).astype(dt),
            scales=self.scale.encode(svals, overflow="saturate").reshape(grid),
            tensor_scale=None,
            saturated=saturated.sum(axis=1).reshape(grid),
            flushed=flushed.sum(axis=1).reshape(grid),
            zeros=z.astype(dt).reshape(grid),
            torch_like=torch_like,
        )

    def _block_scales(
        self, amax: np.ndarray, bad: np.ndarray, rows: np.ndarray,
        s_all: np.ndarray | None = None,
    ) -> tuple[np.ndarray, float]:
        """Scale values per block (NaN for blocks holding NaN/Inf, or the largest scale
        where the scale format has no NaN) and the tensor scale (1.0 if none); with
        ``s_all`` (flat float64), also their products with the tensor scale there."""
        ts = 1.0
        if self.tensor_scale is not None:
            tmax = float(amax.max()) if amax.size else 0.0
            ideal = tmax / (self.elem_max * float(self.scale.max))
            ts = float(self.tensor_scale.quantize(ideal, overflow="saturate")) if ideal > 0 else 1.0
            ts = ts or 1.0
        sc = self.scale
        bad_value = np.nan if sc.has_nan else float(sc.max)
        rule = self.scale_rule
        if (not self.pow2_scale and isinstance(sc, Minifloat) and sc._fast_f32
                and sc.precision <= 22 and rule in (ScaleRule.NEAREST, ScaleRule.RCEIL)
                and self.scale_rounding is not Rounding.STOCHASTIC):
            # amax / ts / elem_max rounded to odd in float32, then once into the scale
            # format by its float32 fast path: the same as rounding the float64 quotient
            mode = Rounding.UP if rule is ScaleRule.RCEIL else self.scale_rounding
            t32 = np.empty(amax.size, np.uint32)
            K.scale_targets_odd(np.ascontiguousarray(amax, np.float64).reshape(-1), ts,
                                self.elem_max, t32)
            v32 = sc.quantize(t32.view(np.float32), mode, "saturate", out=t32.view(np.float32))
            svals = np.empty(amax.size, np.float64)
            K.scale_finish(v32, np.ascontiguousarray(bad).reshape(-1), bad_value, ts, svals,
                           s_all if s_all is not None else np.empty_like(svals))
            return svals.reshape(amax.shape), ts
        svals = self._scale_values(amax, ts, rows)
        if bad.any():
            svals = np.where(bad, np.nan if self.scale.has_nan else float(self.scale.max), svals)
        if s_all is not None:
            np.multiply(svals.reshape(-1), ts, out=s_all)
        return svals, ts

    def _packed_sizes(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """Bytes of each part of :meth:`BlockEncoded.pack` for a tensor of ``shape``:
        element codes, scale codes, zero-point codes, tensor-scale code."""
        nblocks = math.prod(self.block_grid(shape))
        ts = self.tensor_scale
        return (-(-math.prod(shape) * self.element.bits // 8),
                -(-nblocks * self.scale.bits // 8),
                -(-nblocks * self.element.bits // 8) if self.zero_point else 0,
                -(-ts.bits // 8) if ts is not None else 0)

    def unpack(self, data: bytes, shape: tuple[int, ...]) -> BlockEncoded:
        """Inverse of :meth:`BlockEncoded.pack` for a tensor of ``shape`` (diagnostics
        are not stored: they come back as zeros)."""
        from .packing import unpack

        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        shape = check_shape(shape)
        grid = self.block_grid(shape)
        n, nblocks = math.prod(shape), math.prod(grid)
        eb, sb, zb, tb = self._packed_sizes(shape)
        if len(data) != eb + sb + zb + tb:
            raise ValueError(f"data must hold {eb + sb + zb + tb} bytes for {self} and shape "
                             f"{shape}, not {len(data)}")
        buf = np.frombuffer(data, np.uint8)
        codes = unpack(buf[:eb], self.element.bits, n).reshape(shape)
        scales = unpack(buf[eb:eb + sb], self.scale.bits, nblocks).reshape(grid)
        zp = None
        if self.zero_point:
            zp = unpack(buf[eb + sb:eb + sb + zb], self.element.bits, nblocks).reshape(grid)
        ts = None
        if self.tensor_scale is not None:
            code = int.from_bytes(bytes(data[eb + sb + zb:]), "little")
            ts = float(self.tensor_scale.decode(code))
        zeros = np.zeros(grid, np.int64)
        return BlockEncoded(self, codes, scales, ts, zeros, zeros, zeros=zp)

    @functools.cached_property
    def _pow2(self) -> K.Pow2Params:
        """The power-of-two scale rules' constants (pow2_scale formats)."""
        sc = self.scale
        assert isinstance(sc, Minifloat)
        man = self.element.man_bits if isinstance(self.element, Minifloat) else 0
        return K.Pow2Params(self.emax_elem, self.elem_max, man, sc.emin, sc.emax,
                            np.nan if sc.has_nan else float(sc.max))

    @functools.cached_property
    def _fused(self) -> tuple[int, K.F32Consts, K.GridConsts] | None:
        """Element kind and constants for the fused float32 kernel, or None where the
        element format has no fused form (lookup tables, wide minifloats)."""
        e = self.element
        if isinstance(e, Minifloat) and e._fast_f32:
            ek = 2 if not e.signed else (1 if e.special is Special.FNUZ else 0)
            return ek, e._f32_consts[K.SAT], K.NO_GRID
        if isinstance(e, FixedBase) and -120 <= e.ulp_exp <= 120:
            return 3, K.NO_F32, e._grid
        return None

    @property
    def _div_kind(self) -> int:
        """2 where every scale (times the tensor scale) has at most 29 significant bits
        (the fused kernel then needs no division), else 1."""
        sig = 0
        for f in (self.scale, self.tensor_scale):
            if f is None:
                continue
            if not isinstance(f, Minifloat):
                return 1
            sig += f.precision
        if sig > 29:
            return 1
        # element * scale exact in float32: at most 24 significant bits, normal range
        e, sc = self.element, self.scale
        lo = float(e.smallest_subnormal) * float(sc.smallest_subnormal)
        hi = float(e.max) * float(sc.max)
        if e.precision + sc.precision <= 24 and lo >= 2.0**-126 and hi < 2.0**127:
            return 3
        return 2

    def _quantize_rows_f32(self, rows: np.ndarray, out: np.ndarray) -> None:
        """Fake-quantize float32 ``rows`` (nblocks, block_size) into ``out``."""
        nblocks = rows.shape[0]
        fused = self._fused
        if fused is not None:
            ek, econsts, grid = fused
            scale = np.empty(nblocks, np.float64)
            rb = rows.view(np.uint32)
            ob = out.view(np.uint32)
            if self.pow2_scale and self.tensor_scale is None and self.scale_rule in _POW2_RULES:
                K.block_quantize_f32(rb, ob, scale, ek, 1 + _POW2_RULES[self.scale_rule], 0,
                                     econsts, grid, self._pow2)
                return
            amax = np.empty(nblocks, np.float64)
            bad = np.empty(nblocks, np.bool_)
            K.block_amax_bits(rb, amax, bad)
            _, ts = self._block_scales(amax, bad, rows, s_all=scale)
            div = 0 if self.pow2_scale and self.tensor_scale is None else self._div_kind
            K.block_quantize_f32(rb, ob, scale, ek, 0, div, econsts, grid, K.NO_POW2, ts)
            return
        amax = np.empty(nblocks, np.float64)
        bad = np.empty(nblocks, np.bool_)
        K.block_amax(rows, amax, bad)
        svals, ts = self._block_scales(amax, bad, rows)
        s_all = svals * ts
        if self.pow2_scale and self.tensor_scale is None:
            # dividing by a power of two is exact (float32 subnormal results round to
            # zero in every element format either way)
            K.block_multiply(rows, 1.0 / s_all, out)
        else:
            K.block_divide_odd(rows, s_all, out)
        self.element.quantize(out, overflow="saturate", out=out)
        K.block_multiply(out, s_all, out)

    def quantize(self, x: Any, *, out: np.ndarray | None = None) -> Any:
        """``encode(x).dequantize()``: the fake-quantized tensor, same type/shape/dtype.

        float32 input blocked along its last axis takes a fused path (block maxima, scale,
        division rounded to odd, the element format's fast quantizer, multiplication) that
        equals ``encode(x).dequantize()`` rounded to float32. ``out`` (numpy, the result's
        shape and dtype) receives the result and is returned; preallocating it saves the
        page faults of a fresh output (~30% at memory speed).

        A torch tensor on a CUDA device is quantized there, bit-identical to this path
        (float32 and bfloat16 blocked along the last axis by one fused Triton kernel, a
        tensor scale adding a pass for the tensor's maximum); ``out`` is then a tensor of
        x's shape, dtype and device."""
        if _gpu.on_gpu(x):
            return _gpu.kernels("block").quantize(self, x, out)
        inp = InputArray(x)
        arr = inp.array
        want = arr.dtype
        if out is not None:
            if not isinstance(out, np.ndarray) or out.shape != arr.shape or out.dtype != want:
                raise ValueError(
                    f"out must be a numpy array of shape {arr.shape} and dtype "
                    f"{np.dtype(want)}, not {getattr(out, 'shape', type(out).__name__)} "
                    f"{getattr(out, 'dtype', '')}")
        if (arr.dtype == np.float32 and isinstance(self.block_size, int) and arr.ndim >= 1
                and self.axis in (-1, arr.ndim - 1) and arr.shape[-1] % self.block_size == 0
                and arr.size and self.element.bits < 24 and not self.zero_point):
            rows = np.ascontiguousarray(arr).reshape(-1, self.block_size)
            res = out if out is not None and out.flags.c_contiguous else np.empty(
                arr.shape, np.float32)
            self._quantize_rows_f32(rows, res.reshape(rows.shape))
            if out is not None and res is not out:
                out[...] = res
                res = out
        else:
            vals = self.encode(x).dequantize()
            if inp.scalar:
                return float(vals)
            res = out if out is not None else np.empty(arr.shape, want)
            with np.errstate(over="ignore"):
                res[...] = vals
        if inp.torch_like is not None and out is None:
            import torch

            return torch.from_numpy(res).to(inp.torch_like.dtype).to(inp.torch_like.device)
        return res


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
    zeros : zero-point codes, one per block (asymmetric formats), else None

    Encoded on the GPU (a CUDA tensor given to :meth:`BlockScaled.encode`), every field
    is a torch tensor on that device: codes, scales and zeros in the dtype the scalar
    formats' encode gives torch tensors (uint8, uint16, else int64), the statistics
    int64, and the tensor scale a 0-d float64 tensor (so nothing waits for the device);
    :meth:`dequantize` then runs there too. Otherwise numpy arrays and a float.
    """

    format: BlockScaled
    codes: Any
    scales: Any
    tensor_scale: Any
    saturated: Any
    flushed: Any
    zeros: Any = None
    torch_like: Any = None

    def dequantize(self) -> Any:
        """The values: element * scale (* tensor scale), float64, the input's shape (a
        torch tensor on the device for a GPU encoding)."""
        if _gpu.is_torch(self.codes):
            return _gpu.kernels("block").dequantize(self)
        f = self.format
        ev = f.element.decode(self.codes)
        sv = f.scale.decode(self.scales) * (self.tensor_scale or 1.0)
        rows, (back, grid) = f._blocks(ev)
        if self.zeros is not None:
            rows = rows - self.zeros.reshape(-1)[:, None].astype(np.float64)
        vals = rows * sv.reshape(-1)[:, None]
        return back(vals)

    @property
    def numel(self) -> int:
        return math.prod(self.codes.shape)

    def pack(self) -> bytes:
        """The documented byte layout: element codes in C order packed with
        :func:`formats.pack` (little-endian bit stream, so 4-bit codes go two a byte, low
        nibble first), then the scale codes of the block grid in C order packed the same
        way, then (asymmetric formats) the zero-point codes packed like the elements, then
        the tensor scale's code in its format as a little-endian integer of
        ``ceil(bits / 8)`` bytes (NVFP4's float32: the IEEE bytes). The shape is not
        stored; :meth:`BlockScaled.unpack` takes it.

        Raises
        ------
        ValueError : a tensor scale that is not a value of the tensor-scale format
        """
        from .packing import pack

        if _gpu.is_torch(self.codes):
            return self._on_host().pack()
        f = self.format
        parts = [pack(self.codes, f.element.bits).tobytes(),
                 pack(self.scales, f.scale.bits).tobytes()]
        if f.zero_point:
            parts.append(pack(self.zeros, f.element.bits).tobytes())
        if f.tensor_scale is not None:
            ts = f.tensor_scale
            code = int(ts.encode(self.tensor_scale))
            if ts.decode(code) != self.tensor_scale:
                raise ValueError(f"tensor_scale {self.tensor_scale!r} is not a value of the "
                                 f"tensor-scale format {ts}, so pack cannot store it")
            parts.append(code.to_bytes(-(-ts.bits // 8), "little"))
        return b"".join(parts)

    def _on_host(self) -> BlockEncoded:
        """This encoding with numpy fields (of a GPU encoding: bytes live on the host)."""
        def host(t: Any) -> Any:
            return None if t is None else t.detach().cpu().numpy()

        ts = self.tensor_scale
        return BlockEncoded(self.format, host(self.codes), host(self.scales),
                            None if ts is None else float(ts), host(self.saturated),
                            host(self.flushed), host(self.zeros))

    @property
    def nbytes(self) -> int:
        """Bytes of :meth:`pack`: each part (element, scale, zero-point codes) packed to
        whole bytes, the tensor scale in ``ceil(bits / 8)`` bytes."""
        return sum(self.format._packed_sizes(self.codes.shape))

    @property
    def storage_bits(self) -> int:
        """Exact stored bits, ``format.storage_bits(codes.shape)`` (see
        :meth:`BlockScaled.storage_bits`)."""
        return self.format.storage_bits(self.codes.shape)

    @property
    def bits_per_element(self) -> float:
        """:attr:`storage_bits` per element: scales, zero points and the tensor scale
        amortised over this tensor (an empty tensor: the format's
        :attr:`BlockScaled.bits_per_element`)."""
        if not self.numel:
            return self.format.bits_per_element
        return self.storage_bits / self.numel
