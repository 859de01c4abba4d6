"""numfab's GPU backend against torch on one CUDA device, in one run (issue 17's targets).

Prints, as elements/s and as a fraction of the measured device-to-device copy:
- fp32 -> E4M3 -> fp32 round trip of 2**28 values: numfab (preallocated output) vs torch's
  ``.to(float8_e4m3fn).to(float32)``; other scalar formats beside it;
- MXFP4, MXFP8 and NVFP4 quantize-dequantize of a 16384 x 16384 float32 and bfloat16
  tensor, with torchao's MX / NVFP4 casts timed beside where torchao imports;
- a Llama-shaped model with 8B-parameter shapes and random bfloat16 weights (no
  download), 2048 tokens: forward with MXFP4 weights + MXFP8 activations on every Linear
  under ``simulate`` vs the unquantized bfloat16 forward.

    python benchmarks/bench_gpu.py [--layers 32] [--skip-model] [--only scalar|block|model]

torchao is not on the H100 image: carry its wheel (``pip download torchao==0.18.0
--no-deps``) and ``pip install --no-deps --target DIR`` it there, DIR on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

import formats


def _time(fn, reps: int = 20) -> float:  # type: ignore[no-untyped-def]
    """Median seconds of ``fn()`` on the current stream (CUDA events)."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return sorted(times)[len(times) // 2]


def _row(name: str, n: int, sec: float, copy_rate: float, base: float | None = None) -> None:
    rate = n / sec
    extra = f"  {rate / base:5.2f}x torch" if base else ""
    print(f"{name:46s} {rate / 1e9:8.1f} G elem/s  {rate / copy_rate:5.2f} of copy{extra}",
          flush=True)


def scalar(copy_rate: float) -> None:
    n = 1 << 28
    x = torch.randn(n, device="cuda") * 64
    y = torch.empty_like(x)
    t_torch = _time(lambda: y.copy_(x.to(torch.float8_e4m3fn).to(torch.float32)))
    base = n / t_torch
    _row("torch fp32->float8_e4m3fn->fp32", n, t_torch, copy_rate)
    for name in ("float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "float6_e3m2fn",
                 "bfloat16"):
        f = formats.parse(name)
        sec = _time(lambda f=f: f.quantize(x, out=y))
        _row(f"numfab {name} quantize (RNE, out=)", n, sec, copy_rate, base)
    f = formats.parse("float8_e4m3fn")
    assert torch.equal(f.quantize(x), x.to(torch.float8_e4m3fn).to(torch.float32))
    for name, kw in (("int8", {}), ("nf4", {}), ("float8_e4m3fn", {"rounding": "up"}),
                     ("float8_e4m3fn", {"rounding": "stochastic", "seed": 1})):
        f = formats.parse(name)
        sec = _time(lambda f=f, kw=kw: f.quantize(x, out=y, **kw), reps=5)
        _row(f"numfab {name} quantize {kw or ''}", n, sec, copy_rate, base)
    sec = _time(lambda: f.encode(x), reps=5)
    _row("numfab float8_e4m3fn encode (codes)", n, sec, copy_rate, base)


def block(copy_rate: float) -> None:
    """``copy_rate``: float32 elements/s; bfloat16 rows are measured against a bfloat16
    copy (twice the elements for the same bytes)."""
    try:
        from torchao.prototype.mx_formats.mx_tensor import MXTensor
        from torchao.prototype.mx_formats.nvfp4_tensor import (
            NVFP4Tensor,
            per_tensor_amax_to_scale,
        )
    except ImportError:
        MXTensor = NVFP4Tensor = None  # noqa: N806
    side = 16384
    for dt in (torch.float32, torch.bfloat16):
        x = torch.randn(side, side, device="cuda", dtype=dt)
        if dt != torch.float32:
            copy_rate = _copy_rate(x.numel(), dt)
            print(f"{'device copy (' + str(dt)[6:] + ')':46s} {copy_rate / 1e9:8.1f} G elem/s")
        for name in ("mxfp4", "mxfp8_e4m3", "nvfp4"):
            f = formats.parse(name)
            sec = _time(lambda f=f, x=x: f.quantize(x), reps=5)
            _row(f"numfab {name} quantize {str(dt)[6:]} {side}^2", x.numel(), sec, copy_rate)
            if MXTensor is not None and name != "nvfp4":
                elem = (torch.float8_e4m3fn if name == "mxfp8_e4m3"
                        else getattr(torch, "float4_e2m1fn_x2", "fp4_e2m1"))
                sec = _time(lambda e=elem, x=x, dt=dt: MXTensor.to_mx(x, e, 32).dequantize(dt),
                            reps=5)
                _row(f"  torchao to_mx {name} + dequantize", x.numel(), sec, copy_rate)
            if NVFP4Tensor is not None and name == "nvfp4":
                # with its tensor scale from the tensor's amax, as numfab's NVFP4
                sec = _time(lambda x=x, dt=dt: NVFP4Tensor.to_nvfp4(
                    x, per_tensor_scale=per_tensor_amax_to_scale(x.abs().amax())
                ).dequantize(dt), reps=5)
                _row("  torchao to_nvfp4 (tensor scale) + dequantize", x.numel(), sec,
                     copy_rate)
        x = torch.empty(0)
        torch.cuda.empty_cache()


