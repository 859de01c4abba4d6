"""Known, harmless log records of third-party packages, dropped in numfab's own processes.

transformers imports torchao whenever it is installed (``transformers.quantizers`` imports
every quantizer, and no setting skips that), and torchao sits in numfab's development
environment as a test oracle for the MX and NVFP4 formats. On import, torchao

- tries to load its compiled extensions, built for CUDA and another Python, and logs each
  failure ("Failed to load .../torchao/_C_*.so"); its pure-PyTorch code (all the tests
  use) is unaffected, and the application runs no torchao code at all;
- registers two Enum classes as pytree constants, which torch 2.13 logs as deprecated.

The ``numfab`` command and its sweep workers drop exactly these records (matched by
logger and message); every other record of those loggers, and every warning, still shows.
Library code never installs this: importing numfab changes no logging.
"""

from __future__ import annotations

import logging
import re

__all__ = ["drop_known_noise", "dropping"]

#: logger name -> the messages of it that are dropped
_KNOWN = {
    "torchao": re.compile(r"^Failed to load \S*torchao[/\\]_C\w*\.[\w.-]*\.so: "),
    "torch.utils._pytree": re.compile(
        r"^<enum '\w+'> is an Enum subclass and is now natively supported by torch\.compile "
        r"as an opaque value type\. Calling register_constant\(\) on Enum subclasses is "
        r"deprecated"),
}


class _DropKnown(logging.Filter):
    """Drops the records whose message matches ``pattern``."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        return self.pattern.search(record.getMessage()) is None


def drop_known_noise() -> None:
    """Drop the known records (see the module docstring) in this process; idempotent."""
    for name, pattern in _KNOWN.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropKnown) for f in logger.filters):
            logger.addFilter(_DropKnown(pattern))


def dropping() -> bool:
    """Whether :func:`drop_known_noise` ran in this process (sweep workers follow it)."""
    return any(isinstance(f, _DropKnown)
               for f in logging.getLogger(next(iter(_KNOWN))).filters)
