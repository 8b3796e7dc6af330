"""The service's message format on its Unix stream socket (one request per connection).

Request (client to service)::

    header  32 bytes, network byte order: struct "!4sHHIIIIII"
            magic b"PCNQ", format version (1), op (1 run, 2 status, 3 cnitool), umask,
            then the byte lengths of: plugin, argv, env, tag, stdin
    plugin  the launcher's plugin package (``host_local``), ASCII
    argv    the caller's argv, each entry NUL-terminated
    env     the caller's environment, ``KEY=VALUE`` entries, each NUL-terminated
    tag     the version of the installation that wrote the launcher
    stdin   the request bytes, verbatim

The header's first ``sendmsg`` carries descriptors as SCM_RIGHTS: for op run exactly
three, the caller's mount namespace, network namespace and working directory; for op
cnitool those three and then the caller's stdin, stdout and stderr (:data:`FDS_OF_OP`).

Op cnitool runs a ``cnitool`` command line (``add``, ``check``, ``del``) in a worker
instead of a plugin: ``plugin`` is ``cnitool``, argv is the command line, stdin is empty,
and the worker writes to the caller's own descriptors, so the answer carries only the
exit status (and, when the worker could not run or died, a message for stderr). While
it runs the caller may send single bytes, each a signal number (SIGINT, SIGTERM, SIGHUP)
to deliver to the command, as a terminal or a supervisor would have delivered it to a
``cnitool`` process.

Response (service to client)::

    header  20 bytes: struct "!4sHHiII"
            magic b"PCNR", format version (1), kind, exit status, stdout length,
            stderr length
    stdout, stderr

A client may shut down its sending side once the request is sent; closing the connection
while the call runs makes the service kill the call's worker (as a runtime that kills an
exec'd plugin does).

Kinds: ``RESULT`` (relay stdout, stderr and the exit status as they are), ``COLD``
(nothing ran; the caller runs the plugin itself: the service is at its queue limit or
does not serve that plugin or launcher version), ``INFO`` (the answer to op status, a
JSON object in stdout). Each field has a bound (:data:`LIMITS`); a request over one is
answered with a CNI error, never run.

The launchers carry their own copy of the client side (:mod:`cnitool.warm.client`,
stdlib only); a unit test keeps both sides in step.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

REQUEST_MAGIC = b"PCNQ"
RESPONSE_MAGIC = b"PCNR"
FORMAT_VERSION = 1
REQUEST_HEADER = struct.Struct("!4sHHIIIIII")
RESPONSE_HEADER = struct.Struct("!4sHHiII")

OP_RUN = 1
OP_STATUS = 2
OP_CLI = 3
CLI_PROGRAM = "cnitool"

KIND_RESULT = 0
KIND_COLD = 1
KIND_INFO = 2

# the descriptors sent with each op, in this order: mount ns, net ns, working directory
# (op run), and then stdin, stdout and stderr (op cnitool)
FDS_OF_OP = {OP_RUN: 3, OP_STATUS: 0, OP_CLI: 6}
MAX_FDS = max(FDS_OF_OP.values())

# field -> largest accepted length in bytes
LIMITS: dict[str, int] = {
    "plugin": 64,
    "argv": 64 * 1024,
    "env": 1024 * 1024,
    "tag": 64,
    "stdin": 8 * 1024 * 1024,
}
MAX_REQUEST = REQUEST_HEADER.size + sum(LIMITS.values())
# what the service relays of one stream of a worker; more is refused as an error
MAX_OUTPUT = 16 * 1024 * 1024


class WireError(ValueError):
    """A request that does not follow the format or exceeds a bound."""


@dataclass(frozen=True)
class RequestHead:
    """The fixed header of a request: what follows and how long each part is."""

    op: int
    umask: int
    lengths: dict[str, int]

    @property
    def body_size(self) -> int:
        return sum(self.lengths.values())


@dataclass
class Request:
    """A decoded request (the descriptors travel beside it, see :mod:`.service`)."""

    op: int
    plugin: str = ""
    argv: list[bytes] = field(default_factory=list)
    env: dict[bytes, bytes] = field(default_factory=dict)
    tag: str = ""
    stdin: bytes = b""
    umask: int = 0o022


def decode_head(data: bytes) -> RequestHead:
    """Parse and bound-check a request header (exactly ``REQUEST_HEADER.size`` bytes)."""
    magic, version, op, umask, *lengths = REQUEST_HEADER.unpack(data)
    if magic != REQUEST_MAGIC:
        raise WireError("not a pycni plugin request (bad magic)")
    if version != FORMAT_VERSION:
        raise WireError(f"unsupported request format version {version}")
    if op not in FDS_OF_OP:
        raise WireError(f"unknown request op {op}")
    sizes = dict(zip(LIMITS, lengths, strict=True))
    for name, size in sizes.items():
        if size > LIMITS[name]:
            raise WireError(f"request {name} too large: {size} bytes (limit {LIMITS[name]})")
    return RequestHead(op, umask & 0o777, sizes)


def _entries(data: bytes, what: str) -> list[bytes]:
    if not data:
        return []
    if not data.endswith(b"\0"):
        raise WireError(f"request {what} is not NUL-terminated")
    return data[:-1].split(b"\0")


def _decode_env(data: bytes) -> dict[bytes, bytes]:
    env: dict[bytes, bytes] = {}
    for entry in _entries(data, "env"):
        key, sep, value = entry.partition(b"=")
        if not sep or not key:
            raise WireError("request env entry is not KEY=VALUE")
        env[key] = value
    return env


def decode_body(head: RequestHead, body: bytes) -> Request:
    """The request from its header and the ``head.body_size`` bytes after it."""
    if len(body) != head.body_size:
        raise WireError(f"request body is {len(body)} bytes, header says {head.body_size}")
    parts: dict[str, bytes] = {}
    offset = 0
    for name, size in head.lengths.items():
        parts[name] = body[offset : offset + size]
        offset += size
    try:
        plugin = parts["plugin"].decode("ascii")
        tag = parts["tag"].decode("ascii")
    except UnicodeDecodeError:
        raise WireError("request plugin or tag is not ASCII") from None
    return Request(
        op=head.op,
        plugin=plugin,
        argv=_entries(parts["argv"], "argv"),
        env=_decode_env(parts["env"]),
        tag=tag,
        stdin=parts["stdin"],
        umask=head.umask,
    )


def encode_request(req: Request) -> bytes:
    """A request's bytes (header and body); the reference for the launchers' copy."""
    parts = {
        "plugin": req.plugin.encode("ascii"),
        "argv": b"".join(a + b"\0" for a in req.argv),
        "env": b"".join(k + b"=" + v + b"\0" for k, v in req.env.items()),
        "tag": req.tag.encode("ascii"),
        "stdin": req.stdin,
    }
    head = REQUEST_HEADER.pack(
        REQUEST_MAGIC,
        FORMAT_VERSION,
        req.op,
        req.umask,
        *(len(parts[name]) for name in LIMITS),
    )
    return head + b"".join(parts[name] for name in LIMITS)


def encode_response(kind: int, status: int, stdout: bytes = b"", stderr: bytes = b"") -> bytes:
    """A response's bytes."""
    head = RESPONSE_HEADER.pack(
        RESPONSE_MAGIC, FORMAT_VERSION, kind, status, len(stdout), len(stderr)
    )
    return head + stdout + stderr


@dataclass(frozen=True)
class Response:
    kind: int
    status: int
    stdout: bytes
    stderr: bytes


def decode_response(data: bytes) -> Response:
    """Parse a complete response (used by ``cnitool serve status`` and the tests)."""
    if len(data) < RESPONSE_HEADER.size:
        raise WireError("response shorter than its header")
    magic, version, kind, status, n_out, n_err = RESPONSE_HEADER.unpack_from(data)
    if magic != RESPONSE_MAGIC or version != FORMAT_VERSION:
        raise WireError("not a pycni plugin service response")
    body = data[RESPONSE_HEADER.size :]
    if len(body) != n_out + n_err:
        raise WireError(f"response body is {len(body)} bytes, header says {n_out + n_err}")
    return Response(kind, status, body[:n_out], body[n_out:])
