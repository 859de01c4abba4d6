"""simulator.torch on a CUDA device: the GPU check of issue 17's simulator part (run on
a machine with a GPU; CI runs the device path without one through formats._gpu.emulate,
tests/simulator/test_torch_device.py).

    python benchmarks/gpu_simulate_check.py [SECTION ...]

Sections, each printing its findings (the script exits 1 if a check failed):

1. fake_quant: random tensors (float32, bfloat16, float16, float64; contiguous or
   strided) in every kind of format and granularity: CUDA == CPU, bit for bit.
2. layers: a small transformer under simulate() on CUDA per config (MXFP4, MXFP8, NVFP4,
   int8 per channel, E4M3 per tensor, MSE clip, Hadamard, SmoothQuant folded and online,
   GPTQ, KV cache, bfloat16 and float16 models) against its CPU twin (the same modules
   and calibration state): for every patched layer, the quantized weight and the
   quantized input (given the CUDA layer's input), and every KV quantizer's output, bit
   for bit. GPTQ gets the same Hessian on both; its Cholesky factors are cuSOLVER's on
   CUDA and LAPACK's on the CPU, so its weights are compared by the fraction of
   elements that differ. The models' outputs are compared loosely (their own matrix
   products sum in each library's order). The bit-true route (simulator.gemm, host
   kernels: an explicit copy) runs for a CUDA model too.
3. compile: torch.compile (mode default, and reduce-overhead: CUDA graphs) equals eager
   on CUDA bit for bit, for every config (Hadamard and online SmoothQuant included), on a
   model whose float operations besides the quantizers are matrix products, ReLUs and
   additions, under inductor's defaults with its pattern matcher off. With the pattern
   matcher on (the default), inductor rewrites the model's own float operations (a
   matrix product and the residual addition after it into one addmm, summed in another
   order): those counts are reported for the quantized model and for the same model
   unquantized (inductor's own difference), and each patched layer compiled alone is
   checked equal to eager (the quantizers, the transforms and the weight cache).
4. host copies: a profiled forward of each config (weights quantized in it, then from
   the cache) holds no host<->device memcpy, and no code reads a tensor on the host
   (Tensor.numpy/cpu/item/tolist/float/int/bool: call sites listed); the weight cache
   lives on the GPU. (Meaningful once formats/ quantizes CUDA tensors on the device;
   before that, formats' own host copy shows here.)
5. cli: ``numfab quantize --device cuda`` prints and writes what ``--device cpu`` does.
"""

from __future__ import annotations

import contextlib
import copy
import io
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root

from simulator.torch import LayerSpec, fake_quant, simulate  # noqa: E402
from simulator.torch.layers import KVQuant, QuantLayer  # noqa: E402
from tests.simulator.tiny_lm import TinyLM  # noqa: E402

CUDA = torch.device("cuda")
FAILED: list[str] = []


def check(ok: bool, what: str) -> None:
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        FAILED.append(what)


def mismatches(a: torch.Tensor, b: torch.Tensor) -> int:
    """Elements whose bits differ (signed zeros included); all of them where shapes or
    dtypes differ. A NaN must be NaN in both; its payload and sign are not compared (a
    float32 NaN cast to 16 bits takes each device's cast: torch's CPU cast gives 0xFFFF
    for bfloat16, CUDA's 0x7FFF)."""
    a, b = a.detach().cpu(), b.detach().cpu()
    if a.shape != b.shape or a.dtype != b.dtype:
        return max(a.numel(), b.numel(), 1)
    ints = {8: torch.int64, 4: torch.int32, 2: torch.int16}[a.element_size()]
    differ = a.contiguous().view(ints) != b.contiguous().view(ints)
    if a.is_floating_point():
        differ &= ~(torch.isnan(a) & torch.isnan(b))
    return int(differ.sum())


@contextlib.contextmanager
def section(name: str) -> Iterator[None]:
    print(f"\n== {name}", flush=True)
    t0 = time.perf_counter()
    try:
        yield
    except Exception as exc:  # a section that cannot run is a failed check
        traceback.print_exc()
        check(False, f"{name}: {type(exc).__name__}: {exc}")
    print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)


# --- 1. fake_quant -----------------------------------------------------------------------

FORMATS = [("mxfp4", "auto"), ("mxfp8_e4m3", "auto"), ("mxfp8_e5m2", "auto"),
           ("mxfp6_e2m3", "auto"), ("mxint8", "auto"), ("nvfp4", "auto"),
           ("nvint4", "auto"), ("int4_g128", "auto"), ("uint4_g32_asym", "auto"),
           ("bfp8_b16", "auto"), ("e4m3", "none"), ("e5m2", "none"), ("e4m3", "tensor"),
           ("e2m1", "group:32"), ("bf16", "none"), ("fp16", "none"), ("int8", "channel"),
           ("int4", "tensor"), ("nf4", "channel"), ("fixed<4,4>", "none"),
           ("bipolar4", "channel")]


