"""What a forked worker does with one request: become the caller, run the plugin, exit.

The worker is a fork of the single-threaded service, so it can ``setns`` into the
caller's mount namespace (the kernel refuses that to a multi-threaded process). In order:
its own process group (a timeout kills the plugin's children too), the caller's network
and mount namespaces, working directory and umask, the caller's environment as
``os.environ`` (for the programs a plugin runs), ``/dev/null`` as stdin and two memory
files as stdout and stderr, which the service reads after the worker exits. Then
``skel.run`` runs the plugin, its output goes to stdout as the launcher would print it,
and the exit status is the plugin's. Delegates that are our own launchers run in the same
process, and the plugin's switches into the container's network namespace happen in the
worker's one thread, not in a new thread each (``_launch.prepare_worker``).

Everything the worker gets is what the exec'd plugin would have had: the caller's
environment and stdin bytes unchanged, argv as the caller's. A failure to become the
caller is reported as a CNI error, never run in the service's namespaces.

A ``cnitool`` command (:func:`_serve_cli`) becomes the caller the same way, but takes the
caller's own stdin, stdout and stderr instead of memory files and runs ``cnitool``'s
``main``, which forks the plugins of ours it runs (:mod:`cnitool.invoke.forked`).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C module under signal
import contextlib
import ctypes
import io
import os
import signal
import sys
from importlib import import_module
from typing import Any, NoReturn

from .. import skel
from ..invoke import delegate
from ..spec.errors import CNIError
from .wire import Request

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
SETUP_FAILED = 999

PR_SET_PDEATHSIG = 1
# the signals the service handles, which a process forked from it sets back to default
_SERVICE_SIGNALS = (int(signal.SIGTERM), int(signal.SIGINT), int(signal.SIGCHLD))
_SIG_DFL = int(signal.SIG_DFL)

# The C library the interpreter already has mapped, and the functions a worker calls,
# looked up here: the service imports this module before its first fork, so every worker
# finds them resolved instead of doing the lookup again.
_LIBC: Any = ctypes.CDLL(None, use_errno=True)
_LIBC_SETNS: Any = _LIBC.setns
_LIBC_PRCTL: Any = _LIBC.prctl
_LIBC_CLEARENV: Any = _LIBC.clearenv


def _setns(fd: int, nstype: int) -> None:
    """setns(2) through libc (Python 3.11 has no os.setns)."""
    if _LIBC_SETNS(fd, nstype) != 0:
        err = ctypes.get_errno()
        kind = "mount" if nstype == CLONE_NEWNS else "network"
        raise OSError(err, f"cannot join the caller's {kind} namespace: {os.strerror(err)}")


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when its parent (the service; a command's
    worker, for the plugins the command forks) dies: the caller has then been told the
    call failed, and the runtime will DEL; a late ADD must not follow."""
    _LIBC_PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _become_caller(req: Request, fds: list[int]) -> None:
    """Join the caller's namespaces and directory, take its umask and environment."""
    mnt, net, cwd = fds
    os.setpgid(0, 0)
    _setns(net, CLONE_NEWNET)
    _setns(mnt, CLONE_NEWNS)
    os.fchdir(cwd)
    for fd in fds:
        os.close(fd)
    os.umask(req.umask)
    take_environ(req.env)
    sys.argv = [os.fsdecode(a) for a in req.argv] or [req.plugin]


def take_environ(env: dict[bytes, bytes]) -> None:
    """The caller's environment exactly, in its order, as the C library's (for the
    programs a plugin runs) and as ``os.environ``. Straight through ``putenv`` and the
    dict both ``os.environ`` and ``os.environb`` read (``_data``): the mapping methods
    run about thirty Python calls a variable, and what a worker runs for the first
    time costs it a copy of each page it writes. ``clearenv`` first: a library may have
    set variables ``os.environ`` does not know of."""
    _LIBC_CLEARENV()
    data = getattr(os.environb, "_data", None)
    if not isinstance(data, dict):  # another interpreter's os module: the mapping API
        for key in list(os.environb):
            del os.environb[key]
        os.environb.update(env)
        return
    data.clear()
    for key, value in env.items():
        os.putenv(key, value)
        data[key] = value


def redirect(stdout_fd: int, stderr_fd: int) -> None:
    """stdin from /dev/null, stdout and stderr into the given files (the service's memory
    files), as an exec'd plugin's are pipes."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(stdout_fd, 1)
    os.dup2(stderr_fd, 2)
    os.close(stdout_fd)
    os.close(stderr_fd)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), write_through=True, errors="backslashreplace"
    )


def _take_std(fds: list[int]) -> None:
    """The caller's stdin, stdout and stderr as this process's 0, 1 and 2, with Python's
    streams over them built as the interpreter builds its own (UTF-8; stdout line-buffered
    on a terminal, stderr always)."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
        encoding="utf-8",
        line_buffering=os.isatty(1),
    )
    sys.stderr = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _stranded(exc: BaseException) -> NoReturn:
    """The worker cannot go back to the caller's network namespace after a switch into
    the container's: report it and end here, before anything else runs (a rollback in
    the wrong namespace would undo the node's network in the container's)."""
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    msg = f"pycni plugin service: cannot return to the caller's network namespace: {detail}"
    with contextlib.suppress(OSError):
        _write(1, CNIError(msg, code=SETUP_FAILED).to_json().encode())
    os._exit(1)


def run_package(package: str, env: dict[str, str], stdin: bytes) -> int:
    """Run plugin ``package`` through skel as its exec would: ``env`` and ``stdin``, its
    output on fd 1; returns its exit status. Delegates of ours run in this process, and
    the plugin's switches into the container's network namespace in this thread."""
    from cnitool_plugins._launch import prepare_worker

    delegate.enable_in_process()
    prepare_worker(_stranded)
    name = f"cnitool_plugins.{package}.__main__"
    module = sys.modules.get(name) or import_module(name)  # preloaded: no import machinery
    out, code = skel.run(module.PLUGIN, env, stdin, sys.stderr)
    sys.stderr.flush()
    _write(1, out)
    return code


