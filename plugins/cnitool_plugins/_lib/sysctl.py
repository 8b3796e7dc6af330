"""sysctl read/write through /proc/sys.

Called from a netns worker thread, ``net.*`` keys read and write that namespace's values.
Keys may use dots or slashes; dots become slashes only when a dot comes before the first
slash, so interface names containing dots survive (``net/ipv4/conf/eth0.100/arp_notify``).
"""

from __future__ import annotations

import os

PROC_SYS = "/proc/sys"


def key_path(name: str) -> str:
    """Map a sysctl key to its file under /proc/sys."""
    dot, slash = name.find("."), name.find("/")
    if dot != -1 and (slash == -1 or dot < slash):
        name = name.replace(".", "/")
    return os.path.join(PROC_SYS, name)


# Plain descriptor reads and writes: a sysctl value is a few ASCII bytes, and a plugin
# reads several per call (no buffered text file, no codec lookup for each).
_READ_SIZE = 4096


def get(name: str) -> str:
    fd = os.open(key_path(name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, _READ_SIZE):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("ascii").strip()


def set(name: str, value: str) -> None:  # noqa: A001 - mirrors the sysctl verb
    data = value.encode("ascii")
    fd = os.open(key_path(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        # /proc/sys takes a value in one write; a short write of a regular file goes on
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def ensure(name: str, value: str) -> None:
    """Write ``value`` only when the current value differs (no needless writes)."""
    if get(name) != value:
        set(name, value)


def ensure_optional(name: str, value: str) -> bool:
    """``ensure`` for a setting that may be missing (IPv6 disabled, an older kernel) and
    that is only a refinement: a failure is not an error (the reference plugins ignore it
    too). Returns whether the value is now in place."""
    try:
        ensure(name, value)
    except OSError:
        return False
    return True


def enable_forwarding(v4: bool, v6: bool) -> None:
    """Turn on IP forwarding for the families asked for (only when not already on)."""
    if v4:
        ensure("net/ipv4/ip_forward", "1")
    if v6:
        ensure("net/ipv6/conf/all/forwarding", "1")
