"""SmoothQuant folding: calibrated scales moved into the normalisation layer feeding
the smoothed layers, and back out (bit for bit)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .. import techniques
from .layers import QuantLayer

__all__ = ["fold_smoothquant", "restore_params"]

#: where a model keeps the parameters folding changed, (parameter, original) pairs
SAVED = "_numfab_saved_params"


def fold_smoothquant(model: nn.Module, layers: dict[str, QuantLayer],
                     norms: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Fold SmoothQuant scales into the normalisation layers ``norms`` (name -> its
    first-batch output) that feed the patched ``layers``: per norm whose consumers share
    one alpha and rearrange nothing, its weight and bias divided by one ``s`` and the
    consumers' weights multiplied. The original parameters are saved for
    :func:`restore_params`. Returns the folded norms and their layers."""
    groups: dict[str, list[str]] = {}
    for name, q in layers.items():
        for nn_name, out in norms.items():
            if q._first_input is out:
                groups.setdefault(nn_name, []).append(name)
    folded: dict[str, list[str]] = {}
    saved: list[tuple[torch.Tensor, torch.Tensor]] = model.__dict__.setdefault(
        SAVED, [])
    for nn_name, names in groups.items():
        qs = [layers[n] for n in names]
        alphas = {q.spec.smoothquant for q in qs}
        if len(alphas) != 1 or None in alphas or any(q.spec.rearrange for q in qs):
            continue
        norm: Any = model.get_submodule(nn_name)
        amax = torch.stack([q.stats["amax"] for q in qs if q.stats]).amax(dim=0)
        w_all = torch.cat([q.inner.weight.detach().to(torch.float64) for q in qs])
        s_ = techniques.smooth_scales(amax, w_all, float(alphas.pop()))  # type: ignore[arg-type]
        with torch.no_grad():
            params: list[torch.Tensor] = [norm.weight] + (
                [norm.bias] if getattr(norm, "bias", None) is not None else [])
            for p_ in params:
                saved.append((p_, p_.detach().clone()))
                p_.copy_((p_.to(torch.float64) / s_).to(p_.dtype))
            for q in qs:
                w = q.inner.weight
                saved.append((w, w.detach().clone()))
                w.copy_((w.to(torch.float64) * s_).to(w.dtype))
                q._wcache = None
        folded[nn_name] = names
    return folded


def restore_params(model: nn.Module) -> None:
    """Put back parameters that SmoothQuant folding changed (bit for bit)."""
    saved = model.__dict__.pop(SAVED, [])
    with torch.no_grad():
        for p_, orig in reversed(saved):
            p_.copy_(orig)
