"""Accuracy of a bundled model in chosen formats, against the unquantized model.

- smollm2: perplexity on a fixed slice of Python's ``pydoc_data.topics`` text (its
  topics in sorted order, the first ``tokens`` tokens), KL divergence
  ``KL(reference || quantized)`` of the next-token distributions and top-1 agreement.
- minilm: embeddings (mean-pooled, normalised) of sentences from the same text: mean
  cosine to the reference embeddings and retrieval@1 agreement (each sentence's nearest
  other sentence is the same as the reference model's).
- digits: test accuracy of the CNN (and the reference accuracy).

Formats apply to every Linear layer of the transformer blocks (the LM head and
embeddings stay float32, as usual) or every layer of the CNN; ``kv`` to the attention
modules' keys and values. Block formats scale per block; integers per output channel
(weights) and per token (activations); FP8-and-narrower minifloats per output channel
(weights) and per tensor (activations); bf16/fp16 are plain casts. The quantized layers
run as fake quantization: operands rounded to their formats, then torch's float32 matmul
(:attr:`EvalConfig.datapath` states that arithmetic as a :class:`simulator.Datapath`).

:func:`evaluate` runs on the device :func:`resolve_device` picks (``--device``): a
point's identity, and its quantization, do not depend on it; the models' own float
arithmetic differs by rounding between devices.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import formats

from ._args import check_device
from .models import BLOCKS, check_dtype, check_model, digits_data, is_bundled, load

__all__ = ["ACCUMULATOR", "EvalConfig", "device_name", "evaluate", "format_bits", "max_tokens",
           "resolve_device", "text"]

#: the accumulator of every evaluation, as :class:`simulator.Accumulator` text: fake
#: quantization runs each quantized layer as torch's float32 matmul, whose products of
#: the rounded operands enter float32 sums rounded to nearest-even
ACCUMULATOR = "float32"


def max_tokens() -> int:
    """An upper bound on ``tokens``: the evaluation text has fewer tokens than characters
    (the exact count needs the tokenizer; a count between the two is refused when run)."""
    return len(text())


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation point."""

    model: str = "smollm2"
    weights: str | None = None
    acts: str | None = None
    kv: str | None = None
    hadamard: bool = False
    gptq: bool = False
    tokens: int = 1024
    block: int | None = None  # quantize only this transformer block (sensitivity)
    # your own model and text (numfab.lm): a corpus, its windows, the model's dtype, a
    # rules file (layer patterns -> LayerSpec fields, as simulate() takes), calibration text
    data: str | None = None
    text_field: str = "text"
    seq_len: int | None = None
    windows: int | None = None
    dtype: str = "float32"
    rules: str | None = None
    calib: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str):
            check_model(self.model)
        looks_like_path = ("/" in self.model or os.sep in self.model
                           or self.model.lower().endswith(".gguf") or self.model in (".", ".."))
        if not looks_like_path:
            check_model(self.model)  # a bundled name (errors suggest close names), or a
            # path given without a separator that exists here; paths are read when used
        check_dtype(self.dtype)
        # (paths are read where they are used: a results file names them, and a report
        # of it may be written where they do not exist)
        for field in ("data", "rules", "calib"):
            v = getattr(self, field)
            if v is not None and (not isinstance(v, str) or not v):
                raise ValueError(f"{field} must be a path (str), not {v!r}")
        if not isinstance(self.text_field, str) or not self.text_field:
            raise ValueError(f"text_field must be a field name, not {self.text_field!r}")
        for field, lo in (("seq_len", 2), ("windows", 1)):
            v = getattr(self, field)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
                raise ValueError(f"{field} must be an integer >= {lo}, not {v!r}")
        if is_bundled(self.model) and self.model != "smollm2" and own(self):
            raise ValueError(f"data, seq_len, windows, dtype, rules and calib evaluate "
                             f"causal language models: smollm2 or your own, not "
                             f"{self.model}")
        if self.block is not None and own(self):
            raise ValueError("block (a per-block sensitivity point) applies to the bundled "
                             "evaluation; with data, seq_len, windows, dtype, rules or calib "
                             "use a rules file naming the block's layers")
        if self.rules is not None and any(getattr(self, f) for f in
                                          ("weights", "acts", "kv", "hadamard", "gptq")):
            raise ValueError("rules (a rules file) says which layers get which formats: "
                             "leave weights, acts, kv, hadamard and gptq unset with it")
        for field in ("weights", "acts", "kv"):
            v = getattr(self, field)
            if v is not None:
                check_format(v, field)
        for field in ("hadamard", "gptq"):
            if not isinstance(getattr(self, field), bool):
                raise TypeError(f"{field} must be True or False, not "
                                f"{getattr(self, field)!r}")
        if isinstance(self.tokens, bool) or not isinstance(self.tokens, int) \
                or not 16 <= self.tokens <= max_tokens():
            raise ValueError(f"tokens must be an integer between 16 and {max_tokens()}, "
                             f"not {self.tokens!r}")
        if self.block is not None:
            n = BLOCKS.get(self.model, 0)
            if not n:
                raise ValueError(f"block: model {self.model} has no transformer blocks; "
                                 f"block applies to {', '.join(BLOCKS)}")
            if isinstance(self.block, bool) or not isinstance(self.block, int) \
                    or not 0 <= self.block < n:
                raise ValueError(f"block must be an integer from 0 to {n - 1} ({self.model} "
                                 f"has {n} transformer blocks), not {self.block!r}")
        if self.model == "digits":
            used = [f for f in ("kv", "hadamard", "gptq") if getattr(self, f)]
            if used:
                raise ValueError(f"{', '.join(used)}: model digits (a CNN) has no KV cache "
                                 "and takes no Hadamard rotation or GPTQ; they apply to "
                                 f"{', '.join(BLOCKS)}")
        if self.gptq and self.weights is None:
            raise ValueError("gptq needs a weight format (weights)")

    def key(self) -> str:
        """The point's identity in a results file: every field, but the your-own-model
        fields only where they differ from their defaults (so keys written before those
        fields existed still match their configs)."""
        return "|".join(f"{k}={v}" for k, v in asdict(self).items()
                        if k not in _OWN_DEFAULTS or v != _OWN_DEFAULTS[k])

    @property
    def datapath(self) -> Any:
        """The arithmetic of this point's quantized layers, as a :class:`simulator.Datapath`
        (what ``numfab report --pareto`` prices): A is the activation format, B the weight
        format (``float32`` where ``acts`` or ``weights`` is None: the layer's float32
        tensor as it is), summed by :data:`ACCUMULATOR` one product per step (``k=1``:
        fake quantization adds in float32 in torch's own order, which no PE models beyond
        that). Per-token and per-channel scales of scalar formats are factors outside the
        datapath (hardware applies them to the sums), and so is ``kv``: the attention
        products of a quantized KV cache are another GEMM.

        Raises
        ------
        ValueError
            ``acts`` and ``weights`` form no datapath (e.g. blocks of different sizes
            along K, or 2-D weight tiles); the message names both fields.
        """
        from simulator import Datapath

        a, b = self.acts or "float32", self.weights or "float32"
        try:
            return Datapath(a, b, ACCUMULATOR)
        except ValueError as exc:
            raise ValueError(f"acts={a} (A) x weights={b} (B) form no datapath: "
                             f"{exc}") from None