def _run_plugin(req: Request) -> int:
    env = {os.fsdecode(k): os.fsdecode(v) for k, v in req.env.items()}
    return run_package(req.plugin, env, req.stdin)


def _setup_error(exc: BaseException) -> bytes:
    if isinstance(exc, CNIError):
        return exc.to_json().encode()
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    msg = f"pycni plugin service: worker could not take the caller's place: {detail}"
    return CNIError(msg, code=SETUP_FAILED).to_json().encode()


def close_except(keep: list[int]) -> None:
    """Close every descriptor above 2 but ``keep`` (the service's sockets, other calls)."""
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def leave_service(parent_pid: int, keep: list[int]) -> None:
    """Drop what the fork copied of the service (``parent_pid``, the parent of every
    worker, the forker's too): its descriptors (callers waiting for EOF on a connection
    must not wait for this process) and its signal handlers."""
    die_with_parent(parent_pid)
    close_except(keep)
    # the C functions: ``signal.signal`` converts its answer to an enum in Python code
    signal.set_wakeup_fd(-1)
    for signum in _SERVICE_SIGNALS:
        _signal.signal(signum, _SIG_DFL)


# what a spare receives with a request: the request's descriptors (wire.FDS_OF_OP), the
# stdout and stderr memory files, the request in a memory file
SPARE_EXTRA_FDS = 3


def spare(channel: int, parent_pid: int) -> int:
    """A worker forked ahead of its request by the forker (:mod:`.forker`) as a child of
    the service (``parent_pid``), so the fork is neither on the call's path nor in the
    service's loop: wait on
    ``channel`` (a SEQPACKET socket) for one request and serve it; exit 0 at EOF (the
    service stopped or dropped the spare)."""
    import _socket
    import array

    from .wire import MAX_FDS, REQUEST_HEADER, decode_body, decode_head

    leave_service(parent_pid, [channel])
    sock = _socket.socket(fileno=channel)  # the C type: no Python code on the way
    fds = array.array("i")
    try:
        _, anc, _, _ = sock.recvmsg(
            1, _socket.CMSG_SPACE((MAX_FDS + SPARE_EXTRA_FDS) * fds.itemsize)
        )
    except OSError:
        return 0
    for level, kind, data in anc:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    sock.close()
    if len(fds) < SPARE_EXTRA_FDS:
        for fd in fds:
            os.close(fd)
        return 0
    *caller, out_fd, err_fd, request_fd = list(fds)
    data = os.pread(request_fd, os.fstat(request_fd).st_size, 0)
    os.close(request_fd)
    head = decode_head(data[: REQUEST_HEADER.size])
    req = decode_body(head, data[REQUEST_HEADER.size :])
    # it left the service when it was forked: what it holds now is this request's only
    return _serve(req, caller, out_fd, err_fd)


def serve(req: Request, fds: list[int], stdout_fd: int, stderr_fd: int, service_pid: int) -> int:
    """A worker forked for ``req``: leave the service, serve the request; the exit status
    for ``os._exit``."""
    leave_service(service_pid, [*fds, stdout_fd, stderr_fd])
    return _serve(req, fds, stdout_fd, stderr_fd)


def _serve(req: Request, fds: list[int], stdout_fd: int, stderr_fd: int) -> int:
    """Run ``req`` as its caller would, in a worker that holds nothing of the service."""
    from .wire import OP_CLI

    if req.op == OP_CLI:
        return _serve_cli(req, fds, stdout_fd, stderr_fd)
    return _serve_plugin(req, fds, stdout_fd, stderr_fd)


def _serve_plugin(req: Request, fds: list[int], stdout_fd: int, stderr_fd: int) -> int:
    """A plugin call: become the caller, run the plugin with its output in the memory
    files."""
    redirect(stdout_fd, stderr_fd)
    try:
        _become_caller(req, fds)
    except Exception as exc:
        _write(1, _setup_error(exc))
        return 1
    try:
        return _run_plugin(req) & 0xFF
    except Exception as exc:  # skel reports plugin failures; this is the worker's own
        _write(1, _setup_error(exc))
        return 1


def _serve_cli(req: Request, fds: list[int], stdout_fd: int, stderr_fd: int) -> int:
    """A ``cnitool`` command line: become the caller, take its stdin, stdout and stderr,
    and run the command as the ``cnitool`` process would have run it, with the same
    signal dispositions (SIGINT interrupts; SIGTERM and SIGHUP as the command sets them).
    The plugins of ours that the command runs start as forks of this preloaded process
    (:mod:`cnitool.invoke.forked`) instead of execs. Only a failure to become the caller
    goes to the memory file ``stderr_fd``, which the service relays."""
    caller, std = fds[:3], fds[3:]
    try:
        _become_caller(req, caller)
    except Exception as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        _write(
            stderr_fd, f"cnitool: the plugin service could not run the command: {detail}\n".encode()
        )
        return 1
    os.close(stdout_fd)
    os.close(stderr_fd)
    _take_std(std)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return _run_cli()


def _run_cli() -> int:
    """``cnitool``'s ``main`` with the exit status a ``python`` process would end with."""
    from ..invoke import delegate, forked

    delegate.enable_in_process()
    forked.enable()
    code = 0
    try:
        from ..cli.main import main

        main()
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    return code


def _exit_code(value: object) -> int:
    """What the interpreter makes of ``SystemExit(value)``: a message is printed, 1."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"{value}\n")
    return 1
