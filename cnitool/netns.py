"""Named network namespaces, made the way ``ip netns`` makes them.

A named netns is a file under /var/run/netns on which a namespace's ``ns/net`` file is
bind-mounted, which keeps the namespace alive with no process in it. iproute2 makes the
directory a shared mount point first, so that the bind mounts propagate to other mount
namespaces (and out of them); we do the same so both tools see each other's namespaces.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import threading

from .spec.errors import INVALID_ENVIRONMENT, IO_FAILURE, CNIError, InvalidNetNSError

NETNS_DIR = "/var/run/netns"

_CLONE_NEWNET = 0x40000000
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_SHARED = 1 << 20
_MNT_DETACH = 2

_libc: ctypes.CDLL | None = None


class NetnsError(CNIError):
    """Creating or deleting a named netns failed."""

    code = IO_FAILURE


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(ret: int, what: str) -> None:
    if ret != 0:
        num = ctypes.get_errno()
        raise NetnsError(
            f"{what}: {os.strerror(num)}",
            code=INVALID_ENVIRONMENT if num == errno.EPERM else IO_FAILURE,
        )


def validate_name(name: str) -> None:
    """A netns name becomes a file name: no '/', not '.' or '..', not empty."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise InvalidNetNSError(
            f'invalid netns name "{name}"', "a name must not contain '/' or be '.' or '..'"
        )


def path_of(name: str, run_dir: str = NETNS_DIR) -> str:
    validate_name(name)
    return os.path.join(run_dir, name)


def list_names(run_dir: str = NETNS_DIR) -> list[str]:
    """Names of the named network namespaces, sorted (a missing dir means none)."""
    try:
        return sorted(e.name for e in os.scandir(run_dir) if e.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return []


def _make_shared(run_dir: str) -> None:
    """mount --make-shared run_dir, bind-mounting it onto itself first if needed (iproute2)."""
    os.makedirs(run_dir, mode=0o755, exist_ok=True)
    libc = _c()
    bdir = os.fsencode(run_dir)
    if libc.mount(b"none", bdir, None, _MS_SHARED | _MS_REC, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:
        _check(-1, f"making {run_dir} a shared mount point failed")
    _check(
        libc.mount(bdir, bdir, b"none", _MS_BIND | _MS_REC, None),
        f"bind-mounting {run_dir} onto itself failed",
    )
    _check(
        libc.mount(b"none", bdir, None, _MS_SHARED | _MS_REC, None),
        f"making {run_dir} a shared mount point failed",
    )


def create(name: str, run_dir: str = NETNS_DIR) -> str:
    """Create the named netns ``name``; return its path. Fails if it already exists."""
    path = path_of(name, run_dir)
    _make_shared(run_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    except FileExistsError:
        raise NetnsError(f'netns "{name}" already exists ({path})') from None
    except OSError as err:
        raise NetnsError(f"cannot create {path}: {err.strerror}") from None
    os.close(fd)

    failure: list[BaseException] = []

    def in_thread() -> None:
        # unshare(CLONE_NEWNET) moves only this thread; the bind mount pins the new netns
        try:
            libc = _c()
            _check(libc.unshare(_CLONE_NEWNET), "unshare(CLONE_NEWNET) failed")
            _check(
                libc.mount(b"/proc/thread-self/ns/net", os.fsencode(path), b"none", _MS_BIND, None),
                f"bind-mounting the new netns on {path} failed",
            )
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller
            failure.append(err)

    worker = threading.Thread(target=in_thread, name=f"netns-create-{name}")
    worker.start()
    worker.join()
    if failure:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise failure[0]
    return path


def delete(name: str, run_dir: str = NETNS_DIR, *, missing_ok: bool = False) -> bool:
    """Unmount and remove the named netns; returns False when it did not exist."""
    path = path_of(name, run_dir)
    if not os.path.lexists(path):
        if missing_ok:
            return False
        raise NetnsError(f'netns "{name}" does not exist ({path})')
    libc = _c()
    if libc.umount2(os.fsencode(path), _MNT_DETACH) != 0:
        num = ctypes.get_errno()
        if num not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not mounted (placeholder only)
            raise NetnsError(f"unmounting {path} failed: {os.strerror(num)}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise NetnsError(f"cannot remove {path}: {err.strerror}") from None
    return True
