"""The plugin service: a single-threaded loop that runs each request in a fresh worker.

One connection carries one request (:mod:`.wire`). The loop accepts a connection, checks
the peer (``SO_PEERCRED``: root only), reads the request within ``read_timeout`` and
bounded by the wire limits, then hands it to a worker (:mod:`.worker`) forked ahead of it
from the preloaded heap by the forker (:mod:`.forker`), so that the call neither waits for
a fork nor has the loop pay for one; with ``--no-spare`` (or once the forker is gone), and
for ``cnitool`` commands, the loop forks the worker itself. At most ``workers`` run at a
time; further requests wait in a queue of ``queue`` places, beyond which the caller is
told to run the plugin itself. A worker's stdout and stderr are memory files the service
reads when the worker's pidfd reports its exit. A worker that outlives ``timeout`` is
killed with its process group, as is one whose caller hung up (a runtime that killed the
launcher kills the plugin). A crash or a kill costs that request only: its caller gets a
CNI error and the service goes on.

Staying single-threaded is what lets a fork ``setns`` into a mount namespace, and what
keeps forking safe (no other thread holds a lock at fork time). The service's memory
stays flat: each request's state is dropped when its answer is sent, the latency samples
are a bounded window, and ``gc.freeze`` after preloading keeps the workers from
copying the preloaded heap.
"""

from __future__ import annotations

import array
import contextlib
import errno
import gc
import json
import os
import select
import selectors
import signal
import socket
import stat
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..spec.errors import CNIError
from . import forker as forking
from . import front, wire

DEFAULT_SOCKET = "/run/pycni/plugins.sock"
SOCKET_ENV = "PYCNI_SOCKET"
LATENCY_WINDOW = 4096
SPARES_AHEAD = 2  # workers forked ahead of calls, so a burst of calls finds them ready
FORKER_PATIENCE = 1.0  # seconds a call waits for the forker's spare before a fork of its own
ERROR_CODE = 999
SD_LISTEN_FDS_START = 3
# what a cnitool caller may pass on to its command while it runs
FORWARDED_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
# and its job control: a stop (^Z), then a continue
STOP, CONTINUE = signal.SIGTSTP, signal.SIGCONT

Log = Callable[[str], None]


class ServiceError(CNIError):
    """The service cannot start (socket path, permissions, another service)."""


@dataclass(frozen=True)
class Config:
    """Limits of one service; see ``cnitool serve --help``."""

    socket_path: str = DEFAULT_SOCKET
    workers: int = 16
    queue: int = 256
    timeout: float = 120.0
    read_timeout: float = 10.0
    max_connections: int = 1024
    spare: bool = True


@dataclass
class Stats:
    """Counters behind ``cnitool serve status``."""

    started: float = field(default_factory=time.time)
    started_mono: float = field(default_factory=time.monotonic)
    served: int = 0
    commands: int = 0
    failed: int = 0
    crashed: int = 0
    timed_out: int = 0
    rejected: int = 0
    busy: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def percentile(self, fraction: float) -> float | None:
        """The ``fraction`` quantile of the recent latencies (seconds), None without any."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        index = max(0, min(len(ordered) - 1, -int(-fraction * len(ordered) // 1) - 1))
        return ordered[index]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


@dataclass(eq=False)
class Conn:
    """One client connection, from accept to the last byte of its answer."""

    sock: socket.socket
    deadline: float
    buf: bytearray = field(default_factory=bytearray)
    fds: list[int] = field(default_factory=list)
    head: wire.RequestHead | None = None
    request: wire.Request | None = None
    received: float = 0.0
    out: memoryview | None = None
    job: Job | None = None
    draining: bool = False


@dataclass(eq=False)
class Spare:
    """A worker the forker forked ahead of its request, waiting on ``channel`` for one."""

    pid: int
    channel: socket.socket


@dataclass(eq=False)
class Job:
    """A forked worker running one request."""

    conn: Conn
    pid: int
    pidfd: int
    stdout_fd: int
    stderr_fd: int
    deadline: float | None
    killed: str = ""
    cli: bool = False
    paused: float | None = None  # the time left before the timeout, while stopped


def error_response(msg: str) -> bytes:
    """A RESULT answer carrying a CNI error, as a failing plugin prints it."""
    return wire.encode_response(
        wire.KIND_RESULT, 1, CNIError(msg, code=ERROR_CODE).to_json().encode()
    )


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end (``SO_PEERCRED``)."""
    cred = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return int.from_bytes(cred[4:8], sys.byteorder)


