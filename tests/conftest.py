"""Test-suite set-up: the process tuning the ``numfab`` command makes (formats.setup_runtime),
so kernels run in tests as they run for users of the command and the suite keeps its speed."""

from __future__ import annotations

import formats


def pytest_configure() -> None:
    formats.setup_runtime()
