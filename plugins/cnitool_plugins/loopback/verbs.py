"""loopback verbs."""

from __future__ import annotations

import ipaddress
from typing import Any

from cnitool import skel
from cnitool.spec.errors import CNIError
from cnitool.spec.version import LEGACY

from .._lib import netns
from .._lib.netconf import prev_result

LO = "lo"


def _bring_up() -> tuple[str, str]:
    """In the container: set lo up, return its first v4 and v6 CIDRs ("" if none)."""
    from .._lib.netlink import AF_INET, AF_INET6, Netlink, NetlinkError

    with Netlink() as nl:
        link = nl.link(LO)
        if link is None:
            raise CNIError('failed to find link "lo"')
        try:
            nl.set_up(link.index)
        except NetlinkError as exc:
            raise CNIError(f"failed to set lo up: {exc}") from exc
        found = []
        for family in (AF_INET, AF_INET6):
            addrs = nl.addrs(link.index, family)
            for a in addrs:
                if not ipaddress.ip_address(a.address).is_loopback:
                    raise CNIError(
                        f'loopback interface found with non-loopback address "{a.address}"'
                    )
            found.append(addrs[0].cidr if addrs else "")
        return found[0], found[1]


def cmd_add(cmd: skel.CmdArgs) -> dict[str, Any]:
    conf = cmd.config()
    with netns.NetNS(cmd.netns) as ns:
        v4, v6 = ns.run(_bring_up)
    prev = prev_result(conf)
    if prev is not None:
        return prev
    result: dict[str, Any] = {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": LO, "mac": "00:00:00:00:00:00", "sandbox": cmd.netns}],
        "ips": [{"interface": 0, "address": cidr} for cidr in (v4, v6) if cidr],
    }
    if cmd.cni_version not in LEGACY:
        # The reference labels its 1.x result with the config's version without converting
        # it, so e.g. a 0.3.1 result has no "version" in its IPs. Keep that output.
        result["cniVersion"] = cmd.cni_version
    return result


def _is_up() -> bool:
    from .._lib.netlink import Netlink

    with Netlink() as nl:
        link = nl.link(LO)
        if link is None:
            raise CNIError('failed to find link "lo"')
        return link.up


def cmd_check(cmd: skel.CmdArgs) -> None:
    with netns.NetNS(cmd.netns) as ns:
        if not ns.run(_is_up):
            raise CNIError("loopback interface is down")


def _set_down() -> None:
    from .._lib.netlink import Netlink

    with Netlink() as nl:
        link = nl.link(LO)
        if link is not None:
            nl.set_down(link.index)


def cmd_del(cmd: skel.CmdArgs) -> None:
    if cmd.netns == "":
        return
    try:
        ns = netns.NetNS(cmd.netns)
    except netns.NetNSNotFoundError:
        return  # already gone: nothing to undo
    with ns:
        ns.run(_set_down)
