"""Writing results: output paths checked before anything is created, files replaced
atomically.

Every file rtl/ and costmodel/ write for a user (Verilog, manifests, golden vectors, the
calibration CSV) goes through :func:`write_text`: the text goes to a temporary file in the
same directory, which then replaces the target in one ``os.replace``, so a reader (or a
crash) never sees half a file and no other file is touched. The ``check_*`` functions run
before any work or any directory is created, so a refused path leaves the disk as it was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["check_output_dir", "check_output_file", "write_text"]


def _path(value: Any, parameter: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{parameter} must be a path (str or os.PathLike), not "
                        f"{type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str) or not text or "\0" in text:
        raise ValueError(f"{parameter} must be a non-empty path without NUL characters, not "
                         f"{text!r}")
    return Path(text)


def _blocking_file(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` if it is a file (so ``path`` cannot be
    created), else None."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_output_dir(value: Any, parameter: str) -> Path:
    """``value`` as a directory to write into: an existing directory, or a new one whose
    nearest existing ancestor is a directory (created, with its parents, on writing)."""
    path = _path(value, parameter)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{parameter} must be a directory, but {str(path)!r} is an existing "
                         "file")
    blocker = _blocking_file(path)
    if blocker is not None:
        raise ValueError(f"{parameter} {str(path)!r} cannot be created: {str(blocker)!r} is a "
                         "file, not a directory")
    return path


def check_output_file(value: Any, parameter: str, *, new_dirs: bool = False) -> Path:
    """``value`` as a file to (over)write: not a directory, in an existing directory
    (numfab creates output files, not the folders they go into) or, with ``new_dirs``,
    in a directory that can be created (the caller creates it)."""
    path = _path(value, parameter)
    if path.is_dir():
        raise ValueError(f"{parameter} must be a file name, but {str(path)!r} is a directory")
    parent = path.parent
    if parent.is_dir():
        return path
    if parent.exists():
        raise ValueError(f"{parameter} {str(path)!r} cannot be written: its directory "
                         f"{str(parent)!r} is a file")
    if not new_dirs:
        raise ValueError(f"{parameter} {str(path)!r} cannot be written: its directory "
                         f"{str(parent)!r} does not exist")
    blocker = _blocking_file(parent)
    if blocker is not None:
        raise ValueError(f"{parameter} {str(path)!r} cannot be written: {str(blocker)!r} is a "
                         "file, not a directory")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file in the same directory, then
    ``os.replace``); an existing file keeps its permission bits, a new one gets the
    umask's."""
    target = check_output_file(path, "path")
    mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