class _Block(nn.Module):
    """One Llama decoder layer (RMSNorm, GQA attention through SDPA, SwiGLU MLP)."""

    def __init__(self, d: int, heads: int, kv: int, ff: int) -> None:
        super().__init__()
        hd = d // heads
        self.heads, self.kv, self.hd = heads, kv, hd
        self.q_proj = nn.Linear(d, heads * hd, bias=False)
        self.k_proj = nn.Linear(d, kv * hd, bias=False)
        self.v_proj = nn.Linear(d, kv * hd, bias=False)
        self.o_proj = nn.Linear(heads * hd, d, bias=False)
        self.gate_proj = nn.Linear(d, ff, bias=False)
        self.up_proj = nn.Linear(d, ff, bias=False)
        self.down_proj = nn.Linear(ff, d, bias=False)
        self.n1 = nn.RMSNorm(d)
        self.n2 = nn.RMSNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        h = self.n1(x)
        q = self.q_proj(h).view(b, t, self.heads, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(b, t, self.kv, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(b, t, self.kv, self.hd).transpose(1, 2)
        a = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                       enable_gqa=True)
        x = x + self.o_proj(a.transpose(1, 2).reshape(b, t, -1))
        h = self.n2(x)
        return x + self.down_proj(nn.functional.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, layers: int, d: int = 4096, heads: int = 32, kv: int = 8,
                 ff: int = 14336, vocab: int = 128256) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(_Block(d, heads, kv, ff) for _ in range(layers))
        self.norm = nn.RMSNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.norm(x))


def model(layers: int) -> None:
    from simulator.torch import LayerSpec, simulate

    torch.manual_seed(0)
    with torch.device("cuda"):
        m = Llama(layers).to(torch.bfloat16).eval()
    for p in m.parameters():
        p.data.normal_(0, 0.02)
    params = sum(p.numel() for p in m.parameters())
    ids = torch.randint(0, 128256, (1, 2048), device="cuda")
    # no_grad as numfab eval runs models; under inference_mode sibling layers (q/k/v,
    # gate/up) cannot share their input's quantization (inference tensors have no
    # version counter to tell that the input is unchanged)
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            t_ref = _time(lambda: m(ids), reps=5)
            spec = LayerSpec(weight="mxfp4", act="mxfp8_e4m3")
            with simulate(m, {"layers.*": spec}) as sm:
                sm(ids)  # weights quantized once, cached
                t_q = _time(lambda sm=sm: sm(ids), reps=5)
                peak = torch.cuda.max_memory_allocated() / 2**30
        print(f"Llama shapes, {layers} layers ({params / 1e9:.2f} B params), 2048 tokens, "
              f"{mode.__name__}: bf16 forward {t_ref * 1e3:.1f} ms, MXFP4 weights + MXFP8 "
              f"acts {t_q * 1e3:.1f} ms = {t_q / t_ref:.2f}x (peak GPU memory {peak:.1f} "
              "GiB)", flush=True)


def _copy_rate(n: int, dtype: torch.dtype = torch.float32) -> float:
    """Elements/s of a device-to-device copy of ``dtype``."""
    src = torch.randn(n, device="cuda", dtype=dtype)
    dst = torch.empty_like(src)
    return n / _time(lambda: dst.copy_(src))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--skip-model", action="store_true")
    ap.add_argument("--only", choices=("scalar", "block", "model"))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 2
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    n = 1 << 28
    copy = _copy_rate(n)
    print(f"{'device copy (float32)':46s} {copy / 1e9:8.1f} G elem/s "
          f"({copy * 8 / 1e12:.2f} TB/s read+write)")
    if args.only in (None, "scalar"):
        scalar(copy)
    if args.only in (None, "block"):
        block(copy)
    if args.only in (None, "model") and not args.skip_model:
        model(args.layers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
