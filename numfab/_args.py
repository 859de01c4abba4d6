"""argparse pieces every ``numfab`` subcommand shares: the one-line error, number types."""

from __future__ import annotations

import argparse
from typing import NoReturn

__all__ = ["Parser", "natural_int", "positive_int"]


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
