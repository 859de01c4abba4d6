"""The analytic cost model: component sizes (:mod:`costmodel.features`) weighted by
per-target costs fitted to the calibration syntheses (:mod:`costmodel.calibrate`).

Per target, ``primary ~= sum_j c_j * feature_j`` with non-negative ``c_j``, fitted by
least squares on relative error (rows divided by the synthesized value); flip-flops are
``ff`` (registers are counted, not fitted). Leave-one-out errors come with the fit.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import numpy as np

from .calibrate import CALIBRATION_CSV, MODEL_TARGETS, load
from .features import FEATURES, as_pe, describe, features, features_of

__all__ = ["DOCUMENTED_ERROR", "Estimate", "estimate", "fit", "fit_quality", "MODEL_TARGETS",
           "refit"]

#: the fit's quality as documented (README): median and maximum leave-one-out relative
#: error on the calibration grid, and the signed relative error range on the held-out
#: designs (estimate / synthesis - 1), each rounded outward by a point; tests hold the
#: fit and the held-out design points to these
DOCUMENTED_ERROR: dict[str, dict[str, float]] = {
    "xilinx": {"loo_median": 0.15, "loo_max": 0.60, "held_out_low": -0.26,
               "held_out_high": 0.27},
    "cmos": {"loo_median": 0.08, "loo_max": 0.62, "held_out_low": -0.22,
             "held_out_high": 0.09},
}

_UNITS = {"xilinx": "LUTs (LUT1-6)", "ice40": "SB_LUT4", "ecp5": "LUT4 (CCU2C = 2)",
          "cmos": "transistors"}


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A PE's estimated cost on ``target``: ``primary`` in ``unit``; ``ffs`` registers."""

    pe: str
    target: str
    primary: float
    unit: str
    ffs: int
    features: dict[str, float]


def _nnls(A: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    coef, _ = nnls(A, y)
    return np.asarray(coef)


def _design(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    X = np.array([[features(r["pe"], **json.loads(r["options"]))[f] for f in FEATURES]
                  for r in rows], np.float64)
    y = np.array([float(r["primary"]) for r in rows], np.float64)
    return X, y


def _solve(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    # relative least squares: each row divided by its synthesized value
    return _nnls(X / y[:, None], np.ones_like(y))


@functools.lru_cache(maxsize=8)
def _designs(path: str) -> dict[str, tuple[list[dict[str, Any]], np.ndarray, np.ndarray]]:
    rows = load(path)
    out = {}
    for target in MODEL_TARGETS:
        sel = [r for r in rows if r["target"] == target]
        if len(sel) >= len(FEATURES):
            out[target] = (sel, *_design(sel))
    return out


@functools.lru_cache(maxsize=8)
def fit(path: str = str(CALIBRATION_CSV)) -> dict[str, dict[str, float]]:
    """Per target: the fitted cost of each feature (one NNLS solve)."""
    return {t: dict(zip(FEATURES, _solve(X, y).tolist()))
            for t, (_, X, y) in _designs(path).items()}


def refit(path: str = str(CALIBRATION_CSV)) -> dict[str, dict[str, float]]:
    """Forget every fit and design matrix this process has computed (for any calibration
    file) and fit again from ``path`` as it is now: call it after rewriting a
    calibration CSV (``numfab cost calibrate`` does). :func:`fit` keeps one fit per
    path for the life of the process otherwise."""
    _designs.cache_clear()
    fit.cache_clear()
    return fit(path)


def fit_quality(path: str = str(CALIBRATION_CSV), *,
                per_point: bool = False) -> dict[str, dict[str, Any]]:
    """Median and max relative error per target, in-sample and leave-one-out (each point
    predicted by a fit without it); ``per_point`` adds every point's LOO error."""
    out: dict[str, dict[str, Any]] = {}
    for t, (sel, X, y) in _designs(path).items():
        coef = np.array([fit(path)[t][k] for k in FEATURES])
        loo = np.empty(len(y))
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            loo[i] = (X[i] @ _solve(X[keep], y[keep]) - y[i]) / y[i]
        fitted = np.abs((X @ coef - y) / y)
        out[t] = {"points": len(y), "fit_median": float(np.median(fitted)),
                  "fit_max": float(fitted.max()), "loo_median": float(np.median(np.abs(loo))),
                  "loo_max": float(np.abs(loo).max())}
        if per_point:
            out[t]["loo"] = {f"{r['pe']} {r['options']}": float(e) for r, e in zip(sel, loo)}
    return out


def estimate(pe: Any, *, target: str = "xilinx", **options: Any) -> Estimate:
    """Estimated cost on ``target`` (``xilinx``: LUTs without DSPs, ``cmos``:
    transistors) of PE ``pe``: a kind name with the options of ``rtl.build`` (validated
    by rtl first, so what rtl refuses to build is refused here with rtl's error), a
    :class:`simulator.Datapath` (the PE that computes it), or a built rtl/ component
    (its own formats and parameters; no options). A kind and options or a datapath is
    described once per process (:func:`costmodel.features.describe`): a repeated call
    costs microseconds.

    Raises
    ------
    TypeError
        ``pe`` is neither a kind name nor a built PE, ``target`` is not a str, or an
        option has the wrong kind (rtl's error).
    ValueError
        Unknown target, PE kind or option, or an option rtl cannot build.
    """
    model = fit()
    if not isinstance(target, str):
        raise TypeError(f"target must be a str ({', '.join(model)}), not "
                        f"{type(target).__name__}")
    if target not in model:
        raise ValueError(f"no cost model for target {target!r}; modelled targets: "
                         f"{', '.join(model)} (synthesize() also takes ice40, ecp5, "
                         "xilinx-dsp)")
    from simulator import Datapath

    if isinstance(pe, (str, Datapath)):
        d = describe(pe, **options)  # validated by rtl once, then kept
        kind, f = d.kind, d.feature_dict()
    else:
        component = as_pe(pe, options)
        kind, f = component.kind, features_of(component)
    coef = model[target]
    primary = float(sum(coef[k] * f[k] for k in FEATURES))
    return Estimate(kind, target, primary, _UNITS[target], int(round(f["ff"])), f)
