"""The forker: the process that forks the service's workers, so that its loop never does.

A fork write-protects every page of the forking process, and a process that goes on
running after it copies each page it writes again: in the service's loop that was a few
hundred pages per call, more CPU than the fork itself. The forker is a fork of the
service taken right after the plugins are preloaded and warmed up, before the loop
starts and before the service imports what ``cnitool``'s commands need: its heap is the
plugins' only, a third smaller, which makes each worker's fork and exit cheaper, and
its own loop touches little. The service forks the workers of commands itself.

It forks with ``clone(CLONE_PARENT)``, so each worker is the **service's** child, as if
the service had forked it: the service reaps it and reads its exit status, and the
worker's death signal (``PR_SET_PDEATHSIG``) is tied to the service itself. The clone
goes through the interpreter's own fork hooks (``PyOS_BeforeFork`` and the two
``PyOS_AfterFork_*``), which ``os.fork`` calls around ``fork()``; glibc's own fork
handlers matter only to a process with other threads, and the forker has none.

The protocol, over a SOCK_SEQPACKET pair: the service sends one byte ``f`` per worker it
wants (a spare, :func:`.worker.spare`); the forker answers each with ``s`` and the pid,
the spare's end of its channel attached (``SCM_RIGHTS``), or the pid -1 when it could not
fork (the service then forks that worker itself). The forker ends at EOF, and with the
service (its own death signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import struct
import sys
from dataclasses import dataclass
from typing import Any

WANT = b"f"
SPARE = b"s"
SPARE_MSG = struct.Struct("=ci")
CLONE_PARENT = 0x00008000
_SOL_SOCKET = socket.SOL_SOCKET
_SCM_RIGHTS = socket.SCM_RIGHTS
_BYTEORDER = sys.byteorder
# clone(2)'s number where its first two arguments are the flags and the stack (s390x has
# them the other way round; the three others are 0 here, so their order does not matter)
SYS_CLONE = {"x86_64": 56, "aarch64": 220, "ppc64le": 120, "riscv64": 220}


@dataclass(eq=False)
class Forker:
    """The service's end: the forker's pid and the socket to it."""

    pid: int
    sock: socket.socket
    asked: int = 0  # spares asked for and not yet received


def clone_number() -> int | None:
    """The clone syscall's number on this machine; None where it is not known here (the
    service then forks each worker itself)."""
    return SYS_CLONE.get(os.uname().machine)


def start(service_pid: int) -> Forker | None:
    """Fork the forker from the service (single-threaded, preloaded); None where it
    cannot clone workers for the service (the service then forks them itself)."""
    number = clone_number()
    if number is None:
        return None
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        return None
    if pid == 0:  # the forker: never returns
        code = 1
        try:
            ours.close()
            code = _run(theirs.detach(), service_pid, number)
        finally:
            os._exit(code)
    theirs.close()
    ours.setblocking(False)
    return Forker(pid, ours)


def _run(channel: int, service_pid: int, number: int) -> int:
    """Fork spares when asked, until the service hangs up.

    The loop uses the C socket type and prebuilt arguments only: every page this
    process writes after a fork is copied once more while the new spare shares it
    (about 100 pages a fork with Python's socket module in the loop, 75 without)."""
    import _socket

    from . import worker

    worker.leave_service(service_pid, [channel])
    # the terminal's ^C reaches the whole group: the service decides when this ends
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    clone = _cloner(number)
    sock = _socket.socket(fileno=channel)
    spare = worker.spare
    while True:
        try:
            data = sock.recv(512)
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if not data:
            return 0
        for _ in range(data.count(WANT)):
            _fork_spare(sock, clone, spare, service_pid)


def _cloner(number: int) -> Any:
    """A fork whose child is the service's: ``clone(CLONE_PARENT | SIGCHLD)`` between
    the interpreter's fork hooks, the GIL held throughout (``PyDLL``)."""
    libc = ctypes.PyDLL(None, use_errno=True)
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    syscall.argtypes = [ctypes.c_long, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_void_p,
                        ctypes.c_void_p, ctypes.c_ulong]  # fmt: skip
    api = ctypes.pythonapi
    flags = CLONE_PARENT | signal.SIGCHLD

    def clone() -> int:
        api.PyOS_BeforeFork()
        pid = int(syscall(number, flags, None, None, None, 0))
        if pid == 0:
            api.PyOS_AfterFork_Child()
            return 0
        err = ctypes.get_errno()
        api.PyOS_AfterFork_Parent()
        if pid < 0:
            raise OSError(err, os.strerror(err))
        return pid

    return clone


def _fork_spare(sock: Any, clone: Any, spare: Any, service_pid: int) -> None:
    """Clone one spare (``spare``: :func:`.worker.spare`) and send the service its pid
    and its channel's other end."""
    import _socket

    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    try:
        pid = clone()
    except OSError:
        ours.close()
        theirs.close()
        sock.send(SPARE_MSG.pack(SPARE, -1))
        return
    if pid == 0:  # the spare, the service's child: never returns into this loop
        code = 1
        try:
            code = spare(theirs.detach(), service_pid)  # it closes ``ours`` with the rest
        finally:
            os._exit(code)
    theirs.close()
    rights = ours.fileno().to_bytes(4, _BYTEORDER)
    try:
        sock.sendmsg([SPARE_MSG.pack(SPARE, pid)], [(_SOL_SOCKET, _SCM_RIGHTS, rights)])
    except OSError:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)  # the service reaps it (its child) at stop
    finally:
        ours.close()


def stop(forker: Forker) -> None:
    """Hang up on the forker and reap it."""
    forker.sock.close()
    with contextlib.suppress(ChildProcessError):
        os.waitpid(forker.pid, 0)
