"""Resumable sweeps: a grid of models x formats x techniques, one results line per point.

A sweep file (TOML)::

    models = ["smollm2"]              # smollm2, minilm, digits
    formats = ["bfloat16", "mxfp4"]   # each point quantizes `quantize` in one format
    quantize = ["weights", "acts"]    # any of weights, acts, kv
    hadamard = [false, true]          # techniques: lists of the values to try
    gptq = [false]
    tokens = 512                      # SmolLM2 evaluation tokens
    sensitivity = "mxfp4"             # optional: also each transformer block alone

The results file (JSON lines) starts with the sweep's configuration and its hash; every
finished point is appended (and flushed) at once, so a killed sweep loses at most the
points running and resumes without redoing the others. A results file from another
configuration is refused. Points run in a local process pool, or on a Dask cluster
given its scheduler address.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._args import check_device
from ._io import atomic_write, check_input_file, check_output_file, exclusive_lock
from ._noise import drop_known_noise, dropping
from .evaluate import EvalConfig, check_format, load_rules, max_tokens, resolve_device
from .models import BLOCKS, check_model, is_bundled

__all__ = ["PointsFailed", "failures_path", "load_sweep", "points", "read_failures",
           "read_results", "run_sweep"]

_KEYS = {"models": list, "formats": list, "quantize": list, "hadamard": list, "gptq": list,
         "tokens": int, "sensitivity": str, "blocks": int,
         # your own model and text (numfab.lm): the keys of EvalConfig
         "data": str, "text_field": str, "seq_len": int, "windows": int, "dtype": str,
         "calib": str, "rules": list}
#: the sweep keys passed to every point as they are
_OWN = ("data", "text_field", "seq_len", "windows", "dtype", "calib")


def _line_of(text: str, key: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            return i
    return 0


def load_sweep(path: str | Path) -> dict[str, Any]:
    """Read and validate a sweep file; errors name the line and key, and every point the
    sweep will run is checked here, before any runs."""
    import tomllib

    p = check_input_file(path, "sweep file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"sweep file {str(p)!r} is not UTF-8 text (TOML)") from None
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{p}: malformed TOML: {exc}") from None

    def bad(key: str, msg: str) -> ValueError:
        return ValueError(f"{p}:{_line_of(text, key)}: key {key!r}: {msg}")

    for k, v in cfg.items():
        if k not in _KEYS:
            raise bad(k, f"unknown key; keys: {', '.join(_KEYS)}")
        if not isinstance(v, _KEYS[k]) or isinstance(v, bool) and _KEYS[k] is int:
            raise bad(k, f"must be {_KEYS[k].__name__}, not {type(v).__name__}")
    for k in ("models", "formats"):
        if k == "formats" and "formats" not in cfg and cfg.get("rules"):
            cfg["formats"] = []  # the rules files are the points
            continue
        if not cfg.get(k):
            raise bad(k, "is required and must not be empty") if k in cfg else \
                ValueError(f"{p}: key {k!r} is required")
    cfg.setdefault("quantize", ["weights", "acts"])
    for k in ("hadamard", "gptq"):
        cfg.setdefault(k, [False])
    for k, kind in (("models", str), ("formats", str), ("quantize", str),
                    ("hadamard", bool), ("gptq", bool), ("rules", str)):
        if k not in cfg:
            continue
        vals = cfg[k]
        if (not vals and k != "formats") or any(not isinstance(v, kind) for v in vals):
            what = "true/false" if kind is bool else "strings"
            raise bad(k, f"must be a non-empty list of {what}")
        dup = sorted({str(v) for v in vals if vals.count(v) > 1})
        if dup:
            raise bad(k, f"lists {', '.join(dup)} more than once")
    for i, m in enumerate(cfg["models"]):
        try:
            check_model(m, "model")
        except ValueError as exc:
            raise bad("models", str(exc)) from None
        if not is_bundled(m) and Path(m).expanduser().exists():
            # a local path, recorded absolute: results stay readable from anywhere
            cfg["models"][i] = str(Path(m).expanduser().resolve())
    for k in ("data", "calib"):
        if k in cfg:
            cfg[k] = str(Path(cfg[k]).expanduser().resolve())
    if "rules" in cfg:
        cfg["rules"] = [str(Path(r).expanduser().resolve()) for r in cfg["rules"]]
    own = {k: cfg[k] for k in _OWN if k in cfg}
    for r in cfg.get("rules", []):
        try:
            load_rules(r)
        except ValueError as exc:
            raise bad("rules", str(exc)) from None
    try:  # every point's own settings, checked once on the first model
        EvalConfig(cfg["models"][0], **own)
    except ValueError as exc:
        key = next((k for k in _OWN if str(exc).startswith(k)), "data")
        raise bad(key, str(exc)) from None
    for f in cfg["formats"]:
        try:
            check_format(f)
        except ValueError as exc:
            raise bad("formats", str(exc)) from None
    if any(x not in ("weights", "acts", "kv") for x in cfg["quantize"]):
        raise bad("quantize", "must list some of weights, acts, kv")
    cfg.setdefault("tokens", 512)
    if not 16 <= cfg["tokens"] <= max_tokens():
        raise bad("tokens", f"must be between 16 and {max_tokens()}, not {cfg['tokens']}")
    with_blocks = {m: BLOCKS[m] for m in cfg["models"] if m in BLOCKS}
    if "sensitivity" in cfg and (own or cfg.get("rules")):
        raise bad("sensitivity", "runs the bundled per-block evaluation; with your own "
                  "model's keys (data, seq_len, windows, dtype, calib, rules) list the "
                  "blocks' layers in rules files instead")
    if "sensitivity" in cfg:
        if not with_blocks:
            raise bad("sensitivity", "needs a model with transformer blocks in 'models' "
                      f"({', '.join(BLOCKS)})")
        try:
            check_format(cfg["sensitivity"])
        except ValueError as exc:
            raise bad("sensitivity", str(exc)) from None
    if "blocks" in cfg:
        if "sensitivity" not in cfg:
            raise bad("blocks", "counts the blocks of the 'sensitivity' runs; set "
                      "'sensitivity' too")
        most = min(with_blocks.values())
        if not 1 <= cfg["blocks"] <= most:
            which = ", ".join(f"{m} has {n}" for m, n in with_blocks.items())
            raise bad("blocks", f"must be between 1 and {most} ({which}), "
                      f"not {cfg['blocks']}")
    return cfg


def config_hash(cfg: dict[str, Any]) -> str:
    """The sweep's identity: its settings and the content of every file it names (models
    given as paths, data, calib, rules), so a changed file is a different sweep."""
    from .lm import content_hash

    files = [m for m in cfg.get("models", []) if "/" in m] + \
        [cfg[k] for k in ("data", "calib") if k in cfg] + list(cfg.get("rules", []))
    content = {}
    for f in files:
        try:
            content[f] = content_hash(f)
        except OSError:
            content[f] = "unreadable"
    blob = json.dumps(cfg, sort_keys=True) + (json.dumps(content, sort_keys=True)
                                              if content else "")
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def points(cfg: dict[str, Any]) -> list[EvalConfig]:
    """The sweep's points, in a fixed order: the unquantized reference of each model,
    then the grid, then (with ``sensitivity``) each transformer block alone."""
    out: list[EvalConfig] = []
    q = cfg["quantize"]
    own = {k: cfg[k] for k in _OWN if k in cfg}
    for m in cfg["models"]:
        out.append(EvalConfig(m, tokens=cfg["tokens"], **own))
        for f, had, gq in itertools.product(cfg["formats"], cfg["hadamard"], cfg["gptq"]):
            if (had or gq) and m == "digits":
                continue  # the CNN's convolutions take neither
            if gq and "weights" not in q:
                continue
            out.append(EvalConfig(m, weights=f if "weights" in q else None,
                                  acts=f if "acts" in q else None,
                                  kv=f if "kv" in q and m != "digits" else None,
                                  hadamard=had, gptq=gq, tokens=cfg["tokens"], **own))
        for r in cfg.get("rules", []):
            out.append(EvalConfig(m, tokens=cfg["tokens"], rules=r, **own))
        if "sensitivity" in cfg and m in BLOCKS:
            s = cfg["sensitivity"]
            for b in range(cfg.get("blocks", BLOCKS[m])):
                out.append(EvalConfig(m, weights=s, acts=s, tokens=cfg["tokens"], block=b))
    return out


def _try_point(cfg: EvalConfig, threads: int, device: str) -> dict[str, Any]:
    """:func:`_run_point`, a failure returned as ``{"key", "config", "error"}``."""
    try:
        return _run_point(cfg, threads, device)
    except (ValueError, TypeError, OSError, RuntimeError, ModuleNotFoundError) as exc:
        return {"key": cfg.key(), "config": asdict(cfg),
                "error": f"{type(exc).__name__}: {exc}"}


def failures_path(results: str | Path) -> Path:
    """Where a sweep records the points that failed (beside its results file)."""
    p = Path(results)
    return p.with_name(p.name + ".failed.json")


def read_failures(results: str | Path) -> list[dict[str, Any]]:
    """The failed points a sweep recorded for ``results`` (empty if none)."""
    p = failures_path(results)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [d for d in data if isinstance(d, dict) and "key" in d and "error" in d] \
        if isinstance(data, list) else []


def _run_point(cfg: EvalConfig, threads: int, device: str) -> dict[str, Any]:
    import time

    import torch

    import formats

    from .evaluate import device_name, evaluate, resolve_device

    formats.setup_runtime()  # a fresh worker process: tuned as the CLI's own

    torch.set_num_threads(threads)
    dev = resolve_device(device)  # here: a Dask worker may see other devices than the client
    t0 = time.perf_counter()
    metrics = evaluate(cfg, dev)
    return {"key": cfg.key(), "config": asdict(cfg), "metrics": metrics,
            "seconds": round(time.perf_counter() - t0, 3), "device": device_name(dev)}


#: how long a sweep waits for a Dask scheduler before giving up (nothing is run then)
CONNECT_TIMEOUT = "10s"

_HEADER_KEYS = {"config_hash": str, "config": dict}
_RECORD_KEYS = {"key": str, "config": dict, "metrics": dict, "seconds": (int, float)}


@dataclass
class _Scan:
    header: dict[str, Any] | None
    records: dict[str, Any]
    lines: list[bytes]  # the header and record lines, without newlines
    cut_short: bool  # the last line is an unfinished write (no newline, not JSON)


def _problem(obj: Any, keys: dict[str, Any]) -> str | None:
    if not isinstance(obj, dict):
        return f"a JSON {type(obj).__name__}, not an object"
    for k, t in keys.items():
        if k not in obj:
            return f"no {k!r} field"
        if not isinstance(obj[k], t) or isinstance(obj[k], bool):
            return f"field {k!r} is {type(obj[k]).__name__}"
    return None


def _record_problem(obj: Any) -> str | None:
    why = _problem(obj, _RECORD_KEYS)
    if why is not None:
        return why
    try:
        cfg = EvalConfig(**obj["config"])
    except (TypeError, ValueError) as exc:
        return f"its config is not an evaluation point: {exc}"
    if cfg.key() != obj["key"]:
        return "its key does not match its config"
    m = obj["metrics"]
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in m.values()):
        return "a metric is not a number"
    missing = [k for k in ("bits_weights", "bits_acts") if k not in m and not cfg.rules]
    return f"metrics lack {', '.join(missing)}" if missing else None


def _scan(path: Path) -> _Scan:
    """Read a results file without changing it. Only the last line may be unfinished (a
    write cut short: no newline, not JSON), and only in a file whose first line is a
    numfab header; anything else that is not a header or record is an error."""
    if not path.exists() or path.stat().st_size == 0:
        return _Scan(None, {}, [], False)
    with open(path, "rb") as fh:
        first = fh.readline(1 << 20)
    try:
        head = json.loads(first)
    except ValueError:
        head = None
    if _problem(head, _HEADER_KEYS) is not None:
        raise ValueError(f"{path} is not a numfab results file (its first line is not a "
                         "sweep header); give a new file name or a results file written "
                         "by numfab sweep. The file was not changed")
    segments = path.read_bytes().split(b"\n")
    header: dict[str, Any] = head
    records: dict[str, Any] = {}
    lines = [segments[0]]
    cut_short = False
    for i, raw in enumerate(segments[1:], 2):
        if not raw.strip():
            continue
        last = i == len(segments)
        try:
            obj = json.loads(raw)
        except ValueError:
            if last:
                cut_short = True
                break
            raise ValueError(f"{path}:{i}: not JSON; a results file may only have its last "
                             "line cut short. The file was not changed") from None
        why = _record_problem(obj)
        if why is not None:
            raise ValueError(f"{path}:{i}: not a numfab results record ({why}). "
                             "The file was not changed")
        records[obj["key"]] = obj
        lines.append(raw)
    return _Scan(header, records, lines, cut_short)


def read_results(path: str | Path, want_hash: str | None = None
                 ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(header, {key: record}) of a results file, which is only read; an unfinished last
    line (a killed write) is ignored. A missing or empty file gives (None, {})."""
    p = Path(path)
    if p.exists():
        check_input_file(p, "results file")
    scan = _scan(p)
    if want_hash is not None:
        _same_sweep(p, scan, want_hash)
    return scan.header, scan.records


