"""argparse pieces every ``numfab`` subcommand shares: the one-line error, number types."""

from __future__ import annotations

import argparse
import re
from typing import Any, NoReturn

__all__ = ["DEVICE_HELP", "Parser", "check_device", "device_arg", "natural_int", "positive_int"]

#: the help of every ``--device`` option
DEVICE_HELP = ("where models and tensors compute: auto (default: CUDA where torch sees a "
               "GPU, else the CPU), cpu, cuda or cuda:N; formats round alike on both")


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: the message and where to find the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return v


def natural_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, not {text!r}")
    return v


def check_device(device: Any, what: str = "device") -> str:
    """``device`` if it names a device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether
    there is one is :func:`numfab.evaluate.resolve_device`'s question)."""
    if not isinstance(device, str):
        raise TypeError(f"{what} must be 'auto', 'cpu', 'cuda' or 'cuda:N' (a str), not "
                        f"{device!r}")
    if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", device):
        raise ValueError(f"{what} must be auto, cpu, cuda or cuda:N, not {device!r}")
    return device


def device_arg(text: str) -> str:
    """argparse type: a device name (:func:`check_device`)."""
    try:
        return check_device(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda or cuda:N, not "
                                         f"{text!r}") from None
