"""Delegation from inside a plugin (bridge -> host-local, flannel -> bridge).

The delegate is looked up on the plugin's own ``CNI_PATH`` and runs with the plugin's
whole environment, only ``CNI_COMMAND`` changed. Errors come back as the delegate
reported them (same code), so the calling plugin can pass them on unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..spec.errors import DecodingError
from .exec import StderrSink, config_version, exec_plugin, exec_with_result
from .find import find_in_path, split_path


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
    path = _find(plugin_type, env)
    result = exec_with_result(
        path,
        netconf,
        _delegate_env("ADD", env),
        version=config_version(netconf),
        timeout=timeout,
        stderr=stderr,
    )
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
    exec_plugin(path, netconf, _delegate_env(command, env), timeout=timeout, stderr=stderr)


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