def _same_sweep(path: Path, scan: _Scan, want_hash: str) -> None:
    if scan.header is not None and scan.header["config_hash"] != want_hash:
        raise ValueError(f"{path} holds results of a different sweep configuration "
                         f"(hash {scan.header['config_hash']}, this one {want_hash}); "
                         "use another results file")


def run_sweep(cfg: dict[str, Any], results: str | Path, *, jobs: int | str = 1,
              scheduler: str | None = None, progress: bool = True,
              on_point: Callable[[dict[str, Any]], None] | None = None,
              device: str = "auto") -> Path:
    """Run the points of ``cfg`` not yet in ``results``, adding each as it finishes.

    The results file is replaced atomically after every point (never half-written), and
    locked for the sweep's duration: a second sweep on the same file is refused. An
    unfinished last line left by an older writer is dropped, but only from a file that is
    recognisably numfab results; any other existing file is refused and left unchanged.

    ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``: see
    :func:`numfab.evaluate.resolve_device`) is where each point runs: checked here for
    local workers, by each Dask worker for itself. It is not part of a point's identity
    (its key): formats round alike on every device, so a sweep may resume on another
    device; each record names the device that computed it (``"device"``).

    ``jobs="auto"``: with ``device`` CUDA, one local worker per visible GPU, each working
    on its own GPU (a worker loads a model once and runs many points); else one worker.
    """
    if jobs != "auto" and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"jobs must be a positive integer or 'auto', not {jobs!r}")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise ValueError(f"scheduler must be a Dask scheduler address such as "
                         f"'tcp://host:8786', not {scheduler!r}")
    device = str(resolve_device(device)) if scheduler is None else check_device(device)
    path = check_output_file(results, "results file")
    h = config_hash(cfg)
    with exclusive_lock(path, "results file"):
        scan = _scan(path)
        _same_sweep(path, scan, h)
        todo = [p for p in points(cfg) if p.key() not in scan.records]
        lines = scan.lines or [json.dumps({"config_hash": h, "config": cfg}).encode()]

        def save() -> None:
            atomic_write(path, b"".join(ln + b"\n" for ln in lines))

        if scan.header is None or scan.cut_short:
            save()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo) + len(scan.records), initial=len(scan.records),
                       unit="point")
        failed: list[dict[str, Any]] = []
        finished = False
        try:
            for rec in _execute(todo, jobs, scheduler, device):
                if bar is not None:
                    bar.update(1)
                if "error" in rec:  # not a result: recorded beside, for the report
                    failed.append(rec)
                    continue
                lines.append(json.dumps(rec).encode())
                save()
                if on_point is not None:
                    on_point(rec)
            finished = True
        finally:
            if bar is not None:
                bar.close()
            fp = failures_path(path)
            if failed:
                atomic_write(fp, json.dumps(failed, indent=1))
            elif finished and fp.exists():
                fp.unlink()  # every point this run tried succeeded
        if failed:
            shown = "\n".join(f"  {f['key']}: {f['error']}" for f in failed[:10])
            raise PointsFailed(f"{len(failed)} point(s) failed (recorded in {fp}; the "
                               f"results file holds the others; rerun to retry):\n{shown}")
    return path


