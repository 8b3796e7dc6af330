"""Run a plugin executable the way libcni does (``pkg/invoke``).

The plugin gets the request on stdin and the ``CNI_*`` variables in its environment.
stdout is collected whole, up to ``MAX_JSON_BYTES`` (a plugin writing more is killed
and fails: its output would be refused anyway, and held whole it could take any amount
of memory); stderr is collected too, its first ``MAX_JSON_BYTES`` kept, and, for a
plugin that succeeded, copied to the caller's stderr after it exits. A failed plugin is turned into a
``CNIError`` from the error JSON it printed, or from whatever evidence it left.
"""

from __future__ import annotations

import errno
import io
import os
import select
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

from ..spec import jsonfmt, keys
from ..spec import version as cniversion
from ..spec.errors import INTERNAL, CNIError, DecodingError
from ..spec.record import Record
from .find import go_quote

ETXTBSY_ATTEMPTS = 6
ETXTBSY_DELAY = 1.0
# what a pipe reported writable takes without blocking (as subprocess.communicate writes)
PIPE_BUF = getattr(select, "PIPE_BUF", 512)

# Where the captured stderr of a successful plugin goes: a binary stream, a text
# stream (written through its ``buffer`` when it has one), or None for sys.stderr.
StderrSink = IO[bytes] | IO[str] | None


class VersionInfo(Record):
    """A plugin's VERSION answer."""

    cni_version: str
    supported_versions: tuple[str, ...]


class PluginExecError(CNIError):
    """An error reported by (or about) one plugin of a list operation.

    ``msg``/``details``/``code`` are the plugin's own error; ``str()`` adds which
    plugin failed and in which verb, as libcni does:
    ``plugin type="bridge" name="x" failed (add): <msg>[; <details>]``.
    """

    def __init__(
        self,
        msg: str,
        details: str = "",
        *,
        code: int | None = None,
        plugin: str = "",
        verb: str = "",
        name: str = "",
    ) -> None:
        super().__init__(msg, details, code=code)
        self.plugin = plugin
        self.verb = verb
        self.plugin_name = name

    @classmethod
    def wrap(cls, err: CNIError, *, plugin: str, verb: str, name: str = "") -> PluginExecError:
        out = cls(err.msg, err.details, code=err.code, plugin=plugin, verb=verb, name=name)
        out.__cause__ = err
        return out

    @property
    def description(self) -> str:
        text = f"type={go_quote(self.plugin)}"
        if self.plugin_name:
            text += f" name={go_quote(self.plugin_name)}"
        return text

    @property
    def reason(self) -> str:
        """The plugin's own message (``msg`` or ``msg; details``)."""
        return super().__str__()

    def __str__(self) -> str:
        if not self.plugin and not self.verb:
            return self.reason
        return f"plugin {self.description} failed ({self.verb}): {self.reason}"


class PluginTimeoutError(CNIError):
    """The plugin did not finish in time; its whole process group was killed."""

    code = INTERNAL


class PluginOutputError(CNIError):
    """The plugin wrote more than ``MAX_JSON_BYTES`` to stdout; its group was killed."""

    code = INTERNAL


