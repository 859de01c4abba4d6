"""simulator.torch where tensors live: the device path (tensors handed to formats/, no
host step in simulator code), the custom op under torch.compile, device errors.

Without a GPU, ``formats.emulate_gpu()`` sends CPU tensors down the device path (the
path a CUDA tensor takes); benchmarks/gpu_simulate_check.py runs the same on CUDA."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import simulator
from formats import emulate_gpu as emulate
from simulator.techniques import gptq, hadamard_matrix, rotate
from simulator.torch import LayerSpec, fake_quant, simulate
from tests.simulator.tiny_lm import TinyLM
from tests.simulator.tiny_lm import ids as _ids

SIMULATOR = str(Path(simulator.__file__).parent)

#: the Tensor methods that read a tensor on the host (a copy, or a sync, on a GPU)
HOST_READS = ("numpy", "cpu", "tolist", "item", "__float__", "__int__", "__bool__",
              "__array__")


def _no_host_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, simulator code that reads a tensor on the host fails the test."""
    for name in HOST_READS:
        real = getattr(torch.Tensor, name)

        def guarded(self: torch.Tensor, *a: Any, _real: Any = real, _name: str = name,
                    **k: Any) -> Any:
            frame = sys._getframe(1)
            if frame.f_code.co_filename.startswith(SIMULATOR):
                raise AssertionError(f"Tensor.{_name} called at {frame.f_code.co_filename}:"
                                     f"{frame.f_lineno}: a host step on the device path")
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, guarded)


def _lm(dtype: torch.dtype = torch.float32) -> TinyLM:
    torch.manual_seed(0)
    return TinyLM(n=1).eval().to(dtype)


#: (config, calibrate first, model dtype)
CONFIGS: dict[str, tuple[dict[str, Any], bool, torch.dtype]] = {
    "mxfp4-mxfp8": ({"*": {"weight": "mxfp4", "act": "mxfp8_e4m3"}}, False, torch.float32),
    "nvfp4-e4m3-tensor": ({"*": {"weight": "nvfp4", "act": "e4m3",
                                 "act_granularity": "tensor"}}, False, torch.float32),
    "int8-channel": ({"*": {"weight": "int8", "granularity": "channel", "act": "int8"}},
                     False, torch.float32),
    "mse-clip": ({"layers.*": {"weight": "int4_g32", "clip": "mse"}}, False, torch.float32),
    "hadamard": ({"layers.*.mlp.*": {"weight": "mxfp4", "act": "mxfp4",
                                     "hadamard": "block"}}, False, torch.float32),
    "smoothquant": ({"layers.*.self_attn.[qkv]_proj": {"weight": "int8", "act": "int8",
                                                       "smoothquant": 0.5},
                     "layers.*.mlp.0": {"weight": "int8", "act": "int8",
                                        "smoothquant": 0.5, "rearrange": True}},
                    True, torch.float32),
    "gptq": ({"layers.*.mlp.*": {"weight": "int4_g32", "gptq": True, "act_order": True}},
             True, torch.float32),
    "kv": ({"layers.*.self_attn": {"kv": "nvfp4"}}, False, torch.float32),
    "bfloat16": ({"*": {"weight": "mxfp4", "act": "mxfp8_e4m3"}}, False, torch.bfloat16),
    "float16": ({"*": {"weight": "nvfp4", "act": "int8"}}, False, torch.float16),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_device_path_equals_host_path(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, calib, dtype = CONFIGS[name]
    ids = _ids()
    m = _lm(dtype)
    sim = simulate(m, cfg)
    if calib:
        sim.calibrate([ids])
    host = sim(ids)
    sim.restore()
    m2 = _lm(dtype)
    with emulate(), torch.no_grad():
        sim = simulate(m2, cfg)
        if calib:
            sim.calibrate([ids])
            # GPTQ's set-up (first forward) reads its Cholesky status and column order
            # on the host, once per layer: calibration work, not the forward's
            sim(ids)
        for q in sim.quant_layers().values():
            if not q.spec.gptq:
                q._wcache = None  # the weights are quantized under the guard, too
        with monkeypatch.context() as mp:
            _no_host_reads(mp)
            dev = sim(ids)
        sim.restore()
    assert dev.dtype == dtype
    assert torch.equal(dev, host), name


def test_device_path_hands_tensors_to_formats(monkeypatch: pytest.MonkeyPatch) -> None:
    # the guard fails a host read in simulator code (so the check above can fail):
    # GPTQ reads the status of its Cholesky factorisation
    with monkeypatch.context() as mp:
        _no_host_reads(mp)
        with pytest.raises(AssertionError, match=r"Tensor\.__int__ called at .*techniques"):
            gptq(torch.ones(2, 4), torch.eye(4), "int4")
    seen: list[type] = []
    from formats import BlockScaled

    real = BlockScaled.quantize

    def spy(self: Any, x: Any, **kw: Any) -> Any:
        seen.append(type(x))
        return real(self, x, **kw)

    monkeypatch.setattr(BlockScaled, "quantize", spy)
    x = torch.randn(4, 64)
    host = fake_quant(x, "mxfp4")
    with emulate():
        dev = fake_quant(x, "mxfp4")
    assert seen == [type(x.numpy()), torch.Tensor] and torch.equal(dev, host)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16,
                                   torch.float64])
