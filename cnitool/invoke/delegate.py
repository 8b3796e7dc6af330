"""Delegation from inside a plugin (bridge -> host-local, flannel -> bridge).

The delegate is looked up on the plugin's own ``CNI_PATH`` and runs with the plugin's
whole environment, only ``CNI_COMMAND`` changed. Errors come back as the delegate
reported them (same code), so the calling plugin can pass them on unchanged.

In a warm worker of the plugin service (:func:`enable_in_process`, called by the worker
only), a delegate that resolves to one of this installation's launchers runs in the same
process through ``skel.run``: the same environment and stdin, the same output bytes and
errors, without an exec. Everywhere else (the cold path, libcni) delegates are exec'd.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..spec.errors import DecodingError
from .exec import StderrSink, config_version, exec_plugin
from .find import find_in_path, split_path

_IN_PROCESS = False


def enable_in_process(on: bool = True) -> None:
    """Run delegates that are our own launchers in this process (warm workers only, and
    the service's warm-up, which turns it off again)."""
    global _IN_PROCESS
    _IN_PROCESS = on


def _in_process_package(path: str) -> str | None:
    if not _IN_PROCESS:
        return None
    from ..launchers import launcher_package

    return launcher_package(path)


def _run_in_process(
    path: str, package: str, stdin: bytes, env: Mapping[str, str], stderr: StderrSink
) -> bytes:
    """The delegate's ``skel.run`` in this process, with exec_plugin's contract: its stdout
    on success (stderr copied to ``stderr``), its error raised on failure."""
    import io
    from importlib import import_module

    from .. import skel
    from .exec import plugin_error, write_stderr

    plugin = import_module(f"cnitool_plugins.{package}.__main__").PLUGIN
    err = io.StringIO()
    out, code = skel.run(plugin, dict(env), stdin, err)
    err_bytes = err.getvalue().encode("utf-8", "backslashreplace")
    if code != 0:
        raise plugin_error(path, code, out, err_bytes)
    write_stderr(stderr, err_bytes)
    return out


def _run(
    path: str,
    stdin: bytes,
    env: Mapping[str, str],
    stderr: StderrSink,
    timeout: float | None,
) -> bytes:
    package = _in_process_package(path)
    if package is None:
        return exec_plugin(path, stdin, env, timeout=timeout, stderr=stderr)
    return _run_in_process(path, package, stdin, env, stderr)


def _delegate_env(command: str, env: Mapping[str, str]) -> dict[str, str]:
    out = dict(env)
    out["CNI_COMMAND"] = command
    return out


def _find(plugin_type: str, env: Mapping[str, str]) -> str:
    return find_in_path(plugin_type, split_path(env.get("CNI_PATH", "")))


def delegate_add(
    plugin_type: str,
    netconf: bytes,
    env: Mapping[str, str],
    stderr: StderrSink = None,
    *,
    timeout: float | None = None,
) -> dict[str, Any]:
    """ADD through the delegate; returns its result (in the shape it printed)."""
    from ..spec import results

    path = _find(plugin_type, env)
    out = _run(path, netconf, _delegate_env("ADD", env), stderr, timeout)
    result = results.parse_result(out, config_version(netconf))
    if result is None:
        raise DecodingError(f"delegate plugin {plugin_type} returned no result")
    return result


def _without_result(
    command: str,
    plugin_type: str,
    netconf: bytes,
    env: Mapping[str, str],
    stderr: StderrSink,
    timeout: float | None,
) -> None:
    path = _find(plugin_type, env)
    _run(path, netconf, _delegate_env(command, env), stderr, timeout)


def delegate_check(
    plugin_type: str,
    netconf: bytes,
    env: Mapping[str, str],
    stderr: StderrSink = None,
    *,
    timeout: float | None = None,
) -> None:
    _without_result("CHECK", plugin_type, netconf, env, stderr, timeout)


def delegate_del(
    plugin_type: str,
    netconf: bytes,
    env: Mapping[str, str],
    stderr: StderrSink = None,
    *,
    timeout: float | None = None,
) -> None:
    _without_result("DEL", plugin_type, netconf, env, stderr, timeout)


def delegate_status(
    plugin_type: str,
    netconf: bytes,
    env: Mapping[str, str],
    stderr: StderrSink = None,
    *,
    timeout: float | None = None,
) -> None:
    _without_result("STATUS", plugin_type, netconf, env, stderr, timeout)


def delegate_gc(
    plugin_type: str,
    netconf: bytes,
    env: Mapping[str, str],
    stderr: StderrSink = None,
    *,
    timeout: float | None = None,
) -> None:
    _without_result("GC", plugin_type, netconf, env, stderr, timeout)
