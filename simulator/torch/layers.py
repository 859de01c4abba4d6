"""The modules simulate() puts in: :class:`QuantLayer` (Linear / Conv) and the KV-cache
quantizer around attention projections; which modules can take them."""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.weak import WeakIdKeyDictionary

from formats import BlockScaled, ScaleRule

from .. import techniques
from ..gemm import gemm
from .quantize import fake_quant, quantize, rows, scaled
from .spec import LayerSpec

__all__ = ["KVQuant", "QuantLayer", "check_devices", "kv_children", "layer_names",
           "model_device", "same_device"]

LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
KV_PAIRS = (("k_proj", "v_proj"), ("key", "value"))


#: quantized layer inputs by input tensor (weakly: an entry goes with its input)
_SHARED: WeakIdKeyDictionary = WeakIdKeyDictionary()


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
        x2 = rows(x.detach()).to(torch.float64)
        st = self.stats
        if st is None:
            st = self.stats = {"amax": torch.zeros(x2.shape[1], dtype=torch.float64,
                                                   device=x2.device),
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
        dev = self.inner.weight.device
        if self.stats is not None and self.stats["amax"].device != dev:
            raise ValueError(f"layer {self.name!r} was calibrated on "
                             f"{self.stats['amax'].device} and now computes on {dev}: "
                             "calibrate again after moving the model")

    # --- transforms ---------------------------------------------------------------------
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The input as the quantizer sees it (channel order, smoothing, rotation)."""
        if self.perm is None and self.smooth is None and self.hblock is None:
            return x
        return transform_op(x.contiguous(), self.perm, self.smooth, self.hblock or 0, False)

    def weight_transformed(self) -> torch.Tensor:
        """The weight (out, K) matching :meth:`transform`: x' @ W'.T == x @ W.T."""
        w = self.inner.weight
        w = w.reshape(w.shape[0], math.prod(w.shape[1:]))
        if self.perm is None and self.smooth is None and self.hblock is None:
            return w
        return transform_op(w.contiguous(), self.perm, self.smooth, self.hblock or 0, True)

    def _weight_format(self, k: int, numel: int) -> Any:
        f = scaled(self.spec.weight, self.spec.granularity, k, numel)
        if self.spec.clip == "mse":
            if not isinstance(f, BlockScaled) or f.zero_point:
                raise ValueError(f"layer {self.name!r}: clip='mse' needs scaled symmetric "
                                 f"weights (a block format or a scaled granularity), not {f}")
            f = dataclasses.replace(f, scale_rule=ScaleRule.MSE)
        return f

    def qweight(self) -> torch.Tensor:
        """The weight as the layer computes with it: transformed and quantized, cached
        (on the weight's device) while the weight does not change, for calls that need
        no gradient of it (the weight does not require one, or grad mode is off).
        Under ``torch.compile`` the weight is quantized inside the graph on every call:
        a weight's version is invisible to the compiler, so the cache could go stale
        (inductor's ``freezing`` folds the quantized weight into a constant); GPTQ
        weights come from the cache (a graph break)."""
        w0 = self.inner.weight
        if self.spec.weight is None and not self.spec.techniques:
            return w0
        if torch.compiler.is_compiling() and not self.spec.gptq:
            return self._quantized_weight()
        return self._cached_weight()

    # GPTQ is seconds of work per layer: a compiled model takes its weight from the cache
    # (a graph break), as an eager one does
    @torch.compiler.disable
    def _cached_weight(self) -> torch.Tensor:
        w0 = self.inner.weight
        if w0.requires_grad and torch.is_grad_enabled():
            return self._quantized_weight()  # the gradient flows through it
        # the data pointer, device and dtype: model.to() swaps a parameter's data
        key = (w0._version, id(w0), w0.data_ptr(), w0.device, w0.dtype, id(self.perm),
               id(self.smooth))
        if self._wcache is not None and self._wcache[0] == key:
            return self._wcache[1]
        w = self._quantized_weight()
        self._wcache = (key, w)
        return w

    def _quantized_weight(self) -> torch.Tensor:
        w0 = self.inner.weight
        w = self.weight_transformed()
        if self.spec.weight is not None:
            f = self._weight_format(w.shape[1], w.numel())
            if self.spec.gptq:
                assert self.stats is not None and self.stats["H"] is not None
                t = self.transform(torch.eye(w.shape[1], dtype=torch.float64,
                                             device=w.device))
                h = t.T @ self.stats["H"] @ t
                if self.spec.granularity == "tensor":
                    raise ValueError(f"layer {self.name!r}: gptq takes channel or group "
                                     "scales, not granularity 'tensor'")
                q = techniques.gptq(w, h, f, damp=self.spec.gptq_damp,
                                    act_order=self.spec.act_order).to(w.dtype)
                w = w + (q - w).detach() if w.requires_grad else q
            else:
                w = quantize(w, f, whole=self.spec.granularity == "tensor")
        return w.reshape(w0.shape)

    def _qact(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.act is None:
            return x
        linear = isinstance(self.inner, nn.Linear)
        # layers fed the same tensor (q/k/v, gate/up) quantize it once: the result is
        # kept beside the input while it lives and is unchanged (its version counter);
        # not under autograd, torch.compile, or for inference tensors (no version)
        key = (str(self.spec.act), self.spec.act_granularity, linear)
        shared = (not torch.compiler.is_compiling() and not x.is_inference()
                  and not (torch.is_grad_enabled() and x.requires_grad))
        if shared:
            hit = _SHARED.get(x, {}).get(key)
            if hit is not None and hit[0] == x._version:
                return hit[1]
        if linear:
            y = fake_quant(x, self.spec.act, self.spec.act_granularity)
        else:
            xc = x.movedim(1, -1)  # convolutions: channels are K
            y = fake_quant(xc, self.spec.act, self.spec.act_granularity).movedim(-1, 1)
        if shared and y is not x:  # (an empty x comes back as itself: nothing to keep)
            _SHARED.setdefault(x, {})[key] = (x._version, y)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inner = self.inner
        same_device(x, inner.weight, self.name, "calibration batch" if self.calibrating
                    else "input")
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
        cols = techniques.column_amax(rows(xt.detach())) >= thr
        w = self.weight_transformed()
        of = self.spec.outlier_format
        y = nn.functional.linear(fake_quant(xt[..., cols], of), fake_quant(w[:, cols], of))
        keep = ~cols
        if bool(keep.any()):
            wr = w[:, keep]
            if self.spec.weight is not None:
                wr = quantize(wr, self._weight_format(wr.shape[1], wr.numel()),
                               whole=self.spec.granularity == "tensor")
            y = y + nn.functional.linear(self._qact(xt[..., keep]), wr)
        if self.inner.bias is not None:
            y = y + self.inner.bias
        return y

    def _bit_true(self, x: torch.Tensor) -> torch.Tensor:
        """The layer through :func:`simulator.gemm`: on the device of a model on a GPU
        (the CUDA kernels of simulator._gemm_gpu, bit-identical to the host's), else on
        the host (numpy kernels)."""
        inner = self.inner
        lead = x.shape[:-1]
        on_gpu = _gpu_on(x)
        xt = self.transform(x.detach().to(torch.float64))
        a = rows(xt)
        w = self.weight_transformed().detach().to(torch.float64)
        af = scaled(self.spec.act, self.spec.act_granularity, a.shape[-1], a.numel())
        wf = self._weight_format(w.shape[-1], w.numel()) if self.spec.weight is not None \
            else None
        if isinstance(wf, BlockScaled) and self.spec.granularity == "tensor":
            raise ValueError(f"layer {self.name!r}: bit-true routing takes per-channel or "
                             "group weight scales, not 'tensor'")
        if af is None:
            af = "float32"
            a = a.to(torch.float32).to(torch.float64)
        if wf is None:
            wf = "float32"
            w = w.to(torch.float32).to(torch.float64)
        # the weight's blocks lie along K: pass W.T (K, out), blocked along its K
        acc = self.spec.accumulator
        if on_gpu:
            y = gemm(a, w.T, a_format=af, b_format=wf, accumulator=acc)
        else:
            y = torch.from_numpy(np.asarray(gemm(a.cpu().numpy(), w.cpu().numpy().T,
                                                 a_format=af, b_format=wf, accumulator=acc)))
        if inner.bias is not None:
            y = y + inner.bias.detach().to(torch.float64).to(y.device)
        return y.to(x.dtype).reshape(*lead, w.shape[0]).to(x.device)


def _gpu_on(x: torch.Tensor) -> bool:
    """Whether a layer input takes simulator.gemm's GPU kernels (a CUDA tensor, or any
    tensor inside formats.gpu.emulate)."""
    from formats.gpu import on_gpu

    return on_gpu(x)


class KVQuant(nn.Module):
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
        w = getattr(self.inner, "weight", None)
        if isinstance(w, torch.Tensor) and args and isinstance(args[0], torch.Tensor):
            same_device(args[0], w, self.name, "input")
        y = self.inner(*args, **kwargs)
        if self.head_dim and y.shape[-1] % self.head_dim == 0:
            shp = y.shape
            y2 = y.reshape(*shp[:-1], shp[-1] // self.head_dim, self.head_dim)
            return fake_quant(y2, self.fmt).reshape(shp)
        return fake_quant(y, self.fmt)


def same_device(x: torch.Tensor, weight: torch.Tensor, name: str, what: str) -> None:
    """Refuse ``x`` on another device than the layer's weight (numfab never copies a
    tensor between devices behind the caller's back)."""
    if x.device != weight.device:
        raise ValueError(f"layer {name!r}: its {what} is on {x.device}, its weight on "
                         f"{weight.device}; move the {what} to the model's device "
                         f"(.to({str(weight.device)!r}))")


def model_device(model: nn.Module) -> torch.device | None:
    """The device of all of ``model``'s parameters and buffers; None where they lie on
    several devices (or there are none)."""
    devs = {t.device for t in itertools.chain(model.parameters(), model.buffers())}
    return devs.pop() if len(devs) == 1 else None


def check_devices(model: nn.Module, inputs: dict[str, Any]) -> None:
    """Refuse tensors among ``inputs`` (what -> a tensor, or a list, tuple or dict of
    them) that lie on another device than ``model``: a clear error naming the input,
    not torch's from deep inside the model, and never a copy."""
    dev = model_device(model)
    if dev is None:
        return
    for what, v in inputs.items():
        items = v.items() if isinstance(v, dict) else enumerate(v) \
            if isinstance(v, (list, tuple)) else [(None, v)]
        for k, t in items:
            if isinstance(t, torch.Tensor) and t.device != dev:
                at = what if k is None else f"{what}[{k!r}]"
                raise ValueError(f"{at} is on {t.device}, the simulated model on {dev}; "
                                 f"move it to the model's device (.to({str(dev)!r}))")


def layer_names(model: nn.Module) -> list[str]:
    """Names of the modules ``simulate`` can quantize (Linear/Conv layers and attention
    modules with key/value projections)."""
    return [n for n, m in model.named_modules() if isinstance(m, LAYERS) or kv_children(m)]


def kv_children(m: nn.Module) -> tuple[str, str] | None:
    for k, v in KV_PAIRS:
        if isinstance(getattr(m, k, None), nn.Linear) and isinstance(getattr(m, v, None),
                                                                     nn.Linear):
            return k, v
    return None


# The input transform as an opaque op: under torch.compile, inductor would fuse the
# division and the rotation's add/subtract stages and compute them in other roundings
# than eager (measured on an H100: 87-91% of a toy model's outputs differed); the
# simulation must give what eager gives.
@torch.library.custom_op("numfab::input_transform", mutates_args=())
def transform_op(x: torch.Tensor, perm: torch.Tensor | None, smooth: torch.Tensor | None,
                 hblock: int, weight: bool) -> torch.Tensor:
    """``numfab::input_transform``: contiguous ``x`` with its last dimension permuted by
    ``perm``, divided (``weight``: multiplied) by ``smooth`` and rotated in Hadamard blocks
    of ``hblock`` (0: none), each step where given, as a new tensor."""
    if perm is not None:
        x = x[..., perm]
    if smooth is not None:
        x = x * smooth.to(x.dtype) if weight else x / smooth.to(x.dtype)
    if hblock:
        x = techniques.rotate(x, hblock)
    return x.clone() if perm is None and smooth is None and not hblock else x.contiguous()


@transform_op.register_fake
def _(x: torch.Tensor, perm: torch.Tensor | None, smooth: torch.Tensor | None,
      hblock: int, weight: bool) -> torch.Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _transform_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    _, perm, smooth, hblock, weight = inputs
    ctx.save_for_backward(perm, smooth)
    ctx.hblock, ctx.weight = hblock, weight


def _transform_backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, None, None, None, None]:
    """The transpose of the linear transform: the rotation is symmetric, the scaling a
    diagonal, the permutation's transpose its inverse."""
    perm, smooth = ctx.saved_tensors
    if ctx.hblock:
        grad = techniques.rotate(grad, ctx.hblock)
    if smooth is not None:
        s = smooth.to(grad.dtype)
        grad = grad * s if ctx.weight else grad / s
    if perm is not None:
        back = torch.empty_like(grad)
        back[..., perm] = grad
        grad = back
    return grad, None, None, None, None


transform_op.register_autograd(_transform_backward, setup_context=_transform_setup)
