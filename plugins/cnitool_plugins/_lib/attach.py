"""What the veth plugins (bridge, ptp) share: the veth pair, ipMasq, CHECK and DEL steps.

The ``*_veth`` worker functions run inside a container-netns worker
(``netns.run_in_netns``) and open their own ``Netlink`` there; the others run in the
calling thread, in the node's namespace.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from cnitool.spec.errors import CNIError

from . import ipam, netns, sysctl
from .netlink import Link, Netlink, NetlinkError, random_veth_name

if TYPE_CHECKING:
    from cnitool.skel import CmdArgs

T = TypeVar("T")
Result = dict[str, Any]

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


def delete_veth(ifname: str) -> list[str]:
    """Delete ``ifname``; return the global unicast addresses it had (for the ipMasq
    teardown); [] when it is absent."""
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


def check_veth(ifname: str, want_mac: str, result: Result) -> Link:
    """CHECK: ``ifname`` is a veth with the MAC, addresses and routes of ``result``."""
    with Netlink() as nl:
        return ipam.validate_iface(nl, ifname, want_mac, result)


# -- node side --------------------------------------------------------------------------
def add_veth_pair(
    nl: Netlink,
    ns: netns.NetNS,
    ifname: str,
    *,
    mtu: int,
    mac: str,
    undo: ipam.Rollback,
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
    undo.add(ns.run, delete_veth, ifname)
    host = nl.link(host_name)
    if host is None:
        raise CNIError(f'failed to lookup host veth "{host_name}"')
    nl.set_up(host.index)
    sysctl.ensure_optional(f"net/ipv6/conf/{host_name}/accept_ra", "0")
    return host, cont


def setup_masq(
    network: str,
    container_id: str,
    cidrs: list[str],
    backend: str | None,
    *,
    undo: ipam.Rollback,
) -> None:
    """ADD: masquerade traffic from ``cidrs``; the teardown is added to ``undo``."""
    from . import ipmasq

    ipmasq.setup_ip_masq(network, container_id, cidrs, backend=backend)
    undo.add(ipmasq.teardown_ip_masq, network, container_id, cidrs, backend=backend)


def teardown_masq(
    cmd: CmdArgs, raw: Mapping[str, Any], cidrs: list[str], backend: str | None
) -> None:
    """DEL: remove the container's ipMasq chain and the POSTROUTING jumps to it.

    The chain is named from the network and the container ID, so it is found even when
    the netns, the link and prevResult are all gone (the reference then leaks it, e.g.
    after a reboot where the runtime passes no netns). The addresses, from the deleted link
    or else from ``prevResult``, only narrow the families searched."""
    cidrs = cidrs or ipam.prev_cidrs(raw, cmd.ifname)
    from . import ipmasq

    network = str(raw.get("name", ""))
    ipmasq.teardown_ip_masq(network, cmd.container_id, cidrs, backend=backend)


def delete_container_veth(netns_path: str, ifname: str) -> list[str]:
    """DEL: delete ``ifname`` in the container; the global addresses it had.

    No namespace path, or a namespace that is already gone (and the veth pair with it),
    is nothing to do.
    """
    if not netns_path:
        return []
    try:
        with netns.NetNS(netns_path) as ns:
            return ns.run(delete_veth, ifname)
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


class DelSteps:
    """The steps of a DEL: each runs even when an earlier one failed (so everything that
    can be released is); ``finish()`` then raises what failed, as one CNI error."""

    def __init__(self) -> None:
        self.errors: list[Exception] = []

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``fn(*args, **kwargs)``; None when it failed (the error is kept for ``finish``)."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - kept and raised by finish()
            self.errors.append(exc)
            return None

    def finish(self) -> None:
        """Raise the kept errors: one as it is, several joined into one message (in the
        order they happened) with the code of the first CNI error among them."""
        errors = self.errors
        if not errors:
            return
        if len(errors) == 1 and isinstance(errors[0], CNIError):
            raise errors[0]
        code = next((e.code for e in errors if isinstance(e, CNIError)), None)
        msg = "; ".join(str(e) or type(e).__name__ for e in errors)
        if len(errors) > 1:
            msg = f"{len(errors)} errors during DEL: {msg}"
        raise CNIError(msg, code=code)