class PointsFailed(ValueError):
    """Some points of a sweep failed; the others are in the results file."""


#: the device a pinned local worker runs its points on (set by _pin in the worker)
_WORKER_DEVICE: list[str] = []


def _pin(devices: Any, init: Callable[[], None] | None) -> None:
    """Worker initializer: take one device off the shared queue for this worker."""
    if init is not None:
        init()
    _WORKER_DEVICE.append(devices.get())


def _pinned_pool(ctx: Any, devices: list[str], init: Callable[[], None] | None,
                 stack: contextlib.ExitStack) -> ProcessPoolExecutor:
    """One spawned worker per entry of ``devices``, each holding its own (``_pin``)."""
    # a plain queue handed to each worker as it starts (no Manager: its server process
    # would first import this program's main module, seconds before a worker could start)
    queue = ctx.Queue()
    stack.callback(queue.close)
    for d in devices:
        queue.put(d)
    return ProcessPoolExecutor(max_workers=len(devices), mp_context=ctx, initializer=_pin,
                               initargs=(queue, init))


def _worker_device() -> str:
    return _WORKER_DEVICE[0]


def _try_pinned(cfg: EvalConfig, threads: int, device: str) -> dict[str, Any]:
    return _try_point(cfg, threads, _WORKER_DEVICE[0] if _WORKER_DEVICE else device)


