"""numfab's one random stream: counter-based, keyed by (seed, element index).

Stochastic rounding anywhere in numfab (formats' encode/quantize, the simulator's
accumulators) draws the random integer of element ``i`` under seed key ``k`` as
:func:`rand62` ``(k, i)``: SplitMix64's output function applied to ``k + i * gamma``
(gamma the golden-ratio odd constant), the top 62 bits kept. A counter-based stream
gives every element its number without a sequential state, so the CPU kernels, the GPU
kernels and any thread layout produce the same codes for one seed. For a fixed key the
sequence over ``i`` is exactly the SplitMix64 generator's (it passes BigCrush).

Seeds: an int in 0..2**64-1 is the key itself; a ``numpy.random.Generator`` gives one
key (one 64-bit draw, advancing it); ``"random"`` a key from the OS's entropy.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import prange

from ._jit import INLINE as _INLINE
from ._jit import PJIT as _PJIT

__all__ = ["GAMMA", "MIX1", "MIX2", "key", "rand62", "random_bits"]

#: SplitMix64's increment (2**64 / golden ratio, odd) and its two output multipliers
GAMMA = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)


@numba.njit(**_INLINE)
def rand62(k, idx):  # pragma: no cover - jitted
    """The uniform integer in [0, 2**62) of element ``idx`` under key ``k``."""
    z = np.uint64(k) + np.uint64(idx) * GAMMA
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    z = z ^ (z >> np.uint64(31))
    return np.int64(z >> np.uint64(2))


@numba.njit(**_PJIT)
def _fill(k, start, out):  # pragma: no cover - jitted
    for i in prange(out.size):
        out[i] = rand62(k, start + i)


def key(seed: Any, parameter: str = "seed") -> int:
    """The stream key (an int in 0..2**64-1) of ``seed``: an int in that range, a
    ``numpy.random.Generator`` (one draw) or ``"random"``."""
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**64, dtype=np.uint64))
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        if not 0 <= int(seed) < 2**64:
            raise ValueError(f"{parameter} must be an int in 0..2**64-1, not {seed}")
        return int(seed)
    if isinstance(seed, str) and seed == "random":
        return int(np.random.default_rng().integers(0, 2**64, dtype=np.uint64))
    raise ValueError(
        f"stochastic rounding needs {parameter}= an int in 0..2**64-1 or a "
        "numpy.random.Generator for reproducible results (or 'random' to opt out of "
        f"reproducibility), not {seed!r}"
    )


def random_bits(k: int, n: int, start: int = 0) -> np.ndarray:
    """The stream's integers of elements ``start .. start + n - 1`` under key ``k`` (int64,
    each in [0, 2**62))."""
    out = np.empty(max(n, 0), np.int64)
    _fill(np.uint64(k), np.int64(start), out)
    return out
