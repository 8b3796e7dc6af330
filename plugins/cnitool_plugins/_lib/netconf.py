"""Readers for a plugin's config keys: JSON types, MAC addresses, DNS, IPAM type, ipMasq.

They read the dict ``CmdArgs.config()`` returns (keys already spelled as the plugin's
fields) and word their errors the way the reference plugins' config decoding does:
``failed to load netconf: "<key>" must be ...``. Kept import-light: config modules load
them on every verb, VERSION and STATUS included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from cnitool.spec.errors import CNIError

_TYPE_NAMES = {
    bool: "a boolean",
    str: "a string",
    int: "an integer",
    dict: "an object",
    list: "a list",
}


def typed(
    conf: Mapping[str, Any],
    key: str,
    kind: type,
    default: Any,
    where: str = "",
    error: type[CNIError] = CNIError,
) -> Any:
    """``conf[key]`` checked against a JSON type (``None``/absent gives ``default``);
    ``where`` prefixes the key in the error (``"runtimeConfig."``), raised as ``error``
    (code 999 by default, as a Go plugin's failed config decoding)."""
    value = conf.get(key)
    if value is None:
        return default
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise error(
            f'failed to load netconf: "{where}{key}" must be '
            f"{_TYPE_NAMES.get(kind, kind.__name__)}, got {json.dumps(value)}"
        )
    return value


def ipam_type(conf: Mapping[str, Any]) -> str:
    """The IPAM plugin name, or "" for layer-2 only (no ``ipam`` or ``ipam: {}``)."""
    ipam = typed(conf, "ipam", dict, {})
    return str(typed(ipam, "type", str, ""))


# -- hardware addresses -----------------------------------------------------------------
_MAC_SEP = re.compile(r"^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2})*$")
_MAC_DOT = re.compile(r"^[0-9A-Fa-f]{4}(\.[0-9A-Fa-f]{4})*$")


def parse_mac(value: str) -> str:
    """A hardware address in any spelling Go's ``net.ParseMAC`` takes (colons, dashes or
    dotted groups of four hex digits; 6, 8 or 20 bytes), as lower-case colon form.

    The error is ``net.ParseMAC``'s own text, for callers to wrap as their reference does.
    """
    if _MAC_SEP.match(value):
        octets = re.split("[:-]", value)
    elif _MAC_DOT.match(value):
        octets = [g[i : i + 2] for g in value.split(".") for i in (0, 2)]
    else:
        octets = []
    if len(octets) not in (6, 8, 20):
        raise CNIError(f"address {value}: invalid MAC address")
    return ":".join(o.lower() for o in octets)


def ethernet_mac(value: str, where: str) -> str:
    """An Ethernet (6-byte) MAC for a veth or macvlan link, named by ``where`` in errors."""
    try:
        mac = parse_mac(value)
    except CNIError:
        mac = ""
    if mac.count(":") != 5:
        raise CNIError(f'invalid MAC address "{value}" in {where}')
    return mac


def mac_from_args(conf: Mapping[str, Any], cni_args: str) -> str:
    """The MAC asked for, as the bridge reads it: CNI_ARGS ``MAC`` < ``args.cni.mac`` <
    ``runtimeConfig.mac`` (no top-level key). "" when none is given."""
    from cnitool.spec.args import load_args

    mac = ""
    if cni_args:
        env_mac = load_args(cni_args, ("MAC",)).get("MAC", "")
        if env_mac:
            mac = ethernet_mac(env_mac, "CNI_ARGS MAC")
    args = typed(conf, "args", dict, {})
    cni = args.get("cni") if isinstance(args.get("cni"), dict) else {}
    if cni.get("mac"):
        mac = ethernet_mac(str(typed(cni, "mac", str, "")), "args.cni.mac")
    rc = typed(conf, "runtimeConfig", dict, {})
    if rc.get("mac"):
        mac = ethernet_mac(str(typed(rc, "mac", str, "")), "runtimeConfig.mac")
    return mac


def mac_from_config(conf: Mapping[str, Any], cni_args: str) -> str:
    """The MAC asked for, as macvlan reads it: ``mac`` < CNI_ARGS ``MAC`` <
    ``runtimeConfig.mac``; unparsed ("" when none is given)."""
    from cnitool.spec.args import load_args

    mac = str(typed(conf, "mac", str, ""))
    if cni_args:
        env_mac = load_args(cni_args, ("MAC",)).get("MAC", "")
        if env_mac:
            mac = env_mac
    rc = typed(conf, "runtimeConfig", dict, {})
    return str(typed(rc, "mac", str, "")) or mac


# -- prevResult -------------------------------------------------------------------------
def prev_result(conf: Mapping[str, Any]) -> dict[str, Any] | None:
    """The request's ``prevResult``, checked and normalised in its own spec version (the
    config's ``cniVersion`` when it names none): what a chained plugin echoes back. None
    when absent."""
    from cnitool.spec import results

    raw = conf.get("prevResult")
    if raw is None:
        return None
    return results.new_result(raw, str(conf.get("cniVersion") or ""))


def required_prev_result(
    conf: Mapping[str, Any], refusal: str, error: type[CNIError] = CNIError
) -> dict[str, Any]:
    """:func:`prev_result` for a plugin that must be chained: ``error(refusal)`` without."""
    prev = prev_result(conf)
    if prev is None:
        raise error(refusal)
    return prev


# -- other common keys ------------------------------------------------------------------
def dns_override(conf: Mapping[str, Any]) -> dict[str, Any] | None:
    """The config's ``dns`` when any part of it is set (it then replaces the IPAM DNS)."""
    dns = typed(conf, "dns", dict, {})
    out: dict[str, Any] = {}
    for key in ("nameservers", "domain", "search", "options"):
        if dns.get(key):
            out[key] = dns[key]
    return out or None


def masq_backend(conf: Mapping[str, Any]) -> str | None:
    """Check ``ipMasqBackend`` and return the iptables backend choice for ipMasq.

    Only the iptables layout is implemented; asking for the nftables one together with
    ``ipMasq`` is refused rather than silently served by iptables. ``iptablesBackend``
    (``auto``/``nft``/``legacy``) is passed on to the firewall layer, which checks it.
    """
    from cnitool.spec.errors import UnsupportedFieldError

    wanted = typed(conf, "ipMasqBackend", str, "")
    if wanted not in ("", "iptables", "nftables"):
        raise CNIError(f'invalid "ipMasqBackend" "{wanted}": must be "iptables" or "nftables"')
    if wanted == "nftables" and conf.get("ipMasq") is True:
        raise UnsupportedFieldError(
            '"ipMasqBackend": "nftables" is not supported by this plugin; use "iptables"'
        )
    value = conf.get("iptablesBackend")
    return value if isinstance(value, str) or value is None else str(value)
