"""The dataset file `generate` writes: where it may go, what a refused run leaves of it, a full disk.

`check_out_path` refuses an ``--out`` that cannot be a dataset file, naming why (a folder, a folder that is a file,
a missing folder); `remove_if_nothing_finished` deletes what a run that failed before any simulation finished
created, so the corrected command is not refused as a signature mismatch; `is_disk_full` recognises a full disk
however HDF5 reports it (`is_disk_full`, or `disk_nearly_full` when its buffered writes failed unseen).
"""
from __future__ import annotations

import errno
import re
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..data.dataset import DatasetError, open_h5

__all__ = ["check_out_path", "disk_nearly_full", "is_disk_full", "quiet_failed_hdf5_writes",
           "remove_if_nothing_finished"]


def check_out_path(out: Path) -> None:
    """ValueError/FileNotFoundError when `out` cannot be written as a dataset file, naming the fix."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the dataset file to write, e.g. --out {out / 'data.h5'}")
    if out.parent.exists() and not out.parent.is_dir():
        raise ValueError(f"--out {out}: {out.parent} is a file, not a folder; choose an --out inside a folder")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: the folder {out.parent} does not exist; create it first")


def remove_if_nothing_finished(out: Path, journal_root: Path) -> None:
    """Delete a dataset this run created, and its journal, when no simulation finished: a refused first run (a
    missing mechanism, a template that fails) must not leave a file whose signature refuses the corrected command."""
    if any(journal_root.glob("*/row_*.npy")):
        return
    if out.exists():
        try:
            with open_h5(out, "r") as f:
                if "done" in f and bool(np.asarray(f["done"][:]).any()):
                    return
        except (OSError, DatasetError):
            pass  # not even readable: nothing in it
        out.unlink()
    shutil.rmtree(journal_root, ignore_errors=True)


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC, or HDF5's short write on a full disk ("… 17166 requested and 12256 written", no errno)."""
    return (getattr(exc, "errno", None) == errno.ENOSPC or "No space left on device" in str(exc)
            or re.search(r"\d+ requested and \d+ written", str(exc)) is not None)


#: a folder with less free space than this (bytes) is full for a dataset (a row of 8583 float32 samples is 34 KB)
NEARLY_FULL_BYTES = 1 << 20


def disk_nearly_full(folder: Path) -> bool:
    """Whether the file system of `folder` has less than `NEARLY_FULL_BYTES` free (False where it cannot tell)."""
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


@contextmanager
def quiet_failed_hdf5_writes():
    """While it lasts, h5py's reports of writes a full disk refused, printed as it frees its objects (through
    ``sys.unraisablehook`` and, for the traceback Cython prints first, ``sys.excepthook``), are dropped: a dozen
    tracebacks around the one message `generate` gives. Every other error is reported as before."""
    previous_unraisable, previous_except = sys.unraisablehook, sys.excepthook

    def refused_write(exc: BaseException | None) -> bool:
        return exc is not None and "file write failed" in str(exc)

    def unraisable_hook(unraisable) -> None:
        if not refused_write(unraisable.exc_value):
            previous_unraisable(unraisable)

    def except_hook(kind, value, tb) -> None:
        if not refused_write(value):
            previous_except(kind, value, tb)

    sys.unraisablehook, sys.excepthook = unraisable_hook, except_hook
    try:
        yield
    finally:
        sys.unraisablehook, sys.excepthook = previous_unraisable, previous_except
