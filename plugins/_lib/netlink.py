"""A thin wrapper over pyroute2's IPRoute for what the plugins need.

pyroute2 is imported only here and only when a ``Netlink`` is opened, so verbs that never
touch links (VERSION, STATUS, IPAM-only paths) do not pay its import cost. An instance
belongs to the thread that created it and to that thread's network namespace at creation
time: open one inside a ``netns.run_in_netns`` worker to act on a container.
"""

from __future__ import annotations

import errno
import ipaddress
import secrets
import time
from dataclasses import dataclass
from typing import Any

AF_INET = 2
AF_INET6 = 10
IFF_UP = 0x1
IFF_PROMISC = 0x100
IFA_F_TENTATIVE = 0x40
IFA_F_DADFAILED = 0x08
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
RT_SCOPE_NOWHERE = 255
RT_TABLE_MAIN = 254
BRIDGE_VLAN_INFO_PVID = 0x2
BRIDGE_VLAN_INFO_UNTAGGED = 0x4


class NetlinkError(Exception):
    """A netlink request failed; ``errno`` is the kernel's error number."""

    def __init__(self, errno_: int, msg: str) -> None:
        super().__init__(msg)
        self.errno = errno_


def random_veth_name() -> str:
    """``veth`` + 8 lowercase hex characters, like the reference's host-side names."""
    return "veth" + secrets.token_hex(4)


def family_of(addr: str) -> int:
    return AF_INET6 if ":" in addr else AF_INET


@dataclass
class Link:
    index: int
    name: str
    mac: str
    mtu: int
    kind: str
    flags: int
    master: int
    oper: str
    peer_index: int  # IFLA_LINK (veth peer index in its own netns), 0 if none
    link_netnsid: int | None
    promisc: bool
    vlan_filtering: bool | None

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


@dataclass
class Addr:
    address: str
    prefixlen: int
    family: int
    scope: int
    flags: int

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"

    @property
    def interface(self) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        return ipaddress.ip_interface(self.cidr)


@dataclass
class Route:
    dst: str  # CIDR; "0.0.0.0/0" / "::/0" for defaults
    gateway: str
    oif: int
    scope: int
    table: int
    priority: int
    src: str
    family: int


def _link_from_msg(msg: Any) -> Link:
    info = msg.get("IFLA_LINKINFO")
    kind = info.get("IFLA_INFO_KIND") if info is not None else None
    vlan_filtering: bool | None = None
    if kind == "bridge" and info is not None:
        data = info.get("IFLA_INFO_DATA")
        if data is not None:
            vf = data.get("IFLA_BR_VLAN_FILTERING")
            vlan_filtering = None if vf is None else bool(vf)
    flags = int(msg["flags"])
    promisc = msg.get("IFLA_PROMISCUITY")
    return Link(
        index=int(msg["index"]),
        name=str(msg.get("IFLA_IFNAME")),
        mac=str(msg.get("IFLA_ADDRESS") or ""),
        mtu=int(msg.get("IFLA_MTU") or 0),
        kind=str(kind or ""),
        flags=flags,
        master=int(msg.get("IFLA_MASTER") or 0),
        oper=str(msg.get("IFLA_OPERSTATE") or "UNKNOWN"),
        peer_index=int(msg.get("IFLA_LINK") or 0),
        link_netnsid=msg.get("IFLA_LINK_NETNSID"),
        promisc=bool(flags & IFF_PROMISC) or bool(promisc),
        vlan_filtering=vlan_filtering,
    )


