"""Whole-file writes for what cnitool installs (launchers, units, a node's files).

The content goes to a temporary file beside the target, is fsynced with its mode set,
then renamed over the target: a reader (a runtime exec'ing a launcher, systemd reading a
unit) sees the old file or the new one, never a part.
"""

from __future__ import annotations

import contextlib
import os
import tempfile


def write_atomic(path: str, data: bytes, mode: int) -> None:
    """Put ``data`` at ``path`` with ``mode``, whole (OSError on failure, the old file kept)."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
