"""Whole-file writes for the state files plugins keep between ADD and DEL.

A state file (flannel's scratch config, tuning's backup) is read back by a later DEL, so it
must hold all of its content or not exist: an empty or cut file, as a full disk or a
crash mid-write leaves, makes that DEL lose what it was to undo. The content goes to a
temporary file beside the target, named after it (``.<name>.pycni-tmp``), is fsynced,
then renamed over the target. The temporary name is fixed per target, so whoever next
writes or removes that target also removes what a crash left, without listing the
directory. Such names start with ``.``, which no container ID does.
"""

from __future__ import annotations

import contextlib
import os

TEMP_SUFFIX = ".pycni-tmp"


def temp_path(path: str) -> str:
    """The temporary file a write of ``path`` goes through."""
    head, name = os.path.split(path)
    return os.path.join(head, f".{name}{TEMP_SUFFIX}")


def write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Put ``data`` at ``path`` whole (OSError on failure, leaving the old file as it was)."""
    tmp = temp_path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(tmp, flags, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        discard_temp(path)
        raise


def discard_temp(path: str) -> None:
    """Remove the temporary file of ``path`` a crash may have left (best effort)."""
    with contextlib.suppress(OSError):
        os.unlink(temp_path(path))


def remove(path: str) -> bool:
    """Remove ``path`` and its temporary file; False when ``path`` did not exist.

    Raises OSError when ``path`` exists and cannot be removed."""
    discard_temp(path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