def test_device_path_dtypes_and_strides(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(6, 96, generator=g) * 30).to(dtype)[:, ::3]  # non-contiguous
    for fmt, gran in (("mxfp4", "auto"), ("nvfp4", "auto"), ("e4m3", "none"),
                      ("int8", "channel"), ("int4", "tensor"), ("e2m1", "group:8")):
        host = fake_quant(x, fmt, gran)
        with emulate():
            dev = fake_quant(x, fmt, gran)
        assert dev.dtype == dtype and dev.shape == x.shape
        assert torch.equal(dev, host), (fmt, dtype)
        assert torch.equal(host, fake_quant(x.contiguous(), fmt, gran))


def _toy() -> tuple[nn.Module, dict[str, Any], torch.Tensor]:
    # no activation functions: inductor compiles none of its own C++ kernels (a ReLU
    # triples the test's time on two cores), the quantizers are the nonlinearity
    torch.manual_seed(8)
    net = nn.Sequential(nn.Linear(64, 128), nn.Linear(128, 64), nn.Linear(64, 16))
    cfg = {"0": {"weight": "mxfp4", "act": "mxfp8_e4m3"},
           "1": {"weight": "mxfp4", "act": "mxfp8_e4m3"},
           "2": {"weight": "int8", "granularity": "channel", "act": "int8"}}
    return net, cfg, torch.randn(3, 5, 64)


# inductor's import uses torch.jit.script_method, which torch itself deprecates
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_model_equals_eager(backend: str) -> None:
    net, cfg, x = _toy()
    with simulate(net, cfg) as m, torch.no_grad():
        want = m(x)
        c = torch.compile(m, backend=backend, fullgraph=True)
        assert torch.equal(c(x), want)
        assert torch.equal(c(x), want)
        # the weight changes in place: the compiled model quantizes the new one
        net[0].inner.weight.mul_(0.5)
        again = m(x)
        assert not torch.equal(again, want)
        assert torch.equal(c(x), again)


def test_compiled_attention_model_equals_eager() -> None:
    # KV cache, Hadamard rotation, online SmoothQuant and GPTQ (cached: a graph break)
    m = _lm()
    ids = _ids()
    cfg = {"layers.*.self_attn": {"kv": "mxfp4"},
           "layers.*.self_attn.[qkv]_proj": {"weight": "int8", "act": "int8",
                                             "smoothquant": 0.5},
           "layers.*.mlp.0": {"weight": "mxfp4", "act": "mxfp8_e4m3", "hadamard": "block"},
           "layers.*.mlp.2": {"weight": "int4_g32", "gptq": True}}
    sim = simulate(m, cfg)
    sim.calibrate([ids], fold=False)
    with torch.no_grad():
        want = sim(ids)
        c = torch.compile(sim.model, backend="aot_eager")
        assert torch.equal(c(ids), want)
    sim.restore()


def test_compiled_gradients_straight_through() -> None:
    torch.manual_seed(4)
    lin = nn.Linear(32, 8)
    x = torch.randn(4, 32)
    grads = []
    for compiled in (False, True):
        xi = x.clone().requires_grad_(True)
        lin.zero_grad()
        with simulate(lin, LayerSpec(weight="int4", act="e4m3")) as sm:
            f: Callable[..., Any] = torch.compile(sm, backend="aot_eager") if compiled \
                else sm
            f(xi).pow(2).sum().backward()
        assert lin.weight.grad is not None and xi.grad is not None
        grads.append((lin.weight.grad.clone(), xi.grad))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
    assert grads[0][1].abs().sum() > 0


