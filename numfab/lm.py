"""Your own language model on your own text: GPTQ-convention perplexity, KL divergence and
top-1 agreement against the unquantized model (an encoder: the cosine of its hidden
states), its reference pass computed once.

- The corpus (:func:`read_corpus`): a text file, a directory of text files (every file
  below it, in sorted path order) or a JSON-lines file (``.jsonl``) with a text field;
  documents are joined by a blank line, as GPTQ joins WikiText-2.
- Windows (:func:`windows`): the whole corpus tokenized once and cut into
  non-overlapping windows of ``seq_len`` tokens (the remainder dropped), the first
  ``n`` evaluated. Calibration (GPTQ, SmoothQuant) takes ``--calib`` text, or else the
  windows after the evaluated ones (disjoint from them).
- Perplexity as GPTQ computes it: per window, the mean negative log-likelihood of its
  tokens 2..seq_len given the ones before; ``exp`` of the mean over windows.
- KL divergence ``KL(reference || quantized)`` per predicted token, averaged: computed
  on the reference's ``top_k`` most likely tokens plus one bucket for the rest (the
  divergence of the distributions coarsened that way, a lower bound of the exact one by
  the data-processing inequality; exact when ``top_k`` covers the vocabulary, as it does
  for vocabularies up to :data:`TOP_K`). Top-1 agreement: the fraction of positions whose
  most likely token is the reference's.
- The reference (per window: its mean NLL, top-k log-probabilities and token ids, and
  argmax) is computed once per (model content, corpus content, seq_len, windows, dtype,
  device kind) and cached on disk under ``$NUMFAB_CACHE/reference`` (keyed by content
  hashes: a changed checkpoint or corpus gets a fresh reference), in shards that a
  sweep's workers compute side by side. :data:`PASSES` counts the windows of reference
  this process computed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ._io import atomic_write
from .models import Loaded, cache_dir

__all__ = ["PASSES", "TOP_K", "content_hash", "read_corpus", "reference", "score",
           "score_hidden", "windows"]

#: the reference's top-k tokens the KL divergence is computed on (the rest as one bucket)
TOP_K = 256
#: windows of reference pass computed in this process (not loaded from the cache)
PASSES = [0]
_VERSION = "2"  # of the cached reference's layout


def _unreadable(what: str, p: Path, exc: OSError) -> ValueError:
    return ValueError(f"{what} {str(p)!r}: cannot read it ({exc.strerror or exc})")


def _read_text(p: Path, what: str) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {str(p)!r} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise _unreadable(what, p, exc) from None


def _read_jsonl(p: Path, field: str, what: str) -> list[str]:
    out: list[str] = []
    for i, line in enumerate(_read_text(p, what).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{what} {str(p)!r} line {i}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or field not in obj:
            keys = ", ".join(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
            raise ValueError(f"{what} {str(p)!r} line {i}: no text field {field!r} "
                             f"(--text-field; the line has: {keys})")
        if not isinstance(obj[field], str):
            raise ValueError(f"{what} {str(p)!r} line {i}: field {field!r} is "
                             f"{type(obj[field]).__name__}, not text")
        out.append(obj[field])
    return out


def read_corpus(data: str | Path, text_field: str = "text", what: str = "--data") -> str:
    """The text of ``data`` (see the module docstring); errors name ``what``."""
    p = Path(data).expanduser()
    if not p.exists():
        raise ValueError(f"{what} {str(data)!r}: no such file or directory")
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file()
                       and not any(part.startswith(".") for part in f.relative_to(p).parts))
        if not files:
            raise ValueError(f"{what} {str(data)!r}: the directory holds no files")
    else:
        files = [p]
    docs: list[str] = []
    for f in files:
        if f.suffix.lower() == ".jsonl":
            docs += _read_jsonl(f, text_field, what)
        else:
            docs.append(_read_text(f, what))
    text = "\n\n".join(d for d in docs if d)
    if not text.strip():
        raise ValueError(f"{what} {str(data)!r}: no text")
    return text


def tokenize(tok: Any, text: str) -> torch.Tensor:
    """The token ids of ``text`` (1-D int64), as the model's tokenizer gives them (with
    its own start token, if it adds one, once at the start)."""
    ids = tok(text, return_tensors="pt", add_special_tokens=True).input_ids[0]
    return ids.to(torch.int64)


def windows(ids: torch.Tensor, seq_len: int, n: int | None, what: str = "--data",
            skip: int = 0) -> torch.Tensor:
    """Non-overlapping windows of ``seq_len`` tokens of ``ids``, ``skip`` windows skipped,
    then the next ``n`` (None: all the rest): an (n, seq_len) tensor."""
    have = ids.numel() // seq_len - skip
    if have < 1:
        raise ValueError(f"{what}: {ids.numel()} tokens" + (f" ({skip} windows used for "
                         "evaluation)" if skip else "") + f", fewer than one window of "
                         f"--seq-len {seq_len}; give more text or a shorter --seq-len")
    n = have if n is None else n
    if n > have:
        raise ValueError(f"--windows {n}: {what} has {have} windows of {seq_len} tokens"
                         + (f" after the {skip} evaluated" if skip else ""))
    return ids[skip * seq_len:(skip + n) * seq_len].reshape(n, seq_len)


# --- content hashes -----------------------------------------------------------------------
def _file_hash(p: Path) -> str:
    """sha256 of a file's bytes, remembered by (path, size, mtime) in the cache."""
    st = p.stat()
    memo = cache_dir() / "hashes.json"
    key = f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return str(known[key])
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            h.update(chunk)
    known[key] = h.hexdigest()
    atomic_write(memo, json.dumps(known))
    return h.hexdigest()


