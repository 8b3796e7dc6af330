"""The launcher side of the warm path: forward one plugin call to the service, or run cold.

This module is copied verbatim into every launcher that ``cnitool plugins install``
writes, so it imports nothing but ``os``, ``sys`` and ``_socket`` (``socket`` costs
about 16 ms more at every exec) and no project code. The launcher calls :func:`run` with
its plugin package, its VERSION output (known at install time; None for a plugin whose
versions depend on the call) and the version of the installation that wrote it.

Routing, in order:

1. ``CNI_COMMAND=VERSION`` with a known answer: print it, done (no socket, no import);
2. not root, no socket at ``$PYCNI_SOCKET`` (default ``/run/pycni/plugins.sock``), a
   socket not owned by root, a refused connection or a peer that is not root: cold;
3. send the call (argv, the whole environment, stdin, umask, and the caller's mount and
   network namespaces and working directory as descriptors); if the service did not take
   the whole request, or answers that it will not run it (busy), nothing ran: cold;
4. relay the answer: stderr, then stdout, byte for byte, and exit with its status;
5. the connection breaks after the request was sent: the call may have run in part,
   so it is never run again here: a CNI error (code 999) on stdout and exit status 1.

The cold path is the plugin package run in this process (``cnitool_plugins._launch``),
with stdin replayed when it was already read.
"""

# no "from __future__ import annotations": the launcher would have to import __future__;
# the one annotation naming a lazily imported module is written as a string instead
import os
import sys

TYPE_CHECKING = False  # typing costs an import; type checkers read this name as True
if TYPE_CHECKING:
    import _socket

DEFAULT_SOCKET = "/run/pycni/plugins.sock"

# the wire format of cnitool.warm.wire, restated without imports (a test compares them)
REQUEST_MAGIC = b"PCNQ"
RESPONSE_MAGIC = b"PCNR"
FORMAT_VERSION = 1
OP_RUN = 1
KIND_RESULT = 0
KIND_COLD = 1
RESPONSE_HEADER_SIZE = 20
# bounds of plugin, argv, env, tag and stdin, in the header's order
LIMITS = (64, 64 * 1024, 1024 * 1024, 64, 8 * 1024 * 1024)
LOST_CODE = 999


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def encode_request(
    package: str,
    argv: list[bytes],
    env: dict[bytes, bytes],
    tag: str,
    stdin: bytes,
    umask: int,
    op: int = OP_RUN,
) -> bytes | None:
    """The request bytes, or None when a part exceeds its bound (then the call runs cold)."""
    parts = (
        package.encode("ascii"),
        b"".join(a + b"\0" for a in argv),
        b"".join(k + b"=" + v + b"\0" for k, v in env.items()),
        tag.encode("ascii"),
        stdin,
    )
    if any(len(p) > limit for p, limit in zip(parts, LIMITS, strict=True)):
        return None
    head = REQUEST_MAGIC + FORMAT_VERSION.to_bytes(2, "big") + op.to_bytes(2, "big")
    head += _u32(umask) + b"".join(_u32(len(p)) for p in parts)
    return head + b"".join(parts)


def parse_response_head(head: bytes) -> tuple[int, int, int, int]:
    """(kind, exit status, stdout length, stderr length) of a response header."""
    if head[:4] != RESPONSE_MAGIC or int.from_bytes(head[4:6], "big") != FORMAT_VERSION:
        raise ValueError("not a pycni plugin service response")
    kind = int.from_bytes(head[6:8], "big")
    status = int.from_bytes(head[8:12], "big", signed=True)
    return kind, status, int.from_bytes(head[12:16], "big"), int.from_bytes(head[16:20], "big")


def error_json(code: int, msg: str) -> bytes:
    """A CNI error as the plugins print it (4-space indent, no trailing newline)."""
    short = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    out = []
    for ch in msg:
        if ch in short:
            out.append(short[ch])
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return f'{{\n    "code": {code},\n    "msg": "{"".join(out)}"\n}}'.encode()


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``; a reader that went away is not an error."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except BrokenPipeError:
        pass