def test_rotate_is_the_hadamard_product() -> None:
    # integer inputs and blocks of a power of four: every sum and the scale are exact,
    # so the butterflies equal the matrix product bit for bit (the Sylvester order)
    x = torch.randint(-50, 50, (3, 2, 256), generator=torch.Generator().manual_seed(2))
    x = x.to(torch.float64)
    for b in (1, 4, 16, 64, 256):
        want = (x.reshape(3, 2, 256 // b, b) @ hadamard_matrix(b)).reshape(x.shape)
        assert torch.equal(rotate(x, b), want), b
    with pytest.raises(ValueError, match="a Hadamard block must be a power of two, not 12"):
        rotate(x, 12)
    with pytest.raises(ValueError, match="Hadamard block 512 does not divide K=256"):
        rotate(x, 512)


def test_device_errors() -> None:
    # another device than the model's: the meta device stands for a GPU here
    lin = nn.Linear(8, 4)
    sim = simulate(lin, LayerSpec(weight="int8", smoothquant=0.5))
    with pytest.raises(ValueError, match=r"batches\[0\] is on meta, the simulated model on "
                                         r"cpu; move it to the model's device"):
        sim.calibrate([torch.ones(2, 8, device="meta")])
    sim.calibrate([torch.randn(2, 8)])
    with pytest.raises(ValueError, match=r"argument 0 is on meta, the simulated model on cpu"):
        sim(torch.ones(2, 8, device="meta"))
    with pytest.raises(ValueError, match=r"layer '': its input is on meta, its weight on "
                                         r"cpu; move the input to the model's device "
                                         r"\(\.to\('cpu'\)\)"):
        sim.model(torch.ones(2, 8, device="meta"))
    sim.restore()
    m = _lm()
    sim = simulate(m, {"layers.0.self_attn": {"kv": "int8"}})
    with pytest.raises(ValueError, match=r"layer 'layers\.0\.self_attn\.k_proj': its "
                                         r"input is on meta"):
        m.layers[0].self_attn.k_proj(torch.ones(2, 64, device="meta"))
    with pytest.raises(ValueError, match=r"argument 'ids' is on meta"):
        sim(ids=torch.ones(2, 3, dtype=torch.long, device="meta"))
    sim.restore()
    with pytest.raises(ValueError, match=r"hessian must be on the weight's device \(cpu\), "
                                         r"not meta"):
        gptq(torch.ones(2, 4), torch.ones(4, 4, device="meta"), "int4")


def test_moved_model() -> None:
    # the cached weight follows the model's device and dtype (model.to swaps data)
    torch.manual_seed(9)
    lin = nn.Linear(32, 8)
    x = torch.randn(2, 32)
    sim = simulate(lin, LayerSpec(weight="mxfp4", act="int8"))
    with torch.no_grad():
        sim(x)
        lin.double()
        got = sim(x.double())
    sim.restore()
    with simulate(lin, LayerSpec(weight="mxfp4", act="int8")) as sm, torch.no_grad():
        assert got.dtype == torch.float64 and torch.equal(got, sm(x.double()))
    # calibrated state stays where it was derived: moving the model asks for calibration
    sim = simulate(lin, LayerSpec(weight="int8", rearrange=True))
    sim.calibrate([x.double()])
    lin.to("meta")
    with pytest.raises(ValueError, match=r"layer '' was calibrated on cpu and now computes "
                                         r"on meta: calibrate again after moving the model"):
        sim(torch.ones(2, 32, dtype=torch.float64, device="meta"))
    sim.restore()


def test_non_float_input_refused() -> None:
    with pytest.raises(TypeError, match=r"x must be a floating-point tensor \(float16, "
                                        r"bfloat16, float32 or float64\) to quantize, not "
                                        r"torch\.int64"):
        fake_quant(torch.arange(4), "int8")
    with pytest.raises(TypeError, match="not torch.complex64"):
        fake_quant(torch.ones(4, dtype=torch.complex64), "mxfp4")
    with simulate(nn.Linear(4, 2), LayerSpec(act="e4m3")) as sm:
        with pytest.raises(TypeError, match="not torch.int64"):
            sm(torch.ones(3, 4, dtype=torch.long))


class _Siblings(nn.Module):
    """Three Linears fed the same tensor (q/k/v), one fed a changed copy of it."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(32, 32) for _ in range(4))
        self.inplace = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x * 1.0
        y = self.q(h) + self.k(h)
        if self.inplace:
            h.mul_(3.0)  # the tensor changes between two layers that read it
        return y + self.v(h) + self.o(h * 1.0)


@pytest.mark.parametrize("ctx", ["no_grad", "inference_mode", "grad"])
def test_shared_input_quantized_once(ctx: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Layers fed the same unchanged tensor quantize it once (where the tensor has a
    version counter and no gradient flows); a changed tensor is quantized again; the
    outputs equal layer-by-layer quantization."""
    import simulator.torch.layers as layers

    calls: list[int] = []
    real = layers.fake_quant

    def counting(x: torch.Tensor, *a: Any) -> torch.Tensor:
        calls.append(id(x))
        return real(x, *a)

    torch.manual_seed(0)
    m = _Siblings()
    x = torch.randn(4, 32)
    spec = LayerSpec(act="mxfp4", weight="mxfp8_e4m3")
    for inplace in (False, True):
        m.inplace = inplace
        with torch.no_grad():
            # the reference: each layer on its own (no sharing possible: fresh inputs)
            h = x * 1.0
            ref_layers = {}
            with simulate(m, {"*": spec}) as sm:
                for n in "qkvo":
                    ref_layers[n] = getattr(sm, n)
                want = ref_layers["q"](h.clone()) + ref_layers["k"](h.clone())
                if inplace:
                    h = h * 3.0
                want = want + ref_layers["v"](h.clone()) + ref_layers["o"](h * 1.0)
        monkeypatch.setattr(layers, "fake_quant", counting)
        calls.clear()
        with simulate(m, {"*": spec}) as sm:
            run = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode,
                   "grad": torch.enable_grad}[ctx]
            with run():
                got = sm(x.requires_grad_(ctx == "grad"))
        monkeypatch.setattr(layers, "fake_quant", real)
        x = x.detach()
        assert torch.equal(got.detach(), want)
        shared = ctx == "no_grad"
        assert len(calls) == (4 if not shared else 3 if inplace else 2), (ctx, inplace, calls)
