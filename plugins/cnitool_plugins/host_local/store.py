"""The on-disk lease store, byte-compatible with the Go host-local plugin.

Layout of ``<dataDir>/<network>/`` (shared with the Go plugin on the same node):

- ``<ip>``: one file per lease, created ``O_EXCL`` (mode 0644), holding
  ``<containerID>\\r\\n<ifname>`` with no trailing newline; an id-only content is the
  older format and still honoured;
- ``last_reserved_ip.<N>``: the last address handed out from range set N;
- ``lock``: an empty file every operation holds ``flock(LOCK_EX)`` on.

In addition this store keeps per-attachment hints in ``.pycni/<id>:<ifname>`` listing the
addresses it reserved, so DEL and CHECK read a couple of files instead of every lease.
Lease files stay the truth: a hint is only trusted after each listed lease file was read
back and matched; a missing or stale hint falls back to a scan of the whole directory
(leases made by the Go plugin never have a hint). A hint's content starts with ``#`` and
spans several lines, so it can never equal a lease content the Go plugin looks for when it
walks the directory (it walks sub-directories too).

With many leases, whether an attachment already holds an address (ADD's duplicate check,
and CHECK or DEL without a usable hint) is answered without a walk: by its hint, and by
``.pycni/foreign``, the leases no hint lists (those the Go plugin made), searched by
content. ``.pycni/index`` says when those are complete: it records a token of the network
directory (inode, size, mtime, ctime) taken under the lock after our own last change.
Another writer creating or removing a lease changes that token: the size on tmpfs, the
times elsewhere (a file system with fine-grained times gives the first change after our
stat a later time; with coarse times we keep the lock until the clock tick of the recorded
times is over). A changed token means one walk, which rebuilds them. They only answer that
question: an address is never given out twice in any case, because a lease file is
created exclusively.

Every file is written whole or not at all: its content goes to a temporary file in
``.pycni/tmp/`` (same file system), is fsynced, then linked (a lease: the link fails when
the address is taken, as ``O_EXCL`` does) or renamed (``last_reserved_ip.N``, a hint) into
place. A full disk thus leaves no empty or cut file. All writes happen under the lock and
the directory goes when the store closes, so a temporary file found by the next holder of
the lock was left by a crash, and is removed (only names of our own pattern).
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import fcntl
import os
import re
import time
from collections.abc import Iterator

from cnitool.spec.errors import CNIError

from .config import parse_ip

LINE_BREAK = "\r\n"
LAST_IP_PREFIX = "last_reserved_ip."
LOCK_NAME = "lock"
HINT_DIR = ".pycni"
TMP_DIR = os.path.join(HINT_DIR, "tmp")
_TMP_PREFIX = ".tmp-"
_TMP_NAME = re.compile(r"\.tmp-[0-9]+-[0-9a-f]{16}")
_HINT_HEADER = "#pycni host-local attachment hint v1"
INDEX_NAME = os.path.join(HINT_DIR, "index")
_INDEX_HEADER = "#pycni host-local index v1"
# below this many leases a walk is cheap, and no index is kept (nor waited for)
INDEX_MIN_LEASES = 512
_CLOCK_REALTIME_COARSE = 5  # the clock file times come from (Linux)

FOREIGN_NAME = os.path.join(HINT_DIR, "foreign")
_FOREIGN_HEADER = b"#pycni host-local leases without hint v1\n"


def _escape(content: str) -> str:
    """A lease content with no blank or line break left (backslash escapes)."""
    return (
        content.replace("\\", "\\\\")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace(" ", "\\s")
        .replace("\t", "\\t")
    )


def _stamp(st: os.stat_result) -> str:
    return f"{st.st_ino} {st.st_size} {st.st_mtime_ns}"


class ForeignIndex:
    """The leases no hint lists (the Go plugin's), as ``.pycni/foreign`` holds them: a
    line ``<content, escaped> <ip>`` per lease. A lookup searches the bytes for one
    content; the other lines are never parsed."""

    __slots__ = ("data", "changed")

    def __init__(self, data: bytes = _FOREIGN_HEADER) -> None:
        self.data = data
        self.changed = False

    @staticmethod
    def _key(content: str) -> bytes:
        return b"\n" + _escape(content).encode() + b" "

    def _spans(self, content: str) -> list[tuple[int, int, str]]:
        key = self._key(content)
        out = []
        at = self.data.find(key)
        while at >= 0:
            start = at + len(key)
            end = self.data.find(b"\n", start)
            end = len(self.data) if end < 0 else end
            out.append((at, end, self.data[start:end].decode(errors="replace")))
            at = self.data.find(key, end)
        return out

    def get(self, content: str) -> list[str]:
        return [ip for _, _, ip in self._spans(content)]

    def pop(self, content: str) -> list[str]:
        spans = self._spans(content)
        for at, end, _ in reversed(spans):
            self.data = self.data[:at] + self.data[end:]
        self.changed = self.changed or bool(spans)
        return [ip for _, _, ip in spans]

    def add(self, content: str, ips: list[str]) -> None:
        key = _escape(content)
        lines = "".join(f"{key} {ip}\n" for ip in ips).encode()
        self.data = self.data + lines if self.data.endswith(b"\n") else self.data + b"\n" + lines
        self.changed = self.changed or bool(ips)

    def empty(self) -> bool:
        return len(self.data) <= len(_FOREIGN_HEADER)

    def count(self) -> int:
        return self.data.count(b"\n") - 1


def lease_content(container_id: str, ifname: str) -> str:
    return container_id.strip() + LINE_BREAK + ifname


def _io_error(what: str, path: str, exc: OSError) -> CNIError:
    # a plain error (code 999), as the reference reports a lease-store failure
    reason = exc.strerror or str(exc)
    return CNIError(f"{what} {path}: {reason[:1].lower() + reason[1:]}")


class Store:
    """One network's lease directory.

    Use it once as a context manager: it holds the lock for the block, then closes.
    """

    def __init__(self, network: str, data_dir: str) -> None:
        self.dir = os.path.join(data_dir, network)
        try:
            os.makedirs(self.dir, 0o755, exist_ok=True)
        except OSError as exc:
            raise _io_error("cannot create lease directory", self.dir, exc) from None
        self._lock_fd = _open_lock(os.path.join(self.dir, LOCK_NAME))

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # also drops the flock
            self._lock_fd = -1

    def __enter__(self) -> Store:
        if self._lock_fd < 0:  # a read-only directory: no one can change it, no lock needed
            return self
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        except BaseException:
            self.close()
            raise
        self._drop_temp_dir()  # what a crashed holder of the lock left
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock_fd >= 0:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(self.dir, TMP_DIR))  # empty unless a write failed
        self.close()

    # -- whole-file writes ---------------------------------------------------------------

    def _drop_temp_dir(self) -> None:
        """Remove our temporary files (left by a crash: every write is done under the
        lock, which we hold) and their directory; one failed rmdir when there is none."""
        tmp_dir = os.path.join(self.dir, TMP_DIR)
        try:
            os.rmdir(tmp_dir)
            return
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:
                return
        with contextlib.suppress(OSError):
            for name in os.listdir(tmp_dir):
                if _TMP_NAME.fullmatch(name):
                    _discard(os.path.join(tmp_dir, name))
            os.rmdir(tmp_dir)

    def _temp_file(self, data: bytes, durable: bool = True) -> str:
        """A new temporary file holding ``data`` (fsynced when ``durable``): ready to be
        linked or renamed."""
        tmp_dir = os.path.join(self.dir, TMP_DIR)
        os.makedirs(tmp_dir, 0o755, exist_ok=True)
        path = os.path.join(tmp_dir, f"{_TMP_PREFIX}{os.getpid()}-{os.urandom(8).hex()}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, data)
            if durable:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            _discard(path)
            raise
        os.close(fd)
        return path

    def _replace(self, path: str, data: bytes, durable: bool = True) -> None:
        """Put ``data`` at ``path`` whole, replacing what was there (OSError on failure);
        fsynced first when ``durable``."""
        tmp = self._temp_file(data, durable)
        try:
            os.replace(tmp, path)
        except BaseException:
            _discard(tmp)
            raise

    def _create(self, path: str, data: bytes) -> bool:
        """Create ``path`` holding ``data`` whole; False when it exists (OSError on failure)."""
        if os.path.lexists(path):  # taken: spare the write (the lock keeps this true)
            return False
        tmp = self._temp_file(data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            return _create_in_place(path, data)
        finally:
            _discard(tmp)
        return True

    # -- leases --------------------------------------------------------------------------

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def reserve(self, container_id: str, ifname: str, ip: str, range_id: int) -> bool:
        """Create the lease file for ``ip``; False when it already exists."""
        fname = self.path(ip)
        try:
            if not self._create(fname, lease_content(container_id, ifname).encode()):
                return False
        except OSError as exc:
            raise _io_error("cannot create lease file", fname, exc) from None
        last = self.path(f"{LAST_IP_PREFIX}{range_id}")
        try:
            self._replace(last, ip.encode())
        except OSError as exc:
            _discard(fname)  # the caller sees an error, so it holds no lease either
            raise _io_error("cannot write", last, exc) from None
        return True

    def last_reserved_ip(self, range_id: int) -> str | None:
        try:
            with open(self.path(f"{LAST_IP_PREFIX}{range_id}"), "rb") as f:
                return f.read().decode(errors="replace").strip()
        except OSError:
            return None

    def read_lease(self, ip: str) -> str | None:
        """The trimmed content of a lease file, None when it does not exist."""
        try:
            with open(self.path(ip), "rb") as f:
                return f.read().decode(errors="replace").strip()
        except OSError:
            return None

    def release(self, ip: str) -> bool:
        """Remove the lease file of ``ip``; False when there was none."""
        fname = self.path(ip)
        try:
            return _unlink(fname)
        except OSError as exc:
            raise _io_error("cannot remove lease file", fname, exc) from None

    def scan(self) -> Iterator[tuple[str, str]]:
        """Every lease in the directory as (ip text, trimmed content)."""
        return scan_dir(self.dir)

    def get_by_id(self, container_id: str, ifname: str, seen: set[str] | None = None) -> list[str]:
        """All leases of the attachment, by a full scan (either content format).

        When ``seen`` is given, every lease content met on the way is added to it.
        """
        match = lease_content(container_id, ifname)
        old = container_id.strip()
        out = []
        for ip, content in self.scan():
            if seen is not None:
                seen.add(content)
            if content in (match, old):
                out.append(ip)
        return out

    def release_by_id(self, container_id: str, ifname: str, legacy: bool = True) -> list[str]:
        """Release the attachment's leases (or, when none and ``legacy``, its id-only ones)."""
        match = lease_content(container_id, ifname)
        old = container_id.strip()
        current: list[str] = []
        old_format: list[str] = []
        for ip, content in self.scan():
            if content == match:
                current.append(ip)
            elif content == old:
                old_format.append(ip)
        chosen = current or (old_format if legacy else [])
        return [ip for ip in chosen if self.release(ip)]

    # -- hints ---------------------------------------------------------------------------

    def _hint_path(self, container_id: str, ifname: str) -> str | None:
        name = f"{container_id.strip()}:{ifname}"
        if "/" in name or name.startswith(".") or len(name.encode()) > 200:
            return None
        return os.path.join(self.dir, HINT_DIR, name)

    def read_hint(self, container_id: str, ifname: str) -> list[str] | None:
        path = self._hint_path(container_id, ifname)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return None
        if not lines or lines[0] != _HINT_HEADER:
            return None
        return [line for line in lines[1:] if line and parse_ip(line) is not None]

    def write_hint(self, container_id: str, ifname: str, ips: list[str]) -> bool:
        """Record the attachment's addresses (best effort: a lost hint only costs a scan);
        False when no hint lists them."""
        path = self._hint_path(container_id, ifname)
        if path is None:
            return False
        if not ips:
            _discard(path)
            return True
        try:
            # whole but not fsynced: a hint is an index, checked against the leases on
            # every read, and one lost in a crash only costs a scan
            text = _HINT_HEADER + "\n" + "".join(ip + "\n" for ip in ips)
            self._replace(path, text.encode(), durable=False)
        except OSError:
            _discard(path)
            return False
        return True

    def drop_hint(self, container_id: str, ifname: str) -> None:
        """Remove the attachment's hint, best effort: a hint left behind is never trusted
        unchecked, and a DEL must not fail for it (on a read-only disk, say)."""
        path = self._hint_path(container_id, ifname)
        if path is not None:
            _discard(path)

    def prune_hints(self, live: set[str]) -> None:
        """Drop the hints of attachments that own no lease (content not in ``live``).

        Such hints are left when another implementation (the Go plugin) released our
        leases; they are harmless but would pile up. Call it with the lock held and the
        contents of a full scan.
        """
        for cid, ifname in list(self.hints()):
            if lease_content(cid, ifname) not in live:
                self.drop_hint(cid, ifname)

    # -- the index -----------------------------------------------------------------------

    def token(self) -> tuple[str, os.stat_result]:
        st = os.stat(self.dir)
        return f"{st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}", st

    def read_index(self) -> ForeignIndex | None:
        """The leases no hint lists, when the index is there and the directory has not
        changed since it was written; None otherwise (then only a walk answers)."""
        try:
            with open(self.path(INDEX_NAME), "rb") as f:
                lines = f.read().decode(errors="replace").split("\n")
            token, _ = self.token()
            if len(lines) < 3 or lines[0] != _INDEX_HEADER or lines[1] != token:
                return None
            if lines[2] == "-":
                return ForeignIndex()
            with open(self.path(FOREIGN_NAME), "rb") as f:
                if _stamp(os.fstat(f.fileno())) != lines[2]:
                    return None
                data = f.read()
        except OSError:
            return None
        if not data.startswith(_FOREIGN_HEADER):
            return None
        return ForeignIndex(data)

    def foreign_of(self, leases: list[tuple[str, str]]) -> ForeignIndex:
        """From a walk's (ip, content) pairs: the leases no hint lists (read the hints of
        the attachments that have one)."""
        try:
            hinted = set(os.listdir(os.path.join(self.dir, HINT_DIR)))
        except OSError:
            hinted = set()
        listed: dict[str, set[str]] = {}
        lines = [_FOREIGN_HEADER]
        for ip, content in leases:
            cid, sep, ifname = content.partition(LINE_BREAK)
            key = f"{cid}:{ifname}"
            if sep and key in hinted:
                ips = listed.get(key)
                if ips is None:
                    ips = listed[key] = set(self.read_hint(cid, ifname) or ())
                if ip in ips:
                    continue
            lines.append(f"{_escape(content)} {ip}\n".encode())
        out = ForeignIndex(b"".join(lines))
        out.changed = True
        return out

    def write_index(self, foreign: ForeignIndex) -> None:
        """Record ``foreign`` with the directory's token; call it after the last change to
        the directory, with the lock held. Best effort: without it, the next call walks."""
        path = self.path(INDEX_NAME)
        try:
            # first, or creating .pycni would change the directory after its token
            os.makedirs(os.path.join(self.dir, TMP_DIR), 0o755, exist_ok=True)
            stamp_line = "-"
            if foreign.changed and foreign.empty():
                _discard(self.path(FOREIGN_NAME))
            elif not foreign.empty():
                fpath = self.path(FOREIGN_NAME)
                if foreign.changed:
                    self._replace(fpath, foreign.data, durable=False)
                    foreign.changed = False
                stamp_line = _stamp(os.stat(fpath))
            token, st = self.token()
            stamp = max(st.st_mtime_ns, st.st_ctime_ns)
            ahead = stamp - time.clock_gettime_ns(_CLOCK_REALTIME_COARSE)
            if ahead > 100_000_000:
                raise OSError(errno.EINVAL, "directory times ahead of the clock")
            text = f"{_INDEX_HEADER}\n{token}\n{stamp_line}\n"
            self._replace(path, text.encode(), durable=False)
            if ahead <= 0:
                # coarse file times: a change by another writer in this clock tick could
                # get the time just recorded, so the lock is kept until the tick is over.
                # (Times ahead of the coarse clock are fine-grained ones: the file system
                # then gives the next change after our stat a later time.)
                while time.clock_gettime_ns(_CLOCK_REALTIME_COARSE) <= stamp:
                    time.sleep(0.0005)
        except OSError:
            _discard(path)

    def drop_index(self) -> None:
        _discard(self.path(INDEX_NAME))

    def hints(self) -> Iterator[tuple[str, str]]:
        """(container id, ifname) of every hint file."""
        try:
            names = os.listdir(os.path.join(self.dir, HINT_DIR))
        except OSError:
            return
        for name in names:
            cid, sep, ifname = name.partition(":")
            if sep and not name.startswith("."):  # not a temporary file (nor the index)
                yield cid, ifname


def _open_lock(path: str) -> int:
    """Open (create when missing) the lock file; -1 when it is missing on a read-only disk.

    A read-only disk still lets a DEL with nothing to release succeed, and an ADD fail
    where it tries to create a lease, with that reason."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o750)
    except OSError as exc:
        if exc.errno != errno.EROFS:
            raise _io_error("cannot open lock file", path, exc) from None
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return -1
    except OSError as exc:
        raise _io_error("cannot open lock file", path, exc) from None


_IP_CHARS = "0123456789abcdefABCDEF.:"


def _is_ip(name: str) -> bool:
    """Whether a file name is an address (as ``parse_ip`` reads it); a dotted quad in its
    canonical form, the usual lease name, is checked by the C library."""
    if name.strip(_IP_CHARS):
        return False
    try:
        if _socket.inet_ntop(_socket.AF_INET, _socket.inet_pton(_socket.AF_INET, name)) == name:
            return True
    except OSError:
        pass
    return parse_ip(name) is not None


def scan_dir(directory: str) -> Iterator[tuple[str, str]]:
    """Every lease file of a network directory as (ip text, trimmed content).

    Runs over every lease when a walk is needed, so it avoids Python file objects and
    path joins, and only parses names that look like addresses.
    """
    try:
        names = os.listdir(directory)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _io_error("cannot list", directory, exc) from None
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        for name in names:
            if not _is_ip(name):
                continue
            try:
                fd = os.open(name, flags, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                data = _read_all(fd)
            except OSError:  # a directory or something else that is no lease
                continue
            finally:
                os.close(fd)
            yield name, data.decode(errors="replace").strip()
    finally:
        os.close(dir_fd)


# A lease holds a container ID, which reaches a plugin through the environment, where one
# string is at most 128 KiB (MAX_ARG_STRLEN): a longer file can be no lease of anyone's.
MAX_LEASE_BYTES = 256 * 1024


def _read_all(fd: int) -> bytes:
    """The whole file (a lease is as long as its container ID), up to ``MAX_LEASE_BYTES``."""
    first = os.read(fd, 4096)
    if len(first) < 4096:  # a regular file read short is read whole: the usual lease
        return first
    chunks = [first]
    size = len(first)
    while size <= MAX_LEASE_BYTES:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


# errno values of a file system without hard links (link(2) on vfat, some FUSE mounts)
_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK})


def _create_in_place(path: str, data: bytes) -> bool:
    """``O_EXCL`` create, write and fsync where links do not exist; removed on failure."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        return False
    try:
        _write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        _discard(path)
        raise
    finally:
        os.close(fd)
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def _discard(path: str) -> None:
    """Remove a file of our own bookkeeping if possible; any failure is ignored."""
    with contextlib.suppress(OSError):
        os.unlink(path)
