"""dhcp plugin mode: ADD, CHECK and DEL forwarded to the daemon over its Unix socket.

Like the reference, ADD and CHECK both ask the daemon to allocate (an existing lease is
re-checked with the server, not acquired again) and DEL asks it to release. Stdlib only
(``_socket``, not ``socket``): this runs on every exec.
"""

from __future__ import annotations

import _socket
import errno
import os
from typing import TYPE_CHECKING, Any

from cnitool import skel
from cnitool.spec.errors import CNIError

from . import config, wire

if TYPE_CHECKING:
    from cnitool.spec.results import Result


class DaemonUnreachable(CNIError):
    """Nothing listens on the daemon socket (no socket file, or a refused connection)."""


def _recv_exact(sock: _socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(min(size, 65536))
        if not chunk:
            raise wire.WireError("the daemon closed the connection before it answered")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def call(socket_path: str, message: bytes) -> dict[str, Any]:
    """Send one request to the daemon at ``socket_path``; its answer's result, or the
    daemon's error raised as a CNIError with the daemon's code."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        try:
            sock.connect(socket_path)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            msg = f"error dialing DHCP daemon at {socket_path}: {reason}"
            if exc.errno in _NOT_LISTENING:
                raise DaemonUnreachable(f'{msg} (is "dhcp daemon" running?)') from None
            raise CNIError(msg) from None
        try:
            sock.sendall(message)
            length = wire.parse_header(_recv_exact(sock, wire.HEADER_SIZE), wire.MAX_ANSWER)
            answer = wire.decode_payload(_recv_exact(sock, length))
        except (OSError, wire.WireError) as exc:
            raise CNIError(f"error talking to the DHCP daemon at {socket_path}: {exc}") from None
    finally:
        sock.close()
    error = answer.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        raise CNIError(
            str(error.get("msg", "")),
            str(error.get("details", "")),
            code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        )
    result = answer.get("result")
    if not isinstance(result, dict):
        raise CNIError(f"the DHCP daemon at {socket_path} sent no result")
    return result


_NOT_LISTENING = (errno.ENOENT, errno.ECONNREFUSED)


def _forward(cmd: skel.CmdArgs, method: str) -> dict[str, Any]:
    conf = config.load(cmd.config(), cmd.args)
    # the daemon may run in another working directory: the netns path goes absolute
    netns = os.path.abspath(cmd.netns) if cmd.netns else ""
    args = {
        "containerID": cmd.container_id,
        "netns": netns,
        "ifName": cmd.ifname,
        "args": cmd.args,
        "path": cmd.path,
    }
    return call(conf.socket_path, wire.request(method, args, cmd.stdin_data))


def cmd_add(cmd: skel.CmdArgs) -> Result:
    return _forward(cmd, "ADD")


def cmd_check(cmd: skel.CmdArgs) -> None:
    _forward(cmd, "CHECK")


def cmd_del(cmd: skel.CmdArgs) -> None:
    """Release; with no daemon listening nothing holds the lease (the daemon keeps its
    leases in memory), so there is nothing to release and DEL succeeds, as DEL must
    whenever the state is already gone."""
    try:
        _forward(cmd, "DEL")
    except DaemonUnreachable as exc:
        cmd.stderr.write(f"dhcp: nothing released: {exc.msg}\n")
