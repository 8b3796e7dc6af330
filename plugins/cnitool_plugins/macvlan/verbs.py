"""macvlan verbs: ADD, CHECK, DEL (STATUS is in ``config``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnitool import skel
from cnitool.spec.errors import CNIError

from .._lib import iface, ipam, netns, sysctl
from .._lib.link import container_interface, delete_container_link, delete_link
from .._lib.master import create as create_on_master
from .._lib.master import lookup_master, reason
from .._lib.netlink import Link, Netlink, NetlinkError
from .._lib.steps import DelSteps, Rollback
from .config import MacvlanConf, load, load_for_del, mode_name, mode_value

if TYPE_CHECKING:
    from cnitool.spec.results import Result


# -- the master and the link ------------------------------------------------------------
def _master(conf: MacvlanConf, ns: netns.NetNS) -> Link:
    """The master (in the container with ``linkInContainer``); the MTU checked against it."""
    master = lookup_master(conf.master, ns, conf.link_in_container)
    if not 0 <= conf.mtu <= master.mtu:
        raise CNIError(f"invalid MTU {conf.mtu}, must be [0, master MTU({master.mtu})]")
    return master


def create(ns: netns.NetNS, ifname: str, conf: MacvlanConf, master: Link) -> Link:
    """The macvlan on ``master``, in ``ns`` as ``ifname`` (made under a temporary name)."""

    def make(tmp: str, master_index: int, netns_fd: int | None) -> None:
        with Netlink() as nl:
            nl.create_macvlan(
                tmp,
                master_index,
                mode_value(conf.mode),
                netns_fd=netns_fd,
                mtu=conf.mtu,
                mac=conf.mac,
                bcqueuelen=conf.bcqueuelen,
            )

    return create_on_master(ns, ifname, "macvlan", master, make, conf.link_in_container)


# -- inside the container ---------------------------------------------------------------
def _configure(ifname: str, result: Result) -> None:
    # announce the address (gratuitous ARP / unsolicited NA) when the link comes up and
    # when its MAC changes; refinements the reference does not insist on either
    sysctl.ensure_optional(f"net/ipv4/conf/{ifname}/arp_notify", "1")
    sysctl.ensure_optional(f"net/ipv6/conf/{ifname}/ndisc_notify", "1")
    with Netlink() as nl:
        iface.configure_iface(nl, ifname, result)


def _set_up(ifname: str) -> None:
    with Netlink() as nl:
        link = nl.link(ifname)
        if link is None:
            raise CNIError(f'failed to find interface name "{ifname}": Link not found')
        try:
            nl.set_up(link.index)
        except NetlinkError as exc:
            raise CNIError(f'failed to set "{ifname}" UP: {reason(exc)}') from exc


def check_link(intf: dict[str, Any], conf: MacvlanConf, master: Link, result: Result) -> None:
    """CHECK: the container link is a macvlan in the configured mode on ``master``, with the
    MAC, addresses and routes of ``result``."""
    name = str(intf.get("name") or "")
    if not name:
        raise CNIError("Container interface name missing in prevResult: ")
    with Netlink() as nl:
        missing = f"Container Interface name in prevResult: {name} not found"
        link = iface.expect_link(nl, name, "macvlan", missing)
        if link.macvlan_mode != mode_value(conf.mode):
            raise CNIError(
                f"Container macvlan mode {mode_name(link.macvlan_mode)} does not match "
                f"expected value: {conf.mode}"
            )
        if link.peer_index != master.index:
            raise CNIError(
                f'Container macvlan {name} is not on master "{master.name}" '
                f"(its parent is link #{link.peer_index}, the master #{master.index})"
            )
        iface.expect_mac(link, name, str(intf.get("mac") or ""))
        iface.expect_addresses(nl, link, name, result, every_ip=True)
        iface.expect_routes(nl, result)


# -- verbs ------------------------------------------------------------------------------
def cmd_add(cmd: skel.CmdArgs) -> Result:
    conf = load(cmd)
    with netns.NetNS(cmd.netns) as ns, Rollback(cmd.stderr) as undo:
        master = _master(conf, ns)
        link = create(ns, cmd.ifname, conf, master)
        undo.add(ns.run, delete_link, cmd.ifname)
        result: Result = {
            "cniVersion": "1.1.0",
            "interfaces": [{"name": cmd.ifname, "mac": link.mac, "sandbox": cmd.netns}],
        }
        if conf.ipam_type:
            got = ipam.exec_add(cmd, conf.ipam_type)
            undo.add(ipam.exec_del, cmd, conf.ipam_type)
            # every address belongs to the one interface of the result
            result["ips"] = [dict(ipc, interface=0) for ipc in got["ips"]]
            if got.get("routes"):
                result["routes"] = got["routes"]
            ns.run(_configure, cmd.ifname, result)
        else:
            ns.run(_set_up, cmd.ifname)
        # the config's dns is the result's, whatever the IPAM plugin said (as the reference)
        if conf.dns is not None:
            result["dns"] = conf.dns
        return result


def cmd_del(cmd: skel.CmdArgs) -> None:
    conf = load_for_del(cmd)
    steps = DelSteps()
    if conf.ipam_type:
        steps.run(ipam.exec_del, cmd, conf.ipam_type)
    steps.run(delete_container_link, cmd.netns, cmd.ifname)
    steps.finish()


def cmd_check(cmd: skel.CmdArgs) -> None:
    conf = load(cmd)
    with netns.NetNS(cmd.netns) as ns:
        master = _master(conf, ns)
        if conf.ipam_type:
            ipam.exec_check(cmd, conf.ipam_type)
        result = ipam.prev_result(conf.raw)
        if result is None:
            raise CNIError("Required prevResult missing")
        intf = container_interface(result, cmd.ifname, cmd.netns)
        ns.run(check_link, intf, conf, master, result)
