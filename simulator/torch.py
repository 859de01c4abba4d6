"""Run any torch model in any numfab format: ``simulate(model, config)``.

Rules keyed by layer-name patterns choose, per layer, the format of the weights, the
input activations, the output and (for attention modules) the KV cache, and whether the
layer runs as fake quantization (default: formats/ kernels on float32, straight-through
gradients) or bit-true through :func:`simulator.gemm` with a modelled accumulator.

Matched ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` layers are swapped for a
:class:`QuantLayer` wrapping the original module (its parameters untouched, so restoring
puts back the very same objects: the model is restored bit for bit). Attention modules
(children ``k_proj``/``v_proj`` as in Hugging Face Llama, or ``key``/``value`` as in
BERT) matched by a rule with ``kv=`` get their key and value projections' outputs
quantized along the head dimension: the tensors the KV cache stores (for Llama, keys
before the rotary embedding, as KVQuant's pre-RoPE key quantization).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import math
import numbers
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from formats import BlockScaled, Format, Integer, Lut, ScaleRule, parse

from . import techniques
from .accumulator import Accumulator
from .gemm import gemm

__all__ = ["LayerSpec", "QuantLayer", "Simulation", "fake_quant", "layer_names",
           "restore", "restore_params", "simulate"]

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
_KV_PAIRS = (("k_proj", "v_proj"), ("key", "value"))


def _fmt(value: Any, what: str) -> Any:
    return None if value is None else parse(value, parameter=what)


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """What one layer computes in.

    weight, act, output : formats (or names) of the weight, the input activation and the
        output; ``None`` keeps a tensor as it is.
    kv : format of an attention module's keys and values (blocks along the head dim).
    granularity, act_granularity : how scalar formats are scaled, for the weight and the
        activation: ``"none"`` (a plain cast), ``"tensor"``, ``"channel"`` (per output
        channel of the weight, per token of the activation), ``"group:<k>"`` (groups of k
        along K); scales are float32, ``amax / max`` rounded to nearest. ``"auto"``:
        minifloats and fixed point are cast, integers and tables scaled per channel. Block
        formats define their own blocks (along K; 2-D tiles for weights) and take only
        ``"auto"``.
    accumulator : an :class:`Accumulator` (or format name, or ``"exact"``) to run the
        layer bit-true through :func:`simulator.gemm` (slow; Linear layers), or ``None``
        for fake quantization.

    Techniques (nn.Linear layers; see :mod:`simulator.techniques`), applied to the input
    in this order, each leaving the unquantized output unchanged (to float rounding):
    rearrange : permute input channels by calibrated magnitude (outliers share blocks).
    smoothquant : alpha; divide inputs by SmoothQuant scales, multiply weight columns.
    hadamard : ``"full"`` (K a power of two) or ``"block"`` (blocks of ``hadamard_block``,
        default the weight format's block size): rotate inputs online and weights once.
    clip : ``"mse"``: each weight scale (block, group or channel) chosen for least
        squared error among clipped candidates (formats' ``ScaleRule.MSE``).
    gptq : quantize the weight with GPTQ on calibrated inputs (``act_order`` optional,
        ``gptq_damp`` the dampening: a positive finite fraction of the Hessian's mean
        diagonal, default 0.01).
    outliers : LLM.int8() threshold, a positive finite number: input channels with any
        ``|x| >= outliers`` (per forward) and their weight columns stay in
        ``outlier_format`` (float16); fake quantization only (no ``accumulator``).
    rearrange, smoothquant and gptq need :meth:`Simulation.calibrate` first.
    ``smoothquant`` is alpha in [0, 1]; ``hadamard_block`` a positive power of two (an int,
    not a bool; 1 is the identity) for ``hadamard="block"``, dividing the layer's K.

    Raises
    ------
    TypeError
        a field of the wrong kind (e.g. ``hadamard_block=True``, ``gptq_damp="0.1"``)
    ValueError
        a field outside its range, or fields that do not combine
    """

    weight: Any = None
    act: Any = None
    output: Any = None
    kv: Any = None
    granularity: str = "auto"
    act_granularity: str = "auto"
    accumulator: Any = None
    rearrange: bool = False
    smoothquant: float | None = None
    hadamard: str | None = None
    hadamard_block: int | None = None
    clip: str | None = None
    gptq: bool = False
    act_order: bool = False
    gptq_damp: float = 0.01
    outliers: float | None = None
    outlier_format: Any = "float16"

    def __post_init__(self) -> None:
        for name in ("weight", "act", "output", "kv"):
            object.__setattr__(self, name, _fmt(getattr(self, name), name))
        for name in ("granularity", "act_granularity"):
            g = getattr(self, name)
            fmt = self.weight if name == "granularity" else self.act
            _check_granularity(g, fmt, name)
        acc = self.accumulator
        if acc is not None and not isinstance(acc, Accumulator):
            if not isinstance(acc, (str, Format)):
                raise TypeError(f"accumulator must be None (fake quantization), an "
                                f"Accumulator, a format or its name, or 'exact', not {acc!r}")
            try:
                acc = Accumulator(None if acc == "exact" else acc)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"accumulator: {exc}") from None
            object.__setattr__(self, "accumulator", acc)
        object.__setattr__(self, "outlier_format", _fmt(self.outlier_format, "outlier_format"))
        for name in ("rearrange", "gptq", "act_order"):
            flag = getattr(self, name)
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, not {flag!r}")
            object.__setattr__(self, name, bool(flag))
        if self.hadamard not in (None, "full", "block"):
            raise ValueError(f"hadamard must be None, 'full' or 'block', not {self.hadamard!r}")
        hb = self.hadamard_block
        if hb is not None:
            # bool is an int to Python, but True is no block size
            if isinstance(hb, bool) or not isinstance(hb, numbers.Integral):
                raise TypeError(f"hadamard_block must be an int (a power of two), not {hb!r}")
            if hb < 1 or hb & (hb - 1):
                raise ValueError(f"hadamard_block must be a positive power of two (1, 2, 4, "
                                 f"...), not {hb}")
            if self.hadamard == "full":
                raise ValueError("hadamard_block applies to hadamard='block', not 'full' "
                                 "(whose block is all of K)")
        if self.clip not in (None, "mse"):
            raise ValueError(f"clip must be None or 'mse', not {self.clip!r}")
        if self.smoothquant is not None:
            alpha = _real(self.smoothquant, "smoothquant", "None or the migration strength "
                          "alpha, a number in [0, 1]")
            if not 0.0 <= alpha <= 1.0:
                raise ValueError(f"smoothquant (alpha) must be in [0, 1], not {alpha}")
        damp = _real(self.gptq_damp, "gptq_damp", "a positive finite number (the fraction "
                     "of the Hessian's mean diagonal added to it, e.g. 0.01)")
        if not 0.0 < damp < math.inf:
            raise ValueError(f"gptq_damp must be a positive finite number (the fraction of "
                             f"the Hessian's mean diagonal added to it, e.g. 0.01), not {damp}")
        if self.outliers is not None:
            thr = _real(self.outliers, "outliers", "None or a positive finite threshold on "
                        "|x| (LLM.int8(): e.g. 6.0)")
            if not 0.0 < thr < math.inf:
                raise ValueError(f"outliers must be a positive finite threshold on |x| "
                                 f"(LLM.int8(): e.g. 6.0; channels with |x| >= it stay in "
                                 f"outlier_format), not {thr}")
            if self.accumulator is not None:
                raise ValueError("outliers (LLM.int8() decomposition) runs as fake "
                                 "quantization: it cannot combine with bit-true routing "
                                 "(accumulator=)")
        if (self.gptq or self.clip) and self.weight is None:
            raise ValueError("gptq and clip need a weight format")
        if self.gptq and self.accumulator is not None:
            raise ValueError("gptq with bit-true routing is not supported: the bit-true "
                             "path re-derives block scales from the weights")

    @property
    def techniques(self) -> list[str]:
        """The techniques this spec applies."""
        t = [n for n in ("rearrange", "gptq") if getattr(self, n)]
        t += [n for n in ("smoothquant", "hadamard", "clip", "outliers")
              if getattr(self, n) is not None]
        return t

    @property
    def needs_calibration(self) -> bool:
        return self.rearrange or self.gptq or self.smoothquant is not None


_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(LayerSpec))


def _real(value: Any, name: str, allowed: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {allowed}, not {value!r}")
    return float(value)


def _check_granularity(g: Any, fmt: Any, name: str) -> None:
    ok = isinstance(g, str) and (g in ("auto", "none", "tensor", "channel") or bool(
        re.fullmatch(r"group:[1-9][0-9]*", g)))
    if not ok:
        raise ValueError(f"{name} must be 'auto', 'none', 'tensor', 'channel' or "
                         f"'group:<k>' (k a positive integer), not {g!r}")
    if isinstance(fmt, BlockScaled) and g != "auto":
        raise ValueError(f"{name}={g!r} with block format {fmt}: block formats define "
                         "their own blocks; leave it 'auto'")


def _rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` as a (rows, K) matrix, K its last dimension (rows counted explicitly:
    reshape(-1, 0) cannot infer them for an empty K)."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


def _scaled(fmt: Any, g: str, k: int, numel: int) -> Any:
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
    """``x`` quantized to ``fmt`` along its last dimension (K), in x's dtype, with a
    straight-through gradient (the identity). Runs formats/' float32 kernels."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, not {type(x).__name__}")
    if fmt is None:
        return x
    fmt = _fmt(fmt, "fmt")
    _check_granularity(granularity, fmt, "granularity")
    if x.numel() == 0:
        return x
    return _quantize(x, _scaled(fmt, granularity, x.shape[-1], x.numel()),
                     whole=granularity == "tensor")


def _quantize(x: torch.Tensor, f: Any, whole: bool = False) -> torch.Tensor:
    """``x`` in the resolved format ``f`` (blocks along the last dimension; ``whole``:
    one block spanning the tensor), straight-through."""
    if x.numel() == 0:
        return x
    k = x.shape[-1]
    # float32 kernels for float32/16-bit tensors; float64 tensors round from float64
    wide = x.dtype == torch.float64
    arr = x.detach().to(torch.float64 if wide else torch.float32).contiguous().numpy()
    if isinstance(f, BlockScaled) and whole:
        arr2 = arr.reshape(1, -1)
    elif isinstance(f, BlockScaled) and isinstance(f.block_size, int):
        arr2 = arr.reshape(-1, k)
    else:
        arr2 = arr
    if isinstance(f, BlockScaled) and f.axis != -1 and isinstance(f.block_size, int):
        f = dataclasses.replace(f, axis=-1)
    with np.errstate(all="ignore"):
        q = np.asarray(f.quantize(arr2), arr.dtype).reshape(arr.shape)
    qt = torch.from_numpy(q).to(x.dtype)
    if x.requires_grad:
        return x + (qt - x).detach()
    return qt


class QuantLayer(nn.Module):
    """A Linear / Conv layer computing in the formats of its :class:`LayerSpec`.

    ``inner`` is the original module, unchanged. Fake quantization: the input (K last:
    features, or channels of a convolution), after the spec's input transforms, and the
    weight (K = its fan-in; transformed to match, then rounded by RTN, MSE-clipped
    scales or GPTQ) are quantized, the float op runs, the output is quantized. The
    quantized weight is cached while the weight neither changes nor needs gradients."""

    inner: Any

    def __init__(self, inner: nn.Module, spec: LayerSpec, name: str = "",
                 register: bool = True) -> None:
        super().__init__()
        if register:
            self.inner = inner
        else:  # the model itself: held, not registered (the module tree must not loop)
            object.__setattr__(self, "inner", inner)
        self.spec = spec
        self.name = name
        kind = type(inner).__name__
        if spec.accumulator is not None and not isinstance(inner, nn.Linear):
            raise ValueError(f"layer {name!r} ({kind}): bit-true routing "
                             "through simulator.gemm takes nn.Linear layers only")
        if spec.techniques and not isinstance(inner, nn.Linear):
            raise ValueError(f"layer {name!r} ({kind}) cannot take "
                             f"{', '.join(spec.techniques)}: the techniques transform a "
                             "Linear layer's input features")
        # settings that only refine another one: after rules merge, the one must be there
        if spec.hadamard_block is not None and spec.hadamard != "block":
            raise ValueError(f"layer {name!r}: hadamard_block={spec.hadamard_block} needs "
                             "hadamard='block'")
        if spec.act_order and not spec.gptq:
            raise ValueError(f"layer {name!r}: act_order needs gptq=True")
        self._wcache: tuple[Any, torch.Tensor] | None = None
        self.calibrating = False
        self.capture = False
        self.recording = True
        self._first_input: torch.Tensor | None = None
        self.stats: dict[str, Any] | None = None
        self.perm: torch.Tensor | None = None
        self.smooth: torch.Tensor | None = None
        self.hblock: int | None = None
        if spec.hadamard is not None:
            k = int(inner.weight.shape[1])  # type: ignore[index]
            if spec.hadamard == "full":
                if k < 1 or k & (k - 1):
                    raise ValueError(f"layer {name!r}: hadamard='full' needs K a power of "
                                     f"two, not {k}; use hadamard='block'")
                self.hblock = k
            else:
                wf = spec.weight
                bs = spec.hadamard_block or (wf.block_size if isinstance(wf, BlockScaled)
                                             and isinstance(wf.block_size, int) else None)
                if bs is None:
                    raise ValueError(f"layer {name!r}: hadamard='block' needs "
                                     "hadamard_block= (the weight format has no 1-D blocks)")
                if k % bs or bs & (bs - 1):
                    raise ValueError(f"layer {name!r}: Hadamard block {bs} must be a power "
                                     f"of two dividing K={k}")
                self.hblock = bs

    def extra_repr(self) -> str:
        s = self.spec
        return (f"weight={s.weight}, act={s.act}, output={s.output}, "
                f"bit_true={s.accumulator is not None}, techniques={s.techniques}")

    # --- calibration --------------------------------------------------------------------
    def _record(self, x: torch.Tensor) -> None:
        if not self.recording:
            return
        if self.capture and getattr(self, "_first_input", None) is None:
            self._first_input = x  # which module produced it: SmoothQuant folding
        x2 = _rows(x.detach()).to(torch.float64)
        st = self.stats
        if st is None:
            st = self.stats = {"amax": torch.zeros(x2.shape[1], dtype=torch.float64),
                               "n": 0, "H": None}
        st["amax"] = torch.maximum(st["amax"], techniques.column_amax(x2))
        st["n"] += x2.shape[0]
        if self.spec.gptq:
            h = x2.T @ x2
            st["H"] = h if st["H"] is None else st["H"] + h

    def finish_calibration(self) -> None:
        """Derive the calibrated transforms (channel order, SmoothQuant scales)."""
        if self.stats is None:
            raise ValueError(f"layer {self.name!r} saw no calibration data")
        amax = self.stats["amax"]
        w = self.inner.weight.detach().to(torch.float64)
        if self.spec.rearrange:
            self.perm = techniques.rearrange(amax)
            amax, w = amax[self.perm], w[:, self.perm]
        if self.spec.smoothquant is not None:
            self.smooth = techniques.smooth_scales(amax, w, float(self.spec.smoothquant))
        self._wcache = None

    def _check_calibrated(self) -> None:
        if self.spec.needs_calibration and self.stats is None:
            raise ValueError(f"layer {self.name!r} needs calibration for "
                             f"{', '.join(self.spec.techniques)}: call "
                             "Simulation.calibrate(batches) first")

    # --- transforms ---------------------------------------------------------------------
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The input as the quantizer sees it (channel order, smoothing, rotation)."""
        if self.perm is not None:
            x = x[..., self.perm]
        if self.smooth is not None:
            x = x / self.smooth.to(x.dtype)
        if self.hblock is not None:
            x = techniques.rotate(x, self.hblock)
        return x

    def weight_transformed(self) -> torch.Tensor:
        """The weight (out, K) matching :meth:`transform`: x' @ W'.T == x @ W.T."""
        w = self.inner.weight
        w = w.reshape(w.shape[0], math.prod(w.shape[1:]))
        if self.perm is not None:
            w = w[:, self.perm]
        if self.smooth is not None:
            w = w * self.smooth.to(w.dtype)
        if self.hblock is not None:
            w = techniques.rotate(w, self.hblock)
        return w

    def _weight_format(self, k: int, numel: int) -> Any:
        f = _scaled(self.spec.weight, self.spec.granularity, k, numel)
        if self.spec.clip == "mse":
            if not isinstance(f, BlockScaled) or f.zero_point:
                raise ValueError(f"layer {self.name!r}: clip='mse' needs scaled symmetric "
                                 f"weights (a block format or a scaled granularity), not {f}")
            f = dataclasses.replace(f, scale_rule=ScaleRule.MSE)
        return f

    def qweight(self) -> torch.Tensor:
        w0 = self.inner.weight
        if self.spec.weight is None and not self.spec.techniques:
            return w0
        key = (w0._version, id(w0), id(self.perm), id(self.smooth))
        if not w0.requires_grad and self._wcache is not None and self._wcache[0] == key:
            return self._wcache[1]
        w = self.weight_transformed()
        if self.spec.weight is not None:
            f = self._weight_format(w.shape[1], w.numel())
            if self.spec.gptq:
                assert self.stats is not None and self.stats["H"] is not None
                t = self.transform(torch.eye(w.shape[1], dtype=torch.float64))
                h = t.T @ self.stats["H"] @ t
                if self.spec.granularity == "tensor":
                    raise ValueError(f"layer {self.name!r}: gptq takes channel or group "
                                     "scales, not granularity 'tensor'")
                q = techniques.gptq(w, h, f, damp=self.spec.gptq_damp,
                                    act_order=self.spec.act_order).to(w.dtype)
                w = w + (q - w).detach() if w.requires_grad else q
            else:
                w = _quantize(w, f, whole=self.spec.granularity == "tensor")
        w = w.reshape(w0.shape)
        if not w0.requires_grad:
            self._wcache = (key, w)
        return w

    def _qact(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.act is None:
            return x
        if isinstance(self.inner, nn.Linear):
            return fake_quant(x, self.spec.act, self.spec.act_granularity)
        xc = x.movedim(1, -1)  # convolutions: channels are K
        return fake_quant(xc, self.spec.act, self.spec.act_granularity).movedim(-1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inner = self.inner
        if self.calibrating:
            self._record(x)
            return type(inner).forward(inner, x)  # the class's (a root layer's is ours)
        self._check_calibrated()
        if self.spec.accumulator is not None:
            y = self._bit_true(x)
        elif isinstance(inner, nn.Linear):
            xt = self.transform(x)
            if self.spec.outliers is not None:
                y = self._with_outliers(xt)
            else:
                y = nn.functional.linear(self._qact(xt), self.qweight(), inner.bias)
        else:
            y = inner._conv_forward(self._qact(x), self.qweight(), inner.bias)
        if self.spec.output is not None:
            y = fake_quant(y, self.spec.output)
        return y

    def _with_outliers(self, xt: torch.Tensor) -> torch.Tensor:
        """LLM.int8(): outlier input channels (any |x| >= threshold in this batch) run in
        the outlier format, the rest in the layer's formats."""
        thr = float(self.spec.outliers)  # type: ignore[arg-type]
        cols = techniques.column_amax(_rows(xt.detach())) >= thr
        w = self.weight_transformed()
        of = self.spec.outlier_format
        y = nn.functional.linear(fake_quant(xt[..., cols], of), fake_quant(w[:, cols], of))
        keep = ~cols
        if bool(keep.any()):
            wr = w[:, keep]
            if self.spec.weight is not None:
                wr = _quantize(wr, self._weight_format(wr.shape[1], wr.numel()),
                               whole=self.spec.granularity == "tensor")
            y = y + nn.functional.linear(self._qact(xt[..., keep]), wr)
        if self.inner.bias is not None:
            y = y + self.inner.bias
        return y

    def _bit_true(self, x: torch.Tensor) -> torch.Tensor:
        inner = self.inner
        lead = x.shape[:-1]
        xt = self.transform(x.detach().to(torch.float64))
        a = _rows(xt).numpy()
        w = self.weight_transformed().detach().to(torch.float64).numpy()
        af = _scaled(self.spec.act, self.spec.act_granularity, a.shape[-1], a.size)
        wf = self._weight_format(w.shape[-1], w.size) if self.spec.weight is not None \
            else None
        if isinstance(wf, BlockScaled) and self.spec.granularity == "tensor":
            raise ValueError(f"layer {self.name!r}: bit-true routing takes per-channel or "
                             "group weight scales, not 'tensor'")
        if af is None:
            af = "float32"
            a = a.astype(np.float32).astype(np.float64)
        if wf is None:
            wf = "float32"
            w = w.astype(np.float32).astype(np.float64)
        # the weight's blocks lie along K: pass W.T (K, out), blocked along its K
        y = gemm(a, w.T, a_format=af, b_format=wf, accumulator=self.spec.accumulator)
        if inner.bias is not None:
            y = y + inner.bias.detach().to(torch.float64).numpy()
        return torch.from_numpy(np.asarray(y)).to(x.dtype).reshape(*lead, w.shape[0])


class _KVQuant(nn.Module):
    """Wraps an attention module's key or value projection: its output (what the KV
    cache stores) is quantized along the last (head) dimension."""

    inner: Any

    def __init__(self, inner: nn.Module, fmt: Any, name: str, head_dim: int | None) -> None:
        super().__init__()
        self.inner = inner
        self.fmt = fmt
        self.name = name
        self.head_dim = head_dim

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        y = self.inner(*args, **kwargs)
        if self.head_dim and y.shape[-1] % self.head_dim == 0:
            shp = y.shape
            y2 = y.reshape(*shp[:-1], shp[-1] // self.head_dim, self.head_dim)
            return fake_quant(y2, self.fmt).reshape(shp)
        return fake_quant(y, self.fmt)


def layer_names(model: nn.Module) -> list[str]:
    """Names of the modules ``simulate`` can quantize (Linear/Conv layers and attention
    modules with key/value projections)."""
    return [n for n, m in model.named_modules() if isinstance(m, _LAYERS) or _kv_children(m)]


def _kv_children(m: nn.Module) -> tuple[str, str] | None:
    for k, v in _KV_PAIRS:
        if isinstance(getattr(m, k, None), nn.Linear) and isinstance(getattr(m, v, None),
                                                                     nn.Linear):
            return k, v
    return None


def _match(pattern: str, name: str) -> bool:
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    return fnmatch.fnmatchcase(name, pattern)


def _rules(config: Any) -> list[tuple[str, LayerSpec]]:
    if isinstance(config, LayerSpec):
        return [("*", config)]
    items: Iterable[Any]
    if isinstance(config, Mapping):
        items = config.items()
    elif isinstance(config, (list, tuple)):
        items = config
    else:
        raise TypeError("config must be a LayerSpec, a mapping {pattern: LayerSpec or dict} "
                        f"or a list of (pattern, spec) pairs, not {type(config).__name__}")
    out = []
    for item in items:
        try:
            pattern, spec = item
        except (TypeError, ValueError):
            raise TypeError(f"config entries must be (pattern, spec) pairs, not {item!r}") \
                from None
        if not isinstance(pattern, str):
            raise TypeError(f"layer patterns must be strings, not {pattern!r}")
        if pattern.startswith("re:"):
            try:
                re.compile(pattern[3:])
            except re.error as exc:
                raise ValueError(f"rule {pattern!r}: {pattern[3:]!r} is not a valid regular "
                                 f"expression ({exc})") from None
        if isinstance(spec, Mapping):
            unknown = [k for k in spec if k not in _SPEC_FIELDS]
            if unknown:
                hints = [f"{k!r} (did you mean {m[0]!r}?)" if m else repr(k) for k in unknown
                         for m in [difflib.get_close_matches(str(k), _SPEC_FIELDS, 1)]]
                raise TypeError(f"rule {pattern!r}: unknown LayerSpec field(s) "
                                f"{', '.join(hints)}; valid fields: {', '.join(_SPEC_FIELDS)}")
            try:
                spec = LayerSpec(**spec)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"rule {pattern!r}: {exc}") from None
        if not isinstance(spec, LayerSpec):
            raise TypeError(f"rule {pattern!r}: spec must be a LayerSpec or a dict, not "
                            f"{type(spec).__name__}")
        out.append((pattern, spec))
    return out


def _merge(a: LayerSpec, b: LayerSpec) -> LayerSpec:
    """``b`` over ``a``: the fields ``b`` sets (not None / not 'auto') win."""
    kw = {}
    for f in dataclasses.fields(LayerSpec):
        vb = getattr(b, f.name)
        default = _fmt(f.default, f.name) if f.name == "outlier_format" else f.default
        kw[f.name] = getattr(a, f.name) if vb is None or vb == default else vb
    return LayerSpec(**kw)


class Simulation:
    """A patched model: ``with simulate(model, cfg) as m: ...`` restores on exit;
    ``sim = simulate(model, cfg)`` keeps it patched (``sim.model``, ``sim(x)``) until
    ``sim.restore()``. ``sim.layers`` maps layer names to their specs."""

    def __init__(self, model: nn.Module, layers: dict[str, LayerSpec]) -> None:
        self.model = model
        self.layers = layers
        self.folded: dict[str, list[str]] = {}

    def __enter__(self) -> nn.Module:
        return self.model

    def __exit__(self, *exc: Any) -> None:
        self.restore()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def restore(self) -> None:
        restore(self.model)

    def quant_layers(self) -> dict[str, QuantLayer]:
        """The patched layers by name."""
        out = {n: m for n, m in self.model.named_modules() if isinstance(m, QuantLayer)}
        root = self.model.__dict__.get(_ROOT)
        if root is not None:
            out[""] = root
        return out

    def calibrate(self, batches: Iterable[Any], forward: Any = None,
                  fold: bool = True) -> Simulation:
        """Run ``batches`` through the model unquantized, collecting each patched layer's
        input statistics (per-channel max |x|, and X^T X for GPTQ), then derive the
        calibrated transforms. ``forward(model, batch)`` runs one batch (default
        ``model(batch)``). Calibrating again starts afresh.

        ``fold``: SmoothQuant scales are folded into the normalisation layer that feeds
        the smoothed layers (LayerNorm / RMSNorm weight and bias divided by ``s``, the
        consumers' weights multiplied), one shared ``s`` per norm (SmoothQuant's
        ``max |W_j|`` over all its consumers), where the architecture allows: all the
        norm's patched consumers use the same alpha and no rearrangement, and the first
        batch's unquantized output is unchanged after folding (checked; otherwise the
        fold is undone and the scales stay online). ``self.folded`` names the norms and
        their layers; ``restore()`` puts the original parameters back bit for bit."""
        restore_params(self.model)
        layers = self.quant_layers()
        for q in layers.values():
            q.stats, q.perm, q.smooth, q._wcache = None, None, None, None
            q.calibrating = True
            q.capture = fold
            q._first_input = None
        norms: dict[str, torch.Tensor] = {}
        hooks = []
        if fold and any(q.spec.smoothquant is not None for q in layers.values()):
            for name, m in self.model.named_modules():
                w = getattr(m, "weight", None)
                if isinstance(w, torch.Tensor) and w.dim() == 1 and "norm" in \
                        type(m).__name__.lower():
                    hooks.append(m.register_forward_hook(
                        lambda mod, args, out, name=name: norms.setdefault(name, out)))
        n = 0
        first_out = None
        try:
            with torch.no_grad():
                for batch in batches:
                    out = self.model(batch) if forward is None else forward(self.model, batch)
                    if n == 0:
                        first_out, first_batch = out, batch
                        for h in hooks:
                            h.remove()
                        hooks = []
                        for q in layers.values():
                            q.capture = False
                    n += 1
            if n == 0:
                raise ValueError("calibrate() got no batches")
            self.folded = self._fold(layers, norms) if norms else {}
            if self.folded and isinstance(first_out, torch.Tensor):
                for q in layers.values():
                    q.recording = False  # the check must not add to the statistics
                with torch.no_grad():
                    again = self.model(first_batch) if forward is None else \
                        forward(self.model, first_batch)
                scale = float(first_out.abs().max()) or 1.0
                if float((again - first_out).abs().max()) > 1e-4 * scale:
                    restore_params(self.model)  # another consumer saw the norm: undo
                    self.folded = {}
        finally:
            for h in hooks:
                h.remove()
            for q in layers.values():
                q.calibrating = False
                q.capture = False
                q.recording = True
                q._first_input = None
        for q in layers.values():
            if q.stats is not None:
                q.finish_calibration()
        by_layer = {ln for lns in self.folded.values() for ln in lns}
        for name, q in layers.items():
            if name in by_layer:
                q.smooth = None  # folded into the norm and the weight
        return self

    def _fold(self, layers: dict[str, QuantLayer],
              norms: dict[str, torch.Tensor]) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for name, q in layers.items():
            for nn_name, out in norms.items():
                if q._first_input is out:
                    groups.setdefault(nn_name, []).append(name)
        folded: dict[str, list[str]] = {}
        saved: list[tuple[torch.Tensor, torch.Tensor]] = self.model.__dict__.setdefault(
            _SAVED, [])
        for nn_name, names in groups.items():
            qs = [layers[n] for n in names]
            alphas = {q.spec.smoothquant for q in qs}
            if len(alphas) != 1 or None in alphas or any(q.spec.rearrange for q in qs):
                continue
            norm: Any = self.model.get_submodule(nn_name)
            amax = torch.stack([q.stats["amax"] for q in qs if q.stats]).amax(dim=0)
            w_all = torch.cat([q.inner.weight.detach().to(torch.float64) for q in qs])
            s_ = techniques.smooth_scales(amax, w_all, float(alphas.pop()))  # type: ignore[arg-type]
            with torch.no_grad():
                params: list[torch.Tensor] = [norm.weight] + (
                    [norm.bias] if getattr(norm, "bias", None) is not None else [])
                for p_ in params:
                    saved.append((p_, p_.detach().clone()))
                    p_.copy_((p_.to(torch.float64) / s_).to(p_.dtype))
                for q in qs:
                    w = q.inner.weight
                    saved.append((w, w.detach().clone()))
                    w.copy_((w.to(torch.float64) * s_).to(w.dtype))
                    q._wcache = None
            folded[nn_name] = names
        return folded
def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    if "." in name:
        p, _, leaf = name.rpartition(".")
        return model.get_submodule(p), leaf
    return model, name


def simulate(model: nn.Module, config: Any) -> Simulation:
    """Patch ``model`` in place to compute in the formats ``config`` names.

    ``config``: a :class:`LayerSpec` (every layer), a mapping ``{pattern: spec}`` or a
    list of ``(pattern, spec)`` pairs; ``spec`` a LayerSpec or a dict of its fields.
    Patterns are shell globs on module names (``"model.layers.*.mlp.*"``) or regular
    expressions after ``"re:"``. Rules apply in order; a later rule's fields override
    an earlier one's where it sets them. A pattern matching no quantizable layer is an
    error listing the layer names.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    if _ROOT in model.__dict__ or any(isinstance(m, (QuantLayer, _KVQuant))
                                      for m in model.modules()):
        raise ValueError("model is already simulated; restore() it first")
    rules = _rules(config)
    names = layer_names(model)
    mods = dict(model.named_modules())
    chosen: dict[str, LayerSpec] = {}
    for pattern, spec in rules:
        hit = [n for n in names if _match(pattern, n)]
        if not hit:
            shown = ", ".join(names[:40]) + (" ..." if len(names) > 40 else "")
            raise ValueError(f"pattern {pattern!r} matches no layer; layers: {shown}")
        for n in hit:
            try:
                chosen[n] = _merge(chosen[n], spec) if n in chosen else spec
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"layer {n!r} (rules merged): {exc}") from None
    plan: list[tuple[str, LayerSpec]] = []
    for n, spec in chosen.items():
        m = mods[n]
        kvc = _kv_children(m)
        if spec.kv is not None and kvc is None:
            raise ValueError(f"layer {n!r} ({type(m).__name__}) cannot take kv=: it has no "
                             "k_proj/v_proj or key/value projections")
        if isinstance(m, _LAYERS):
            if any(getattr(spec, f) is not None for f in ("weight", "act", "output")) or \
                    spec.accumulator is not None or spec.techniques:
                plan.append((n, spec))
        elif spec.kv is None and any(getattr(spec, f) is not None
                                     for f in ("weight", "act", "output")):
            continue  # an attention module matched for its children's sake
        if spec.kv is not None:
            plan.append((n, spec))
    done: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        # layers first, then the KV wrappers around (possibly wrapped) projections
        for n, spec in plan:
            m = mods[n]
            if isinstance(m, _LAYERS) and n == "":
                # the model is itself the layer: its forward is overridden (the wrapper
                # holds it unregistered, so the module tree does not loop)
                ql = QuantLayer(m, spec, n, register=False)
                m.forward = ql.forward  # type: ignore[method-assign,assignment]
                object.__setattr__(m, _ROOT, ql)
            elif isinstance(m, _LAYERS):
                parent, leaf = _parent(model, n)
                setattr(parent, leaf, QuantLayer(m, spec, n))
                done.append((parent, leaf, m))
        for n, spec in plan:
            m = mods[n]
            kvc = _kv_children(m)
            if kvc is not None and spec.kv is not None:
                hd = getattr(m, "head_dim", None) or getattr(m, "attention_head_size", None)
                for c in kvc:
                    inner = getattr(m, c)
                    setattr(m, c, _KVQuant(inner, spec.kv, f"{n}.{c}", hd))
                    done.append((m, c, inner))
    except Exception:
        for parent, leaf, orig in reversed(done):
            setattr(parent, leaf, orig)
        _unroot(model)
        raise
    return Simulation(model, dict(plan))


_ROOT = "_numfab_quant_layer"
_SAVED = "_numfab_saved_params"


def restore_params(model: nn.Module) -> None:
    """Put back parameters that SmoothQuant folding changed (bit for bit)."""
    saved = model.__dict__.pop(_SAVED, [])
    with torch.no_grad():
        for p_, orig in reversed(saved):
            p_.copy_(orig)


def _unroot(model: nn.Module) -> None:
    if _ROOT in model.__dict__:
        del model.__dict__[_ROOT]
        model.__dict__.pop("forward", None)


def restore(model: nn.Module) -> nn.Module:
    """Undo :func:`simulate`: put every original module back (the same objects) and
    every parameter a SmoothQuant fold changed."""
    restore_params(model)
    _unroot(model)
    while True:
        hit = next(((n, m) for n, m in model.named_modules()
                    if isinstance(m, (QuantLayer, _KVQuant))), None)
        if hit is None:
            return model
        # named_modules is pre-order: the outermost wrapper comes first
        parent, leaf = _parent(model, hit[0])
        setattr(parent, leaf, hit[1].inner)