def resolve_device(device: str | torch.device, what: str = "device") -> torch.device:
    """The torch device ``device`` names: ``"cpu"``, ``"cuda"`` (or ``"cuda:N"``), or
    ``"auto"``: CUDA where torch sees a CUDA device, else the CPU. The device changes
    results only by float rounding: formats quantize bit for bit alike on both, while the
    models' own float arithmetic (matrix products) sums in each device library's order.

    Raises
    ------
    ValueError
        an unknown device, or CUDA where torch sees none (the message names ``what``,
        e.g. ``--device``, and how to get a CUDA build of torch)
    ModuleNotFoundError
        CUDA without Triton, which formats' GPU kernels need
    """
    name = check_device(str(device) if isinstance(device, torch.device) else device, what)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else \
            f"built for CUDA {torch.version.cuda}: check the driver and CUDA_VISIBLE_DEVICES"
        raise ValueError(f"{what} {name}: no CUDA device is visible to torch "
                         f"{torch.__version__} ({build}); install a CUDA build of torch "
                         "(the pip command for your CUDA version is on "
                         f"https://pytorch.org/get-started/locally/) or use {what} cpu")
    dev = torch.device(name)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"{what} {name}: torch sees {torch.cuda.device_count()} CUDA "
                         f"device(s), numbered from 0")
    if importlib.util.find_spec("triton") is None:
        raise ModuleNotFoundError(f"{what} {name}: formats' GPU kernels need Triton: pip "
                                  "install 'numfab[gpu]'")
    return dev