class Netlink:
    """Link/address/route operations in the netns of the thread that opened it."""

    def __init__(self) -> None:
        from pyroute2 import IPRoute  # type: ignore[import-untyped]

        self._ipr: Any = IPRoute()

    def close(self) -> None:
        self._ipr.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from pyroute2.netlink.exceptions import (  # type: ignore[import-untyped]
            NetlinkError as PyNetlinkError,
        )

        try:
            return getattr(self._ipr, method)(*args, **kwargs)
        except PyNetlinkError as exc:
            raise NetlinkError(
                exc.code,
                f"{method} {args[0] if args else ''}: {exc.args[1] if len(exc.args) > 1 else exc}",
            ) from exc

    # -- links -------------------------------------------------------------------------
    def links(self) -> list[Link]:
        return [_link_from_msg(m) for m in self._call("get_links")]

    def link(self, name: str) -> Link | None:
        """The link called ``name``, or None."""
        try:
            msgs = self._call("link", "get", ifname=name)
        except NetlinkError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return _link_from_msg(msgs[0]) if msgs else None

    def link_by_index(self, index: int) -> Link | None:
        try:
            msgs = self._call("link", "get", index=index)
        except NetlinkError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return _link_from_msg(msgs[0]) if msgs else None

    def set_link(self, index: int, **attrs: Any) -> None:
        self._call("link", "set", index=index, **attrs)

    def set_up(self, index: int) -> None:
        self.set_link(index, state="up")

    def set_down(self, index: int) -> None:
        self.set_link(index, state="down")

    def set_promisc(self, index: int, on: bool) -> None:
        self.set_link(index, flags=IFF_PROMISC if on else 0, change=IFF_PROMISC)

    def delete_link(self, index: int) -> None:
        self._call("link", "del", index=index)

    def create_bridge(self, name: str, mtu: int = 0, vlan_filtering: bool = False) -> None:
        kw: dict[str, Any] = {"ifname": name, "kind": "bridge"}
        if mtu:
            kw["mtu"] = mtu
        if vlan_filtering:
            kw["br_vlan_filtering"] = 1
        self._call("link", "add", **kw)

    def create_veth(
        self,
        name: str,
        peer_name: str,
        peer_netns_fd: int,
        *,
        mtu: int = 0,
        mac: str = "",
    ) -> None:
        """Create veth ``name`` here with its peer ``peer_name`` born in ``peer_netns_fd``."""
        peer: dict[str, Any] = {"ifname": peer_name, "net_ns_fd": peer_netns_fd}
        kw: dict[str, Any] = {"ifname": name, "kind": "veth", "peer": peer}
        if mtu:
            kw["mtu"] = mtu
            peer["mtu"] = mtu
        if mac:
            kw["address"] = mac
        self._call("link", "add", **kw)

    def brport_set(self, index: int, **attrs: Any) -> None:
        """Set bridge-port options (``mode=1`` hairpin, ``isolated=1``)."""
        self._call("brport", "set", index=index, **attrs)

    def brport_get(self, index: int) -> dict[str, Any]:
        for msg in self._call("brport", "show", index=index):
            info = msg.get("IFLA_PROTINFO")
            if info is not None:
                return {k: v for k, v in info["attrs"]}
        return {}

    def vlan_add(
        self, index: int, vid: int, *, pvid: bool = False, untagged: bool = False, vid_end: int = 0
    ) -> None:
        flags = (BRIDGE_VLAN_INFO_PVID if pvid else 0) | (
            BRIDGE_VLAN_INFO_UNTAGGED if untagged else 0
        )
        if vid_end and vid_end != vid:
            self._call(
                "vlan_filter", "add", index=index, vlan_info={"vid": vid, "flags": 0x8 | flags}
            )  # RANGE_BEGIN
            self._call(
                "vlan_filter", "add", index=index, vlan_info={"vid": vid_end, "flags": 0x10 | flags}
            )  # RANGE_END
        else:
            self._call("vlan_filter", "add", index=index, vlan_info={"vid": vid, "flags": flags})

    def vlan_del(self, index: int, vid: int) -> None:
        self._call("vlan_filter", "del", index=index, vlan_info={"vid": vid})

    def wait_oper_up(
        self, index: int, delays_ms: tuple[int, ...] = (0, 50, 500, 1000, 1000)
    ) -> str:
        """Wait until the link is oper-up; return the last state seen."""
        state = "UNKNOWN"
        for delay in delays_ms:
            if delay:
                time.sleep(delay / 1000)
            link = self.link_by_index(index)
            if link is None:
                return "gone"
            state = link.oper
            if state == "UP":
                return state
        return state

    # -- addresses ---------------------------------------------------------------------
    def addrs(self, index: int | None = None, family: int | None = None) -> list[Addr]:
        kw: dict[str, Any] = {}
        if index is not None:
            kw["index"] = index
        if family is not None:
            kw["family"] = family
        out = []
        for m in self._call("get_addr", **kw):
            out.append(
                Addr(
                    address=str(
                        m.get("IFA_ADDRESS")
                        if m["family"] == AF_INET6
                        else m.get("IFA_LOCAL") or m.get("IFA_ADDRESS")
                    ),
                    prefixlen=int(m["prefixlen"]),
                    family=int(m["family"]),
                    scope=int(m["scope"]),
                    flags=int(m.get("IFA_FLAGS") or m["flags"]),
                )
            )
        return out

    def add_addr(self, index: int, cidr: str) -> None:
        iface = ipaddress.ip_interface(cidr)
        self._call(
            "addr", "add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen
        )

    def del_addr(self, index: int, cidr: str) -> None:
        iface = ipaddress.ip_interface(cidr)
        self._call(
            "addr", "del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen
        )

    def wait_dad(self, index: int, timeout: float = 5.0) -> None:
        """Wait until no IPv6 address on the link is still tentative."""
        deadline = time.monotonic() + timeout
        while True:
            tentative = [
                a
                for a in self.addrs(index, AF_INET6)
                if a.flags & IFA_F_TENTATIVE and not a.flags & IFA_F_DADFAILED
            ]
            if not tentative:
                return
            if time.monotonic() > deadline:
                raise NetlinkError(
                    errno.ETIMEDOUT,
                    f"IPv6 DAD did not finish for {tentative[0].cidr} within {timeout:g}s",
                )
            time.sleep(0.05)

    # -- routes ------------------------------------------------------------------------
    def routes(
        self, family: int = AF_INET, oif: int | None = None, table: int = RT_TABLE_MAIN
    ) -> list[Route]:
        out = []
        for m in self._call("get_routes", family=family, table=table):
            if m.get("RTA_TABLE", m["table"]) != table:
                continue
            if m["type"] != 1:  # unicast only
                continue
            if oif is not None and m.get("RTA_OIF") != oif:
                continue
            dst = m.get("RTA_DST")
            dlen = int(m["dst_len"])
            if dst is None:
                dst = "0.0.0.0" if family == AF_INET else "::"
            out.append(
                Route(
                    dst=str(ipaddress.ip_network(f"{dst}/{dlen}", strict=False)),
                    gateway=str(m.get("RTA_GATEWAY") or ""),
                    oif=int(m.get("RTA_OIF") or 0),
                    scope=int(m["scope"]),
                    table=int(m.get("RTA_TABLE", m["table"])),
                    priority=int(m.get("RTA_PRIORITY") or 0),
                    src=str(m.get("RTA_PREFSRC") or ""),
                    family=family,
                )
            )
        return out

    def add_route(
        self,
        dst: str,
        *,
        oif: int,
        gateway: str = "",
        scope: int | None = None,
        src: str = "",
        priority: int = 0,
        table: int = 0,
        mtu: int = 0,
        advmss: int = 0,
    ) -> None:
        """Add a route; if one with that destination exists, add this as another path."""
        net = ipaddress.ip_network(dst, strict=False)
        kw: dict[str, Any] = {
            "dst": str(net.network_address),
            "dst_len": net.prefixlen,
            "oif": oif,
            "family": AF_INET6 if net.version == 6 else AF_INET,
        }
        if gateway:
            kw["gateway"] = gateway
        if scope is not None:
            kw["scope"] = scope
        elif not gateway:
            kw["scope"] = RT_SCOPE_LINK
        if src:
            kw["prefsrc"] = src
        if priority:
            kw["priority"] = priority
        if table:
            kw["table"] = table
        metrics: dict[str, int] = {}
        if mtu:
            metrics["RTAX_MTU"] = mtu
        if advmss:
            metrics["RTAX_ADVMSS"] = advmss
        if metrics:
            kw["metrics"] = metrics
        try:
            self._call("route", "add", **kw)
        except NetlinkError as exc:
            if exc.errno != errno.EEXIST:
                raise
            try:
                self._call("route", "append", **kw)
            except NetlinkError as exc2:
                if exc2.errno != errno.EEXIST:
                    raise

    def del_route(
        self,
        dst: str,
        *,
        oif: int | None = None,
        gateway: str = "",
        table: int = 0,
        scope: int | None = None,
    ) -> None:
        net = ipaddress.ip_network(dst, strict=False)
        kw: dict[str, Any] = {
            "dst": str(net.network_address),
            "dst_len": net.prefixlen,
            "family": AF_INET6 if net.version == 6 else AF_INET,
        }
        if oif is not None:
            kw["oif"] = oif
        if gateway:
            kw["gateway"] = gateway
        if table:
            kw["table"] = table
        # RT_SCOPE_NOWHERE matches any scope; without it the kernel only deletes routes
        # of the scope pyroute2 fills in by default (universe)
        kw["scope"] = RT_SCOPE_NOWHERE if scope is None else scope
        self._call("route", "del", **kw)

    def delete_link_collect(self, name: str) -> list[str]:
        """Delete link ``name``; return its global unicast CIDRs ([] when it is absent)."""
        link = self.link(name)
        if link is None:
            return []
        cidrs = []
        for a in self.addrs(link.index):
            ip = a.interface.ip
            if not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified):
                cidrs.append(a.cidr)
        try:
            self.delete_link(link.index)
        except NetlinkError as exc:
            if exc.errno not in (errno.ENODEV, errno.ENOENT):
                raise
        return cidrs
