"""The CNI exec protocol, used by the runtime side (libcni) and by delegating plugins.

Kept light: plugins import this on every exec.
"""

from __future__ import annotations

from .delegate import delegate_add, delegate_check, delegate_del, delegate_gc, delegate_status
from .exec import (
    PluginExecError,
    PluginTimeoutError,
    VersionInfo,
    build_env,
    exec_plugin,
    exec_with_result,
    get_version_info,
    plugin_error,
)
from .find import PluginNotFoundError, find_in_path, split_path

__all__ = [
    "PluginExecError",
    "PluginNotFoundError",
    "PluginTimeoutError",
    "VersionInfo",
    "build_env",
    "delegate_add",
    "delegate_check",
    "delegate_del",
    "delegate_gc",
    "delegate_status",
    "exec_plugin",
    "exec_with_result",
    "find_in_path",
    "get_version_info",
    "plugin_error",
    "split_path",
]