def device_name(device: torch.device) -> str:
    """``device`` as results record it: ``cpu``, or ``cuda:N (the card's name)``."""
    if device.type != "cuda":
        return str(device)
    i = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{i} ({torch.cuda.get_device_name(i)})"


def check_format(name: str, what: str = "format") -> Any:
    """Parse a format name (errors name ``what``; parse suggests close names)."""
    return formats.parse(name, parameter=what)


def format_bits(name: str | None) -> float:
    """Bits per element of a format (block formats include their scales), 32 for None."""
    if name is None:
        return 32.0
    f = formats.parse(name)
    bpe = getattr(f, "bits_per_element", None)
    if bpe is not None:
        return float(bpe)
    return float(f.bits)


@functools.lru_cache(maxsize=1)
def text() -> str:
    """The evaluation text: Python's pydoc topics, sorted by name, joined."""
    import pydoc_data.topics as topics

    return "\n\n".join(topics.topics[k] for k in sorted(topics.topics))


@functools.lru_cache(maxsize=4)
def _lm_ids(n: int, calib: bool = False) -> torch.Tensor:
    tok = load("smollm2").tokenizer
    t = text()
    chunk = t[-n * 8:] if calib else t[: n * 8]
    ids = tok(chunk, return_tensors="pt").input_ids
    if ids.shape[1] < n:
        raise ValueError(f"tokens={n} exceeds the evaluation text")
    return ids[:, -n:] if calib else ids[:, :n]


@functools.lru_cache(maxsize=2)
def _lm_reference(n: int, device: torch.device) -> tuple[torch.Tensor, float]:
    m = load("smollm2").model.to(device)
    ids = _lm_ids(n).to(device)
    with torch.no_grad():
        logp = torch.log_softmax(m(ids).logits[0, :-1].float(), dim=-1)
    nll = -logp.gather(1, ids[0, 1:, None]).mean()
    return logp, float(nll.exp())


def _sentences(k: int = 64) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+", text())
    good = [" ".join(p.split()) for p in parts if 40 <= len(p) <= 200 and p[0].isalpha()]
    return good[:k]


def _only_block(cfg: EvalConfig, pattern: str) -> str:
    return pattern.replace(r"\d+", str(cfg.block), 1) if cfg.block is not None else pattern


def _hadamard_block(fmt_name: str | None, ks: list[int]) -> int:
    f = formats.parse(fmt_name) if fmt_name else None
    b = f.block_size if isinstance(f, formats.BlockScaled) and isinstance(f.block_size, int) \
        else 64
    b = 1 << (int(b).bit_length() - 1)
    while b > 1 and any(k % b for k in ks):
        b //= 2
    return b


def format_spec(weights: str | None, acts: str | None) -> dict[str, Any]:
    """The LayerSpec fields of weights / activations in these formats, scaled as the
    evaluations scale them: scalar minifloats of <= 8 bits as FP8 inference does, per
    output channel for weights and per tensor for activations (a plain cast would
    overflow: SmolLM2's activations exceed E4M3's 448); wider ones (bf16, fp16) are
    cast; block and integer formats scale as their formats say."""
    spec: dict[str, Any] = {"weight": weights, "act": acts}
    for key, gran, name in (("granularity", "channel", weights),
                            ("act_granularity", "tensor", acts)):
        f = formats.parse(name) if name else None
        if isinstance(f, formats.Minifloat) and f.bits <= 8:
            spec[key] = gran
    return spec


def _spec(cfg: EvalConfig, model: torch.nn.Module, pattern: str) -> dict[str, Any]:
    from simulator.torch import LayerSpec

    pattern = _only_block(cfg, pattern)

    spec = format_spec(cfg.weights, cfg.acts)
    if cfg.hadamard:
        ks = [m.in_features for n, m in model.named_modules()
              if isinstance(m, torch.nn.Linear) and re.fullmatch(pattern, n)]
        spec.update(hadamard="block",
                    hadamard_block=_hadamard_block(cfg.weights or cfg.acts, ks))
    if cfg.gptq:
        spec.update(gptq=True)
    return {"re:" + pattern: LayerSpec(**spec)}


