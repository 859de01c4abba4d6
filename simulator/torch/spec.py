"""What one layer computes in: :class:`LayerSpec`, validated once."""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from typing import Any

import numpy as np

from formats import BlockScaled, Format, parse

from ..accumulator import Accumulator

__all__ = ["LayerSpec"]


def fmt_of(value: Any, what: str) -> Any:
    return None if value is None else parse(value, parameter=what)


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """What one layer computes in.

    weight, act, output : formats (or names) of the weight, the input activation and the
        output; ``None`` keeps a tensor as it is.
    kv : format of an attention module's keys and values (blocks along the head dim).
    granularity, act_granularity : how scalar formats are scaled, for the weight and the
        activation: ``"none"`` (a plain cast), ``"tensor"``, ``"channel"`` (per output
        channel of the weight, per token of the activation), ``"group:<k>"`` (groups of k
        along K); scales are float32, ``amax / max`` rounded to nearest. ``"auto"``:
        minifloats and fixed point are cast, integers and tables scaled per channel. Block
        formats define their own blocks (along K; 2-D tiles for weights) and take only
        ``"auto"``.
    accumulator : an :class:`Accumulator` (or format name, or ``"exact"``) to run the
        layer bit-true through :func:`simulator.gemm` (slow; Linear layers), or ``None``
        for fake quantization.

    Techniques (nn.Linear layers; see :mod:`simulator.techniques`), applied to the input
    in this order, each leaving the unquantized output unchanged (to float rounding):
    rearrange : permute input channels by calibrated magnitude (outliers share blocks).
    smoothquant : alpha; divide inputs by SmoothQuant scales, multiply weight columns.
    hadamard : ``"full"`` (K a power of two) or ``"block"`` (blocks of ``hadamard_block``,
        default the weight format's block size): rotate inputs online and weights once.
    clip : ``"mse"``: each weight scale (block, group or channel) chosen for least
        squared error among clipped candidates (formats' ``ScaleRule.MSE``).
    gptq : quantize the weight with GPTQ on calibrated inputs (``act_order`` optional,
        ``gptq_damp`` the dampening: a positive finite fraction of the Hessian's mean
        diagonal, default 0.01).
    outliers : LLM.int8() threshold, a positive finite number: input channels with any
        ``|x| >= outliers`` (per forward) and their weight columns stay in
        ``outlier_format`` (float16); fake quantization only (no ``accumulator``).
    rearrange, smoothquant and gptq need :meth:`Simulation.calibrate` first.
    ``smoothquant`` is alpha in [0, 1]; ``hadamard_block`` a positive power of two (an int,
    not a bool; 1 is the identity) for ``hadamard="block"``, dividing the layer's K.

    Raises
    ------
    TypeError
        a field of the wrong kind (e.g. ``hadamard_block=True``, ``gptq_damp="0.1"``)
    ValueError
        a field outside its range, or fields that do not combine
    """

    weight: Any = None
    act: Any = None
    output: Any = None
    kv: Any = None
    granularity: str = "auto"
    act_granularity: str = "auto"
    accumulator: Any = None
    rearrange: bool = False
    smoothquant: float | None = None
    hadamard: str | None = None
    hadamard_block: int | None = None
    clip: str | None = None
    gptq: bool = False
    act_order: bool = False
    gptq_damp: float = 0.01
    outliers: float | None = None
    outlier_format: Any = "float16"

    def __post_init__(self) -> None:
        for name in ("weight", "act", "output", "kv"):
            object.__setattr__(self, name, fmt_of(getattr(self, name), name))
        for name in ("granularity", "act_granularity"):
            g = getattr(self, name)
            fmt = self.weight if name == "granularity" else self.act
            check_granularity(g, fmt, name)
        acc = self.accumulator
        if acc is not None and not isinstance(acc, Accumulator):
            if not isinstance(acc, (str, Format)):
                raise TypeError(f"accumulator must be None (fake quantization), an "
                                f"Accumulator, a format or its name, or 'exact', not {acc!r}")
            try:
                acc = Accumulator(None if acc == "exact" else acc)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"accumulator: {exc}") from None
            object.__setattr__(self, "accumulator", acc)
        object.__setattr__(self, "outlier_format", fmt_of(self.outlier_format, "outlier_format"))
        for name in ("rearrange", "gptq", "act_order"):
            flag = getattr(self, name)
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, not {flag!r}")
            object.__setattr__(self, name, bool(flag))
        if self.hadamard not in (None, "full", "block"):
            raise ValueError(f"hadamard must be None, 'full' or 'block', not {self.hadamard!r}")
        hb = self.hadamard_block
        if hb is not None:
            # bool is an int to Python, but True is no block size
            if isinstance(hb, bool) or not isinstance(hb, numbers.Integral):
                raise TypeError(f"hadamard_block must be an int (a power of two), not {hb!r}")
            if hb < 1 or hb & (hb - 1):
                raise ValueError(f"hadamard_block must be a positive power of two (1, 2, 4, "
                                 f"...), not {hb}")
            if self.hadamard == "full":
                raise ValueError("hadamard_block applies to hadamard='block', not 'full' "
                                 "(whose block is all of K)")
        if self.clip not in (None, "mse"):
            raise ValueError(f"clip must be None or 'mse', not {self.clip!r}")
        if self.smoothquant is not None:
            alpha = real(self.smoothquant, "smoothquant", "None or the migration strength "
                          "alpha, a number in [0, 1]")
            if not 0.0 <= alpha <= 1.0:
                raise ValueError(f"smoothquant (alpha) must be in [0, 1], not {alpha}")
        damp = real(self.gptq_damp, "gptq_damp", "a positive finite number (the fraction "
                     "of the Hessian's mean diagonal added to it, e.g. 0.01)")
        if not 0.0 < damp < math.inf:
            raise ValueError(f"gptq_damp must be a positive finite number (the fraction of "
                             f"the Hessian's mean diagonal added to it, e.g. 0.01), not {damp}")
        if self.outliers is not None:
            thr = real(self.outliers, "outliers", "None or a positive finite threshold on "
                        "|x| (LLM.int8(): e.g. 6.0)")
            if not 0.0 < thr < math.inf:
                raise ValueError(f"outliers must be a positive finite threshold on |x| "
                                 f"(LLM.int8(): e.g. 6.0; channels with |x| >= it stay in "
                                 f"outlier_format), not {thr}")
            if self.accumulator is not None:
                raise ValueError("outliers (LLM.int8() decomposition) runs as fake "
                                 "quantization: it cannot combine with bit-true routing "
                                 "(accumulator=)")
        if (self.gptq or self.clip) and self.weight is None:
            raise ValueError("gptq and clip need a weight format")
        if self.gptq and self.accumulator is not None:
            raise ValueError("gptq with bit-true routing is not supported: the bit-true "
                             "path re-derives block scales from the weights")

    @property
    def techniques(self) -> list[str]:
        """The techniques this spec applies."""
        t = [n for n in ("rearrange", "gptq") if getattr(self, n)]
        t += [n for n in ("smoothquant", "hadamard", "clip", "outliers")
              if getattr(self, n) is not None]
        return t

    @property
    def needs_calibration(self) -> bool:
        return self.rearrange or self.gptq or self.smoothquant is not None


SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(LayerSpec))


def real(value: Any, name: str, allowed: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {allowed}, not {value!r}")
    return float(value)


def check_granularity(g: Any, fmt: Any, name: str) -> None:
    ok = isinstance(g, str) and (g in ("auto", "none", "tensor", "channel") or bool(
        re.fullmatch(r"group:[1-9][0-9]*", g)))
    if not ok:
        raise ValueError(f"{name} must be 'auto', 'none', 'tensor', 'channel' or "
                         f"'group:<k>' (k a positive integer), not {g!r}")
    if isinstance(fmt, BlockScaled) and g != "auto":
        raise ValueError(f"{name}={g!r} with block format {fmt}: block formats define "
                         "their own blocks; leave it 'auto'")
