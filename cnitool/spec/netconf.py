"""Type checks for the well-known keys of a plugin's network configuration.

Every reference plugin decodes its stdin into a struct that embeds the common ``NetConf``
(``type``, ``capabilities``, ``ipam``, ``dns``, ``prevResult``, ...), so a wrong JSON type
under one of those keys fails the call before any work, with code 999. Plugins here share
that check through skel; each plugin still validates its own keys.
"""

from __future__ import annotations

from typing import Any

from .errors import CNIError
from .jsonfmt import dumps_compact, type_name


def _fail(key: str, want: str, value: Any) -> CNIError:
    return CNIError(
        f'failed to load netconf: "{key}" must be {want}, got {type_name(value)} '
        f"{dumps_compact(value)[:60]}"
    )


def _strings(key: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(key, "an array of strings", value)


def check_types(conf: dict[str, Any]) -> None:
    """Raise a code-999 CNIError naming the first well-known key of the wrong type.

    JSON ``null`` counts as absent, as it does for the Go decoder."""
    for key in ("type", "cniVersion"):
        value = conf.get(key)
        if value is not None and not isinstance(value, str):
            raise _fail(key, "a string", value)
    for key in ("ipam", "dns", "prevResult", "runtimeConfig", "args"):
        value = conf.get(key)
        if value is not None and not isinstance(value, dict):
            raise _fail(key, "an object", value)
    caps = conf.get("capabilities")
    if caps is not None and (
        not isinstance(caps, dict) or not all(isinstance(v, bool) for v in caps.values())
    ):
        raise _fail("capabilities", "an object of booleans", caps)
    ipam = conf.get("ipam") or {}
    if ipam.get("type") is not None and not isinstance(ipam["type"], str):
        raise _fail("ipam.type", "a string", ipam["type"])
    dns = conf.get("dns") or {}
    for key in ("nameservers", "search", "options"):
        _strings(f"dns.{key}", dns.get(key))
    if dns.get("domain") is not None and not isinstance(dns["domain"], str):
        raise _fail("dns.domain", "a string", dns["domain"])
