"""Patching a model and restoring it: :func:`simulate`, :class:`Simulation`,
:func:`restore`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from .calibration import calibrate
from .folding import restore_params
from .layers import LAYERS, KVQuant, QuantLayer, check_devices, kv_children, layer_names
from .rules import match, merge, rules
from .spec import LayerSpec

__all__ = ["Simulation", "restore", "simulate"]

#: where a model whose root module is itself a patched layer holds its QuantLayer
ROOT = "_numfab_quant_layer"


class Simulation:
    """A patched model: ``with simulate(model, cfg) as m: ...`` restores on exit;
    ``sim = simulate(model, cfg)`` keeps it patched (``sim.model``, ``sim(x)``) until
    ``sim.restore()``. ``sim.layers`` maps layer names to their specs."""

    def __init__(self, model: nn.Module, layers: dict[str, LayerSpec]) -> None:
        self.model = model
        self.layers = layers
        self.folded: dict[str, list[str]] = {}

    def __enter__(self) -> nn.Module:
        return self.model

    def __exit__(self, *exc: Any) -> None:
        self.restore()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        check_devices(self.model, {**{f"argument {i}": a for i, a in enumerate(args)},
                                   **{f"argument {k!r}": a for k, a in kwargs.items()}})
        return self.model(*args, **kwargs)

    def restore(self) -> None:
        restore(self.model)

    def quant_layers(self) -> dict[str, QuantLayer]:
        """The patched layers by name."""
        out = {n: m for n, m in self.model.named_modules() if isinstance(m, QuantLayer)}
        root = self.model.__dict__.get(ROOT)
        if root is not None:
            out[""] = root
        return out

    def calibrate(self, batches: Iterable[Any], forward: Any = None,
                  fold: bool = True) -> Simulation:
        """Run ``batches`` through the model unquantized, collecting each patched layer's
        input statistics (per-channel max |x|, and X^T X for GPTQ), then derive the
        calibrated transforms. ``forward(model, batch)`` runs one batch (default
        ``model(batch)``). Calibrating again starts afresh.

        ``fold``: SmoothQuant scales are folded into the normalisation layer that feeds
        the smoothed layers (LayerNorm / RMSNorm weight and bias divided by ``s``, the
        consumers' weights multiplied), one shared ``s`` per norm (SmoothQuant's
        ``max |W_j|`` over all its consumers), where the architecture allows: all the
        norm's patched consumers use the same alpha and no rearrangement, and the first
        batch's unquantized output is unchanged after folding (checked; otherwise the
        fold is undone and the scales stay online). ``self.folded`` names the norms and
        their layers; ``restore()`` puts the original parameters back bit for bit."""
        return calibrate(self, batches, forward, fold)


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    if "." in name:
        p, _, leaf = name.rpartition(".")
        return model.get_submodule(p), leaf
    return model, name


def simulate(model: nn.Module, config: Any) -> Simulation:
    """Patch ``model`` in place to compute in the formats ``config`` names.

    ``config``: a :class:`LayerSpec` (every layer), a mapping ``{pattern: spec}`` or a
    list of ``(pattern, spec)`` pairs; ``spec`` a LayerSpec or a dict of its fields.
    Patterns are shell globs on module names (``"model.layers.*.mlp.*"``) or regular
    expressions after ``"re:"``. Rules apply in order; a later rule's fields override
    an earlier one's where it sets them. A pattern matching no quantizable layer is an
    error listing the layer names.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    if ROOT in model.__dict__ or any(isinstance(m, (QuantLayer, KVQuant))
                                      for m in model.modules()):
        raise ValueError("model is already simulated; restore() it first")
    specs = rules(config)
    names = layer_names(model)
    mods = dict(model.named_modules())
    chosen: dict[str, LayerSpec] = {}
    for pattern, spec in specs:
        hit = [n for n in names if match(pattern, n)]
        if not hit:
            shown = ", ".join(names[:40]) + (" ..." if len(names) > 40 else "")
            raise ValueError(f"pattern {pattern!r} matches no layer; layers: {shown}")
        for n in hit:
            try:
                chosen[n] = merge(chosen[n], spec) if n in chosen else spec
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"layer {n!r} (rules merged): {exc}") from None
    plan: list[tuple[str, LayerSpec]] = []
    for n, spec in chosen.items():
        m = mods[n]
        kvc = kv_children(m)
        if spec.kv is not None and kvc is None:
            raise ValueError(f"layer {n!r} ({type(m).__name__}) cannot take kv=: it has no "
                             "k_proj/v_proj or key/value projections")
        if isinstance(m, LAYERS):
            if any(getattr(spec, f) is not None for f in ("weight", "act", "output")) or \
                    spec.accumulator is not None or spec.techniques:
                plan.append((n, spec))
        elif spec.kv is None and any(getattr(spec, f) is not None
                                     for f in ("weight", "act", "output")):
            continue  # an attention module matched for its children's sake
        if spec.kv is not None:
            plan.append((n, spec))
    done: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        # layers first, then the KV wrappers around (possibly wrapped) projections
        for n, spec in plan:
            m = mods[n]
            if isinstance(m, LAYERS) and n == "":
                # the model is itself the layer: its forward is overridden (the wrapper
                # holds it unregistered, so the module tree does not loop)
                ql = QuantLayer(m, spec, n, register=False)
                m.forward = ql.forward  # type: ignore[method-assign,assignment]
                object.__setattr__(m, ROOT, ql)
            elif isinstance(m, LAYERS):
                parent, leaf = _parent(model, n)
                setattr(parent, leaf, QuantLayer(m, spec, n))
                done.append((parent, leaf, m))
        for n, spec in plan:
            m = mods[n]
            kvc = kv_children(m)
            if kvc is not None and spec.kv is not None:
                hd = getattr(m, "head_dim", None) or getattr(m, "attention_head_size", None)
                for c in kvc:
                    inner = getattr(m, c)
                    setattr(m, c, KVQuant(inner, spec.kv, f"{n}.{c}", hd))
                    done.append((m, c, inner))
    except Exception:
        for parent, leaf, orig in reversed(done):
            setattr(parent, leaf, orig)
        _unroot(model)
        raise
    return Simulation(model, dict(plan))


def _unroot(model: nn.Module) -> None:
    if ROOT in model.__dict__:
        del model.__dict__[ROOT]
        model.__dict__.pop("forward", None)


def restore(model: nn.Module) -> nn.Module:
    """Undo :func:`simulate`: put every original module back (the same objects) and
    every parameter a SmoothQuant fold changed."""
    restore_params(model)
    _unroot(model)
    while True:
        hit = next(((n, m) for n, m in model.named_modules()
                    if isinstance(m, (QuantLayer, KVQuant))), None)
        if hit is None:
            return model
        # named_modules is pre-order: the outermost wrapper comes first
        parent, leaf = _parent(model, hit[0])
        setattr(parent, leaf, hit[1].inner)
