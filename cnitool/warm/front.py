"""The ``cnitool`` command's entry point: ``add``, ``check`` and ``del`` run warm when
the plugin service is up.

Most of what a ``cnitool add`` costs before its first plugin is importing click, rich
and this project's modules. The service has them imported already, so when it is
reachable (the same rules as the launchers': root, a root-owned socket at
``$PYCNI_SOCKET`` or ``/run/pycni/plugins.sock``, a root peer) those three commands are
sent there and run in a forked worker that takes this process's place: its mount and
network namespaces, working directory, umask, environment, argv, and its stdin, stdout
and stderr themselves (passed as descriptors, so terminals, pipes and colours behave as
they do here). The plugins of ours that the command runs are forks of that worker, not
execs. This process waits, passes on SIGINT, SIGTERM and SIGHUP (a third one ends the
wait), and exits with the command's status. Job control works as it would on the
command itself: a stop (^Z) stops the command's worker, then this process; a SIGCONT
(``fg``, ``bg``) continues both.

Everything else, and those commands when the service is not there, refuses them (busy,
another version, one from before commands that rejects the request) or cannot take the
descriptors, runs here as before: nothing has run until the service accepts the request. A connection that breaks after that is reported
and the command is not run again (it may have run in part).

Imports: ``os`` and ``sys`` (loaded at start-up already), the stdlib-only client, and
``_signal`` on the warm path only (``contextlib`` and ``signal`` cost milliseconds).
"""

import os
import sys

from . import client

TYPE_CHECKING = False  # typing costs an import; type checkers read this name as True
if TYPE_CHECKING:
    import _socket
    from collections.abc import Callable

WARM_COMMANDS = frozenset({"add", "check", "del"})
OP_CLI = 3  # cnitool.warm.wire.OP_CLI (a unit test compares them)
CLI_PROGRAM = "cnitool"
# signals passed on to the command (SIGHUP, SIGINT, SIGTERM); after this many the
# next one ends this process, and with it the command
FORWARDED = (1, 2, 15)
MAX_FORWARDED = 3
# SIGTSTP (the service stops the command, then this process stops itself with SIGSTOP)
# and SIGCONT (the service continues the command)
STOP, CONTINUE, SIGSTOP = 20, 18, 19


def main() -> None:
    """Console-script entry: the command runs in the service or here; exits with its status."""
    argv = sys.argv
    if len(argv) > 1 and argv[1] in WARM_COMMANDS and os.geteuid() == 0:
        status = forward(argv)
        if status is not None:
            raise SystemExit(status)
    from ..cli.main import main as run_here

    run_here()


def forward(argv: list[str]) -> int | None:
    """Run ``argv`` in the service; its exit status, or None when it did not run there."""
    sock = client.connect(os.environ.get("PYCNI_SOCKET") or client.DEFAULT_SOCKET)
    if sock is None:
        return None
    try:
        return _call(sock, argv)
    finally:
        sock.close()


def _call(sock: "_socket.socket", argv: list[str]) -> int | None:
    from .. import __version__

    mask = os.umask(0o022)
    os.umask(mask)
    data = client.encode_request(
        CLI_PROGRAM,
        [os.fsencode(a) for a in argv],
        dict(os.environb),
        __version__,
        b"",
        mask,
        op=OP_CLI,
    )
    if data is None:
        return None
    try:
        fds = client.caller_fds()
    except OSError:
        return None
    try:
        client.send_request(sock, data, [*fds, 0, 1, 2])
    except OSError:
        return None  # not taken whole (or a closed stdin/stdout/stderr): nothing ran
    finally:
        for fd in fds:
            os.close(fd)
    restore = _pass_signals(sock)
    try:
        head = client.recv_exact(sock, client.RESPONSE_HEADER_SIZE)
        kind, status, n_out, n_err = client.parse_response_head(head)
        if kind == client.KIND_COLD:
            return None
        if kind != client.KIND_RESULT:
            raise ValueError(f"unexpected response kind {kind}")
        body = client.recv_exact(sock, n_out + n_err)
        if n_out:
            # a command's answer never carries stdout (the command wrote to ours): this is
            # a refusal printed as a CNI error (a service from before commands does not
            # know the op), so nothing ran
            return None
    except (OSError, EOFError, ValueError) as exc:
        return _lost(str(exc) or type(exc).__name__)
    finally:
        restore()
    client.write_all(1, body[:n_out])
    client.write_all(2, body[n_out:])
    return status


def _pass_signals(sock: "_socket.socket") -> "Callable[[], None]":
    """Send SIGHUP, SIGINT and SIGTERM on to the command while it runs; returns the
    function that puts the previous handlers back."""
    import _signal as signal  # type: ignore[import-not-found]  # not signal: enum costs 2 ms

    received: list[int] = []

    def on_job_control(signum: int, frame: object) -> None:
        try:  # noqa: SIM105 - as below
            sock.send(bytes([signum]))
        except OSError:
            pass
        if signum == STOP:
            os.kill(os.getpid(), SIGSTOP)  # a stop signal nothing can catch or discard

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)
        if len(received) > MAX_FORWARDED:
            restore()
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)  # ends this process: the service ends the command
            return
        try:  # noqa: SIM105 - contextlib is not loaded at start-up; importing it costs 1 ms
            sock.send(bytes([signum]))
        except OSError:
            pass

    previous = {sig: signal.signal(sig, on_signal) for sig in FORWARDED}
    previous.update({sig: signal.signal(sig, on_job_control) for sig in (STOP, CONTINUE)})

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _lost(detail: str) -> int:
    client.write_all(
        2,
        (
            "cnitool: the connection to the plugin service broke before the command "
            f"finished ({detail}); it may have run in part and was not run again\n"
        ).encode(),
    )
    return 1