def content_hash(path: str | Path) -> str:
    """A hash of a model's content: every file of a checkpoint directory (names and
    bytes), or the one GGUF file."""
    p = Path(path).expanduser()
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(p) if f != p else f.name).encode())
        h.update(_file_hash(f).encode())
    return h.hexdigest()


# --- the reference and the scores ---------------------------------------------------------
def _logprobs(model: torch.nn.Module, win: torch.Tensor) -> torch.Tensor:
    """float32 log-probabilities of the next token at positions 0..seq_len-2 of one
    window (1, seq_len) on the model's device."""
    with torch.no_grad():
        logits = model(win).logits[0, :-1]
    return torch.log_softmax(logits.float(), dim=-1)


def _nll(logp: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    return -logp.gather(1, win[0, 1:, None]).mean()


#: windows per shard of a cached reference: a sweep's workers compute different shards
#: of one reference side by side (each takes a shard no other worker holds)
SHARD = 8


def reference(loaded: Loaded, wins: torch.Tensor, device: torch.device, key: str | None
              ) -> dict[str, torch.Tensor]:
    """The unquantized model's per-window mean NLL, top-k log-probabilities and ids, and
    argmax (an encoder: its last hidden states; CPU tensors), from the disk cache under
    ``key`` where it is there (None: no cache).

    The cache holds it in shards of :data:`SHARD` windows, each behind its own file lock:
    a process computes the shards no other process holds, then waits for the others'
    (so a sweep's workers share one reference pass, none computes a window twice)."""
    compute = _reference if loaded.kind == "causal-lm" else _reference_hidden
    if key is None:
        return compute(loaded, wins, device)
    d = cache_dir() / "reference" / key / f"shard{SHARD}"  # a shard size, its own files
    d.mkdir(parents=True, exist_ok=True)
    n = wins.shape[0]
    bounds = [(a, min(a + SHARD, n)) for a in range(0, n, SHARD)]
    shards: dict[int, dict[str, torch.Tensor]] = {}
    wait = False  # first pass: skip shards another process holds; then wait for them
    while len(shards) < len(bounds):
        for i, (a, b) in enumerate(bounds):
            if i in shards:
                continue
            path = d / f"{i:05d}.pt"
            with open(path.with_suffix(".lock"), "w") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:
                    continue  # another process computes it: take the next one
                try:
                    got = _load_cached(path)
                    if got is None:
                        got = compute(loaded, wins[a:b], device)
                        _save(path, got)
                    shards[i] = got
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        wait = True
    parts = [shards[i] for i in range(len(bounds))]
    return {k: parts[0][k] if parts[0][k].dim() == 0 else torch.cat([p[k] for p in parts])
            for k in parts[0]}


def _save(path: Path, shard: dict[str, torch.Tensor]) -> None:
    atomic_write(path, lambda fh: torch.save(shard, fh))


def _load_cached(path: Path) -> dict[str, torch.Tensor] | None:
    """A cached reference shard, or None where there is none or it is damaged
    (recomputed)."""
    if not path.exists():
        return None
    try:
        return dict(torch.load(path, weights_only=True))
    except Exception:  # noqa: BLE001 - any damage means: compute it again
        return None


def _reference(loaded: Loaded, wins: torch.Tensor, device: torch.device
               ) -> dict[str, torch.Tensor]:
    PASSES[0] += wins.shape[0]
    model = loaded.model
    vocab = None
    nll, topv, topi, arg = [], [], [], []
    for w in wins:
        win = w[None].to(device)
        logp = _logprobs(model, win)
        vocab = logp.shape[-1]
        k = min(TOP_K, vocab)
        v, i = logp.topk(k, dim=-1)
        nll.append(_nll(logp, win).cpu())
        topv.append(v.cpu())
        topi.append(i.to(torch.int32).cpu())
        arg.append(logp.argmax(-1).to(torch.int32).cpu())
    return {"nll": torch.stack(nll), "top_logp": torch.stack(topv),
            "top_ids": torch.stack(topi), "argmax": torch.stack(arg),
            "vocab": torch.tensor(vocab)}


def _kl_topk(ref_v: torch.Tensor, ref_i: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """Per position: KL(p || q) of the distributions coarsened to the reference's top-k
    tokens plus one bucket for the rest (exact where the top-k is the vocabulary)."""
    q_v = logp.gather(1, ref_i.to(torch.int64))
    p = ref_v.exp()
    head = (p * (ref_v - q_v)).sum(-1)
    if ref_i.shape[-1] == logp.shape[-1]:
        return head  # the whole vocabulary: no bucket (its mass is rounding only)
    # the rest's mass 1 - sum(top-k) in float64 from the log-sum-exp (no cancellation)
    p_rest = (-torch.expm1(torch.logsumexp(ref_v.double(), -1))).clamp_min(0.0)
    q_rest = (-torch.expm1(torch.logsumexp(q_v.double(), -1))).clamp_min(1e-300)
    tail = torch.where(p_rest > 0, p_rest * (p_rest.log() - q_rest.log()),
                       torch.zeros_like(p_rest))
    return head + tail.to(head.dtype)


def score(model: torch.nn.Module, wins: torch.Tensor, ref: dict[str, torch.Tensor],
          device: torch.device) -> dict[str, Any]:
    """Perplexity (GPTQ's convention), KL divergence and top-1 agreement of ``model`` on
    ``wins`` against the reference ``ref``."""
    nll, kl, agree = [], [], []
    t0 = time.perf_counter()
    for j, w in enumerate(wins):
        win = w[None].to(device)
        logp = _logprobs(model, win)
        nll.append(float(_nll(logp, win)))
        kl.append(_kl_topk(ref["top_logp"][j].to(device), ref["top_ids"][j].to(device),
                           logp).mean().item())
        agree.append(float((logp.argmax(-1).cpu() == ref["argmax"][j]).float().mean()))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    sec = time.perf_counter() - t0
    n = len(nll)
    vocab = int(ref["vocab"])
    return {"perplexity": float(torch.tensor(nll, dtype=torch.float64).mean().exp()),
            "reference_perplexity": float(ref["nll"].double().mean().exp()),
            # KL over the reference's top kl_top_k tokens: exact where it is the vocab
            "kl": sum(kl) / n, "kl_top_k": min(TOP_K, vocab), "vocab": vocab,
            "top1_agreement": sum(agree) / n, "windows": n, "seq_len": int(wins.shape[1]),
            "tokens_per_s": n * int(wins.shape[1]) / sec if sec > 0 else float("inf")}


def iter_windows(wins: torch.Tensor, device: torch.device) -> Iterator[torch.Tensor]:
    """Each window as a (1, seq_len) batch on ``device`` (calibration batches)."""
    for w in wins:
        yield w[None].to(device)


# --- encoders: the last hidden states ------------------------------------------------------
def _hidden(model: torch.nn.Module, win: torch.Tensor) -> torch.Tensor:
    """float32 last hidden states (seq_len, hidden) of one window (1, seq_len)."""
    with torch.no_grad():
        return model(input_ids=win).last_hidden_state[0].float()


def _reference_hidden(loaded: Loaded, wins: torch.Tensor, device: torch.device
                      ) -> dict[str, torch.Tensor]:
    PASSES[0] += wins.shape[0]
    return {"hidden": torch.stack([_hidden(loaded.model, w[None].to(device)).cpu()
                                   for w in wins])}


def score_hidden(model: torch.nn.Module, wins: torch.Tensor, ref: dict[str, torch.Tensor],
                 device: torch.device) -> dict[str, Any]:
    """An encoder against its reference: the mean cosine of each token's last hidden
    state (``cosine``) and of each window's mean-pooled embedding
    (``embedding_cosine``)."""
    cos, emb = [], []
    t0 = time.perf_counter()
    for j, w in enumerate(wins):
        h = _hidden(model, w[None].to(device))
        r = ref["hidden"][j].to(device)
        cos.append(float(torch.nn.functional.cosine_similarity(h, r, dim=-1).mean()))
        emb.append(float(torch.nn.functional.cosine_similarity(h.mean(0), r.mean(0), dim=0)))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    sec = time.perf_counter() - t0
    n = len(cos)
    return {"cosine": sum(cos) / n, "embedding_cosine": sum(emb) / n, "windows": n,
            "seq_len": int(wins.shape[1]),
            "tokens_per_s": n * int(wins.shape[1]) / sec if sec > 0 else float("inf")}


def reference_key(model_hash: str, text: str, seq_len: int, n: int, dtype: str,
                  device: torch.device) -> str:
    """The cache key of a reference pass (see the module docstring)."""
    h = hashlib.sha256()
    for part in (_VERSION, model_hash, hashlib.sha256(text.encode()).hexdigest(),
                 str(seq_len), str(n), dtype, device.type, str(TOP_K),
                 os.environ.get("NUMFAB_REFERENCE_SALT", "")):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()
