"""The ``numfab`` command line."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import formats
from formats import Format, Minifloat

from ._args import DEVICE_HELP, Parser, device_arg, natural_int, positive_int
from ._io import atomic_write, check_input_file, check_output_dir, check_output_file
from ._noise import drop_known_noise


def _fmt_value(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(float(v))


def _kind(f: Format) -> str:
    return type(f).__name__


def format_facts(f: Format) -> dict[str, str]:
    """The facts `numfab formats NAME` prints, as strings."""
    facts = {
        "name": str(f),
        "kind": _kind(f),
        "bits": str(f.bits),
        "signed": str(f.signed),
        "max": _fmt_value(f.max),
        "min": _fmt_value(f.min),
        "smallest_normal": _fmt_value(f.smallest_normal),
        "smallest_subnormal": _fmt_value(f.smallest_subnormal),
        "eps": _fmt_value(f.eps),
        "has_inf": str(f.has_inf),
        "has_nan": str(f.has_nan),
        "default_overflow": f.default_overflow.value,
    }
    if isinstance(f, Minifloat):
        facts.update(
            exp_bits=str(f.exp_bits),
            man_bits=str(f.man_bits),
            bias=str(f.bias),
            special=f.special.value,
            subnormals=str(f.subnormals),
            nan_code="none" if f.nan_code is None else hex(f.nan_code),
            repr=repr(f),
        )
    else:
        facts["repr"] = repr(f) if len(repr(f)) < 200 else repr(f)[:200] + "..."
    return facts


def block_facts(f: formats.BlockScaled) -> dict[str, str]:
    """The facts `numfab formats NAME` prints for a block-scaled format."""
    bs = f.block_size
    return {
        "name": str(f),
        "kind": "BlockScaled",
        "element": str(f.element),
        "scale": str(f.scale),
        "block_size": f"{bs[0]}x{bs[1]}" if isinstance(bs, tuple) else str(bs),
        "axis": str(f.axis),
        "scale_rule": f.scale_rule.value,
        "tensor_scale": "none" if f.tensor_scale is None else str(f.tensor_scale),
        "bits_per_element": f"{f.bits_per_element:g} (+ tensor scale amortised)"
        if f.tensor_scale is not None else f"{f.bits_per_element:g}",
        "element_max": _fmt_value(f.elem_max),
        "emax_elem": str(f.emax_elem),
        "scale_range": f"{_fmt_value(f.scale.smallest_subnormal)} .. {_fmt_value(f.scale.max)}",
    }


def zoo_table() -> str:
    """One line per named format: name, bits, max, smallest subnormal, eps, specials."""
    head = f"{'name':<20} {'bits':>4} {'max':>12} {'smallest':>12} {'eps':>10}  specials"
    lines = [head, "-" * len(head)]
    for name, f in formats.NAMED.items():
        spec = ",".join(s for s, ok in (("inf", f.has_inf), ("nan", f.has_nan)) if ok) or "-"
        lines.append(
            f"{name:<20} {f.bits:>4} {f.max:>12.6g} {f.smallest_subnormal:>12.6g} "
            f"{f.eps:>10.4g}  {spec}"
        )
    lines.append("block formats: " + ", ".join(
        f"{n} ({b.bits_per_element:g} b/elem)" for n, b in formats.NAMED_BLOCKS.items()))
    fams = ("families: e<E>m<M>[b<bias>][fn|fnuz|_finite][_nosub] (u-prefix: unsigned), "
            "int<n>/uint<n>[_narrow], fixed<i,f>/ufixed<i,f>, bipolar<n>, lut[v0,...]")
    lines.append(fams)
    return "\n".join(lines)


def _cmd_formats(args: argparse.Namespace) -> int:
    if not args.name:
        print(zoo_table())
        return 0
    f = formats.parse(args.name)
    if isinstance(f, formats.BlockScaled):
        for k, v in block_facts(f).items():
            print(f"{k:<20} {v}")
        return 0
    for k, v in format_facts(f).items():
        print(f"{k:<20} {v}")
    if f.bits <= 8:
        print(f"\n{'code':>6} {'hex':>6} {'bin':>{f.bits + 2}}  value")
        for code, v in enumerate(f.values()):
            print(f"{code:>6} {code:#06x} {code:#0{f.bits + 2}b}  {_fmt_value(v)}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import json
    import time

    from .evaluate import EvalConfig, device_name, evaluate, resolve_device

    if args.print_layers:
        return _print_layers(args.model, args.dtype)
    dev = resolve_device(args.device, "--device")
    from .models import is_bundled

    model = args.model
    if not is_bundled(model) and Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())
    try:
        cfg = EvalConfig(model, weights=args.weights, acts=args.acts, kv=args.kv,
                         hadamard=args.hadamard, gptq=args.gptq,
                         tokens=1024 if args.tokens is None else args.tokens,
                         data=args.data, text_field=args.text_field, seq_len=args.seq_len,
                         windows=args.windows, dtype=args.dtype, rules=args.config,
                         calib=args.calib)
    except ValueError as exc:  # name the option, not the field
        msg = str(exc)
        for field, opt in (("rules", "--config"), ("seq_len", "--seq-len"),
                           ("text_field", "--text-field"), ("data", "--data"),
                           ("windows", "--windows"), ("calib", "--calib"),
                           ("dtype", "--dtype"), ("model", "--model")):
            if msg.startswith(field + " ") or msg.startswith(field + "("):
                msg = opt + msg[len(field):]
                break
        raise ValueError(msg) from None
    from .evaluate import own

    if args.tokens is not None and own(cfg):
        raise ValueError("--tokens sets the bundled evaluation's length; with your own "
                         "model, --data, --config, --seq-len, --windows, --dtype or --calib "
                         "the evaluated tokens are --seq-len x --windows")
    t0 = time.perf_counter()
    res = evaluate(cfg, dev)
    res["seconds"] = round(time.perf_counter() - t0, 2)
    res["device"] = device_name(dev)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:22s} {v:.6g}" if isinstance(v, float) else f"{k:22s} {v}")
    return 0


def jobs_arg(text: str) -> int | str:
    """argparse type of --jobs: a positive integer or 'auto'."""
    return "auto" if text == "auto" else positive_int(text)


def _print_layers(model: str, dtype: str) -> int:
    """``numfab eval --print-layers``: the names rules patterns match, with each layer's
    type and weight shape."""
    import torch

    from simulator.torch import layer_names

    from .models import load_model

    loaded = load_model(model, dtype)
    mods = dict(loaded.model.named_modules())
    for n in layer_names(loaded.model):
        m = mods[n]
        w = getattr(m, "weight", None)
        shape = "x".join(map(str, w.shape)) if isinstance(w, torch.Tensor) else ""
        print(f"{n or '(model)':60s} {type(m).__name__:16s} {shape}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .evaluate import resolve_device
    from .sweep import load_sweep, run_sweep

    # a Dask cluster's workers find their own devices; local workers use this machine's
    dev = args.device if args.scheduler else str(resolve_device(args.device, "--device"))
    cfg = load_sweep(args.sweep)
    out = args.results or str(Path(args.sweep).with_suffix(".jsonl"))
    path = run_sweep(cfg, out, jobs=args.jobs, scheduler=args.scheduler,
                     progress=not args.quiet, device=dev)
    print(f"results in {path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    path = write_report(args.results, args.out, pareto=args.pareto, target=args.target)
    print(f"wrote {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import time

    from .report import write_report
    from .sweep import config_hash, load_sweep, read_results, run_sweep

    out = check_output_dir(args.out, "output folder")
    if 0 < args.tokens < 16:
        raise ValueError(f"--tokens must be 0 (the sweep file's) or at least 16, "
                         f"not {args.tokens}")
    cfg = load_sweep(args.sweep or Path(__file__).with_name("demo_sweep.toml"))
    if args.tokens:
        cfg["tokens"] = args.tokens
    results = out / "results.jsonl"
    if out.is_dir():  # refuse a foreign or other-sweep results file before writing anything
        check_output_file(results, "results file")
        read_results(results, config_hash(cfg))
    t0 = time.perf_counter()
    _format_zoo(out)
    t1 = time.perf_counter()
    run_sweep(cfg, results, jobs=1, progress=True)
    t2 = time.perf_counter()
    path = write_report(results, out, pareto=True)
    print(f"wrote {path} (format zoo {t1 - t0:.0f} s, sweep {t2 - t1:.0f} s, "
          f"report {time.perf_counter() - t2:.0f} s)")
    return 0


def _format_zoo(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    table = zoo_table()
    print(table)
    atomic_write(out / "formats.txt", table + "\n")
    names = ["float4_e2m1fn", "nf4", "int4", "bipolar4", "float6_e2m3fn", "float6_e3m2fn"]
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 1.3 * len(names)), sharex=False)
    for ax, name in zip(axes, names):
        f = formats.parse(name)
        v = f.finite_values()
        v = v / np.max(np.abs(v))
        ax.vlines(v, 0, 1, lw=1.2)
        ax.set_yticks([])
        ax.set_xlim(-1.05, 1.05)
        ax.set_title(f"{name} ({f.bits} bits, {np.unique(v).size} values, scaled to max 1)",
                     fontsize=9, loc="left")
    fig.tight_layout()
    atomic_write(out / "value_grids.png", lambda fh: fig.savefig(fh, format="png", dpi=120))
    # Quantization error of a normal distribution per format (real data through the kernels).
    x = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
    rows = []
    for name in ["float8_e4m3fn", "float8_e5m2", "float6_e2m3fn", "float4_e2m1fn", "nf4", "int8"]:
        f = formats.parse(name)
        scale = f.max / np.abs(x).max()
        q = f.quantize(x * scale, overflow="saturate") / scale
        rel = float(np.sqrt(np.mean((q - x) ** 2)) / np.sqrt(np.mean(x**2)))
        rows.append(f"{name:<16} bits={f.bits:<3} rms-rel-error={rel:.4e}")
    report = "\n".join(rows)
    print(report)
    atomic_write(out / "quantization_error.txt", report + "\n")
    written = ", ".join(str(out / n) for n in ("value_grids.png", "formats.txt",
                                                "quantization_error.txt"))
    print(f"wrote {written}")


def error_stats(x: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """SQNR (dB), max and RMS absolute error of ``q`` against ``x`` over finite x."""
    fin = np.isfinite(x)
    xf, qf = x[fin].astype(np.float64), q[fin].astype(np.float64)
    err = qf - xf
    sig = float(np.sum(xf**2))
    noise = float(np.sum(err**2))
    sqnr = math.inf if noise == 0 else 10 * math.log10(sig / noise) if sig > 0 else -math.inf
    return {
        "sqnr_db": sqnr,
        "max_abs_error": float(np.max(np.abs(err))) if err.size else 0.0,
        "rms_error": float(np.sqrt(np.mean(err**2))) if err.size else 0.0,
    }


def quantize_array(f: Format, x: np.ndarray, device: Any = None
                   ) -> tuple[np.ndarray, dict[str, str]]:
    """``x`` quantized to ``f`` (scalar formats saturate; block formats: the encoded
    values, float64) and the facts `numfab quantize` prints: bits per element and the
    saturated and flushed-to-zero counts (block formats: their bytes and blocks too).
    ``device``: a torch device to quantize on (the array goes there and the results
    come back), or None for numpy on the host."""
    xin: Any = x
    if device is not None:
        import torch

        xin = torch.from_numpy(x).to(device)

    def host(v: object) -> np.ndarray:
        # the one copy back of device results
        cpu = getattr(v, "cpu", None)
        return cpu().numpy() if cpu is not None else np.asarray(v)

    if isinstance(f, formats.BlockScaled):
        enc = f.encode(xin)
        q = host(enc.dequantize())
        return q, {"bits_per_element": f"{enc.bits_per_element:.4f}",
                   "nbytes": str(enc.nbytes),
                   "saturated_elements": str(int(enc.saturated.sum())),
                   "flushed_to_zero": str(int(enc.flushed.sum())),
                   "blocks": str(math.prod(enc.scales.shape))}
    q = host(f.quantize(xin, overflow="saturate"))
    return q, {"bits_per_element": str(f.bits),
               "saturated_elements": str(int(np.count_nonzero(np.abs(x) > f.max))),
               "flushed_to_zero": str(int(np.count_nonzero((q == 0) & (x != 0))))}


def _cmd_quantize(args: argparse.Namespace) -> int:
    f = formats.parse(args.format)
    src = check_input_file(args.file, "input file")
    out = None
    if args.output:
        # numpy's convention: .npy is added to a name without it
        out = Path(args.output if args.output.endswith(".npy") else args.output + ".npy")
        check_output_file(out, "output file (-o)")
    try:
        x = np.load(src, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"cannot read {args.file} as a .npy array: {exc}") from None
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{args.file} is an .npz archive; give one array saved with np.save")
    if x.dtype.kind in "iu":
        if x.size and (int(x.max()) > 2**53 or int(x.min()) < -(2**53)):
            raise ValueError(f"{args.file} holds integers beyond 2**53, which float64 cannot "
                             "hold exactly; scale them first")
        x = x.astype(np.float64)
    elif x.dtype.kind != "f" or x.dtype.itemsize > 8:
        raise ValueError(f"{args.file} holds {x.dtype}; numfab quantize takes float16, "
                         "float32, float64 or integer arrays")
    x = np.asarray(x, np.float32 if x.dtype.itemsize < 8 else np.float64)
    dev = None
    if args.device != "cpu":
        from .evaluate import device_name, resolve_device

        dev = resolve_device(args.device, "--device")
        dev = None if dev.type == "cpu" else dev
    where = "" if dev is None else f", on {device_name(dev)}"
    print(f"{args.file}: shape {x.shape}, dtype {x.dtype}, format {f}{where}")
    q, facts = quantize_array(f, x, dev)
    for k, fact in facts.items():
        print(f"{k:<20} {fact}")
    for k, v in error_stats(x, q).items():
        print(f"{k:<20} {v:.6g}")
    if out is not None:
        q_arr = np.asarray(q, x.dtype)
        atomic_write(out, lambda fh: np.save(fh, q_arr))
        print(f"wrote {out}")
    return 0


def _cmd_gemm(args: argparse.Namespace) -> int:
    import simulator

    acc = simulator.Accumulator(
        args.acc, rounding=args.rounding, order=args.order, tree_width=args.tree_width,
        chunk=args.chunk, seed=args.seed if args.rounding == "stochastic" else None)
    rng = np.random.default_rng(args.seed)
    a = rng.standard_normal((args.m, args.k)).astype(np.float32)
    b = rng.standard_normal((args.k, args.n)).astype(np.float32)
    got = simulator.gemm(a, b, a_format=args.a_format, b_format=args.b_format,
                         accumulator=acc)
    ref_name = "exact"
    try:
        ref = simulator.gemm(a, b, a_format=args.a_format, b_format=args.b_format,
                             accumulator=None)
    except ValueError:
        ref_name = "float64 accumulation (sums beyond the exact accumulator's 62 bits)"
        ref = simulator.gemm(a, b, a_format=args.a_format, b_format=args.b_format,
                             accumulator="float64")
    err = np.abs(got - ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(ref != 0, err / np.abs(ref), np.where(err == 0, 0.0, np.inf))
    print(f"gemm {args.m}x{args.k} @ {args.k}x{args.n}, a {args.a_format}, b {args.b_format}, "
          f"accumulator {acc}; reference: {ref_name} sum of the same quantized operands")
    print(f"max_abs_error        {err.max():.6g}")
    print(f"mean_abs_error       {err.mean():.6g}")
    fin = rel[np.isfinite(rel)]
    print(f"max_rel_error        {fin.max() if fin.size else 0:.6g}")
    print(f"mean_rel_error       {fin.mean() if fin.size else 0:.6g}")
    fmt = acc.format
    if isinstance(fmt, formats.Minifloat):
        with np.errstate(divide="ignore"):
            e = np.floor(np.log2(np.abs(ref)))
        e = np.where(np.isfinite(e), e, fmt.emin)
        ulp = np.exp2(np.maximum(e - fmt.precision + 1, fmt.lsb_exp_min))
        u = err / ulp
        edges = [0, 0.5, 1, 2, 4, 16, 256]
        print(f"ulp error ({fmt} ulps of the exact value):")
        print(f"  {'== 0':>12s} {int(np.count_nonzero(u == 0))}")
        lo = 0.0
        for hi in edges[1:]:
            n = int(np.count_nonzero((u > lo) & (u <= hi)))
            print(f"  {f'({lo:g}, {hi:g}]':>12s} {n}")
            lo = hi
        print(f"  {f'> {lo:g}':>12s} {int(np.count_nonzero(u > lo))}")
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from simulator import Accumulator
    from simulator.probe import gpu_dot, probe_accumulator, simulated_dot
    from simulator.silicon import NAMED

    b = args.b or args.a
    if args.target == "simulated":
        if args.model is None:
            raise ValueError("--target simulated needs --model: an accumulator (its text, "
                             f"e.g. 'float32,toward_zero,fused4w13') or a named model "
                             f"({', '.join(NAMED)})")
        acc = Accumulator.named(args.model) if args.model in NAMED else \
            Accumulator.parse(args.model)
        dot = simulated_dot(acc, args.a, b, args.out)
        what = f"simulator.gemm with {acc}"
    else:
        if args.model is not None:
            raise ValueError("--model describes --target simulated; a GPU target is probed")
        dot = gpu_dot(args.target, args.a, b, out_format=args.out, device=args.device,
                      fast_accum=args.fast_accum)
        import torch

        what = (f"{args.target} on {torch.cuda.get_device_name(args.device)}"
                + (" (use_fast_accum)" if args.fast_accum else ""))
    r = probe_accumulator(dot, args.a, b, out_format=args.out, k_max=args.k_max,
                          checks=args.checks)
    print(f"probed: {what}, {args.a} x {b} -> {args.out}")
    print(r)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="numfab",
        description="numfab: bit-exact number formats for hardware co-design.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    pf = sub.add_parser(
        "formats",
        help="list the named formats, or show one format's facts and code table",
        description="Without NAME, list every named format. With NAME (canonical, alias or "
        "family syntax such as e3m4b5, int6, 'fixed<4,4>', bipolar3), print its facts and, "
        "for formats of at most 8 bits, its full code -> value table.",
    )
    pf.add_argument("name", nargs="?", help="format name, e.g. float8_e4m3fn or e2m1")
    pf.set_defaults(func=_cmd_formats)
    pq = sub.add_parser(
        "quantize",
        help="quantize a saved .npy array and print error statistics",
        description="Quantize the array in FILE (numpy .npy) to --format (scalar or block "
        "format) and print SQNR, max and RMS error, and saturation/flush-to-zero counts "
        "(per block for block formats). Scalar formats saturate on overflow.",
    )
    pq.add_argument("file", help="input .npy file")
    pq.add_argument("--format", required=True, help="format name, e.g. nvfp4 or e4m3")
    pq.add_argument("-o", "--output", help="write the quantized array to this .npy file")
    pq.add_argument("--device", type=device_arg, default="auto", metavar="DEVICE",
                    help=DEVICE_HELP + " (the array is copied there and back)")
    pq.set_defaults(func=_cmd_quantize)
    pg = sub.add_parser(
        "gemm",
        help="bit-true GEMM of random operands: error statistics against the exact product",
        description="Multiply seeded standard-normal M x K and K x N operands quantized to "
        "--a-format/--b-format with the modelled accumulator, and print max/mean absolute "
        "and relative error against the exact sum of the same quantized products, with a "
        "histogram of the error in accumulator ulps.",
    )
    pg.add_argument("--a-format", default="float8_e4m3fn")
    pg.add_argument("--b-format", default="float8_e4m3fn")
    pg.add_argument("--acc", default="float32", help="accumulator format, or 'exact'")
    pg.add_argument("--rounding", default="nearest_even")
    pg.add_argument("--order", default="sequential", help="sequential, pairwise or tree")
    pg.add_argument("--tree-width", type=positive_int, default=None)
    pg.add_argument("--chunk", type=positive_int, default=None, help="promote to float32 every N")
    pg.add_argument("--m", type=positive_int, default=256)
    pg.add_argument("--n", type=positive_int, default=256)
    pg.add_argument("--k", type=positive_int, default=1024)
    pg.add_argument("--seed", type=natural_int, default=0)
    pg.set_defaults(func=_cmd_gemm)
    pp = sub.add_parser(
        "probe-accumulator",
        help="infer how a GPU matmul call accumulates (terms per step, window, "
        "truncation, promotion)",
        description="Run probe dot products (FPRev-style) through a matmul call and print "
        "the datapath that explains them, as a numfab accumulator (the fused multi-term "
        "adder: products fused per step, alignment window below the largest exponent, "
        "truncation or rounding of the shifted-out bits, promotion interval), then check "
        "it on random and adversarial dot products. Targets: scaled_mm (torch._scaled_mm "
        "on FP8), matmul (torch.matmul), triton (tl.dot), simulated (simulator.gemm with "
        "--model: checks the probe itself, no GPU).",
    )
    pp.add_argument("--target", required=True,
                    choices=("scaled_mm", "matmul", "triton", "simulated"))
    pp.add_argument("--a", default="float8_e4m3fn", help="operand A's format")
    pp.add_argument("--b", default=None, help="operand B's format (default: A's)")
    pp.add_argument("--out", default="float32", help="the call's output format")
    pp.add_argument("--model", default=None,
                    help="--target simulated: the accumulator to probe (text or named model)")
    pp.add_argument("--fast-accum", action="store_true",
                    help="scaled_mm: use_fast_accum=True")
    pp.add_argument("--device", default="cuda", help="the GPU (default cuda)")
    pp.add_argument("--k-max", type=positive_int, default=1024,
                    help="longest probe (promotion intervals up to it are found)")
    pp.add_argument("--checks", type=natural_int, default=4096,
                    help="random/adversarial dot products the model must reproduce")
    pp.set_defaults(func=_cmd_probe)
    pe = sub.add_parser(
        "eval", help="evaluate a model in chosen formats",
        description="Run a bundled model (smollm2, minilm, digits) or your own (a Hugging "
        "Face directory, a GGUF file) with its Linear layers' weights / input activations "
        "/ KV cache in the given formats (or per a rules file) and print the metrics "
        "against the unquantized model: GPTQ-convention perplexity over windows of "
        "--seq-len tokens, KL divergence and top-1 agreement for your own text or model.")
    pe.add_argument("--model", default="smollm2",
                    help="smollm2, minilm, digits, a local Hugging Face checkpoint "
                    "directory or a .gguf file (no downloads)")
    pe.add_argument("--weights", help="weight format (e.g. mxfp4)")
    pe.add_argument("--acts", help="input-activation format (e.g. mxfp8_e4m3)")
    pe.add_argument("--kv", help="KV-cache format (e.g. nvfp4)")
    pe.add_argument("--hadamard", action="store_true", help="block Hadamard rotation")
    pe.add_argument("--gptq", action="store_true", help="GPTQ weights (calibrated)")
    pe.add_argument("--tokens", type=positive_int,
                    help="tokens of the bundled SmolLM2 evaluation (default 1024); your own "
                    "model or text: --seq-len x --windows")
    pe.add_argument("--data", help="evaluation text: a file, a directory of text files or "
                    "a .jsonl file (default: the bundled pydoc text)")
    pe.add_argument("--text-field", default="text", help="the text field of .jsonl lines")
    pe.add_argument("--seq-len", type=positive_int,
                    help="tokens per window (default 2048, or the model's maximum)")
    pe.add_argument("--windows", type=positive_int,
                    help="evaluate the first N windows (default: all)")
    pe.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                    help="the model's dtype (default float32)")
    pe.add_argument("--config", metavar="FILE",
                    help="rules file (TOML or JSON): layer pattern -> LayerSpec fields, as "
                    "simulate() takes; replaces --weights/--acts/--kv/--hadamard/--gptq")
    pe.add_argument("--calib", help="calibration text for GPTQ/SmoothQuant (default: the "
                    "windows of --data after the evaluated ones)")
    pe.add_argument("--print-layers", action="store_true",
                    help="list the model's layer names (what rules patterns match) and exit")
    pe.add_argument("--json", action="store_true", help="print one JSON object")
    pe.add_argument("--device", type=device_arg, default="auto", metavar="DEVICE",
                    help=DEVICE_HELP)
    pe.set_defaults(func=_cmd_eval)
    ps = sub.add_parser(
        "sweep", help="run a resumable grid of evaluations from a TOML file",
        description="Run every point of a sweep file (models x formats x techniques), "
        "appending each result to a JSON-lines file as it finishes; rerunning resumes.")
    ps.add_argument("sweep", help="the sweep file (TOML)")
    ps.add_argument("-o", "--results", help="results file (default: SWEEP.jsonl)")
    ps.add_argument("--jobs", type=jobs_arg, default=1,
                    help="local worker processes, or 'auto': one per visible GPU, each on "
                    "its own (one worker without a GPU)")
    ps.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786)")
    ps.add_argument("--quiet", action="store_true", help="no progress bar")
    ps.add_argument("--device", type=device_arg, default="auto", metavar="DEVICE",
                    help=DEVICE_HELP + "; with --scheduler each Dask worker resolves it. "
                    "Not part of a point's key: a sweep may resume on another device")
    ps.set_defaults(func=_cmd_sweep)
    pr = sub.add_parser(
        "report", help="Markdown report with plots from a results file",
        description="Write report.md and PNG plots (metric vs bits per element, "
        "per-block sensitivity, format table) from a sweep's results file, or (from numfab "
        "search --results) the searched front next to the uniform formats.")
    pr.add_argument("results", help="a sweep's results file (JSON lines) or numfab "
                    "search --results's JSON")
    pr.add_argument("-o", "--out", default="out", help="output folder (default: out)")
    pr.add_argument("--pareto", action="store_true",
                    help="price each point as the datapath it was simulated with (costmodel), "
                    "mark the accuracy x cost Pareto fronts and list the points left off")
    pr.add_argument("--target", default="xilinx", help="cost target for --pareto "
                    "(xilinx LUTs or cmos transistors)")
    pr.set_defaults(func=_cmd_report)
    pd = sub.add_parser(
        "demo",
        help="the main job: format zoo, then a sweep and report on three models into --out",
        description="Print the format zoo (formats.txt, value_grids.png, "
        "quantization_error.txt), then run the bundled sweep: SmolLM2, MiniLM and the digits "
        "CNN with ten weight+activation formats, with and without Hadamard rotation (not on "
        "the CNN), plus SmolLM2's and MiniLM's per-block sensitivity to MXFP4; results go to "
        "OUT/results.jsonl (resumable) and OUT/report.md with plots and accuracy x hardware "
        "cost Pareto fronts.",
    )
    pd.add_argument("--out", default="out", help="output folder (default: out)")
    pd.add_argument("--sweep", help="run this sweep file instead of the bundled one")
    pd.add_argument("--tokens", type=natural_int, default=0, help="override the tokens per point")
    pd.set_defaults(func=_cmd_demo)
    from . import rtl_cli

    rtl_cli.add_parser(sub)
    from . import cost_cli

    cost_cli.add_parser(sub)
    from . import search_cli

    search_cli.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``numfab`` command. Bad input ends with one line on stderr naming what is
    wrong and exit status 2, never a traceback (set NUMFAB_DEBUG=1 to see one)."""
    args = build_parser().parse_args(argv)
    formats.setup_runtime()  # numba's pool and malloc tuned for the kernels (see README)
    drop_known_noise()  # torchao's import-time log lines (numfab/_noise.py says why)
    try:
        status = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        # the reader of stdout went away (numfab formats | head): stop quietly
        with contextlib.suppress(AttributeError, OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(f"numfab {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, ImportError, MemoryError) as exc:
        if os.environ.get("NUMFAB_DEBUG"):
            raise
        if isinstance(exc, MemoryError):
            msg = "not enough memory for this problem size; make it smaller"
        elif isinstance(exc, OSError) and exc.filename is not None:
            msg = f"{exc.strerror or exc}: {exc.filename}"
        else:
            msg = str(exc) or type(exc).__name__
        print(f"numfab {args.command}: {' '.join(msg.split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