def evaluate(cfg: EvalConfig, device: str | torch.device = "auto") -> dict[str, Any]:
    """Metrics of ``cfg`` against the unquantized model (see the module docstring), the
    model and its inputs on ``device`` (see :func:`resolve_device`; the bundled models
    move there)."""
    from simulator.torch import LayerSpec, simulate

    dev = resolve_device(device)
    if own(cfg):
        return evaluate_own(cfg, dev)
    loaded = load(cfg.model)
    model = loaded.model.to(dev)
    res: dict[str, Any] = {"bits_weights": format_bits(cfg.weights),
                           "bits_acts": format_bits(cfg.acts)}
    if cfg.model == "smollm2":
        rules = _spec(cfg, model, r"model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj")
        if cfg.kv:
            rules["re:" + _only_block(cfg, r"model\.layers\.\d+\.self_attn")] = \
                LayerSpec(kv=cfg.kv)
        ref_logp, ref_ppl = _lm_reference(cfg.tokens, dev)
        ids = _lm_ids(cfg.tokens).to(dev)
        any_fmt = cfg.weights or cfg.acts or cfg.kv or cfg.hadamard
        sim = simulate(model, rules) if any_fmt else None
        try:
            if sim is not None and cfg.gptq:
                sim.calibrate([_lm_ids(min(cfg.tokens, 512), calib=True).to(dev)])
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
        finally:
            if sim is not None:
                sim.restore()
        nll = -logp.gather(1, ids[0, 1:, None]).mean()
        kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1).mean()
        top1 = (ref_logp.argmax(-1) == logp.argmax(-1)).float().mean()
        res.update(perplexity=float(nll.exp()), reference_perplexity=ref_ppl,
                   kl=float(kl), top1_agreement=float(top1))
    elif cfg.model == "minilm":
        rules = _spec(cfg, model, r"encoder\.layer\.\d+\.(attention\.self\.(query|key|value)"
                                  r"|attention\.output\.dense|intermediate\.dense"
                                  r"|output\.dense)")
        if cfg.kv:
            rules["re:" + _only_block(cfg, r"encoder\.layer\.\d+\.attention\.self")] = \
                LayerSpec(kv=cfg.kv)
        sents = _sentences()
        ref = _embed(sents, dev)
        with simulate(model, rules):
            q = _embed(sents, dev)
        cos = (ref * q).sum(-1).mean()
        nn_ref = _nearest(ref)
        nn_q = _nearest(q)
        res.update(cosine=float(cos), retrieval_agreement=float((nn_ref == nn_q).float()
                                                                  .mean()))
    else:
        _, _, xte, yte = digits_data()
        xte, yte = xte.to(dev), yte.to(dev)
        with torch.no_grad():
            ref_acc = (model(xte).argmax(-1) == yte).float().mean()
            rules = {"*": LayerSpec(weight=cfg.weights, act=cfg.acts)}
            with simulate(model, rules) as m:
                acc = (m(xte).argmax(-1) == yte).float().mean()
        res.update(accuracy=float(acc), reference_accuracy=float(ref_acc))
    return res


def _embed(sents: list[str], device: torch.device) -> torch.Tensor:
    loaded = load("minilm")
    enc = loaded.tokenizer(sents, padding=True, truncation=True, max_length=128,
                           return_tensors="pt").to(device)
    with torch.no_grad():
        h = loaded.model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    e = (h * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(e, dim=-1)


def _nearest(e: torch.Tensor) -> torch.Tensor:
    s = e @ e.T
    s.fill_diagonal_(-math.inf)
    return s.argmax(-1)


#: the your-own-model fields of EvalConfig and their defaults
_OWN_DEFAULTS = {"data": None, "text_field": "text", "seq_len": None, "windows": None,
                 "dtype": "float32", "rules": None, "calib": None}


def own(cfg: EvalConfig) -> bool:
    """Whether ``cfg`` evaluates through :mod:`numfab.lm` (a model path, a corpus, a
    rules file, a dtype or windows of its own) rather than the bundled evaluations."""
    return (not is_bundled(cfg.model) or cfg.data is not None or cfg.rules is not None
            or cfg.seq_len is not None or cfg.windows is not None or cfg.dtype != "float32"
            or cfg.calib is not None)


def load_rules(path: str) -> list[tuple[str, dict[str, Any]]]:
    """A rules file: TOML (``["model.layers.*.mlp.*"]`` tables of LayerSpec fields) or JSON
    (an object of such objects), in file order; each rule checked as a LayerSpec."""
    import json

    import tomllib

    from simulator.torch import LayerSpec

    p = Path(path).expanduser()
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ValueError(f"rules file {path!r}: cannot read it ({exc.strerror})") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(raw.decode("utf-8"))
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"rules file {path!r}: not valid "
                         f"{'JSON' if p.suffix.lower() == '.json' else 'TOML'}: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"rules file {path!r}: needs at least one rule, a layer pattern "
                         "with a table of LayerSpec fields")
    out = []
    for pattern, spec in data.items():
        if not isinstance(spec, dict):
            raise ValueError(f"rules file {path!r}: rule {pattern!r} must be a table of "
                             f"LayerSpec fields, not {type(spec).__name__}")
        try:
            LayerSpec(**spec)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"rules file {path!r}: rule {pattern!r}: {exc}") from None
        out.append((pattern, spec))
    return out


