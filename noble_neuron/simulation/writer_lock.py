"""One writer per output file: an exclusive, advisory lock held for as long as a command writes.

`exclusive_writer(path)` takes an ``flock`` on ``<path>.lock`` (created if missing) and records
the holder's pid and command line in it; a second writer is refused at once with a
`WriterLockError` naming the other process. The lock dies with its process (kill -9
included), so a stale lock file never blocks a later run; the file is removed on release.
"""
from __future__ import annotations

import fcntl
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from ..errors import WriterLockError  # noqa: F401 (raised here, defined in errors)

__all__ = ["WriterLockError", "exclusive_writer", "lock_path"]


def lock_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextmanager
def exclusive_writer(path: str | Path) -> Iterator[None]:
    """Hold the exclusive writer lock of `path` (raises WriterLockError if another process holds it)."""
    lock = lock_path(path)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace").strip() or "unknown process"
            os.close(fd)
            raise WriterLockError(
                f"{path} is being written by another process ({holder}); wait for it to finish, stop it, or "
                "choose another --out (two writers would corrupt the file)") from None
        try:  # the holder before us may have removed the file after we opened it: lock the current one
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}: {' '.join(sys.argv)[:300]}\n".encode())
        yield
    finally:
        try:
            os.unlink(lock)
        except FileNotFoundError:
            pass
        os.close(fd)  # releases the flock
