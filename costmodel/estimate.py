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
from .features import FEATURES, features

__all__ = ["DOCUMENTED_ERROR", "Estimate", "estimate", "fit", "fit_quality", "MODEL_TARGETS"]

#: the fit's quality on the calibration grid as documented (README, closing note): median
#: and maximum leave-one-out relative error of the primary quantity, rounded up; tests
#: hold the fit and held-out design points to these
DOCUMENTED_ERROR: dict[str, dict[str, float]] = {
    "xilinx": {"loo_median": 0.15, "loo_max": 0.60},
    "cmos": {"loo_median": 0.08, "loo_max": 0.62},
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
def fit(path: str = str(CALIBRATION_CSV)) -> dict[str, dict[str, Any]]:
    """Per target: coefficients (feature -> cost) and the leave-one-out errors."""
    rows = load(path)
    out: dict[str, dict[str, Any]] = {}
    for target in MODEL_TARGETS:
        sel = [r for r in rows if r["target"] == target]
        if len(sel) < len(FEATURES):
            continue
        X, y = _design(sel)
        coef = _solve(X, y)
        loo = np.empty(len(y))
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            c = _solve(X[keep], y[keep])
            loo[i] = (X[i] @ c - y[i]) / y[i]
        fitted = (X @ coef - y) / y
        out[target] = {
            "coef": dict(zip(FEATURES, coef.tolist())),
            "points": len(y),
            "fit_median": float(np.median(np.abs(fitted))),
            "fit_max": float(np.abs(fitted).max()),
            "loo_median": float(np.median(np.abs(loo))),
            "loo_max": float(np.abs(loo).max()),
            "loo": {f"{r['pe']} {r['options']}": float(e) for r, e in zip(sel, loo)},
        }
    return out


def fit_quality(path: str = str(CALIBRATION_CSV)) -> dict[str, dict[str, float]]:
    """Median and max relative error per target, in-sample and leave-one-out."""
    return {t: {k: v[k] for k in ("points", "fit_median", "fit_max", "loo_median", "loo_max")}
            for t, v in fit(path).items()}


def estimate(pe: str, *, target: str = "xilinx", **options: Any) -> Estimate:
    """Estimated cost of PE ``pe`` (kind name, options as ``rtl.build``) on ``target``
    (``xilinx`` (LUTs, no DSPs), ``ice40``, ``ecp5``, ``cmos``)."""
    model = fit()
    if target not in model:
        raise ValueError(f"no cost model for target {target!r}; modelled targets: "
                         f"{', '.join(model)} (synthesize() also takes xilinx-dsp)")
    f = features(pe, **options)
    coef = model[target]["coef"]
    primary = float(sum(coef[k] * f[k] for k in FEATURES))
    return Estimate(pe, target, primary, _UNITS[target], int(round(f["ff"])), f)
