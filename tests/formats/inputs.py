"""Test inputs built from a format's own value grid: values, midpoints, +-1 ulp."""

from __future__ import annotations

import numpy as np

from formats import Format


def rounding_inputs(fmt: Format, dtype: type = np.float32, limit: int | None = None) -> np.ndarray:
    """Every finite value, every midpoint between neighbours, each +-1 ulp of ``dtype``,
    values beyond the range, zeros, Inf and NaN. ``limit`` subsamples the grid evenly."""
    v = np.unique(fmt.finite_values().astype(np.float64))
    if limit is not None and v.size > limit:
        v = v[np.linspace(0, v.size - 1, limit).astype(np.int64)]
    mids = (v[:-1] + v[1:]) / 2
    with np.errstate(over="ignore"):
        top = np.array([fmt.max * 1.5, fmt.max * 1.0625, fmt.max * 4, fmt.max * 1.03125])
    base = np.concatenate([v, mids, top, -top, [fmt.smallest_subnormal / 2,
                                                fmt.smallest_subnormal / 4]])
    with np.errstate(over="ignore"):
        b = base.astype(dtype)
    b = b[np.isfinite(b)]
    up = np.nextafter(b, np.array(np.inf, dtype))
    down = np.nextafter(b, np.array(-np.inf, dtype))
    allv = np.concatenate([b, up, down, -b, -up, -down,
                           np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype)])
    return allv.astype(dtype)
