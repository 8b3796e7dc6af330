"""resolv.conf parsing for the ``resolvConf`` option (nameserver, domain, search, options)."""

from __future__ import annotations

from typing import Any

from cnitool.spec.errors import CNIError


def parse_resolv_conf(path: str) -> dict[str, Any]:
    """The result ``dns`` object described by a resolv.conf file.

    Comment lines start with ``#`` or ``;``; lines with fewer than two fields are ignored;
    ``search`` and ``options`` accumulate, the last ``domain`` wins.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CNIError(
            f"open {path}: {reason[:1].lower() + reason[1:]}", "ipam.resolvConf"
        ) from None
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    domain = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        fields = line.split()
        if len(fields) < 2:
            continue
        key = fields[0]
        if key == "nameserver":
            nameservers.append(fields[1])
        elif key == "domain":
            domain = fields[1]
        elif key == "search":
            search += fields[1:]
        elif key == "options":
            options += fields[1:]
    dns: dict[str, Any] = {}
    if nameservers:
        dns["nameservers"] = nameservers
    if domain:
        dns["domain"] = domain
    if search:
        dns["search"] = search
    if options:
        dns["options"] = options
    return dns
