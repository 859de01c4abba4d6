"""``numfab rtl generate|verify|vectors``: processing elements from the command line."""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from typing import Any

from ._args import natural_int, positive_int

_OPTS = ("a", "b", "acc", "out", "x", "w", "rounding", "overflow", "stages", "k", "group",
         "groups", "lanes")
_INTS = ("stages", "k", "group", "groups", "lanes")


def datapath_of(args: argparse.Namespace, flags: tuple[str, ...] = _OPTS) -> Any:
    """The ``--datapath`` text as a :class:`simulator.Datapath` (None without it); its
    errors name ``--datapath``. It holds the whole arithmetic, so the per-option
    ``flags`` (``--a``, ``--acc``, ...) do not go with it."""
    if args.datapath is None:
        return None
    given = [f"--{o}" for o in flags if getattr(args, o, None) is not None]
    if given:
        raise ValueError(f"--datapath holds the formats and options; give it without "
                         f"{', '.join(given)}")
    from simulator import Datapath

    try:
        return Datapath.parse(args.datapath)
    except (TypeError, ValueError) as exc:
        # name the text once: Datapath.parse quotes it in some messages already
        text = "" if str(exc).startswith("datapath ") else f" {args.datapath!r}"
        raise type(exc)(f"--datapath{text}: {exc}") from None


def _pe(args: argparse.Namespace) -> Any:
    import rtl

    dp = datapath_of(args)
    if dp is not None:
        if args.pe is not None:
            raise ValueError(f"--datapath names its PE (rtl.build(datapath)); give it without "
                             f"the PE kind {args.pe!r}")
        try:
            return rtl.build(dp)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"--datapath: {exc}") from None
    if args.pe is None:
        raise ValueError("give a PE kind (IntMac, FloatMul, FloatMac, BlockDot, FusedDot, "
                         "Quantizer, BipolarPe, LutPe, ShiftAddPe) or --datapath")
    opts: dict[str, Any] = {o: getattr(args, o.replace("-", "_"), None) for o in _OPTS}
    if str(args.pe).lower() == "intmac" and opts.get("acc") is not None:
        mt = re.fullmatch(r"int(\d+)", str(opts.pop("acc")).strip().lower())
        if not mt:
            raise ValueError(f"--acc for IntMac must be int<n> (e.g. int32), not {args.acc!r}")
        opts["acc_bits"] = int(mt.group(1))
    return rtl.build(args.pe, **opts)


def _err(cmd: str, exc: BaseException) -> int:
    print(f"numfab rtl {cmd}: {exc}", file=sys.stderr)
    return 2


def cmd_generate(args: argparse.Namespace) -> int:
    import rtl
    from rtl.outputs import check_output_dir
    from rtl.verilog import check_name

    # everything is checked before rtl.write creates the folder or any file
    try:
        out = check_output_dir(args.output, "-o/--output")
        if args.name is not None:
            check_name(args.name, "--name")
        pe = _pe(args)
        name = args.name or pe.kind.lower()
        v, j = rtl.write(pe, name, out)
    except (TypeError, ValueError, OSError) as exc:
        return _err("generate", exc)
    print(f"wrote {v} and {j} ({pe.kind}, formats {pe.formats}, latency {pe.latency})")
    return 0


def cmd_vectors(args: argparse.Namespace) -> int:
    from rtl.outputs import check_output_file
    from rtl.vectors import make_vectors

    try:
        check_output_file(args.output, "-o/--output")
        pe = _pe(args)
        vec = make_vectors(pe, n=args.n, seed=args.seed, exhaustive=args.exhaustive)
        vec.to_csv(args.output)
    except (TypeError, ValueError, OSError) as exc:
        return _err("vectors", exc)
    print(f"wrote {args.output}: {vec.cycles} cycles, {vec.checks} checked outputs "
          f"(reference: {vec.header.get('reference')})")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from rtl.outputs import check_output_dir
    from rtl.sim import Mismatch, run_amaranth
    from rtl.vectors import make_vectors
    from rtl.verify import IcarusMissing, run_icarus

    try:
        if args.workdir is not None:
            check_output_dir(args.workdir, "--workdir")
        pe = _pe(args)
        vec = make_vectors(pe, n=args.n, seed=args.seed, exhaustive=args.exhaustive)
    except (TypeError, ValueError) as exc:
        return _err("verify", exc)
    sims = ["amaranth", "icarus"] if args.sim == "both" else [args.sim]
    status = 0
    for sim in sims:
        t0 = time.perf_counter()
        try:
            if sim == "amaranth":
                checks = run_amaranth(pe, vec)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    checks = run_icarus(pe, vec, args.workdir or tmp)["checks"]
        except (IcarusMissing, OSError) as exc:
            return _err("verify", exc)
        except Mismatch as exc:
            print(f"FAIL {sim}: {exc}")
            status = 1
            continue
        dt = time.perf_counter() - t0
        print(f"PASS {sim}: {pe.kind} {pe.formats}: {checks} outputs in {vec.cycles} cycles "
              f"equal the reference ({vec.header.get('reference')}); {dt:.2f} s, "
              f"{vec.cycles / dt:,.0f} cycles/s")
    return status


