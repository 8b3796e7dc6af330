"""``dhcp daemon``: keeps the DHCP leases of the pods and answers the plugin's calls.

Flags, as the reference daemon's (Go ``flag`` syntax: ``-name value``, ``-name=value``,
one or two dashes; durations like ``10s``, ``1m30s``, ``500ms``):

- ``-socketpath PATH``: where to listen (default ``/run/cni/dhcp.sock``); its directory is
  made (0700) when missing. A stale socket file nobody listens on is replaced; a live one
  is an error;
- ``-pidfile PATH``: write the daemon's pid there (absolute path);
- ``-hostprefix PFX``: prefix for the socket path and every netns path (a daemon running
  in a container that sees the host's root under PFX);
- ``-broadcast``: ask servers to broadcast their answers (the BOOTP broadcast flag);
- ``-timeout D`` (10s): how long each request waits for an answer;
- ``-resendmax D`` (62s): the longest back-off between resends;
- ``-resendtimeout D`` (208s): when an exchange gives up (the ADD then fails).

Under systemd socket activation (``LISTEN_PID`` is this process, ``LISTEN_FDS=1``) the
daemon serves the socket it is handed (more than one is an error) and leaves the socket
file to systemd. SIGTERM or SIGINT: stop listening, remove the socket (when the daemon
made it) and the pidfile, stop maintaining leases without releasing them (pods keep their
addresses), exit 0. Leases are also kept on disk beside the socket (``state.py``): a new
daemon takes them up again at start; one it does not know (no file) is acquired anew on
its next ADD or CHECK.

Each connection carries one request (``wire``), read with a time limit and a size bound;
garbage and oversized requests get an error answer and the connection is closed. Calls
for one client ID are serialised; calls for different ones run in parallel.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from cnitool.spec import keys
from cnitool.spec.errors import CNIError, DecodingError, InvalidConfigError
from cnitool.spec.jsonfmt import loads

from . import client, config, wire
from .client import Timing
from .lease import EXPIRED, GONE, RELEASED, Lease, LeaseError
from .state import Store

LOG = logging.getLogger("dhcp")
READ_TIMEOUT = 10.0  # a client must send its whole request within this
DRAIN_TIMEOUT, DRAIN_MAX = 2.0, 16 * 1024 * 1024  # after an answer: what is read and dropped
MAX_CONNECTIONS = 512
LEASES_DIR = "dhcp-leases"  # beside the socket: where leases survive a daemon restart
PURGE_AFTER = 3600.0  # an expired or orphaned lease is forgotten this long after its expiry  # connections served at once; more are told to try again
SD_LISTEN_FDS_START = 3


# -- flags ---------------------------------------------------------------------------------
class FlagError(Exception):
    """A command line the daemon cannot run with (exit status 2, as Go's flag package)."""


USAGE = """Usage of daemon:
  -broadcast
    \tbroadcast DHCP leases
  -hostprefix string
    \toptional prefix to host root
  -pidfile string
    \toptional path to write daemon PID to
  -resendmax duration
    \toptional dhcp client max resend delay between requests (default 1m2s)
  -resendtimeout duration
    \toptional dhcp client resend timeout, no more retries after this timeout (default 3m28s)
  -socketpath string
    \toptional dhcp server socketpath
  -timeout duration
    \toptional dhcp client timeout duration for each request (default 10s)
"""

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """A Go duration string in seconds (``10s``, ``1m30s``, ``-1.5h``, ``0``)."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(body):
        match = _DURATION.match(body, pos)
        if match is None:
            raise ValueError(f"time: invalid duration {text!r}")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not body:
        raise ValueError(f"time: invalid duration {text!r}")
    return -total if text.startswith("-") else total


class Options:
    def __init__(self) -> None:
        self.pidfile = ""
        self.hostprefix = ""
        self.socketpath = ""
        self.broadcast = False
        self.timeout = 10.0
        self.resendmax = 62.0
        self.resendtimeout = 208.0


_STRING_FLAGS = ("pidfile", "hostprefix", "socketpath")
_DURATION_FLAGS = ("timeout", "resendmax", "resendtimeout")
# strconv.ParseBool's spellings
_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}


def parse_flags(argv: Sequence[str]) -> Options:
    """The daemon's flags, parsed as Go's ``flag`` package does (it stops at the first
    argument that is not a flag, or after ``--``)."""
    opts = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            break
        if len(arg) < 2 or arg[0] != "-":
            break
        name = arg[2:] if arg.startswith("--") else arg[1:]
        if not name or name[0] in "-=":
            raise FlagError(f"bad flag syntax: {arg}")
        name, has_value, value = name.partition("=")
        i += 1
        if name in ("h", "help"):
            raise FlagError("")
        if name == "broadcast":
            if has_value:
                if value not in _BOOLS:
                    raise FlagError(f'invalid boolean value "{value}" for -{name}: parse error')
                opts.broadcast = _BOOLS[value]
            else:
                opts.broadcast = True
            continue
        if name not in _STRING_FLAGS + _DURATION_FLAGS:
            raise FlagError(f"flag provided but not defined: -{name}")
        if not has_value:
            if i >= len(argv):
                raise FlagError(f"flag needs an argument: -{name}")
            value = argv[i]
            i += 1
        if name in _STRING_FLAGS:
            setattr(opts, name, value)
        else:
            try:
                setattr(opts, name, parse_duration(value))
            except ValueError:
                raise FlagError(f'invalid value "{value}" for flag -{name}: parse error') from None
    return opts


# -- leases --------------------------------------------------------------------------------
class Service:
    """The leases, by client ID, and the ADD/CHECK/DEL handlers."""

    def __init__(self, hostprefix: str, timing: Timing, store: Store | None = None) -> None:
        self.hostprefix = hostprefix
        self.timing = timing
        self.store = store
        self.leases: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._client_locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def _client(self, client_id: str) -> Any:
        with self._lock:
            lock, users = self._client_locks.get(client_id, (threading.Lock(), 0))
            self._client_locks[client_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._client_locks[client_id]
                if users <= 1:
                    del self._client_locks[client_id]
                else:
                    self._client_locks[client_id] = (lock, users - 1)

    def handle(self, method: str, args: dict[str, str], stdin: bytes) -> dict[str, Any]:
        self._purge()
        try:
            obj = loads(stdin)
        except ValueError as exc:
            raise DecodingError(f"error parsing netconf: {exc}") from None
        if not isinstance(obj, dict):
            raise DecodingError("error parsing netconf: not a JSON object")
        raw = keys.decode(obj, config.SHAPE)
        conf = config.load(raw, args["args"])
        if not conf.name:
            raise InvalidConfigError("missing network name")
        if not args["containerID"] or not args["ifName"]:
            raise InvalidConfigError("the request names no container ID or interface")
        client_id = config.client_id(args["containerID"], conf.name, args["ifName"])
        if method == "DEL":
            with self._lock:
                pending = self.leases.get(client_id)
            if pending is not None:  # an ADD still acquiring it gives up now
                pending.abort()
        with self._client(client_id):
            if method == "DEL":
                self.release(client_id)
                return {}
            if not args["netns"]:
                raise InvalidConfigError("the request names no netns")
            return self.allocate(client_id, self.hostprefix + args["netns"], args["ifName"], conf)

    def allocate(
        self, client_id: str, netns: str, ifname: str, conf: config.DhcpConf
    ) -> dict[str, Any]:
        with self._lock:
            lease = self.leases.get(client_id)
        if lease is not None and lease.state not in (GONE, RELEASED) and lease.netns == netns:
            lease.recheck()
        else:
            if lease is not None:
                lease.shutdown()
            lease = Lease(client_id, netns, ifname, conf, self.timing)
            lease.store = self.store
            with self._lock:  # listed while it is acquired, so a DEL can stop it
                self.leases[client_id] = lease
            try:
                lease.acquire()
            except BaseException:
                self._forget(lease)
                raise
        try:
            return lease.result()
        except LeaseError:
            self.release(client_id)
            raise

    def _forget(self, lease: Lease) -> None:
        with self._lock:
            if self.leases.get(lease.client_id) is lease:
                del self.leases[lease.client_id]

    def restore(self) -> None:
        """Take up the leases a previous daemon left on disk (``state.py``)."""
        if self.store is None:
            return
        for record in self.store.load():
            client_id = record.get("clientID")
            try:
                lease = Lease.from_record(record, self.timing)
            except (KeyError, TypeError, ValueError) as exc:
                LOG.info("lease record %r unusable (%s): dropped", client_id, exc)
                if isinstance(client_id, str):
                    self.store.delete(client_id)
                continue
            lease.store = self.store
            if time.monotonic() >= lease.expire_at:
                LOG.info("%s: lease on disk has expired: dropped", lease.client_id)
                lease.forget()
                continue
            with self._lock:
                self.leases[lease.client_id] = lease
            lease.resume()

    def _purge(self) -> None:
        """Forget leases whose pod went away without a DEL once they have expired."""
        now = time.monotonic()
        with self._lock:
            for client_id, lease in list(self.leases.items()):
                if lease.state in (GONE, EXPIRED) and now >= lease.expire_at + PURGE_AFTER:
                    del self.leases[client_id]
                    lease.forget()

    def release(self, client_id: str) -> None:
        """Stop the lease and send DHCPRELEASE; an unknown client ID is a success."""
        with self._lock:
            lease = self.leases.pop(client_id, None)
        if lease is None:
            LOG.info("%s: release of an unknown lease: nothing to do", client_id)
            return
        lease.release()

    def shutdown(self) -> None:
        with self._lock:
            leases = list(self.leases.values())
        for lease in leases:
            lease.shutdown()


# -- the socket ------------------------------------------------------------------------------
class ListenError(Exception):
    pass


def activated_socket() -> socket.socket | None:
    """The socket systemd passed (``LISTEN_FDS``), or None when not socket-activated."""
    pid, fds = os.environ.get("LISTEN_PID", ""), os.environ.get("LISTEN_FDS", "")
    if not fds or (pid and pid != str(os.getpid())):
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    try:
        count = int(fds)
    except ValueError:
        raise ListenError(f"LISTEN_FDS={fds!r} is not a number") from None
    if count == 0:
        return None
    if count > 1:
        raise ListenError(f"Too many ({count}) FDs passed through socket activation")
    try:
        sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    except OSError as exc:
        raise ListenError(f"LISTEN_FDS=1 but fd 3 is not a socket: {exc}") from None
    os.set_inheritable(sock.fileno(), False)
    return sock


def bind_socket(path: str) -> socket.socket:
    """Listen on ``path``, replacing a stale socket file that nobody listens on."""
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ListenError(f"cannot create {directory}: {exc.strerror or exc}") from None
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError as exc:
                if exc.errno == errno.ECONNREFUSED:
                    os.unlink(path)  # left by a daemon that died
            else:
                raise ListenError(f"another daemon is listening on {path}")
            finally:
                probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)  # the socket file: root only (0600)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ListenError(f"listen on {path}: {exc.strerror or exc}") from None
    return sock


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = conn.recv(min(size, 65536))
        if not chunk:
            raise wire.WireError("connection closed before the request was complete")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _error_answer(exc: CNIError) -> bytes:
    return wire.encode({"error": {"code": exc.code, "msg": exc.msg, "details": exc.details}})


class Server:
    """Accepts connections and runs each request in a thread of its own."""

    def __init__(self, service: Service, listener: socket.socket) -> None:
        self.service = service
        self.listener = listener
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def serve_forever(self) -> None:
        while True:
            conn, _ = self.listener.accept()
            if not self.slots.acquire(blocking=False):
                with contextlib.suppress(OSError):
                    conn.sendall(
                        _error_answer(CNIError("the DHCP daemon is busy; try again", code=11))
                    )
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(READ_TIMEOUT)
            answer = self._answer(conn)
            conn.settimeout(READ_TIMEOUT)
            with contextlib.suppress(OSError):
                conn.sendall(answer)
                # what a refused request left unread would turn the close into a reset
                # that can destroy the answer before the client reads it: drain a little
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(DRAIN_TIMEOUT)
                drained = 0
                while drained < DRAIN_MAX and (chunk := conn.recv(65536)):
                    drained += len(chunk)
        finally:
            conn.close()
            self.slots.release()

    def _answer(self, conn: socket.socket) -> bytes:
        try:
            length = wire.parse_header(_recv_exact(conn, wire.HEADER_SIZE), wire.MAX_REQUEST)
            obj = wire.decode_payload(_recv_exact(conn, length))
            method, args, stdin = wire.parse_request(obj)
        except (OSError, wire.WireError) as exc:
            LOG.info("refused a request: %s", exc)
            return _error_answer(DecodingError(f"bad request to the DHCP daemon: {exc}"))
        conn.settimeout(None)  # the exchange may take up to -resendtimeout
        try:
            return wire.encode({"result": self.service.handle(method, args, stdin)})
        except CNIError as exc:
            LOG.info("%s %s/%s: %s", method, args["containerID"], args["ifName"], exc)
            return _error_answer(exc)
        except Exception as exc:
            LOG.exception("%s failed", method)
            return _error_answer(CNIError(f"error calling DHCP.{method}: {exc}"))


# -- main --------------------------------------------------------------------------------------
class _Stop(BaseException):
    pass


def _on_signal(signum: int, _frame: object) -> None:
    raise _Stop(signum)


def run(opts: Options) -> int:
    socket_path = opts.hostprefix + (opts.socketpath or config.DEFAULT_SOCKET)
    if opts.pidfile:
        if not os.path.isabs(opts.pidfile):
            LOG.error('Error writing pidfile "%s": path not absolute', opts.pidfile)
            return 1
        try:
            with open(opts.pidfile, "w", encoding="ascii") as fh:
                fh.write(str(os.getpid()))
        except OSError as exc:
            LOG.error('Error writing pidfile "%s": %s', opts.pidfile, exc.strerror or exc)
            return 1
    try:
        listener = activated_socket()
        owned = listener is None
        if listener is None:
            listener = bind_socket(socket_path)
    except ListenError as exc:
        LOG.error("Error getting listener: %s", exc)
        if opts.pidfile:
            with contextlib.suppress(OSError):
                os.unlink(opts.pidfile)
        return 1
    client.preload()
    timing = Timing(opts.timeout, opts.resendmax, opts.resendtimeout, opts.broadcast)
    store = Store(os.path.join(os.path.dirname(socket_path), LEASES_DIR))
    service = Service(opts.hostprefix, timing, store)
    service.restore()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _on_signal)
    LOG.info("dhcp daemon listening on %s", socket_path if owned else "the socket from systemd")
    try:
        Server(service, listener).serve_forever()
    except _Stop:
        LOG.info("dhcp daemon stopping")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
        listener.close()
        if owned:
            with contextlib.suppress(OSError):
                os.unlink(socket_path)
        if opts.pidfile:
            with contextlib.suppress(OSError):
                os.unlink(opts.pidfile)
        service.shutdown()
    return 0


def main(argv: Sequence[str]) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        opts = parse_flags(argv)
    except FlagError as exc:
        if str(exc):
            sys.stderr.write(f"{exc}\n")
        sys.stderr.write(USAGE)
        return 0 if not str(exc) else 2
    return run(opts)
