"""Test-suite set-up: the process tuning the ``numfab`` command makes (formats.setup_runtime),
so kernels run in tests as they run for users of the command and the suite keeps its speed.

The suite runs formats' GPU kernels (Triton) on CPU tensors through Triton's interpreter
(``formats.emulate_gpu``). Triton decides between compiling and interpreting when its
modules are imported, and torch may import it on its own, so the switch is set here,
before anything else is imported. The GPU's own checks are scripts in benchmarks/.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import formats  # noqa: E402


def pytest_configure() -> None:
    formats.setup_runtime()
