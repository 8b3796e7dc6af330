"""vlan verbs: ADD, CHECK, DEL (STATUS is in ``config``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnitool import skel
from cnitool.spec.errors import CNIError

from .._lib import iface, ipam, netns
from .._lib import master as on_master
from .._lib.link import delete_link
from .._lib.netlink import Link, Netlink
from .._lib.steps import Rollback
from .config import VlanConf, load, load_for_del

if TYPE_CHECKING:
    from cnitool.spec.results import Result


# -- the master and the link ------------------------------------------------------------
def _master(conf: VlanConf, ns: netns.NetNS) -> Link:
    """The master (in the container with ``linkInContainer``); the MTU checked against it."""
    master = on_master.lookup_master(conf.master, ns, conf.link_in_container)
    if not 0 <= conf.mtu <= master.mtu:
        raise CNIError(f"invalid MTU {conf.mtu}, must be [0, master MTU({master.mtu})]")
    return master


def create(ns: netns.NetNS, cmd: skel.CmdArgs, conf: VlanConf, master: Link) -> Link:
    """The VLAN link on ``master``, in ``ns`` as CNI_IFNAME (made under a temporary name)."""

    def make(tmp: str, master_index: int, netns_fd: int | None) -> None:
        with Netlink() as nl:
            nl.create_vlan(tmp, master_index, conf.vlan_id, netns_fd=netns_fd, mtu=conf.mtu)

    tmp = on_master.temp_name(cmd.container_id, cmd.ifname)
    return on_master.create(ns, cmd.ifname, "vlan", master, make, conf.link_in_container, tmp)


def _configure(ifname: str, result: Result) -> None:
    with Netlink() as nl:
        iface.configure_iface(nl, ifname, result)


def check_link(intf: dict[str, Any], conf: VlanConf, master: Link, result: Result) -> None:
    """CHECK: the container link is a VLAN link with the configured VLAN ID (and MTU, when
    configured) on ``master``, with the MAC, addresses and routes of ``result``."""

    def vlan(link: Link) -> None:
        if link.vlan_id != conf.vlan_id:
            raise CNIError(
                f"Container vlan {link.name} has VLAN ID {link.vlan_id}, expected {conf.vlan_id}"
            )
        if conf.mtu and link.mtu != conf.mtu:
            raise CNIError(f"Container vlan {link.name} has MTU {link.mtu}, expected {conf.mtu}")

    on_master.check_link(intf, "vlan", master, result, vlan)


# -- verbs ------------------------------------------------------------------------------
def cmd_add(cmd: skel.CmdArgs) -> Result:
    conf = load(cmd)
    with netns.NetNS(cmd.netns) as ns, Rollback(cmd.stderr) as undo:
        master = _master(conf, ns)
        link = create(ns, cmd, conf, master)
        undo.add(ns.run, delete_link, cmd.ifname)
        got = ipam.exec_add(cmd, conf.ipam_type)
        undo.add(ipam.exec_del, cmd, conf.ipam_type)
        if not got.get("ips"):
            raise CNIError("IPAM plugin returned missing IP config")
        result = on_master.link_result(cmd, link.mac, got, conf.dns)
        ns.run(_configure, cmd.ifname, result)
        return result


def cmd_del(cmd: skel.CmdArgs) -> None:
    on_master.delete(cmd, load_for_del(cmd).ipam_type, "vlan")


def cmd_check(cmd: skel.CmdArgs) -> None:
    conf = load(cmd)
    with netns.NetNS(cmd.netns) as ns:
        master = _master(conf, ns)
        on_master.check(  # the IPAM is required here: its type is never empty
            cmd,
            ns,
            conf.ipam_type,
            lambda: ipam.prev_result(conf.raw),
            lambda intf, result: check_link(intf, conf, master, result),
        )