def add_pe_options(p: argparse.ArgumentParser, pe_help: str = "IntMac, FloatMul, FloatMac, "
                   "BlockDot, FusedDot (its fused-adder options: with --datapath), Quantizer, "
                   "BipolarPe, LutPe or ShiftAddPe") -> None:
    """The PE positional and its format / parameter options, or ``--datapath`` (shared
    with numfab cost)."""
    p.add_argument("pe", nargs="?", help=pe_help + " (leave out with --datapath)")
    p.add_argument("--datapath", metavar="TEXT",
                   help="the PE that computes this simulator.Datapath (its str() form, e.g. "
                   "\"a=e4m3 b=e4m3 acc=float16,chunk32->float32\" or "
                   "\"a=int8 b=int8 acc=float32,nearest_even,products@bfloat16\"), in place "
                   "of a PE kind and --a/--b/--acc/... options")
    p.add_argument("--a", help="operand a format (Quantizer: the input format)")
    p.add_argument("--b", help="operand b format")
    p.add_argument("--acc", help="accumulator format (IntMac: int<n>)")
    p.add_argument("--out", help="FloatMul product / Quantizer output format")
    p.add_argument("--x", help="activation format (LutPe, ShiftAddPe)")
    p.add_argument("--w", help="weight format (LutPe, ShiftAddPe)")
    p.add_argument("--rounding", help="nearest_even (default), nearest_away, toward_zero, "
                   "up, down")
    p.add_argument("--overflow", help="overflow policy (default: the format's)")
    for o in _INTS:
        p.add_argument(f"--{o}", type=int)


def add_parser(sub: Any) -> None:
    pr = sub.add_parser(
        "rtl", help="generate, verify or export test vectors for a processing element",
        description="Processing elements (IntMac, FloatMul, FloatMac, BlockDot, FusedDot, "
        "Quantizer, BipolarPe, LutPe, ShiftAddPe) built from formats, or the PE that computes "
        "a datapath (--datapath, e.g. with chunked promotion, rounded products or the fused "
        "multi-term adder): write "
        "Verilog + a JSON manifest, verify against the PyTorch/simulator reference "
        "(Amaranth's simulator and/or cocotb on Icarus), or export golden vectors as CSV.")
    rsub = pr.add_subparsers(dest="rtl_command", required=True)

    pg = rsub.add_parser("generate", help="write <name>.v and <name>.json")
    add_pe_options(pg)
    pg.add_argument("-o", "--output", default="out/rtl",
                    help="output folder (created if missing)")
    pg.add_argument("--name", help="Verilog module name (default: the PE kind)")
    pg.set_defaults(func=cmd_generate)
    for name, func, hlp in (("verify", cmd_verify, "run the testbench"),
                            ("vectors", cmd_vectors, "export golden vectors as CSV")):
        p = rsub.add_parser(name, help=hlp)
        add_pe_options(p)
        p.add_argument("--n", type=positive_int, default=256, help="random operations")
        p.add_argument("--seed", type=natural_int, default=0)
        p.add_argument("--exhaustive", action="store_true",
                       help="every operand pair / input code (FloatMul, Quantizer)")
        if name == "verify":
            p.add_argument("--sim", default="both", choices=("amaranth", "icarus", "both"))
            p.add_argument("--workdir", help="keep the Icarus build and logs here")
        else:
            p.add_argument("-o", "--output", default="vectors.csv",
                           help="CSV file (its directory must exist; replaced atomically)")
        p.set_defaults(func=func)