def connect(path: str) -> "_socket.socket | None":
    """A connection to the service at ``path``, or None when it is not usable."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if (st.st_mode & 0o170000) != 0o140000 or st.st_uid != 0:
        return None  # not a socket, or not root's: never hand it the call
    import _socket  # only now: the cold path does not pay for it

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
        cred = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    except OSError:
        sock.close()
        return None
    if int.from_bytes(cred[4:8], sys.byteorder) != 0:
        sock.close()
        return None
    return sock


def caller_fds() -> list[int]:
    """Descriptors of this process's mount and network namespaces and working directory."""
    fds: list[int] = []
    try:
        for path in ("/proc/thread-self/ns/mnt", "/proc/thread-self/ns/net"):
            fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        fds.append(os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    except OSError:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def read_stdin() -> bytes | None:
    """All of stdin; None when it cannot be read (the cold path then reports it)."""
    chunks = []
    try:
        while chunk := os.read(0, 1 << 20):
            chunks.append(chunk)
    except OSError:
        return None
    return b"".join(chunks)


def recv_exact(sock: "_socket.socket", size: int) -> bytes:
    """Exactly ``size`` bytes from ``sock``; EOFError when the service hangs up early."""
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(min(size - len(buf), 1 << 20))
        if not chunk:
            raise EOFError(f"the service closed the connection after {len(buf)} of {size} bytes")
        buf += chunk
    return bytes(buf)


def send_request(sock: "_socket.socket", data: bytes, fds: list[int]) -> None:
    """Send ``data`` with ``fds`` attached to its first bytes."""
    import _socket

    rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
    anc = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)]
    sent = sock.sendmsg([data], anc)
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])


def lost(detail: str) -> int:
    """Report a call whose result never came back; never run it again."""
    msg = (
        f"pycni plugin service: the connection broke before the result arrived ({detail}); "
        "the call may have run in part and was not retried"
    )
    write_all(1, error_json(LOST_CODE, msg))
    return 1


def call(sock: "_socket.socket", package: str, stdin: bytes, tag: str) -> int | None:
    """Forward the call on ``sock``; its exit status, or None to run cold."""
    mask = os.umask(0o022)
    os.umask(mask)
    argv = [os.fsencode(a) for a in sys.argv]
    data = encode_request(package, argv, dict(os.environb), tag, stdin, mask)
    if data is None:
        return None
    try:
        fds = caller_fds()
    except OSError:
        return None
    try:
        send_request(sock, data, fds)
    except OSError:
        return None  # the service did not take the whole request: nothing ran
    finally:
        for fd in fds:
            os.close(fd)
    try:
        kind, status, n_out, n_err = parse_response_head(recv_exact(sock, RESPONSE_HEADER_SIZE))
        if kind == KIND_COLD:
            return None
        if kind != KIND_RESULT:
            raise ValueError(f"unexpected response kind {kind}")
        body = recv_exact(sock, n_out + n_err)
    except (OSError, EOFError, ValueError) as exc:
        return lost(str(exc) or type(exc).__name__)
    write_all(2, body[n_out:])
    write_all(1, body[:n_out])
    return status


def run_cold(package: str, stdin: bytes | None) -> None:
    """Run the plugin in this process (the path without the service)."""
    if stdin is not None:
        import io

        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    if sys.flags.no_site:  # the shebang's -S: the plugins' site-packages, as router does
        import site

        site.main()
    from cnitool_plugins._launch import run as launch

    launch(package)


def run(package: str, answer: bytes | None = None, tag: str = "") -> None:
    """The launcher's entry: answer, forward or run cold; exits with the plugin's status."""
    command = os.environ.get("CNI_COMMAND", "")
    if command == "VERSION" and answer is not None:
        write_all(1, answer)
        raise SystemExit(0)
    stdin: bytes | None = None
    status: int | None = None
    if os.geteuid() == 0:
        sock = connect(os.environ.get("PYCNI_SOCKET") or DEFAULT_SOCKET)
        if sock is not None:
            try:
                stdin = b"" if command == "VERSION" else read_stdin()
                if stdin is not None:
                    status = call(sock, package, stdin, tag)
            finally:
                sock.close()
    if status is None:
        run_cold(package, stdin)
    raise SystemExit(status)
