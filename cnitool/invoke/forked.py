"""Plugins of this installation run as forks of a preloaded process instead of execs.

Inside a ``cnitool`` command that the plugin service runs for its caller
(:func:`cnitool.warm.worker.serve_cli`), every module a plugin needs is imported
already. There a plugin whose path resolves to one of this installation's launchers is
not exec'd: this process forks, and the child runs the plugin package with what the exec
would have given it (the environment as ``os.environ``, the request as its input, its
own process group, stdout and stderr captured, stdin ``/dev/null``), and it dies with
the command's worker (``PR_SET_PDEATHSIG``): a command the service kills (its timeout, a
caller gone) takes the plugins it forked with it instead of leaving them to finish
unseen. The caller sees
``exec_plugin``'s contract unchanged: the stdout bytes, stderr passed on after success,
the plugin's error as the same ``CNIError``, and a timeout or an interrupt that kills
the child's process group. Elsewhere (a ``cnitool`` process of its own, libcni used as a
library) nothing is enabled and plugins are exec'd.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from collections.abc import Mapping
from typing import Any

from ..spec import jsonfmt
from .exec import (
    PluginOutputError,
    PluginTimeoutError,
    StderrSink,
    plugin_error,
    write_stderr,
)
from .find import go_quote

_ENABLED = False
# the streams a child replaced: kept referenced so that they are never finalised (and
# flushed) in the child, which must not write what its parent had buffered
_KEEP: list[Any] = []


def enable() -> None:
    """Run this installation's plugins as forks of this process (a service worker only)."""
    global _ENABLED
    _ENABLED = True


def package_of(path: str) -> str | None:
    """The plugin package to fork for the launcher at ``path``; None: exec it."""
    if not _ENABLED:
        return None
    from ..launchers import launcher_package

    return launcher_package(path)


def run(
    path: str,
    package: str,
    stdin: bytes,
    env: Mapping[str, str],
    *,
    timeout: float | None = None,
    stderr: StderrSink = None,
) -> bytes:
    """Run ``package`` (the launcher at ``path``) in a child; its stdout, or its error."""
    for stream in (sys.stdout, sys.stderr):  # nothing of ours may be pending in the child
        stream.flush()
    out_fd = os.memfd_create("plugin-stdout", os.MFD_CLOEXEC)
    err_fd = os.memfd_create("plugin-stderr", os.MFD_CLOEXEC)
    try:
        status = _fork_and_wait(path, package, stdin, env, out_fd, err_fd, timeout)
        out = os.pread(out_fd, os.fstat(out_fd).st_size, 0)
        err = os.pread(err_fd, min(os.fstat(err_fd).st_size, jsonfmt.MAX_JSON_BYTES), 0)
    finally:
        os.close(out_fd)
        os.close(err_fd)
    if len(out) > jsonfmt.MAX_JSON_BYTES:
        raise PluginOutputError(
            f"plugin {go_quote(path)}: plugin wrote more than {jsonfmt.MAX_JSON_BYTES} "
            "bytes to stdout"
        )
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise plugin_error(path, code, out, err)
    write_stderr(stderr, err)
    return out


def _fork_and_wait(
    path: str,
    package: str,
    stdin: bytes,
    env: Mapping[str, str],
    out_fd: int,
    err_fd: int,
    timeout: float | None,
) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the plugin: never returns
        code = 1
        try:
            code = _child(package, stdin, env, out_fd, err_fd, parent)
        finally:
            os._exit(code)
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)  # the child does it too; whichever runs first wins
    try:
        if not _exited_within(pid, timeout):
            _kill_group(pid)
            os.waitpid(pid, 0)
            err = os.pread(err_fd, min(os.fstat(err_fd).st_size, 4096), 0)
            text = err.decode("utf-8", errors="replace").strip()
            raise PluginTimeoutError(
                f"plugin {go_quote(path)} timed out after {timeout:g}s",
                f"killed its process group; stderr: {text}" if text else "killed its process group",
            )
    except PluginTimeoutError:
        raise
    except BaseException:  # interrupted or stopped: the plugin's group goes, as for an exec
        _kill_group(pid)
        os.waitpid(pid, 0)
        raise
    return os.waitpid(pid, 0)[1]


def _exited_within(pid: int, timeout: float | None) -> bool:
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))
    finally:
        os.close(pidfd)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, signal.SIGKILL)


def _child(
    package: str, stdin: bytes, env: Mapping[str, str], out_fd: int, err_fd: int, parent: int
) -> int:
    """What the exec'd plugin would have been: own process group, default signals, the
    plugin's environment, stdout and stderr into the memory files; killed if the command
    that forked it dies."""
    from ..warm.worker import die_with_parent, redirect, run_package, take_environ

    die_with_parent(parent)
    os.setpgid(0, 0)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    _KEEP.extend((sys.stdin, sys.stdout, sys.stderr))
    redirect(out_fd, err_fd)
    take_environ({os.fsencode(k): os.fsencode(v) for k, v in env.items()})
    return run_package(package, dict(env), stdin) & 0xFF