def fake_quant_section() -> None:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(512, 2048, generator=g) * torch.logspace(-6, 6, 2048)
    base[0, :5] = torch.tensor([float("inf"), -float("inf"), float("nan"), 0.0, -0.0])
    for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
        x, xg = base.to(dtype), base.to(dtype).to(CUDA)
        for strided in (False, True):
            xc, xgc = (x[:, ::2], xg[:, ::2]) if strided else (x, xg)
            for fmt, gran in FORMATS:
                want = fake_quant(xc, fmt, gran)
                got = fake_quant(xgc, fmt, gran)
                n = mismatches(got, want)
                check(n == 0 and got.device.type == "cuda",
                      f"fake_quant {fmt} ({gran}) {str(dtype)[6:]}"
                      f"{' strided' if strided else ''}: {n} of {xc.numel()} differ")


# --- 2. layers ---------------------------------------------------------------------------

def lm(dtype: torch.dtype = torch.float32) -> TinyLM:
    torch.manual_seed(0)
    return TinyLM(vocab=512, d=256, heads=4, n=2).eval().to(dtype)


def lm_ids() -> torch.Tensor:
    return torch.randint(0, 512, (4, 128), generator=torch.Generator().manual_seed(1))


#: name -> (config, calibrate (None: no; else fold), model dtype)
CONFIGS: dict[str, tuple[dict[str, Any], bool | None, torch.dtype]] = {
    "mxfp4-mxfp8": ({"*": {"weight": "mxfp4", "act": "mxfp8_e4m3"}}, None, torch.float32),
    "nvfp4-e4m3": ({"*": {"weight": "nvfp4", "act": "e4m3", "act_granularity": "tensor"}},
                   None, torch.float32),
    "int8-channel": ({"*": {"weight": "int8", "granularity": "channel", "act": "int8"}},
                     None, torch.float32),
    "e4m3-channel": ({"*": {"weight": "e4m3", "granularity": "channel", "act": "e4m3",
                            "act_granularity": "tensor", "output": "bf16"}},
                     None, torch.float32),
    "mse-clip": ({"layers.*": {"weight": "int4_g32", "clip": "mse", "act": "mxfp6_e2m3"}},
                 None, torch.float32),
    "hadamard": ({"layers.*.mlp.*": {"weight": "mxfp4", "act": "mxfp4", "hadamard": "block"},
                  "layers.*.self_attn.*": {"weight": "nvint4", "hadamard": "full"}},
                 None, torch.float32),
    "smoothquant-folded": ({"layers.*.self_attn.[qkv]_proj": {"weight": "int8", "act": "int8",
                                                              "smoothquant": 0.5},
                            "layers.*.mlp.0": {"weight": "int8", "act": "int8",
                                               "smoothquant": 0.5, "rearrange": True}},
                           True, torch.float32),
    "smoothquant-online": ({"layers.*": {"weight": "int8", "act": "int8",
                                         "act_granularity": "tensor", "smoothquant": 0.8}},
                           False, torch.float32),
    "gptq": ({"layers.*.mlp.*": {"weight": "int4_g32", "gptq": True},
              "layers.*.self_attn.*": {"weight": "mxfp4", "gptq": True, "act_order": True}},
             True, torch.float32),
    "kv": ({"layers.*.self_attn": {"kv": "nvfp4"}, "layers.0.self_attn": {"kv": "mxfp8_e4m3"}},
           None, torch.float32),
    "bfloat16": ({"*": {"weight": "mxfp4", "act": "mxfp8_e4m3"},
                  "layers.*.self_attn": {"kv": "nvfp4"}}, None, torch.bfloat16),
    "float16": ({"*": {"weight": "nvfp4", "act": "int8"}}, None, torch.float16),
}


def simulated(name: str, device: torch.device) -> tuple[nn.Module, Any]:
    cfg, calib, dtype = CONFIGS[name]
    m = lm(dtype).to(device)
    sim = simulate(m, cfg)
    if calib is not None:
        sim.calibrate([lm_ids().to(device)], fold=calib)
    return m, sim


