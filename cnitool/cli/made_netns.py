"""Which named network namespaces ``cnitool add`` made, so ``cnitool del`` can remove them.

A netns that add created for an attachment is marked with a file under the cache dir
(``<cache>/pycni/netns/<name>``, holding its path); del removes a marked netns once no
cached attachment uses it any more, and never one it did not make. The marks live beside
the result cache, not in its files, which stay exactly what the Go libcni writes.
"""

from __future__ import annotations

import contextlib
import os

from ..libcni.cache import ResultCache

SUBDIR = os.path.join("pycni", "netns")


def _mark_path(cache_dir: str, netns: str) -> str:
    return os.path.join(cache_dir, SUBDIR, os.path.basename(netns))


def mark(cache_dir: str, netns: str) -> None:
    """Record that this tool created ``netns`` (a named one)."""
    path = _mark_path(cache_dir, netns)
    os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
    with open(path, "wb") as fh:  # bytes: a netns name need not be UTF-8
        fh.write(os.fsencode(netns) + b"\n")


def was_made(cache_dir: str, netns: str) -> bool:
    try:
        with open(_mark_path(cache_dir, netns), "rb") as fh:
            return fh.read().strip() == os.fsencode(netns)
    except OSError:
        return False


def unmark(cache_dir: str, netns: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_mark_path(cache_dir, netns))


def still_used(cache_dir: str, netns: str) -> bool:
    """Whether a cached attachment (of any network) still names ``netns``."""
    return any(a.netns == netns for a in ResultCache(cache_dir).attachments())
