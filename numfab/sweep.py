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

import hashlib
import itertools
import json
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .evaluate import EvalConfig, check_format
from .models import MODELS

__all__ = ["load_sweep", "points", "run_sweep"]

_KEYS = {"models": list, "formats": list, "quantize": list, "hadamard": list, "gptq": list,
         "tokens": int, "sensitivity": str, "blocks": int}
_BLOCKS = {"smollm2": 30, "minilm": 6}


def _line_of(text: str, key: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            return i
    return 0


def load_sweep(path: str | Path) -> dict[str, Any]:
    """Read and validate a sweep file; errors name the line and key."""
    import tomllib

    p = Path(path)
    text = p.read_text()
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
        if not cfg.get(k):
            raise bad(k, "is required and must not be empty") if k in cfg else \
                ValueError(f"{p}: key {k!r} is required")
    for m in cfg["models"]:
        if m not in MODELS:
            raise bad("models", f"unknown model {m!r}; models: {', '.join(MODELS)}")
    for f in cfg["formats"]:
        try:
            check_format(f)
        except ValueError as exc:
            raise bad("formats", str(exc)) from None
    q = cfg.setdefault("quantize", ["weights", "acts"])
    if not q or any(x not in ("weights", "acts", "kv") for x in q):
        raise bad("quantize", "must list some of weights, acts, kv")
    for k in ("hadamard", "gptq"):
        vals = cfg.setdefault(k, [False])
        if not vals or any(not isinstance(v, bool) for v in vals):
            raise bad(k, "must be a list of true/false")
    cfg.setdefault("tokens", 512)
    if cfg["tokens"] < 16:
        raise bad("tokens", "must be >= 16")
    if "sensitivity" in cfg:
        try:
            check_format(cfg["sensitivity"])
        except ValueError as exc:
            raise bad("sensitivity", str(exc)) from None
    return cfg


def config_hash(cfg: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]


def points(cfg: dict[str, Any]) -> list[EvalConfig]:
    """The sweep's points, in a fixed order: the unquantized reference of each model,
    then the grid, then (with ``sensitivity``) each transformer block alone."""
    out: list[EvalConfig] = []
    q = cfg["quantize"]
    for m in cfg["models"]:
        out.append(EvalConfig(m, tokens=cfg["tokens"]))
        for f, had, gq in itertools.product(cfg["formats"], cfg["hadamard"], cfg["gptq"]):
            if (had or gq) and m == "digits":
                continue  # the CNN's convolutions take neither
            if gq and "weights" not in q:
                continue
            out.append(EvalConfig(m, weights=f if "weights" in q else None,
                                  acts=f if "acts" in q else None,
                                  kv=f if "kv" in q and m != "digits" else None,
                                  hadamard=had, gptq=gq, tokens=cfg["tokens"]))
        if "sensitivity" in cfg and m in _BLOCKS:
            s = cfg["sensitivity"]
            for b in range(cfg.get("blocks", _BLOCKS[m])):
                out.append(EvalConfig(m, weights=s, acts=s, tokens=cfg["tokens"], block=b))
    return out


def _run_point(cfg: EvalConfig, threads: int) -> dict[str, Any]:
    import time

    import torch

    from .evaluate import evaluate

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    metrics = evaluate(cfg)
    return {"key": cfg.key(), "config": asdict(cfg), "metrics": metrics,
            "seconds": round(time.perf_counter() - t0, 3)}


def read_results(path: Path, want_hash: str | None = None) -> tuple[dict[str, Any] | None,
                                                                   dict[str, Any]]:
    """(header, {key: record}) of a results file; a truncated last line (a killed
    write) is dropped from the file."""
    if not path.exists() or path.stat().st_size == 0:
        return None, {}
    lines = path.read_bytes().split(b"\n")
    good: list[bytes] = []
    recs: dict[str, Any] = {}
    header = None
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            if i >= len(lines) - 2:  # the last line, cut short by a kill
                break
            raise ValueError(f"{path}:{i + 1}: not a results line") from None
        good.append(raw)
        if header is None:
            header = obj
        else:
            recs[obj["key"]] = obj
    data = b"".join(g + b"\n" for g in good)
    if data != path.read_bytes():
        path.write_bytes(data)
    if header is None or "config_hash" not in header:
        raise ValueError(f"{path} is not a numfab results file")
    if want_hash is not None and header["config_hash"] != want_hash:
        raise ValueError(f"{path} holds results of a different sweep configuration "
                         f"(hash {header['config_hash']}, this one {want_hash}); "
                         "use another results file")
    return header, recs


def run_sweep(cfg: dict[str, Any], results: str | Path, *, jobs: int = 1,
              scheduler: str | None = None, progress: bool = True,
              on_point: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Run the points of ``cfg`` not yet in ``results``, appending each as it finishes."""
    path = Path(results)
    h = config_hash(cfg)
    header, done = read_results(path, h)
    todo = [p for p in points(cfg) if p.key() not in done]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        if header is None:
            fh.write(json.dumps({"config_hash": h, "config": cfg}) + "\n")
            fh.flush()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo) + len(done), initial=len(done), unit="point")
        for rec in _execute(todo, jobs, scheduler):
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            if on_point is not None:
                on_point(rec)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    return path


def _execute(todo: list[EvalConfig], jobs: int, scheduler: str | None
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
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r} ({exc}); "
                             "no point was run, the results file is unchanged") from None
        try:
            futs: Any = [client.submit(_run_point, p, 1, pure=False) for p in todo]
            for fut in das(futs):
                yield fut.result()
        finally:
            client.close()
        return
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    # spawned workers: a forked child inherits OpenMP pools mid-state and can hang
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=ctx) as pool:
        futs = [pool.submit(_run_point, p, threads) for p in todo]
        for fut in as_completed(futs):
            yield fut.result()
