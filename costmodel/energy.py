"""Energy per operation from published 45 nm figures, scaled to any format through the
component model.

Source: M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC
2014, Figure 1.1.9 (45 nm, 0.9 V): integer add 8 b 0.03 pJ, 32 b 0.1 pJ; float add
16 b 0.4 pJ, 32 b 0.9 pJ; integer multiply 8 b 0.2 pJ, 32 b 3.1 pJ; float multiply
16 b 1.1 pJ, 32 b 3.7 pJ; 64-bit SRAM read 10 pJ (8 KB), 20 pJ (32 KB), 100 pJ (1 MB);
DRAM 1.3-2.6 nJ per 64 bits.

The eight arithmetic figures are reproduced by per-component energies (pJ per
multiplier bit-product, adder bit, shifter/normaliser bit-stage, mux bit) fitted by
non-negative least squares to the same component sizes :mod:`costmodel.features` gives
our PEs (an n-bit integer adder is ``add = n``; a float adder is the aligned add, the
normaliser and the rounding of ``rtl``'s FloatMac; a float multiplier is ``rtl``'s
FloatMul). A PE's energy per operation is then the same weighted sum of its own
components; register bits are charged as adder bits. These are 45 nm figures: scale
them to another node yourself (energy scales roughly with capacitance x V^2).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from formats import parse

from .features import _F, FEATURES, _add_terms, _round_to, features

__all__ = ["HOROWITZ_PJ", "SRAM_PJ_PER_BYTE", "DRAM_PJ_PER_BYTE", "energy_coefficients",
           "energy_per_op", "energy_fit"]

#: Horowitz, ISSCC 2014, 45 nm: operation -> pJ
HOROWITZ_PJ: dict[str, float] = {
    "int8 add": 0.03, "int32 add": 0.1, "fp16 add": 0.4, "fp32 add": 0.9,
    "int8 mult": 0.2, "int32 mult": 3.1, "fp16 mult": 1.1, "fp32 mult": 3.7,
}
#: on-chip SRAM (32 KB, 64-bit read 20 pJ) and DRAM (1.3-2.6 nJ per 64 bits; midpoint),
#: pJ per byte
SRAM_PJ_PER_BYTE = 20.0 / 8
DRAM_PJ_PER_BYTE = 1950.0 / 8

_COMPONENTS = ("mult", "add", "shift", "lzc", "mux")


def _float_add(name: str) -> dict[str, float]:
    f = parse(name)
    F = _F()
    p = f.precision
    ew = f.exp_bits + 3
    W = _add_terms(F, p, p, p, ew)
    _round_to(F, f, W, ew)
    return dict(F)


def _ops() -> dict[str, dict[str, float]]:
    return {
        "int8 add": {**_F(), "add": 8.0}, "int32 add": {**_F(), "add": 32.0},
        "fp16 add": _float_add("float16"), "fp32 add": _float_add("float32"),
        "int8 mult": {**_F(), "mult": 64.0}, "int32 mult": {**_F(), "mult": 1024.0},
        "fp16 mult": features("FloatMul", a="float16", b="float16", out="float16"),
        "fp32 mult": features("FloatMul", a="float32", b="float32", out="float32"),
    }


@functools.lru_cache(maxsize=1)
def energy_fit() -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """(pJ per unit of each component, {operation: (published, modelled)})."""
    from scipy.optimize import nnls

    ops = _ops()
    names = list(HOROWITZ_PJ)
    A = np.array([[ops[n][c] for c in _COMPONENTS] for n in names])
    y = np.array([HOROWITZ_PJ[n] for n in names])
    coef, _ = nnls(A / y[:, None], np.ones_like(y))  # relative error
    model = A @ coef
    return (dict(zip(_COMPONENTS, coef.tolist())),
            {n: (float(y[i]), float(model[i])) for i, n in enumerate(names)})


def energy_coefficients() -> dict[str, float]:
    """pJ per unit of each feature (registers charged as adder bits, no static term)."""
    coef = dict(energy_fit()[0])
    coef["ff"] = coef["add"]
    coef["table"] = coef["mux"]
    coef["const"] = 0.0
    return {k: coef.get(k, 0.0) for k in FEATURES}


def energy_per_op(pe: Any, **options: Any) -> float:
    """pJ per operation of PE ``pe`` (one evaluation of its datapath: one MAC for
    IntMac/FloatMac, one k-element block step for BlockDot, ...), 45 nm. ``pe`` is a kind
    name with the options of ``rtl.build`` (built first: rtl's validation and errors) or
    a built rtl/ PE, as for :func:`costmodel.estimate`."""
    f = features(pe, **options)
    c = energy_coefficients()
    return float(sum(c[k] * f[k] for k in FEATURES))
