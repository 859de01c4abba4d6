"""formats' GPU backend as other packages' kernels use it (simulator's Triton GEMM).

formats/_gpu holds the Triton kernels for formats' own operations; this module is the
part of it other packages may build on, so they never import its private modules:

- :func:`is_torch`, :func:`on_gpu`, :func:`emulate`: which inputs take the GPU path, and
  the switch that runs it on CPU tensors through Triton's interpreter (CI);
- :func:`kernels`: a kernel module, imported in the interpreter mode of the first use
  (a clear RuntimeError where Triton is missing);
- :func:`launch`: a kernel launch whose compiled form is cached per device and key;
- :func:`triton_rand62`: the stochastic-rounding stream's element function
  (:func:`formats.stream.rand62`) as a ``@triton.jit`` function, for kernels that draw
  from the same (element, step) counter.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from ._gpu import emulate, is_torch, kernels, on_gpu

__all__ = ["emulate", "is_torch", "kernels", "launch", "on_gpu", "triton_rand62"]


def launch(fn: Any, grid: Sequence[int], args: Sequence[Any], key: Hashable,
           constexprs: Callable[[], dict[str, Any]], **options: Any) -> None:
    """``fn[grid](*args, **constexprs(), **options)`` on ``args[0]``'s device: ``args``
    are fn's leading run-time parameters in order, ``key`` identifies the constexprs
    ``constexprs()`` gives (called only when the kernel is not yet compiled for it)."""
    kernels("scalar")  # Triton present, and the interpreter mode recorded
    from ._gpu.launch import launch as _launch

    _launch(fn, grid, args, key, constexprs, **options)


def triton_rand62() -> Any:
    """The ``@triton.jit`` function ``rand62(k, idx)``: :func:`formats.stream.rand62`
    (SplitMix64's output of k + idx * gamma, >> 2) on uint64 tensors."""
    return kernels("scalar")._rand62
