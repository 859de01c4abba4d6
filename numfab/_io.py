"""Safe file output for the application: atomic writes, checked output paths, a lock.

Every file numfab writes for the user is written whole to a temporary file in the same
directory and renamed over the target (``os.replace``), so a reader, a crash or a full
disk never leaves a half-written file, and a path is checked before any work starts, so
a bad ``-o`` fails at once and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "check_output_dir", "check_output_file", "check_input_file",
           "exclusive_lock"]


def check_input_file(path: str | Path, what: str) -> Path:
    """``path`` as an existing regular file, or a ValueError naming ``what``."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{what} {str(p)!r} is a directory; give a file")
    if not p.exists():
        raise ValueError(f"{what} {str(p)!r} does not exist")
    if not p.is_file():
        raise ValueError(f"{what} {str(p)!r} is not a regular file")
    return p


def check_output_file(path: str | Path, what: str) -> Path:
    """``path`` as a file numfab may create or replace: its directory must exist and it
    must not be a directory itself. Nothing is created."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{what} {str(p)!r} is a directory; give a file name")
    parent = p.parent
    if not parent.is_dir():
        raise ValueError(f"{what} {str(p)!r}: directory {str(parent)!r} does not exist")
    if p.exists() and not p.is_file():
        raise ValueError(f"{what} {str(p)!r} exists and is not a regular file")
    return p


def check_output_dir(path: str | Path, what: str) -> Path:
    """``path`` as a directory numfab may create (with its parents) or write into: an
    existing non-directory anywhere on the way is an error. Nothing is created."""
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                where = "" if q == p else f" (its parent {str(q)!r} is a file)"
                raise ValueError(f"{what} {str(p)!r} must be a directory{where}")
            break
    return p


def atomic_write(path: str | Path, data: str | bytes | Callable[[IO[bytes]], object]) -> Path:
    """Write ``data`` (text, bytes, or a function writing to a binary file object) to
    ``path`` through a temporary file in the same directory and ``os.replace``."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, str):
                fh.write(data.encode())
            elif isinstance(data, bytes):
                fh.write(data)
            else:
                data(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if p.exists():
            os.chmod(tmp, p.stat().st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return p


@contextlib.contextmanager
def exclusive_lock(path: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` + ``.lock`` (created beside it, removed on
    exit); a second holder is refused at once with a ValueError naming ``what``."""
    import fcntl

    lock = Path(str(path) + ".lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise ValueError(f"{what} {str(path)!r} is in use by another numfab process "
                                 f"(lock {str(lock)!r}); wait for it to finish") from None
            raise
        # the holder before us may have removed the lock file after we opened it: only a
        # lock on the file that is still at that path counts
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)
