"""Calibration: running batches through a simulated model unquantized, to derive each
layer's channel order, SmoothQuant scales and GPTQ statistics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

from .folding import fold_smoothquant, restore_params
from .layers import check_devices

if TYPE_CHECKING:
    from .simulation import Simulation

__all__ = ["calibrate"]


def calibrate(sim: Simulation, batches: Iterable[Any], forward: Any = None,
              fold: bool = True) -> Simulation:
    """The work of :meth:`Simulation.calibrate` (documented there) on ``sim``."""
    restore_params(sim.model)
    layers = sim.quant_layers()
    for q in layers.values():
        q.stats, q.perm, q.smooth, q._wcache = None, None, None, None
        q.calibrating = True
        q.capture = fold
        q._first_input = None
    norms: dict[str, torch.Tensor] = {}
    hooks = []
    if fold and any(q.spec.smoothquant is not None for q in layers.values()):
        for name, m in sim.model.named_modules():
            w = getattr(m, "weight", None)
            if isinstance(w, torch.Tensor) and w.dim() == 1 and "norm" in \
                    type(m).__name__.lower():
                hooks.append(m.register_forward_hook(
                    lambda mod, args, out, name=name: norms.setdefault(name, out)))
    n = 0
    first_out = None
    try:
        with torch.no_grad():
            for batch in batches:
                check_devices(sim.model, {f"batches[{n}]": batch})
                out = sim.model(batch) if forward is None else forward(sim.model, batch)
                if n == 0:
                    first_out, first_batch = out, batch
                    for h in hooks:
                        h.remove()
                    hooks = []
                    for q in layers.values():
                        q.capture = False
                n += 1
        if n == 0:
            raise ValueError("calibrate() got no batches")
        sim.folded = fold_smoothquant(sim.model, layers, norms) if norms else {}
        if sim.folded and isinstance(first_out, torch.Tensor):
            for q in layers.values():
                q.recording = False  # the check must not add to the statistics
            with torch.no_grad():
                again = sim.model(first_batch) if forward is None else \
                    forward(sim.model, first_batch)
            scale = float(first_out.abs().max()) or 1.0
            if float((again - first_out).abs().max()) > 1e-4 * scale:
                restore_params(sim.model)  # another consumer saw the norm: undo
                sim.folded = {}
    finally:
        for h in hooks:
            h.remove()
        for q in layers.values():
            q.calibrating = False
            q.capture = False
            q.recording = True
            q._first_input = None
    for q in layers.values():
        if q.stats is not None:
            q.finish_calibration()
    by_layer = {ln for lns in sim.folded.values() for ln in lns}
    for name, q in layers.items():
        if name in by_layer:
            q.smooth = None  # folded into the norm and the weight
    return sim
