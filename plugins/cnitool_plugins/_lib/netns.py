"""Network namespace handles: open/validate a netns path and run code inside it.

A namespace is always an explicit open file descriptor. Switching happens only in a
short-lived worker thread (``setns`` affects the calling thread alone), so the caller's
thread, and the rest of the process, never leave their own namespace. A missing path is
reported as such and is never created.

A warm worker of the plugin service (single-threaded, one call, then it exits) asks for
the switch in the calling thread instead (:func:`switch_calling_thread`): a new thread
in a freshly forked process costs more than most of the work done inside it. The thread
goes back to its own namespace before ``run_in_netns`` returns or raises; if it cannot,
the process is told and must end without running anything more.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from cnitool.spec.errors import INTERNAL, InvalidNetNSError

CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # ioctl on a namespace fd: its CLONE_NEW* type
NSFS_MAGIC = 0x6E736673
PROC_SUPER_MAGIC = 0x9FA0

T = TypeVar("T")

# The C library the interpreter already has mapped (no find_library: it may spawn
# ldconfig). A constant handle; errno is kept per thread by ctypes (use_errno).
_LIBC: Any = ctypes.CDLL(None, use_errno=True)


class NetNSOpenError(InvalidNetNSError):
    """A CNI_NETNS that cannot be used.

    The reference plugins report this as a plain error (code 999, not 8), and so do these;
    the subclasses still tell callers which case it is.
    """

    code = INTERNAL


class NetNSNotFoundError(NetNSOpenError):
    """The netns path does not exist (DEL treats this as "already gone")."""


class NotANetNSError(NetNSOpenError):
    """The path exists but is not a namespace file (not on nsfs or procfs)."""


class _StatFS(ctypes.Structure):
    # struct statfs on 64-bit Linux: f_type is the first long
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 112)]


def _fs_type(fd: int) -> int:
    buf = _StatFS()
    if _LIBC.fstatfs(fd, ctypes.byref(buf)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(buf.f_type) & 0xFFFFFFFF


def open_netns(path: str) -> int:
    """Open a netns path read-only and check it is a namespace; return the fd.

    Raises NetNSNotFoundError when the path does not exist and NotANetNSError when it is
    some other file. Never creates anything.
    """
    if not path:
        raise NetNSOpenError("netns path is empty")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise NetNSNotFoundError(
            f'failed to open netns "{path}": no such file or directory'
        ) from exc
    except OSError as exc:
        raise NetNSOpenError(f'failed to open netns "{path}": {exc.strerror}') from exc
    try:
        ftype = _fs_type(fd)
    except OSError as exc:
        os.close(fd)
        raise NetNSOpenError(f'failed to open netns "{path}": {exc.strerror}') from exc
    if ftype not in (NSFS_MAGIC, PROC_SUPER_MAGIC):
        os.close(fd)
        raise NotANetNSError(
            f'failed to open netns "{path}": unknown FS magic on "{path}": {ftype:x}'
        )
    if _ns_type(fd) not in (None, CLONE_NEWNET):
        os.close(fd)
        raise NotANetNSError(
            f'failed to open netns "{path}": "{path}" is a namespace, but not a network one'
        )
    return fd


def _ns_type(fd: int) -> int | None:
    """The CLONE_NEW* type of a namespace fd (None when the kernel cannot tell)."""
    import fcntl

    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        return None


def current_netns() -> int:
    """An fd for the calling thread's own network namespace."""
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace ``fd``."""
    if _LIBC.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


# set by switch_calling_thread: what to do when the calling thread cannot switch back
_STRANDED: Callable[[BaseException], NoReturn] | None = None


def switch_calling_thread(stranded: Callable[[BaseException], NoReturn] | None) -> None:
    """Have :func:`run_in_netns` switch the calling thread instead of starting one
    (None: a thread per switch again, the default).

    Only for a process with one thread that exits after its call (a warm worker), or
    while nothing else runs (the service's warm-up). ``stranded`` is called, and must
    end the process (or the thread), when the thread cannot go back to its own
    namespace: nothing may run after that in the wrong namespace (a rollback would undo
    the node's network in the container's).
    """
    global _STRANDED
    _STRANDED = stranded


def _run_here(fd: int, stranded: Callable[[BaseException], NoReturn], fn: Callable[[], T]) -> T:
    """``fn()`` in the calling thread switched into netns ``fd``, then back."""
    home = current_netns()
    try:
        setns(fd)
        try:
            return fn()
        finally:
            try:
                setns(home)
            except BaseException as exc:  # nothing else may run in this namespace
                stranded(exc)
    finally:
        os.close(home)


def run_in_netns(fd: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a worker thread switched into netns ``fd``.

    Returns what ``fn`` returns and re-raises what it raises. The worker switches back
    before it ends; if that fails the thread simply ends, so nothing else is affected.
    (In a warm worker, the calling thread itself: see :func:`switch_calling_thread`.)
    """
    if _STRANDED is not None:
        stranded = _STRANDED
        return _run_here(fd, stranded, lambda: fn(*args, **kwargs))
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            home = current_netns()
        except OSError as exc:
            box["exc"] = exc
            return
        try:
            setns(fd)
            try:
                box["value"] = fn(*args, **kwargs)
            finally:
                setns(home)
        except BaseException as exc:  # handed back to the caller below
            box["exc"] = exc
        finally:
            os.close(home)

    thread = threading.Thread(target=worker, name="netns-worker", daemon=True)
    thread.start()
    thread.join()
    if "exc" in box:
        raise box["exc"]
    return box["value"]  # type: ignore[no-any-return]


class NetNS:
    """An open namespace: ``with NetNS(path) as ns: ns.run(fn, ...)``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = open_netns(path)

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return run_in_netns(self.fd, fn, *args, **kwargs)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> NetNS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "NetNS",
    "NetNSNotFoundError",
    "NetNSOpenError",
    "NotANetNSError",
    "current_netns",
    "open_netns",
    "run_in_netns",
    "setns",
    "switch_calling_thread",
]