def build_env(
    command: str,
    container_id: str = "",
    netns: str = "",
    ifname: str = "",
    args: str = "",
    path: str = "",
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The plugin's environment: ``base`` (default: ours) plus the six CNI variables.

    The CNI values always win over same-named variables of ``base``, and all six are
    set even when empty, as libcni does.
    """
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_ARGS": args,
            "CNI_IFNAME": ifname,
            "CNI_PATH": path,
        }
    )
    return env


def write_stderr(sink: StderrSink, data: bytes) -> None:
    """Copy a plugin's stderr bytes to ``sink`` (default: our stderr) unchanged."""
    if not data:
        return
    stream: Any = sys.stderr if sink is None else sink
    if isinstance(stream, io.TextIOBase):
        buffer = getattr(stream, "buffer", None)
        stream.flush()
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            stream.write(data.decode("utf-8", errors="replace"))
            stream.flush()
        return
    stream.write(data)
    flush = getattr(stream, "flush", None)
    if flush is not None:
        flush()


def _exit_text(returncode: int) -> str:
    """How Go prints an ``*exec.ExitError``."""
    if returncode < 0:
        return f"signal: {_signal_name(-returncode)}"
    return f"exit status {returncode}"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def plugin_error(plugin_path: str, returncode: int, stdout: bytes, stderr: bytes) -> CNIError:
    """The error a failed plugin reported, or one built from its exit and stderr."""
    err_text = stderr.decode("utf-8", errors="replace")
    if stdout.strip():
        try:
            obj = jsonfmt.loads(stdout)
        except ValueError as exc:
            return CNIError(
                "netplugin failed but error parsing its diagnostic message "
                f"{go_quote(stdout.decode('utf-8', errors='replace'))}: {exc}",
                _signal_detail(plugin_path, returncode),
            )
        if isinstance(obj, dict):
            return CNIError.from_dict(obj)
        return CNIError(
            "netplugin failed but error parsing its diagnostic message "
            f"{go_quote(stdout.decode('utf-8', errors='replace'))}: "
            f"not a JSON object ({type(obj).__name__})",
            _signal_detail(plugin_path, returncode),
        )
    if returncode < 0:
        return CNIError(_signal_detail(plugin_path, returncode), err_text.strip())
    if err_text:
        return CNIError(f"netplugin failed: {go_quote(err_text)}: {_exit_text(returncode)}")
    return CNIError(f"netplugin failed with no error message: {_exit_text(returncode)}")


def _signal_detail(plugin_path: str, returncode: int) -> str:
    """What a plugin's exit says beyond its output: the signal that killed it, if any."""
    if returncode < 0:
        return f'plugin "{plugin_path}" was killed by signal {_signal_name(-returncode)}'
    return ""


def _start(plugin_path: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    last: OSError | None = None
    for attempt in range(ETXTBSY_ATTEMPTS):
        try:
            return subprocess.Popen(
                [plugin_path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env),
                close_fds=True,
                process_group=0,
            )
        except OSError as exc:
            if exc.errno != errno.ETXTBSY:
                raise CNIError(
                    f"failed to execute plugin {go_quote(plugin_path)}: {exc.strerror or exc}"
                ) from None
            last = exc
            if attempt + 1 < ETXTBSY_ATTEMPTS:
                time.sleep(ETXTBSY_DELAY)
    raise CNIError(
        f"failed to execute plugin {go_quote(plugin_path)}: "
        f"{last.strerror if last else 'text file busy'} "
        f"(still busy after {ETXTBSY_ATTEMPTS} attempts)"
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        proc.kill()


def _drain(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """Collect what a killed plugin left; give up on pipes held open by an escaped child."""
    try:
        return proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        return b"", b""


def _collect(
    proc: subprocess.Popen[bytes], stdin: bytes, timeout: float | None
) -> tuple[bytes, bytes]:
    """``proc.communicate(stdin, timeout)`` with a bound: stdout past ``MAX_JSON_BYTES``
    raises ``PluginOutputError`` (the caller kills the group); stderr past it is dropped."""
    deadline = None if timeout is None else time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    pending = memoryview(stdin)
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, out)  # type: ignore[arg-type]
        sel.register(proc.stderr, selectors.EVENT_READ, err)  # type: ignore[arg-type]
        pending = _feed(proc, sel, pending, register=True)
        while sel.get_map():
            left = None if deadline is None else deadline - time.monotonic()
            ready = sel.select(left) if left is None or left > 0 else []
            if not ready:
                raise subprocess.TimeoutExpired(proc.args, timeout or 0)
            for key, _ in ready:
                if key.fileobj is proc.stdin:
                    pending = _feed(proc, sel, pending)
                else:
                    _read_into(proc, sel, key.fileobj, key.data)  # type: ignore[arg-type]
                if len(out) > jsonfmt.MAX_JSON_BYTES:
                    raise PluginOutputError(
                        f"plugin wrote more than {jsonfmt.MAX_JSON_BYTES} bytes to stdout"
                    )
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    proc.wait(left)
    return bytes(out), bytes(err[: jsonfmt.MAX_JSON_BYTES])


def _feed(
    proc: subprocess.Popen[bytes],
    sel: selectors.BaseSelector,
    pending: memoryview,
    register: bool = False,
) -> memoryview:
    """Write what the pipe takes now of ``pending``; close stdin once all is written
    (or the plugin closed its end). Returns what is left."""
    assert proc.stdin is not None
    if not register and pending:
        try:
            pending = pending[os.write(proc.stdin.fileno(), pending[:PIPE_BUF]) :]
        except BrokenPipeError:
            pending = pending[:0]
    if pending:
        if register:
            sel.register(proc.stdin, selectors.EVENT_WRITE)
        return pending
    if not register:
        sel.unregister(proc.stdin)
    proc.stdin.close()
    proc.stdin = None  # closed: a later communicate() (draining after a kill) skips it
    return pending


def _read_into(
    proc: subprocess.Popen[bytes], sel: selectors.BaseSelector, pipe: IO[bytes], into: bytearray
) -> None:
    """One read from ``pipe`` into ``into``; at EOF the pipe is closed and forgotten."""
    chunk = os.read(pipe.fileno(), 65536)
    if chunk:
        if pipe is proc.stdout or len(into) <= jsonfmt.MAX_JSON_BYTES:
            into += chunk
        return
    sel.unregister(pipe)
    pipe.close()
    if pipe is proc.stdout:
        proc.stdout = None
    else:
        proc.stderr = None


def _format_seconds(seconds: float) -> str:
    return f"{seconds:g}s"


def exec_plugin(
    plugin_path: str,
    stdin: bytes,
    env: Mapping[str, str],
    *,
    timeout: float | None = None,
    stderr: StderrSink = None,
) -> bytes:
    """Run the plugin once and return its stdout; raise ``CNIError`` if it failed.

    The plugin runs in its own process group; with ``timeout`` the whole group is
    killed when it expires and a ``PluginTimeoutError`` names the plugin.
    """
    proc = _start(plugin_path, env)
    try:
        out, err = _collect(proc, stdin, timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = _drain(proc)
        raise PluginTimeoutError(
            f"plugin {go_quote(plugin_path)} timed out after {_format_seconds(timeout or 0)}",
            f"killed its process group; stderr: {err.decode('utf-8', errors='replace').strip()}"
            if err.strip()
            else "killed its process group",
        ) from None
    except PluginOutputError as exc:
        _kill_group(proc)
        _drain(proc)
        raise PluginOutputError(f"plugin {go_quote(plugin_path)}: {exc.msg}") from None
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    if proc.returncode != 0:
        raise plugin_error(plugin_path, proc.returncode, out, err)
    write_stderr(stderr, err)
    return out


def exec_with_result(
    plugin_path: str,
    stdin: bytes,
    env: Mapping[str, str],
    *,
    version: str,
    timeout: float | None = None,
    stderr: StderrSink = None,
) -> dict[str, Any] | None:
    """Run the plugin and parse its result; ``version`` fills a missing ``cniVersion``."""
    from ..spec import results

    out = exec_plugin(plugin_path, stdin, env, timeout=timeout, stderr=stderr)
    return results.parse_result(out, version)


def config_version(stdin: bytes) -> str:
    """The ``cniVersion`` of a request config (empty when absent or unreadable)."""
    try:
        obj = jsonfmt.loads(stdin)
    except ValueError:
        return ""
    if isinstance(obj, dict):
        value = keys.get(obj, "cniVersion", "")
        return value if isinstance(value, str) else ""
    return ""


def decode_version_info(data: bytes) -> VersionInfo:
    """Parse a VERSION answer with the reference's rules for old plugins."""
    try:
        obj = jsonfmt.loads(data)
    except ValueError as exc:
        raise DecodingError(f"decoding version info: {exc}") from None
    if not isinstance(obj, dict):
        raise DecodingError("decoding version info: not a JSON object")
    obj = keys.decode(obj, keys.VERSION_INFO)
    cni_version = obj.get("cniVersion", "")
    if not isinstance(cni_version, str) or cni_version == "":
        raise DecodingError("decoding version info: missing field cniVersion")
    supported = obj.get("supportedVersions")
    if not supported:
        if cni_version == "0.2.0":
            return VersionInfo(cniversion.CURRENT, ("0.1.0", "0.2.0"))
        raise DecodingError("decoding version info: missing field supportedVersions")
    if not isinstance(supported, list) or not all(isinstance(v, str) for v in supported):
        raise DecodingError("decoding version info: supportedVersions must be a list of strings")
    return VersionInfo(cni_version, tuple(supported))


def get_version_info(
    plugin_path: str,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    stderr: StderrSink = None,
) -> VersionInfo:
    """Ask a plugin which spec versions it supports (CNI_COMMAND=VERSION).

    A plugin too old to know VERSION (``unknown CNI_COMMAND: VERSION``) supports 0.1.0.
    """
    full_env = build_env("VERSION", "", "dummy", "dummy", "", "dummy", base=env)
    stdin = jsonfmt.dumps_compact({"cniVersion": cniversion.CURRENT}).encode()
    try:
        out = exec_plugin(plugin_path, stdin, full_env, timeout=timeout, stderr=stderr)
    except CNIError as exc:
        if str(exc) == "unknown CNI_COMMAND: VERSION":
            return VersionInfo(cniversion.CURRENT, ("0.1.0",))
        raise
    return decode_version_info(out)
