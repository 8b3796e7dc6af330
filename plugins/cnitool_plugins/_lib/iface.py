"""The container interface: configured from a result (ADD), checked against one (CHECK).

Everything here runs inside a container-netns worker with a ``Netlink`` opened there.
The checks serve any link kind (veth for bridge and ptp, macvlan, ...): each piece can be
used on its own by a plugin that checks more (a macvlan's mode and master).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from cnitool.spec.errors import CNIError

from . import sysctl

if TYPE_CHECKING:
    from cnitool.spec.results import Result

    from .netlink import Link, Netlink

# the reference plugins' words for a container link of the wrong kind
_WRONG_KIND = {
    "veth": "Error: Container interface {name} should be of type veth",
    "macvlan": "Error: Container interface {name} not of type macvlan",
    "ipvlan": "Error: Container interface {name} not of type ipvlan",
    "vlan": "Error: Container interface {name} not of type vlan",
}


def configure_iface(nl: Netlink, ifname: str, result: Result) -> None:
    """Give ``ifname`` the result's addresses for it, bring it up, add the routes."""
    from .netlink import NetlinkError

    link = nl.link(ifname)
    if link is None:
        raise CNIError(f'failed to lookup "{ifname}": link not found')
    interfaces = result.get("interfaces") or []
    v4gw = v6gw = ""
    has_v6 = False
    for ipc in result.get("ips") or []:
        idx = ipc.get("interface")
        if idx is None or idx < 0 or idx >= len(interfaces):
            continue
        if interfaces[idx].get("name") != ifname:
            continue
        iface = ipaddress.ip_interface(ipc["address"])
        if iface.version == 6 and not has_v6:
            has_v6 = True
            for dev in ("lo", ifname):
                try:
                    sysctl.ensure(f"net/ipv6/conf/{dev}/disable_ipv6", "0")
                except OSError as exc:
                    raise CNIError(f"failed to enable IPv6 for {dev}: {exc}") from exc
            sysctl.ensure_optional(f"net/ipv6/conf/{ifname}/keep_addr_on_down", "1")
        try:
            nl.add_addr(link.index, ipc["address"])
        except NetlinkError as exc:
            raise CNIError(f'failed to add IP addr {ipc["address"]} to "{ifname}": {exc}') from exc
        gw = ipc.get("gateway") or ""
        if gw and iface.version == 4 and not v4gw:
            v4gw = gw
        if gw and iface.version == 6 and not v6gw:
            v6gw = gw
    try:
        nl.set_up(link.index)
    except NetlinkError as exc:
        raise CNIError(f'failed to set "{ifname}" UP: {exc}') from exc
    if v6gw:
        try:
            nl.wait_dad(link.index)
        except NetlinkError as exc:
            raise CNIError(str(exc)) from exc
    for route in result.get("routes") or []:
        _add_route(nl, link, ifname, route, v4gw, v6gw)


def _add_route(
    nl: Netlink, link: Link, ifname: str, route: dict[str, Any], v4gw: str, v6gw: str
) -> None:
    from .netlink import NetlinkError

    dst = ipaddress.ip_network(route["dst"], strict=False)
    gw = route.get("gw") or (v4gw if dst.version == 4 else v6gw)
    try:
        nl.add_route(
            str(dst),
            oif=link.index,
            gateway=gw,
            scope=route.get("scope"),
            priority=int(route.get("priority") or 0),
            table=int(route.get("table") or 0),
            mtu=int(route.get("mtu") or 0),
            advmss=int(route.get("advmss") or 0),
        )
    except NetlinkError as exc:
        raise CNIError(
            f"failed to add route '{dst} via {gw or '<nil>'} dev {ifname}': {exc}"
        ) from exc


# -- CHECK ------------------------------------------------------------------------------
def expect_link(nl: Netlink, ifname: str, kind: str, missing: str = "") -> Link:
    """The container link ``ifname``, which must be of ``kind``; ``missing`` words the
    error for an absent link (the reference plugins differ there)."""
    link = nl.link(ifname)
    if link is None:
        raise CNIError(missing or f'Container interface name "{ifname}" not found')
    if link.kind != kind:
        wording = _WRONG_KIND.get(kind, "Error: Container interface {name} is not a " + kind)
        raise CNIError(wording.format(name=ifname))
    return link


def expect_mac(link: Link, ifname: str, want_mac: str) -> None:
    """The link has ``want_mac`` (any case); an empty ``want_mac`` asks nothing."""
    if want_mac and link.mac.lower() != want_mac.lower():
        raise CNIError(f"Interface {ifname} Mac {want_mac} doesn't match container Mac: {link.mac}")


def expect_addresses(
    nl: Netlink, link: Link, ifname: str, result: Result, *, every_ip: bool = False
) -> None:
    """Every result address of ``ifname`` (or of no named interface) is on the link; with
    ``every_ip``, every address of the result, whatever interface it names."""
    ifaces = result.get("interfaces") or []
    have = {a.interface for a in nl.addrs(link.index)}
    for ipc in result.get("ips") or []:
        idx = ipc.get("interface")
        named = idx is not None and 0 <= idx < len(ifaces)
        if not every_ip and named and ifaces[idx].get("name") != ifname:
            continue
        if ipaddress.ip_interface(ipc["address"]) not in have:
            raise CNIError(f"Failed to match addr {ipc['address']} on interface {ifname}")


def expect_routes(nl: Netlink, result: Result) -> None:
    """Every result route is in its table (the main one by default)."""
    from .netlink import AF_INET, AF_INET6

    for route in result.get("routes") or []:
        dst = str(ipaddress.ip_network(route["dst"], strict=False))
        family = AF_INET6 if ":" in dst else AF_INET
        table = int(route.get("table") or 254)
        gw = route.get("gw") or ""
        if not any(
            r.dst == dst and (not gw or r.gateway == gw) for r in nl.routes(family, table=table)
        ):
            raise CNIError(f"Failed to match route {dst} via {gw or '<nil>'} in the container")


def validate_iface(
    nl: Netlink, ifname: str, want_mac: str, result: Result, kind: str = "veth"
) -> Link:
    """CHECK inside the container: ``ifname`` is a ``kind`` link with the expected MAC,
    addresses and routes of ``result``. Returns the link."""
    link = expect_link(nl, ifname, kind)
    expect_mac(link, ifname, want_mac)
    expect_addresses(nl, link, ifname, result)
    expect_routes(nl, result)
    return link