def cpu_twin(m: nn.Module) -> nn.Module:
    """The simulated CUDA model's twin on the CPU: the same modules, parameters and
    calibration state (weights quantized afresh)."""
    twin = copy.deepcopy(m).cpu()
    for mod in twin.modules():
        if isinstance(mod, QuantLayer):
            for attr in ("perm", "smooth"):
                t = getattr(mod, attr)
                if t is not None:
                    setattr(mod, attr, t.cpu())
            if mod.stats is not None:
                mod.stats = {k: v.cpu() if isinstance(v, torch.Tensor) else v
                             for k, v in mod.stats.items()}
            mod._wcache = None
    return twin


def layers_section() -> None:
    for name in CONFIGS:
        compare_layers(name)
    bit_true()


def compare_layers(name: str) -> None:
    """Config ``name`` on CUDA against its CPU twin, layer by layer."""
    dtype = CONFIGS[name][2]
    m, sim = simulated(name, CUDA)
    seen: dict[str, list[torch.Tensor]] = {}  # each layer's input
    kv: dict[str, list[torch.Tensor]] = {}  # each KV quantizer's input and output

    def keep(store: dict[str, Any], n: str, t: torch.Tensor) -> None:
        store.setdefault(n, []).append(t.detach())  # hooks that return None change nothing

    hooks = []
    for n, mod in m.named_modules():
        if isinstance(mod, QuantLayer):
            hooks.append(mod.register_forward_pre_hook(
                lambda mod, args, n=n: keep(seen, n, args[0])))
        if isinstance(mod, KVQuant):
            hooks.append(mod.inner.register_forward_hook(
                lambda mod, args, out, n=n: keep(kv, n, out)))
            hooks.append(mod.register_forward_hook(
                lambda mod, args, out, n=n: keep(kv, n, out)))
    ids = lm_ids()
    with torch.no_grad():
        y_gpu = sim(ids.to(CUDA))
    for h in hooks:
        h.remove()
    twin = cpu_twin(m)
    qs_gpu = {n: q for n, q in m.named_modules() if isinstance(q, QuantLayer)}
    qs_cpu = {n: q for n, q in twin.named_modules() if isinstance(q, QuantLayer)}
    kvs_cpu = {n: q for n, q in twin.named_modules() if isinstance(q, KVQuant)}
    bad_w = bad_a = bad_kv = total_w = 0
    off_gpu = []
    with torch.no_grad():
        for n, qg in qs_gpu.items():
            qc = qs_cpu[n]
            wg, wc = qg.qweight(), qc.qweight()
            if wg.device.type != "cuda" or qg._wcache is None or \
                    qg._wcache[1].device.type != "cuda":
                off_gpu.append(n)
            bad_w += mismatches(wg, wc)
            total_w += wc.numel()
            x = seen[n][0]
            bad_a += mismatches(qg._qact(qg.transform(x)), qc._qact(qc.transform(x.cpu())))
            if qg.spec.output is not None:
                y = nn.functional.linear(qg._qact(qg.transform(x)), wg)
                bad_a += mismatches(fake_quant(y, qg.spec.output),
                                    fake_quant(y.cpu(), qg.spec.output))
        for n, (inner_out, out) in kv.items():  # one forward: one call each
            ref = KVQuant(nn.Identity(), kvs_cpu[n].fmt, n, kvs_cpu[n].head_dim)
            bad_kv += mismatches(out, ref(inner_out.cpu()))
        y_cpu = twin(ids)
    check(not off_gpu, f"{name}: every quantized weight cached on the GPU (not: {off_gpu})")
    if any(q.spec.gptq for q in qs_gpu.values()):
        frac = bad_w / max(total_w, 1)
        check(frac < 1e-2, f"{name}: GPTQ weights (same Hessian; cuSOLVER vs LAPACK "
                           f"Cholesky): {bad_w} of {total_w} elements differ ({frac:.2e})")
    else:
        check(bad_w == 0, f"{name}: quantized weights, {bad_w} of {total_w} differ")
    check(bad_a == 0, f"{name}: quantized layer inputs (and outputs) given the same "
                      f"input: {bad_a} differ")
    if kv:
        check(bad_kv == 0, f"{name}: KV quantizers given the same projection: "
                           f"{bad_kv} differ")
    rel = float((y_gpu.cpu().double() - y_cpu.double()).abs().max()
                / y_cpu.double().abs().max())
    print(f"      {name}: model output CUDA vs CPU, max |diff| / max |y| = {rel:.2e} "
          f"({str(dtype)[6:]}: the models' matrix products differ in summation order)")
    sim.restore()


