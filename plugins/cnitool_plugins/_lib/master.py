"""Links on a master (macvlan, ipvlan, vlan): the master, named or found through the
default route, in the node or (``linkInContainer``) in the container; and the link, born
in the container under a temporary ``veth<hex>`` name and renamed there to CNI_IFNAME.

The temporary name is the reference's answer to a kernel that checks the new name in the
namespace the request came from: a pod's ``eth0`` must not clash with the node's. The
reference draws it at random; here it is derived from the container ID and CNI_IFNAME
(:func:`temp_name`), so that when an ADD is killed between the creation and the rename,
the runtime's DEL finds the link under that name and removes it, and the next ADD of the
attachment replaces it.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cnitool.spec.errors import CNIError

from . import iface, ipam, netns, sysctl
from .link import container_interface, delete_link
from .netlink import AF_INET, AF_INET6, Link, Netlink, NetlinkError, random_veth_name
from .steps import DelSteps

if TYPE_CHECKING:
    from cnitool import skel
    from cnitool.spec.results import Result

_TMP_NAME_TRIES = 10

# makes the link ``tmp`` on master ``index`` here, born in netns ``fd`` (None: here)
Maker = Callable[[str, int, int | None], None]


def reason(exc: NetlinkError) -> str:
    """The kernel's errno in the reference's words ("file exists")."""
    return os.strerror(exc.errno).lower()


# -- the master -------------------------------------------------------------------------
def default_route_iface(nl: Netlink) -> str:
    """The interface of the first default route (IPv4, then IPv6) of the main table."""
    for family in (AF_INET, AF_INET6):
        for route in nl.routes(family):
            if ipaddress.ip_network(route.dst).prefixlen == 0:
                link = nl.link_by_index(route.oif)
                if link is None:
                    raise CNIError(f"default route interface #{route.oif}: Link not found")
                return link.name
    raise CNIError("no default route interface found")


def find_master(name: str) -> Link:
    """The master link ``name`` (or the default route's) in this thread's netns."""
    with Netlink() as nl:
        name = name or default_route_iface(nl)
        link = nl.link(name)
        if link is None:
            raise CNIError(f'failed to lookup master "{name}": Link not found')
        return link


def lookup_master(name: str, ns: netns.NetNS, in_container: bool) -> Link:
    """The master ``name`` (or the default route's), in the container when asked."""
    return ns.run(find_master, name) if in_container else find_master(name)


# -- the link ---------------------------------------------------------------------------
def rename(tmp: str, ifname: str, kind: str) -> Link:
    """In the container: ``tmp`` becomes ``ifname`` (or is deleted when it cannot)."""
    with Netlink() as nl:
        link = nl.link(tmp)
        if link is None:
            raise CNIError(f'failed to lookup "{tmp}" after creating it')
        try:
            nl.set_name(link.index, ifname)
        except NetlinkError as exc:
            with contextlib.suppress(NetlinkError):
                nl.delete_link(link.index)
            raise CNIError(f'failed to rename {kind} to "{ifname}": {reason(exc)}') from exc
        new = nl.link(ifname)
        if new is None:
            raise CNIError(f'failed to refetch {kind} "{ifname}": Link not found')
        return new


def temp_name(container_id: str, ifname: str) -> str:
    """The temporary name of the attachment's link: ``veth`` + 8 hex characters, as the
    reference's random ones, but derived from the container ID and ``ifname``."""
    return f"veth{zlib.crc32(f'{container_id}/{ifname}'.encode()):08x}"


def _drop_leftover(name: str, kind: str) -> bool:
    """In the container: delete the ``kind`` link ``name`` (what a killed ADD of this
    attachment left); whether there was one. A link of another kind is not ours."""
    with Netlink() as nl:
        link = nl.link(name)
        if link is None or link.kind != kind:
            return False
        with contextlib.suppress(NetlinkError):
            nl.delete_link(link.index)
        return True


def create(
    ns: netns.NetNS,
    ifname: str,
    kind: str,
    master: Link,
    make: Maker,
    in_container: bool,
    tmp: str,
) -> Link:
    """The ``kind`` link on ``master``, born in ``ns`` under the temporary name ``tmp`` (a
    name the node may hold too cannot clash), then renamed to ``ifname``. With
    ``in_container`` the master is in ``ns`` and the link is made there. A ``kind`` link
    already holding ``tmp`` is a killed ADD's: it goes. Another link holding it (a name
    made up by someone else) makes way for random names, as the reference's."""
    names = [tmp] + [random_veth_name() for _ in range(_TMP_NAME_TRIES)]
    retried = False
    while names:
        name = names[0]
        try:
            if in_container:
                ns.run(make, name, master.index, None)
            else:
                make(name, master.index, ns.fd)
        except NetlinkError as exc:
            if exc.errno == errno.EEXIST:
                if name == tmp and not retried and ns.run(_drop_leftover, tmp, kind):
                    retried = True
                    continue  # the leftover is gone: the same name again
                if ns.run(_exists, name):
                    names.pop(0)
                    continue  # the name is taken in the container: another one
            raise CNIError(f"failed to create {kind}: {reason(exc)}") from exc
        return ns.run(rename, name, ifname, kind)
    raise CNIError(f"failed to create {kind}: no free temporary name after {_TMP_NAME_TRIES}")


def _exists(name: str) -> bool:
    with Netlink() as nl:
        return nl.link(name) is not None


def link_result(
    cmd: skel.CmdArgs, mac: str, got: Result | None, dns: dict[str, Any] | None
) -> Result:
    """The ADD result of a plugin that makes one container link: that interface, every
    address of the IPAM result ``got`` on it and ``got``'s routes, and the config's dns
    (which wins over whatever the IPAM plugin said, as in the reference)."""
    result: Result = {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": cmd.ifname, "mac": mac, "sandbox": cmd.netns}],
    }
    if got is not None:
        result["ips"] = [dict(ipc, interface=0) for ipc in got["ips"]]
        if got.get("routes"):
            result["routes"] = got["routes"]
    if dns is not None:
        result["dns"] = dns
    return result


# -- inside the container ---------------------------------------------------------------
def configure(ifname: str, result: Result) -> None:
    """ADD, in the container: the result's addresses and routes on ``ifname``, announced
    (gratuitous ARP / unsolicited NA) when the link comes up and when its MAC changes."""
    sysctl.ensure_optional(f"net/ipv4/conf/{ifname}/arp_notify", "1")
    sysctl.ensure_optional(f"net/ipv6/conf/{ifname}/ndisc_notify", "1")
    with Netlink() as nl:
        iface.configure_iface(nl, ifname, result)


def check_link(
    intf: dict[str, Any],
    kind: str,
    master: Link | None,
    result: Result,
    check_kind: Callable[[Link], None] | None = None,
) -> Link:
    """CHECK, in the container: the link of ``intf`` is a ``kind`` link on ``master`` (when
    known) with the MAC, addresses and routes of ``result``; ``check_kind`` checks what is
    particular to the kind (a mode, a VLAN ID)."""
    name = str(intf.get("name") or "")
    if not name:
        raise CNIError("Container interface name missing in prevResult: ")
    with Netlink() as nl:
        missing = f"Container Interface name in prevResult: {name} not found"
        link = iface.expect_link(nl, name, kind, missing)
        if check_kind is not None:
            check_kind(link)
        if master is not None and link.peer_index != master.index:
            raise CNIError(
                f'Container {kind} {name} is not on master "{master.name}" '
                f"(its parent is link #{link.peer_index}, the master #{master.index})"
            )
        iface.expect_mac(link, name, str(intf.get("mac") or ""))
        iface.expect_addresses(nl, link, name, result, every_ip=True)
        iface.expect_routes(nl, result)
        return link


def check(
    cmd: skel.CmdArgs,
    ns: netns.NetNS,
    ipam_type: str,
    prev: Callable[[], Result | None],
    verify: Callable[[dict[str, Any], Result], object],
) -> None:
    """CHECK once the master is known, in this order: the IPAM plugin's CHECK (when the
    config has one), the prevResult (``prev``, read now), its interface named
    CNI_IFNAME, then ``verify(interface, prevResult)`` in the container."""
    if ipam_type:
        ipam.exec_check(cmd, ipam_type)
    result = prev()
    if result is None:
        raise CNIError("Required prevResult missing")
    ns.run(verify, container_interface(result, cmd.ifname, cmd.netns), result)


# -- DEL --------------------------------------------------------------------------------
def delete(cmd: skel.CmdArgs, ipam_type: str, kind: str) -> None:
    """DEL: the IPAM plugin's release, then the container link, and a ``kind`` link still
    under the attachment's temporary name (an ADD killed before its rename); each runs,
    whatever the others did. A link or a netns already gone is nothing to do."""
    steps = DelSteps()
    if ipam_type:
        steps.run(ipam.exec_del, cmd, ipam_type)
    steps.run(_delete_links, cmd.netns, cmd.ifname, temp_name(cmd.container_id, cmd.ifname), kind)
    steps.finish()


def _delete_links(netns_path: str, ifname: str, tmp: str, kind: str) -> None:
    """The container's ``ifname`` and ``kind`` link ``tmp``; no netns (path, or a netns
    already gone with its links) is nothing to do."""
    if not netns_path:
        return
    try:
        with netns.NetNS(netns_path) as ns:
            ns.run(delete_link, ifname)
            ns.run(_drop_leftover, tmp, kind)
    except netns.NetNSNotFoundError:
        pass