def _execute(todo: list[EvalConfig], jobs: int | str, scheduler: str | None, device: str
             ) -> Iterator[dict[str, Any]]:
    if not todo:
        return
    if scheduler is not None:
        try:
            from distributed import Client
            from distributed import as_completed as das
        except ImportError:
            raise ModuleNotFoundError("Dask sweeps need dask.distributed: "
                                      "pip install 'dask[distributed]'") from None
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r} ({exc}); "
                             "no point was run, the results file is unchanged") from None
        try:
            # a CUDA sweep holds one GPU per point: the workers declare GPU resources
            # (dask worker --resources GPU=1 per GPU)
            res = {"resources": {"GPU": 1}} if device.startswith("cuda") else {}
            workers = client.scheduler_info().get("workers", {})
            if res and not any(w.get("resources", {}).get("GPU") for w in workers.values()):
                raise ValueError(f"--device {device} on a Dask cluster: no worker of "
                                 f"{scheduler} declares a GPU resource, so no point could "
                                 "run; start each GPU worker with `dask worker ... "
                                 "--resources GPU=1` (one per GPU), or use --device auto")
            futs: Any = [client.submit(_try_point, p, 1, device, pure=False, **res)
                         for p in todo]
            for fut in das(futs):
                yield fut.result()
        finally:
            client.close()
        return
    import multiprocessing

    # spawned workers: a forked child inherits OpenMP pools mid-state and can hang
    ctx = multiprocessing.get_context("spawn")
    # workers drop the known log noise when this process does (the numfab command)
    init = drop_known_noise if dropping() else None
    pinned: list[str] = []
    if jobs == "auto":
        import torch

        # every visible GPU, unless the device names one (cuda:N: that one alone)
        if device == "cuda" and torch.cuda.device_count() > 1:
            pinned = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        jobs = max(1, len(pinned))
    assert isinstance(jobs, int)
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    with contextlib.ExitStack() as stack:
        if pinned:
            pool = _pinned_pool(ctx, pinned, init, stack)
            run: Callable[..., dict[str, Any]] = _try_pinned
        else:
            pool = ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=ctx,
                                       initializer=init)
            run = _try_point
        with pool:
            futs = [pool.submit(run, p, threads, device) for p in todo]
            for fut in as_completed(futs):
                yield fut.result()
