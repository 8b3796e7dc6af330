"""The container's link: the veth pair of bridge and ptp, and what every link plugin
(bridge, ptp, macvlan) does with its container link on CHECK and DEL.

The worker functions (``make_veth``, ``delete_link``, ``check_container_link``) run
inside a container-netns worker (``netns.run_in_netns``) and open their own ``Netlink``
there; the others run in the calling thread, in the node's namespace.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any

from cnitool.spec.errors import CNIError

from . import iface, netns, sysctl
from .netlink import Link, Netlink, NetlinkError, random_veth_name
from .steps import Rollback

if TYPE_CHECKING:
    from cnitool.spec.results import Result

_VETH_NAME_TRIES = 10


# -- container side (run inside the netns worker) ---------------------------------------
def make_veth(ifname: str, host_fd: int, mtu: int, mac: str) -> tuple[str, Link]:
    """Create veth ``ifname`` here with its peer, named ``veth<hex>``, born in netns
    ``host_fd``; return the peer's name and the container link."""
    with Netlink() as nl:
        if nl.link(ifname) is not None:
            raise CNIError(f'container veth name "{ifname}" already exists')
        for _ in range(_VETH_NAME_TRIES):
            peer = random_veth_name()
            try:
                nl.create_veth(ifname, peer, host_fd, mtu=mtu, mac=mac)
            except NetlinkError as exc:
                if exc.errno == errno.EEXIST and nl.link(ifname) is None:
                    continue  # the random host-side name is taken: try another
                raise CNIError(f"failed to make veth pair: {exc}") from exc
            link = nl.link(ifname)
            if link is None:
                raise CNIError(f'failed to lookup "{ifname}" after creating it')
            return peer, link
        raise CNIError(
            f"failed to make veth pair: no free host veth name after {_VETH_NAME_TRIES} tries"
        )


def delete_link(ifname: str) -> list[str]:
    """Delete the link ``ifname`` (of any kind); return the global unicast addresses it
    had (for the ipMasq teardown); [] when it is absent."""
    with Netlink() as nl:
        link = nl.link(ifname)
        if link is None:
            return []
        cidrs = []
        for a in nl.addrs(link.index):
            ip = a.interface.ip
            if not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified):
                cidrs.append(a.cidr)
        try:
            nl.delete_link(link.index)
        except NetlinkError as exc:
            if exc.errno not in (errno.ENODEV, errno.ENOENT):  # gone meanwhile: fine
                raise
        return cidrs


def check_container_link(ifname: str, want_mac: str, result: Result, kind: str = "veth") -> Link:
    """CHECK: ``ifname`` is a ``kind`` link with the MAC, addresses and routes of ``result``."""
    with Netlink() as nl:
        return iface.validate_iface(nl, ifname, want_mac, result, kind)


# -- node side --------------------------------------------------------------------------
def add_veth_pair(
    nl: Netlink,
    ns: netns.NetNS,
    ifname: str,
    *,
    mtu: int,
    mac: str,
    undo: Rollback,
) -> tuple[Link, Link]:
    """ADD: the veth pair, ``ifname`` in ``ns`` and its peer up on the node (``nl``).

    Its removal is added to ``undo`` as soon as it exists.
    Returns the host link and the container link.
    """
    host_fd = netns.current_netns()
    try:
        host_name, cont = ns.run(make_veth, ifname, host_fd, mtu, mac)
    finally:
        os.close(host_fd)
    undo.add(ns.run, delete_link, ifname)
    host = nl.link(host_name)
    if host is None:
        raise CNIError(f'failed to lookup host veth "{host_name}"')
    nl.set_up(host.index)
    sysctl.ensure_optional(f"net/ipv6/conf/{host_name}/accept_ra", "0")
    return host, cont


def delete_container_link(netns_path: str, ifname: str) -> list[str]:
    """DEL: delete ``ifname`` in the container; the global addresses it had.

    No namespace path, or a namespace that is already gone (and the link with it), is
    nothing to do.
    """
    if not netns_path:
        return []
    try:
        with netns.NetNS(netns_path) as ns:
            return ns.run(delete_link, ifname)
    except netns.NetNSNotFoundError:
        return []


def container_interface(result: Result, ifname: str, netns_path: str) -> dict[str, Any]:
    """CHECK: the ``prevResult`` interface ``ifname`` in the sandbox ``netns_path``."""
    for intf in result.get("interfaces") or []:
        if intf.get("name") == ifname and intf.get("sandbox") == netns_path:
            return dict(intf)
    # no such interface in that sandbox: the reference words it with an empty sandbox
    sandbox = ""
    raise CNIError(f"Sandbox in prevResult {sandbox} doesn't match configured netns: {netns_path}")
