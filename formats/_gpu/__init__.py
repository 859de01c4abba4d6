"""The GPU backend of formats/: Triton kernels for torch tensors on CUDA devices.

A torch tensor on a CUDA device is encoded, decoded and quantized on that device (no
host copy); everything else takes the numba kernels. The Triton kernels are a second
implementation of the numerics, cross-tested bit for bit against the numba kernels
(tests/gpu/: through Triton's interpreter in CI, exhaustively on an H100 by
benchmarks/gpu_exhaustive.py).

:func:`emulate` makes CPU torch tensors take the GPU path too, with the kernels run by
Triton's interpreter: that is how a machine without a GPU (CI) tests the GPU code.
Triton reads its interpreter switch when a kernel is defined, so the kernel modules are
imported lazily, by :func:`kernels`, in the mode of the first use.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

__all__ = ["emulate", "kernels", "on_gpu"]

_EMULATE: contextvars.ContextVar[bool] = contextvars.ContextVar("numfab_gpu_emulate",
                                                                default=False)
_INSTALL = "pip install 'triton>=3.4' (or: pip install 'numfab[gpu]')"
_loaded: dict[str, ModuleType] = {}
_interpreted: list[bool] = []


def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch)."""
    return type(x).__module__.startswith("torch") and hasattr(x, "is_cuda")


def on_gpu(x: Any) -> bool:
    """Whether ``x`` takes the GPU kernels: a torch tensor on a CUDA device, or any torch
    tensor inside :func:`emulate`."""
    return is_torch(x) and (bool(x.is_cuda) or _EMULATE.get())


@contextlib.contextmanager
def emulate() -> Iterator[None]:
    """Within this block CPU torch tensors take the GPU path, through Triton's
    interpreter (slow: ~10**5 elements/s; for tests of the GPU code without a GPU)."""
    if _interpreted and not _interpreted[0]:
        raise RuntimeError("formats' GPU kernels were already compiled for a GPU in this "
                           "process; emulate() needs a process that starts with it (or "
                           "TRITON_INTERPRET=1 set before the first GPU call)")
    if not _interpreted:
        if "triton.language" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
            # triton.language's own jitted functions (tl.max, ...) were compiled-mode
            raise RuntimeError("emulate() needs TRITON_INTERPRET=1 set before triton is "
                               "imported (torch may import it): set it at the start of "
                               "the process, as tests/conftest.py does")
        os.environ["TRITON_INTERPRET"] = "1"
    token = _EMULATE.set(True)
    try:
        yield
    finally:
        _EMULATE.reset(token)


def kernels(name: str) -> ModuleType:
    """The kernel module ``formats._gpu.<name>``, imported on first use (a clear error
    where Triton is missing)."""
    mod = _loaded.get(name)
    if mod is not None:
        return mod
    try:
        import triton  # noqa: F401
    except ImportError:
        raise RuntimeError(f"formats on CUDA tensors need Triton: {_INSTALL}") from None
    if not _interpreted:
        _interpreted.append(os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"))
    mod = importlib.import_module(f"{__name__}.{name}")
    _loaded[name] = mod
    return mod
