# amaranth: UnusedElaboratable=no
"""Where :func:`rtl.describe` constructs its PEs. Amaranth warns when an elaboratable
is dropped without being elaborated unless the file that constructed it starts with the
linter option above; these PEs are only read (kind, formats, parameters, datapath), so
the option is right for exactly the ones made here and for no other PE.
"""

from __future__ import annotations

from typing import Any


def construct(cls: type, args: dict[str, Any]) -> Any:
    """``cls(**args)``, constructed in this file."""
    return cls(**args)
