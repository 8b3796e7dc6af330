"""libcni: load network configuration lists, run plugin chains, keep the result cache.

Importing this package is cheap: the names below are loaded from their modules on
first use, so a caller that only needs the cache does not pay for the rest.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RuntimeConf": "runtime",
    "PluginConf": "config",
    "NetworkConfigList": "config",
    "ConfEntry": "config",
    "ConfigError": "config",
    "NoConfigsFoundError": "config",
    "NetworkNotFoundError": "config",
    "conf_files": "config",
    "conf_from_bytes": "config",
    "conf_list_from_bytes": "config",
    "conf_list_from_conf": "config",
    "conf_list_from_file": "config",
    "load_conf_list": "config",
    "scan_dir": "config",
    "CachedAttachment": "cache",
    "CacheCorruptError": "cache",
    "ResultCache": "cache",
    "CNIConfig": "api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