def peer_allowed(uid: int) -> bool:
    """Only root may have a plugin run: plugins change the node's network."""
    return uid == 0


class Service:
    """The accept/read/fork/answer loop; ``run`` returns when SIGTERM or SIGINT arrives."""

    def __init__(
        self,
        config: Config,
        listener: socket.socket,
        plugins: set[str],
        log: Log,
        socket_file: str | None = None,
        *,
        commands: bool = False,
        forker: forking.Forker | None = None,
    ) -> None:
        self.config = config
        self.listener = listener
        self.socket_file = socket_file  # unlinked first thing at stop, when ours
        self.plugins = plugins
        self.commands = commands  # whether cnitool's commands were preloaded, to run here
        self.log = log
        self.stats = Stats()
        self.sel = selectors.DefaultSelector()
        self.conns: set[Conn] = set()
        self.jobs: dict[int, Job] = {}
        self.pending: deque[Conn] = deque()
        self.stopping = False
        self.listening = False
        self.forker = forker
        self.spares: deque[Spare] = deque()
        self.unforked: deque[Conn] = deque()  # admitted, waiting for the forker's spare

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        """Serve until asked to stop, then finish the running requests."""
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        old_wakeup = signal.set_wakeup_fd(wake_w.fileno())
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        self.listener.setblocking(False)
        self._listen(True)
        self.sel.register(wake_r, selectors.EVENT_READ, ("wake", None))
        if self.forker is not None:
            self.sel.register(self.forker.sock, selectors.EVENT_READ, ("forker", None))
        self._refill()
        try:
            while not self.stopping or self._busy():
                self._step(wake_r)
                if self.stopping and self.listener.fileno() >= 0:
                    self._stop_listening()
        finally:
            for conn in list(self.conns):
                if conn.job is None and conn.out is None and not conn.draining:
                    # nothing ran for it: the launcher runs the call itself
                    with contextlib.suppress(OSError):
                        conn.sock.setblocking(True)
                        conn.sock.settimeout(1.0)
                        conn.sock.sendall(wire.encode_response(wire.KIND_COLD, 0))
                self._close(conn)
            self._drop_spares()
            if self.forker is not None:
                self.sel.unregister(self.forker.sock)
                forking.stop(self.forker)
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            self.sel.close()
            wake_r.close()
            wake_w.close()

    def _busy(self) -> bool:
        """Calls still running or waiting for a worker, or answers not yet sent."""
        return (
            bool(self.jobs)
            or any(c in self.conns for c in self.unforked)
            or any(c.out is not None for c in self.conns)
        )

    def _on_signal(self, signum: int, frame: object) -> None:
        if not self.stopping:
            self.log(f"stopping on {signal.Signals(signum).name}")
        self.stopping = True

    def _stop_listening(self) -> None:
        """Take no new calls: unlink the socket (new callers run cold), tell those already
        queued in the backlog to run cold, close the listener."""
        if self.socket_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.socket_file)
        self._listen(False)
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                break
            with contextlib.suppress(OSError):
                sock.send(wire.encode_response(wire.KIND_COLD, 0))
            sock.close()
        self.listener.close()

    def _listen(self, on: bool) -> None:
        """Accept calls or not; at ``max_connections`` new callers wait in the backlog."""
        if on == self.listening:
            return
        if on:
            self.sel.register(self.listener, selectors.EVENT_READ, ("listen", None))
        else:
            self.sel.unregister(self.listener)
        self.listening = on

    def _step(self, wake_r: socket.socket) -> None:
        events = self.sel.select(self._wait_time())
        for key, mask in events:
            kind, obj = key.data
            if kind == "listen":
                self._accept()
            elif kind == "wake":
                with contextlib.suppress(OSError):
                    wake_r.recv(4096)
            elif kind == "job":
                self._reap(obj)
            elif kind == "forker":
                self._from_forker()
            elif mask & selectors.EVENT_WRITE:
                self._flush(obj)
            else:
                self._readable(obj)
        self._expire()

    def _wait_time(self) -> float | None:
        deadlines = [
            c.deadline for c in self.conns if c.request is None and c.job is None and c.out is None
        ]
        deadlines += [j.deadline for j in self.jobs.values() if j.deadline is not None]
        deadlines += [c.deadline for c in self.unforked]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _expire(self) -> None:
        now = time.monotonic()
        for job in list(self.jobs.values()):
            if job.deadline is not None and now >= job.deadline:
                self._kill(job, f"timed out after {self.config.timeout:g}s")
                self.stats.timed_out += 1
        for conn in list(self.conns):
            waiting = conn.job is None and conn.out is None and conn.request is None
            if waiting and now >= conn.deadline:
                if not conn.draining:
                    self.stats.rejected += 1
                self._close(conn)
        for conn in [c for c in self.unforked if now >= c.deadline]:
            # a forker that does not deliver (stopped, starved) does not hold calls up
            self.log("the forker is late: the service forks a worker itself")
            self.unforked.remove(conn)
            if conn in self.conns and conn.request is not None:
                self._start(conn, conn.request, fork=True)

    # -- connections ---------------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.log(f"accept failed: {exc}")
                return
            sock.setblocking(False)
            conn = Conn(sock, time.monotonic() + self.config.read_timeout)
            self.conns.add(conn)
            if not peer_allowed(peer_uid(sock)):
                self.stats.rejected += 1
                self._answer(conn, error_response("pycni plugin service: only root may call"))
            else:
                self.sel.register(sock, selectors.EVENT_READ, ("conn", conn))
            if len(self.conns) >= self.config.max_connections:
                self._listen(False)
                return

    def _readable(self, conn: Conn) -> None:
        if conn.draining:
            self._drain(conn)
            return
        if conn.job is not None:
            self._hangup_while_running(conn)
            return
        try:
            data = self._recv(conn)
        except wire.WireError as exc:
            self._reject(conn, str(exc))
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self.stats.rejected += 1
            self._close(conn)  # hung up before the whole request: nothing to run
            return
        conn.buf += data
        try:
            self._parse(conn)
        except wire.WireError as exc:
            self._reject(conn, str(exc))

    def _recv(self, conn: Conn) -> bytes:
        """Bytes and any descriptors that arrived; at most ``wire.MAX_FDS`` per request."""
        fds = array.array("i")
        data, anc, flags, _ = conn.sock.recvmsg(
            1 << 16, socket.CMSG_SPACE(4 * wire.MAX_FDS), socket.MSG_CMSG_CLOEXEC
        )
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        conn.fds.extend(fds)
        if flags & socket.MSG_CTRUNC or len(conn.fds) > wire.MAX_FDS:
            raise wire.WireError("too many descriptors attached to the request")
        return data

    def _parse(self, conn: Conn) -> None:
        size = wire.REQUEST_HEADER.size
        if conn.head is None and len(conn.buf) >= size:
            conn.head = wire.decode_head(bytes(conn.buf[:size]))
        if conn.head is None:
            return
        total = size + conn.head.body_size
        if len(conn.buf) > total:
            raise wire.WireError("more bytes than the request header announced")
        if len(conn.buf) < total:
            return
        conn.request = wire.decode_body(conn.head, bytes(conn.buf[size:]))
        conn.buf = bytearray()
        conn.received = time.monotonic()
        self.sel.unregister(conn.sock)  # read again only to see a hang-up while running
        self._dispatch(conn, conn.request)

    def _dispatch(self, conn: Conn, req: wire.Request) -> None:
        if req.op == wire.OP_STATUS:
            self._close_fds(conn)
            info = json.dumps(self.status()).encode()
            self._answer(conn, wire.encode_response(wire.KIND_INFO, 0, info))
            return
        wanted = wire.FDS_OF_OP[req.op]
        if len(conn.fds) != wanted:
            what = "cnitool" if req.op == wire.OP_CLI else "run"
            raise wire.WireError(
                f"a {what} request needs {wanted} descriptors, got {len(conn.fds)}"
            )
        if req.tag != __version__ or not self._serves(req):
            self.stats.busy += 1  # not ours to run: the caller runs its own installation
            self._answer(conn, wire.encode_response(wire.KIND_COLD, 0))
            return
        if self._may_start(req):
            self._start(conn, req)
        elif len(self.pending) < self.config.queue:
            self.pending.append(conn)
        else:
            self.stats.busy += 1
            self._answer(conn, wire.encode_response(wire.KIND_COLD, 0))

    def _serves(self, req: wire.Request) -> bool:
        if req.op == wire.OP_CLI:  # only the commands cnitool sends here, nothing else
            command = req.argv[1] if len(req.argv) > 1 else b""
            return (
                self.commands
                and req.plugin == wire.CLI_PROGRAM
                and command.decode("ascii", "replace") in front.WARM_COMMANDS
            )
        return req.plugin in self.plugins

    def _cli_limit(self) -> int:
        """``cnitool`` commands run at most half the workers at a time: the other half
        stays free for the plugin calls such a command may make through the service (a
        Go plugin of its chain delegating to one of ours), so commands never wait on
        calls that wait on them."""
        return max(1, self.config.workers // 2)

    def _running(self) -> int:
        """Calls running, and those admitted that wait for the forker's next spare."""
        return len(self.jobs) + len(self.unforked)

    def _may_start(self, req: wire.Request) -> bool:
        if self._running() >= self.config.workers:
            return False
        if req.op == wire.OP_CLI:  # (a command never waits for a spare: the loop forks it)
            return sum(1 for j in self.jobs.values() if j.cli) < self._cli_limit()
        return True

    def _start_pending(self) -> None:
        """Start the queued requests that may start now, oldest first."""
        waiting: deque[Conn] = deque()
        while self.pending and self._running() < self.config.workers and not self.stopping:
            nxt = self.pending.popleft()
            if nxt not in self.conns or nxt.request is None:
                continue
            if self._may_start(nxt.request):
                self._start(nxt, nxt.request)
            else:
                waiting.append(nxt)
        waiting.extend(self.pending)
        self.pending = waiting

    def _reject(self, conn: Conn, why: str) -> None:
        self.stats.rejected += 1
        self._answer(conn, error_response(f"pycni plugin service: bad request: {why}"))

    def _hangup_while_running(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            if conn.job is not None and conn.job.cli:
                self._forward_signals(conn.job, data)
            return  # nothing else is expected while a call runs; ignored
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        if conn.job is not None and _peer_gone(conn.sock):
            self._kill(conn.job, "the caller hung up")

    def _forward_signals(self, job: Job, data: bytes) -> None:
        """Deliver the signals a ``cnitool`` caller received to the command, as they
        would have reached a ``cnitool`` process (the plugins it runs have groups of
        their own, as exec'd plugins do); a stop and a continue (job control) stop and
        continue the command's process group."""
        for signum in data:
            if job.killed:
                break
            if signum in FORWARDED_SIGNALS:
                with contextlib.suppress(OSError):
                    os.kill(job.pid, signum)
            elif signum == STOP and job.paused is None and job.deadline is not None:
                # the whole group, as a terminal stops its foreground job; the timeout
                # waits while the command is stopped, as the caller does
                with contextlib.suppress(OSError):
                    os.killpg(job.pid, signal.SIGSTOP)
                job.paused, job.deadline = job.deadline - time.monotonic(), None
            elif signum == CONTINUE and job.paused is not None:
                with contextlib.suppress(OSError):
                    os.killpg(job.pid, signal.SIGCONT)
                job.deadline = time.monotonic() + job.paused
                job.paused = None

    def _answer(self, conn: Conn, data: bytes) -> None:
        """Send ``data`` and close; what does not fit now is sent when writable."""
        self._close_fds(conn)
        conn.out = memoryview(data)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        self._flush(conn)
        if conn.out is not None and conn in self.conns:
            self.sel.register(conn.sock, selectors.EVENT_WRITE, ("conn", conn))

    def _flush(self, conn: Conn) -> None:
        assert conn.out is not None
        try:
            while conn.out:
                conn.out = conn.out[conn.sock.send(conn.out) :]
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)  # the caller went away; nothing else to do for it
            return
        conn.out = None
        if conn.request is None:
            self._linger(conn)
        else:
            self._close(conn)

    def _linger(self, conn: Conn) -> None:
        """Answered before the whole request was read: read and drop the rest until the
        caller hangs up, so closing does not reset the connection under the answer."""
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.draining = True
        conn.deadline = time.monotonic() + self.config.read_timeout
        self.sel.register(conn.sock, selectors.EVENT_READ, ("conn", conn))

    def _drain(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)

    def _close_fds(self, conn: Conn) -> None:
        for fd in conn.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        conn.fds = []

    def _close(self, conn: Conn) -> None:
        if conn in self.unforked:
            self.unforked.remove(conn)
        self._close_fds(conn)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        conn.sock.close()
        conn.out = None
        self.conns.discard(conn)
        if not self.stopping and len(self.conns) < self.config.max_connections:
            self._listen(True)

    # -- workers ---------------------------------------------------------------------------
    def _start(self, conn: Conn, req: wire.Request, *, fork: bool = False) -> None:
        """Run ``req`` in the forker's next spare, or, without a forker (or ``fork``), in
        a fork of the service; with a forker but no spare at hand, the call waits for the
        next one. A ``cnitool`` command always runs in a fork of the service: the
        forker's heap has the plugins only."""
        fork = fork or req.op == wire.OP_CLI
        out_fd = os.memfd_create("pycni-stdout", os.MFD_CLOEXEC)
        err_fd = os.memfd_create("pycni-stderr", os.MFD_CLOEXEC)
        pid = None if fork else self._hand_to_spare(req, conn.fds, out_fd, err_fd)
        if pid is None and self.forker is not None and not fork:
            os.close(out_fd)
            os.close(err_fd)
            conn.deadline = time.monotonic() + FORKER_PATIENCE
            self.unforked.append(conn)
            self._refill()
            return
        if pid is None:
            pid = self._fork_worker(req, conn.fds, out_fd, err_fd)
        self._close_fds(conn)
        pidfd = os.pidfd_open(pid)  # a spare is the service's child too (CLONE_PARENT)
        job = Job(conn, pid, pidfd, out_fd, err_fd, time.monotonic() + self.config.timeout)
        job.cli = req.op == wire.OP_CLI
        conn.job = job
        self.jobs[pid] = job
        self.sel.register(pidfd, selectors.EVENT_READ, ("job", job))
        self.sel.register(conn.sock, selectors.EVENT_READ, ("conn", conn))
        self._refill()

    def _fork_worker(self, req: wire.Request, fds: list[int], out_fd: int, err_fd: int) -> int:
        """Fork the request's worker from the service itself (no forker)."""
        from . import worker

        service_pid = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the loop
            code = 1
            try:
                code = worker.serve(req, fds, out_fd, err_fd, service_pid)
            finally:
                os._exit(code)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)  # the worker does it too; whichever runs first wins
        return pid

    def _start_unforked(self, fork: bool = False) -> None:
        """Hand the calls waiting for a worker to the spares that came in; ``fork``: the
        first one forks its own."""
        while self.unforked and (self.spares or self.forker is None or fork):
            conn = self.unforked.popleft()
            if conn not in self.conns or conn.request is None:
                continue
            if fork and not self.spares:
                fork = False
                self._start(conn, conn.request, fork=True)
            else:
                self._start(conn, conn.request)

    def _refill(self) -> None:
        """Ask the forker for what keeps ``SPARES_AHEAD`` spares ready, plus one for each
        call waiting for one (the forks happen in the forker, off the service's loop)."""
        fk = self.forker
        if fk is None:
            return
        ahead = 0 if self.stopping else SPARES_AHEAD
        want = ahead + len(self.unforked) - len(self.spares) - fk.asked
        if want <= 0:
            return
        try:
            fk.sock.send(forking.WANT * want)
        except BlockingIOError:
            return  # asked again at the next call or answer
        except OSError:
            self._forker_lost()
            return
        fk.asked += want

    def _from_forker(self) -> None:
        """The forker's messages: the spares it forked (the service's children)."""
        fk = self.forker
        assert fk is not None
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(fk.sock, 64, 1, socket.MSG_CMSG_CLOEXEC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            if not data:
                self._forker_lost()
                return
            kind = data[:1]
            if kind == forking.SPARE and len(data) == forking.SPARE_MSG.size:
                fk.asked = max(0, fk.asked - 1)
                _, pid = forking.SPARE_MSG.unpack(data)
                if pid > 0 and len(fds) == 1:
                    self.spares.append(Spare(pid, socket.socket(fileno=fds[0])))
                    self._start_unforked()
                else:  # the forker could not fork: this one call forks its own
                    for fd in fds:
                        os.close(fd)
                    self._start_unforked(fork=True)
            else:
                for fd in fds:
                    os.close(fd)

    def _forker_lost(self) -> None:
        """The forker died (its spares are the service's children and live on): from
        now on the service forks each worker itself."""
        fk, self.forker = self.forker, None
        if fk is None:
            return
        self.log("the forker died: forking workers in the service from now on")
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(fk.sock)
        forking.stop(fk)
        self._start_unforked()

    def _hand_to_spare(
        self, req: wire.Request, fds: list[int], out_fd: int, err_fd: int
    ) -> int | None:
        """Give the request to a spare worker; its pid, or None (none could take it).
        The request is written once, to a memory file every spare tried may read."""
        if not self.spares:
            return None
        try:
            request_fd = os.memfd_create("pycni-request", os.MFD_CLOEXEC)
        except OSError as exc:
            self.log(f"cannot hand a request to a spare worker: {exc}")
            return None
        try:
            data = memoryview(wire.encode_request(req))
            while data:
                data = data[os.write(request_fd, data) :]
            while self.spares:
                spare = self.spares.popleft()
                try:
                    socket.send_fds(spare.channel, [b"r"], [*fds, out_fd, err_fd, request_fd])
                except OSError as exc:
                    self.log(f"a spare worker could not take a request: {exc}")
                    self._end_spare(spare)
                    continue
                finally:
                    spare.channel.close()
                return spare.pid
        except OSError as exc:
            self.log(f"cannot hand a request to a spare worker: {exc}")
        finally:
            os.close(request_fd)
        return None

    def _drop_spares(self) -> None:
        while self.spares:
            spare = self.spares.popleft()
            spare.channel.close()
            self._end_spare(spare)

    def _end_spare(self, spare: Spare) -> None:
        with contextlib.suppress(OSError):
            os.kill(spare.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(spare.pid, 0)

    def _kill(self, job: Job, why: str) -> None:
        if job.killed:
            return
        job.killed = why
        job.deadline = None
        try:
            os.killpg(job.pid, signal.SIGKILL)
        except OSError:
            with contextlib.suppress(OSError):
                os.kill(job.pid, signal.SIGKILL)

    def _reap(self, job: Job) -> None:
        """A worker ended (its pidfd is readable): answer its call."""
        _, status = os.waitpid(job.pid, 0)
        self.sel.unregister(job.pidfd)
        os.close(job.pidfd)
        del self.jobs[job.pid]
        if job.killed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.pid, signal.SIGKILL)  # what the plugin left in its group
        stdout, stderr = _read_memfd(job.stdout_fd), _read_memfd(job.stderr_fd)
        conn = job.conn
        conn.job = None
        self._record(conn, status, job.killed)
        if conn in self.conns:
            result = (self._cli_result if job.cli else self._result)(
                status, job.killed, stdout, stderr
            )
            self._answer(conn, result)
        self._start_pending()

    def _record(self, conn: Conn, status: int, killed: str) -> None:
        self.stats.served += 1
        if conn.request is not None and conn.request.op == wire.OP_CLI:
            self.stats.commands += 1
        self.stats.latencies.append(time.monotonic() - conn.received)
        if killed or os.WIFSIGNALED(status):
            self.stats.crashed += 1
            what = killed or f"killed by {_signal_name(os.WTERMSIG(status))}"
            plugin = conn.request.plugin if conn.request else "?"
            self.log(f"worker {plugin}: {what}")
        elif os.waitstatus_to_exitcode(status) != 0:
            self.stats.failed += 1

    def _result(
        self, status: int, killed: str, stdout: bytes | None, stderr: bytes | None
    ) -> bytes:
        if stdout is None or stderr is None:
            return error_response(
                f"pycni plugin service: the plugin's output exceeds {wire.MAX_OUTPUT} bytes"
            )
        if killed or os.WIFSIGNALED(status):
            what = killed or f"was killed by {_signal_name(os.WTERMSIG(status))}"
            msg = f"pycni plugin service: the plugin worker {what}"
            if killed:
                msg = f"pycni plugin service: the plugin was killed: {killed}"
            body = CNIError(msg, code=ERROR_CODE).to_json().encode()
            return wire.encode_response(wire.KIND_RESULT, 1, body, stderr)
        code = os.waitstatus_to_exitcode(status)
        return wire.encode_response(wire.KIND_RESULT, code, stdout, stderr)

    def _cli_result(
        self, status: int, killed: str, stdout: bytes | None, stderr: bytes | None
    ) -> bytes:
        """A command's answer: its exit status (its output went to the caller's own
        descriptors), or, when the worker died or was killed, a line for its stderr. A
        command that a signal its caller passed on ended (SIGTERM before it set a
        handler) ends the caller with that signal's status, as the signal would have
        ended a ``cnitool`` process."""
        if not killed and os.WIFSIGNALED(status) and os.WTERMSIG(status) in FORWARDED_SIGNALS:
            return wire.encode_response(wire.KIND_RESULT, 128 + os.WTERMSIG(status))
        if killed or os.WIFSIGNALED(status):
            what = killed or f"was killed by {_signal_name(os.WTERMSIG(status))}"
            line = (
                f"cnitool: the plugin service's worker running this command {what}; "
                "the command may have run in part\n"
            )
            if killed:
                line = (
                    f"cnitool: the plugin service killed this command: {killed}; "
                    "it may have run in part\n"
                )
            return wire.encode_response(wire.KIND_RESULT, 1, b"", line.encode())
        # never stdout: the caller takes an answer with stdout for a refusal and runs the
        # command itself (a command writes to the caller's own stdout, never here)
        code = os.waitstatus_to_exitcode(status)
        return wire.encode_response(wire.KIND_RESULT, code, b"", stderr or b"")

    # -- status --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What ``cnitool serve status`` shows."""
        s = self.stats
        return {
            "pid": os.getpid(),
            "version": __version__,
            "socket": self.config.socket_path,
            "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s.started)),
            "uptimeSeconds": round(time.monotonic() - s.started_mono, 1),
            "requests": s.served,
            "commands": s.commands,
            "failed": s.failed,
            "crashed": s.crashed,
            "timedOut": s.timed_out,
            "rejected": s.rejected,
            "ranCold": s.busy,
            "running": len(self.jobs),
            "workerPids": sorted(self.jobs),
            "spare": self.spares[0].pid if self.spares else None,
            "spares": [spare.pid for spare in self.spares],
            "forker": self.forker.pid if self.forker is not None else None,
            "queued": len(self.pending),
            "workers": self.config.workers,
            "latencyMs": {
                "p50": _ms(s.percentile(0.5)),
                "p99": _ms(s.percentile(0.99)),
                "samples": len(s.latencies),
            },
            "plugins": sorted(self.plugins),
        }


def _peer_gone(sock: socket.socket) -> bool:
    """Whether the caller closed the connection (POLLHUP), not only its sending side."""
    poller = select.poll()
    poller.register(sock, select.POLLHUP)
    return any(events & select.POLLHUP for _, events in poller.poll(0))


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _read_memfd(fd: int) -> bytes | None:
    """A worker's output file, closed after reading; None when it exceeds the bound."""
    try:
        size = os.fstat(fd).st_size
        if size > wire.MAX_OUTPUT:
            return None
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


# -- the listening socket ----------------------------------------------------------------
def _check_dir(directory: str) -> None:
    """The socket's directory: created 0700, or an existing one only root can write to."""
    try:
        os.mkdir(directory, 0o700)
        return
    except FileExistsError:
        pass
    except OSError as exc:
        raise ServiceError(f"cannot create {directory}: {exc.strerror or exc}") from None
    st = os.stat(directory)
    if not stat.S_ISDIR(st.st_mode):
        raise ServiceError(f"{directory} is not a directory")
    if st.st_uid != 0 or st.st_mode & 0o022:
        raise ServiceError(
            f"socket directory {directory} must belong to root and be writable by root only"
        )


def _clear_stale(path: str) -> None:
    """Remove a socket file no service listens on; refuse when one does."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ServiceError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise ServiceError(f"cannot probe {path}: {exc.strerror or exc}") from None
        os.unlink(path)
        return
    finally:
        probe.close()
    raise ServiceError(f"another service is already listening on {path}")


def open_listener(path: str, backlog: int = 512) -> socket.socket:
    """Bind ``path`` (mode 0600, in a root-only directory) and listen."""
    path = os.path.abspath(path)
    _check_dir(os.path.dirname(path))
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise ServiceError(f"cannot bind {path}: {exc.strerror or exc}") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(backlog)
    return sock


def listener_from_systemd(env: dict[str, str] | None = None) -> socket.socket | None:
    """The socket systemd passed (``LISTEN_PID``/``LISTEN_FDS``), or None."""
    source = os.environ if env is None else env
    if source.get("LISTEN_PID") != str(os.getpid()):
        return None
    try:
        count = int(source.get("LISTEN_FDS", "0"))
    except ValueError:
        return None
    if count < 1:
        return None
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise ServiceError("the socket passed by systemd is not a Unix stream socket")
    os.set_inheritable(sock.fileno(), False)
    return sock


# -- preloading ----------------------------------------------------------------------------
def preload(log: Log) -> set[str]:
    """Import every available plugin with all its modules but those only its own daemon
    runs (a package's ``DAEMON_ONLY``); the packages that loaded."""
    import importlib
    import pkgutil

    from .. import launchers

    loaded: set[str] = set()
    for package in sorted(set(launchers.PLUGINS.values())):
        if not launchers.package_available(package):
            continue
        name = f"{launchers.PLUGIN_PACKAGE}.{package}"
        try:
            module = importlib.import_module(f"{name}.__main__")
            root = importlib.import_module(name)
            skip: frozenset[str] = getattr(root, "DAEMON_ONLY", frozenset())  # never in a call
            for info in pkgutil.iter_modules(root.__path__):
                if info.name not in skip:
                    importlib.import_module(f"{name}.{info.name}")
        except Exception as exc:  # a broken plugin must not keep the others down
            log(f"cannot load plugin {package}: {exc}")
            continue
        if hasattr(module, "PLUGIN"):
            loaded.add(package)
    for extra in ("cnitool.spec.results", "cnitool.invoke.exec", "cnitool.invoke.delegate"):
        importlib.import_module(extra)
    _preload_tree(f"{launchers.PLUGIN_PACKAGE}._lib", log)
    return loaded


# what the cnitool commands the service runs (front.WARM_COMMANDS) import, including what
# their modules leave to the moment it is needed
COMMAND_MODULES = (
    "cnitool.cli.main",
    "cnitool.cli.add",
    "cnitool.cli.check",
    "cnitool.cli.delete",
    "cnitool.cli.made_netns",
    "cnitool.libcni.api",
    "cnitool.libcni.cache",
    "cnitool.libcni.config",
    "cnitool.libcni.runtime",
    "cnitool.invoke.forked",
    "cnitool.launchers",
    "cnitool.netns",
)


def preload_commands(log: Log) -> bool:
    """Import what ``cnitool add|check|del`` runs; False (callers run the command
    themselves) when that fails."""
    import importlib

    try:
        for name in COMMAND_MODULES:
            importlib.import_module(name)
        _warm_rich()
    except Exception as exc:
        log(f"cannot preload the cnitool commands: {exc}")
        return False
    return True


def _warm_rich() -> None:
    """Draw a table and a progress bar into memory once: rich imports much of itself only
    when it first draws, and a terminal's ``cnitool add`` draws its result as tables."""
    import io

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    screen = Console(file=io.StringIO(), width=80, force_terminal=True, color_system="truecolor")
    table = Table(title="[bold]warm[/bold]", title_justify="left")
    table.add_column("#")
    table.add_row("0")
    screen.print(table)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   console=screen, transient=True, auto_refresh=False)  # fmt: skip
    task = bar.add_task("warm", total=1)
    bar.advance(task)
    bar.refresh()


def _preload_tree(package: str, log: Log) -> None:
    """Import ``package`` and every module below it (the plugins' shared code, which they
    import lazily): a worker then imports nothing from disk, whatever mount namespace it
    joined."""
    import importlib
    import pkgutil

    try:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            importlib.import_module(info.name)
    except Exception as exc:
        log(f"cannot preload {package}: {exc}")


def serve(config: Config, log: Log) -> None:
    """Open the socket (or take systemd's), preload, and run until stopped."""
    listener = listener_from_systemd()
    owned = listener is None
    if listener is None:
        listener = open_listener(config.socket_path)
    forker = None
    try:
        plugins = preload(log)
        from cnitool_plugins._launch import warm_up

        warm_up(log)  # the common call run here once, so that no worker runs it first
        gc.collect()
        gc.freeze()  # the preloaded heap stays shared with the workers (copy-on-write)
        # the forker holds the plugins' heap only: a smaller heap makes every plugin
        # worker's fork and exit cheaper; commands' workers are forked by the service
        forker = forking.start(os.getpid()) if config.spare else None
        if config.spare and forker is None:
            log("no forker (cannot fork one here): the service forks each worker itself")
        commands = preload_commands(log)
        gc.collect()
        gc.freeze()
        log(
            f"serving {len(plugins)} plugins on {config.socket_path} (pid {os.getpid()}, "
            f"{config.workers} workers, timeout {config.timeout:g}s)"
        )
        socket_file = os.path.abspath(config.socket_path) if owned else None
        Service(config, listener, plugins, log, socket_file, commands=commands, forker=forker).run()
    finally:
        if forker is not None and forker.sock.fileno() >= 0:  # Service.run did not start
            forking.stop(forker)
        listener.close()
        if owned:  # normally gone already (Service unlinks it first thing at stop)
            with contextlib.suppress(OSError):
                os.unlink(os.path.abspath(config.socket_path))
    log("stopped")


def query_status(path: str, timeout: float = 5.0) -> dict[str, Any]:
    """Ask the service at ``path`` for its status; OSError when it does not answer."""
    req = wire.encode_request(wire.Request(op=wire.OP_STATUS))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(req)
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    resp = wire.decode_response(b"".join(chunks))
    if resp.kind != wire.KIND_INFO:
        raise OSError(f"the service refused: {resp.stdout.decode(errors='replace')}")
    info: dict[str, Any] = json.loads(resp.stdout)
    return info