def _default_rules(cfg: EvalConfig, model: torch.nn.Module) -> dict[str, Any]:
    """weights/acts/kv/hadamard/gptq on every Linear layer but the output head (and kv on
    every attention module), scaled as the bundled evaluations scale them."""
    from simulator.torch import LayerSpec
    from simulator.torch.layers import kv_children

    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    names = [n for n, m in model.named_modules()
             if isinstance(m, torch.nn.Linear) and m is not head]
    rules: dict[str, Any] = {}
    if (cfg.weights or cfg.acts or cfg.hadamard) and names:
        rules = _spec(dataclasses.replace(cfg, block=None), model,
                      "(" + "|".join(re.escape(n) for n in names) + ")")
    if cfg.kv:
        att = [n for n, m in model.named_modules() if n and kv_children(m) is not None]
        if not att:
            raise ValueError(f"kv={cfg.kv}: model {cfg.model} has no attention module with "
                             "k_proj/v_proj (or key/value) projections")
        rules["re:(" + "|".join(re.escape(n) for n in att) + ")"] = LayerSpec(kv=cfg.kv)
    return rules


def evaluate_own(cfg: EvalConfig, dev: torch.device) -> dict[str, Any]:
    """A causal language model (bundled or your own) on a corpus (the bundled pydoc text
    by default): numfab.lm's GPTQ-convention perplexity, KL divergence and top-1
    agreement; an encoder: the cosine of its hidden states; against the reference pass
    computed once (disk-cached)."""
    from simulator.torch import simulate

    from . import lm
    from .models import load_model, package_dir

    loaded = load_model(cfg.model, cfg.dtype, dev)
    causal = loaded.kind == "causal-lm"
    model = loaded.model.to(dev)
    txt = lm.read_corpus(cfg.data, cfg.text_field) if cfg.data else text()
    maxpos = getattr(model.config, "max_position_embeddings", None) or 2048
    seq_len = cfg.seq_len or min(2048, int(maxpos))
    if seq_len > maxpos:
        raise ValueError(f"seq_len (--seq-len) {seq_len} exceeds the model's maximum of "
                         f"{maxpos} positions")
    ids = lm.tokenize(loaded.tokenizer, txt)
    wins = lm.windows(ids, seq_len, cfg.windows)
    if is_bundled(cfg.model):
        mhash = lm.content_hash(next(iter(sorted(package_dir(cfg.model).glob("*.gguf")))))
    else:
        mhash = lm.content_hash(cfg.model)
    key = lm.reference_key(mhash + loaded.kind, txt, seq_len, wins.shape[0], cfg.dtype, dev)
    passes = lm.PASSES[0]
    ref = lm.reference(loaded, wins, dev, key)
    rules: Any = load_rules(cfg.rules) if cfg.rules else _default_rules(cfg, model)
    # bits per element describe one format for every layer: not a rules file's mix
    res: dict[str, Any] = {} if cfg.rules else {"bits_weights": format_bits(cfg.weights),
                                                "bits_acts": format_bits(cfg.acts)}
    res["reference_windows"] = lm.PASSES[0] - passes
    sim = simulate(model, rules) if rules else None
    try:
        if sim is not None and any(s.needs_calibration for s in sim.layers.values()):
            if cfg.calib:
                cids = lm.tokenize(loaded.tokenizer, lm.read_corpus(cfg.calib, cfg.text_field,
                                                                    "--calib"))
                cw = lm.windows(cids, seq_len, None, "--calib")[:8]
            else:
                have = ids.numel() // seq_len - wins.shape[0]
                cw = lm.windows(ids, seq_len, min(8, max(have, 1)),
                                "--data (calibration: the windows after the evaluated "
                                "ones; give --calib or fewer --windows)", skip=wins.shape[0])
            sim.calibrate(list(lm.iter_windows(cw, dev)))
        res.update(lm.score(model, wins, ref, dev) if causal
                   else lm.score_hidden(model, wins, ref, dev))
    finally:
        if sim is not None:
            sim.restore()
    return res