def bit_true() -> None:
    """The bit-true route: an explicit host round trip through simulator.gemm."""
    torch.manual_seed(3)
    lin = nn.Linear(64, 16)
    x = torch.randn(3, 64)
    spec = LayerSpec(weight="mxfp4", act="e4m3", accumulator="float16")
    with simulate(lin, spec) as sm:
        want = sm(x)
    lin.to(CUDA)
    with simulate(lin, spec) as sm:
        got = sm(x.to(CUDA))
    check(got.device.type == "cuda" and mismatches(got, want) == 0,
          "bit-true layer (simulator.gemm on the host) of a CUDA model equals the CPU's")


# --- 3. compile --------------------------------------------------------------------------

class Block(nn.Module):
    """Attention-shaped (k_proj/v_proj: the KV rule applies) with only matrix products,
    ReLUs and additions: operations compiled code rounds exactly as eager code."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.head_dim = 64
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(d, d)
                                                              for _ in range(4))
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.q_proj(x)) + self.k_proj(x) + self.v_proj(x)
        x = x + self.o_proj(h)
        return x + self.mlp(x)


COMPILE_CASES: dict[str, tuple[dict[str, Any], bool | None]] = {
    "mxfp4-mxfp8+int8": ({"q_proj": {"weight": "mxfp4", "act": "mxfp8_e4m3"},
                          "k_proj": {"weight": "mxfp4", "act": "mxfp8_e4m3"},
                          "v_proj": {"weight": "int8", "granularity": "channel",
                                     "act": "int8"},
                          "mlp.*": {"weight": "nvfp4", "act": "e4m3",
                                    "act_granularity": "tensor"}}, None),
    "kv": ({"": {"kv": "nvfp4"}, "o_proj": {"weight": "mxfp4"}}, None),
    "hadamard": ({"mlp.*": {"weight": "mxfp4", "act": "mxfp4", "hadamard": "block"},
                  "o_proj": {"weight": "int4", "hadamard": "full"}}, None),
    "smoothquant-online": ({"mlp.0": {"weight": "int8", "act": "int8",
                                      "smoothquant": 0.5}}, False),
    "gptq (cached: a graph break)": ({"mlp.*": {"weight": "int4_g32", "gptq": True}}, False),
}


def compile_section() -> None:
    for name in COMPILE_CASES:
        for mode in ("default", "reduce-overhead"):
            compile_one(name, mode, pattern_matcher=False)
    for name in COMPILE_CASES:
        compile_one(name, "default", pattern_matcher=True)
    torch._dynamo.reset()


def compile_one(name: str, mode: str, pattern_matcher: bool) -> None:
    """COMPILE_CASES[name] compiled in ``mode`` against eager, on CUDA."""
    import torch._inductor.config as ic

    cfg, calib = COMPILE_CASES[name]
    x = torch.randn(8, 64, 256, generator=torch.Generator().manual_seed(4)).to(CUDA)
    torch.manual_seed(5)
    m = Block(256).eval().to(CUDA)
    what = f"compile mode={mode} {name} (pattern matcher {'on' if pattern_matcher else 'off'})"
    try:
        with torch.no_grad(), ic.patch({"pattern_matcher": pattern_matcher}):
            plain = 0
            if pattern_matcher:
                torch._dynamo.reset()
                plain = mismatches(torch.compile(m, mode=mode)(x), m(x))
            sim = simulate(m, cfg)
            if calib is not None:
                sim.calibrate([x], fold=calib)
            inputs: dict[str, torch.Tensor] = {}
            hooks = [mod.register_forward_pre_hook(
                lambda _m, a, n=n: inputs.__setitem__(n, a[0].clone()))
                for n, mod in m.named_modules() if isinstance(mod, QuantLayer)]
            want = m(x)
            for h in hooks:
                h.remove()
            torch._dynamo.reset()
            c = torch.compile(m, mode=mode)
            got = [c(x).clone() for _ in range(3)]  # CUDA graphs: recorded, then replayed
            n = max(mismatches(g, want) for g in got)
            if not pattern_matcher:
                check(n == 0, f"{what}: {n} of {want.numel()} differ from eager")
            else:
                print(f"info  {what}: {n} of {want.numel()} differ from eager; the same "
                      f"model unquantized: {plain} (inductor's rewrites of float ops)")
                for lname, xin in inputs.items():
                    layer = m.get_submodule(lname)
                    torch._dynamo.reset()
                    k = mismatches(torch.compile(layer)(xin), layer(xin))
                    check(k == 0, f"{what}: layer {lname} compiled alone: {k} differ")
        sim.restore()
    except Exception as exc:
        traceback.print_exc()
        check(False, f"{what}: {type(exc).__name__}: {exc}")


# --- 4. host copies ----------------------------------------------------------------------

HOST_READS = ("numpy", "cpu", "tolist", "item", "__float__", "__int__", "__bool__",
              "__array__")


@contextlib.contextmanager
def host_reads(sites: dict[str, int]) -> Iterator[None]:
    """Count the call sites (file:line) that read a CUDA tensor on the host."""
    saved = {n: getattr(torch.Tensor, n) for n in HOST_READS}

    def spy(name: str) -> Callable[..., Any]:
        real = saved[name]

        def f(self: torch.Tensor, *a: Any, **k: Any) -> Any:
            if self.is_cuda:
                fr = sys._getframe(1)
                key = f"Tensor.{name} at {fr.f_code.co_filename}:{fr.f_lineno}"
                sites[key] = sites.get(key, 0) + 1
            return real(self, *a, **k)
        return f

    for n in HOST_READS:
        setattr(torch.Tensor, n, spy(n))
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.Tensor, n, f)


def memcpys(fn: Callable[[], Any]) -> list[str]:
    """Host<->device memcpy events of ``fn`` (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return [e.name for e in prof.events()
            if "memcpy" in e.name.lower() and ("dtoh" in e.name.lower()
                                               or "htod" in e.name.lower())]


def host_section() -> None:
    for name in CONFIGS:
        host_one(name)


def host_one(name: str) -> None:
    """Profiled forwards of config ``name``: no host copy, no host read."""
    ids = lm_ids().to(CUDA)
    m, sim = simulated(name, CUDA)
    with torch.no_grad():
        if CONFIGS[name][1] is not None:
            sim(ids)  # calibration-time work (GPTQ's factorisation) done first
        for q in m.modules():
            if isinstance(q, QuantLayer) and not q.spec.gptq:
                q._wcache = None
        for run in ("weights quantized", "weights cached"):
            sites: dict[str, int] = {}
            with host_reads(sites):
                copies = memcpys(lambda: sim(ids))
            check(not copies and not sites,
                  f"{name} ({run}): {len(copies)} host<->device memcpy "
                  f"{sorted(set(copies))}, host reads {sites}")
    cached = [q._wcache[1].device.type for q in m.modules()
              if isinstance(q, QuantLayer) and q._wcache is not None]
    has_weights = any(isinstance(q, QuantLayer) and q.spec.weight is not None
                      for q in m.modules())
    check((bool(cached) or not has_weights) and set(cached) <= {"cuda"},
          f"{name}: {len(cached)} cached weights, all on the GPU")
    sim.restore()


# --- 5. cli ------------------------------------------------------------------------------

def cli_section() -> None:
    from numfab.cli import main

    x = (np.random.default_rng(6).standard_normal((256, 1024)) * 3).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "x.npy"
        np.save(src, x)
        for fmt in ("mxfp4", "nvfp4", "mxfp8_e4m3", "uint4_g32_asym", "e4m3", "int8", "nf4"):
            outs = {}
            for dev in ("cpu", "cuda"):
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    rc = main(["quantize", str(src), "--format", fmt, "--device", dev,
                               "-o", str(Path(d) / f"q_{dev}.npy")])
                lines = [ln for ln in buf.getvalue().splitlines()[1:]  # not the header,
                         if not ln.startswith("wrote ")]  # nor the output's name
                outs[dev] = (rc, lines, np.load(Path(d) / f"q_{dev}.npy"))
            same = outs["cpu"][:2] == outs["cuda"][:2] and np.array_equal(
                outs["cpu"][2], outs["cuda"][2], equal_nan=True)
            check(same and outs["cuda"][0] == 0,
                  f"numfab quantize --format {fmt}: --device cuda prints and writes what "
                  "--device cpu does")


SECTIONS = {"1": ("fake_quant", fake_quant_section), "2": ("layers", layers_section),
            "3": ("compile", compile_section), "4": ("host copies", host_section),
            "5": ("cli", cli_section)}


def main() -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sections", nargs="*", metavar="SECTION",
                   help=f"section numbers to run, of {', '.join(SECTIONS)} (default: all)")
    args = p.parse_args()
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        p.error(f"no section {', '.join(unknown)}; sections: {', '.join(SECTIONS)}")
    if not torch.cuda.is_available():
        print("no CUDA device visible to torch: this check runs on a GPU machine")
        return 2
    import triton

    print(f"torch {torch.__version__}, triton {triton.__version__}, "
          f"{torch.cuda.get_device_name()}")
    for key in args.sections or SECTIONS:
        name, fn = SECTIONS[key]
        with section(f"{key}. {name}"):
            fn()
    print(f"\n{len(FAILED)} check(s) failed" + "".join(f"\n  {f}" for f in FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    raise SystemExit(main())
