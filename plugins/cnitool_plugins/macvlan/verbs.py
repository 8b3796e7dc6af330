"""macvlan verbs: ADD, CHECK, DEL (STATUS is in ``config``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnitool import skel
from cnitool.spec.errors import CNIError

from .._lib import ipam, netns
from .._lib import master as on_master
from .._lib.link import delete_link
from .._lib.master import lookup_master, reason
from .._lib.netlink import Link, Netlink, NetlinkError
from .._lib.steps import Rollback
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


def create(ns: netns.NetNS, cmd: skel.CmdArgs, conf: MacvlanConf, master: Link) -> Link:
    """The macvlan on ``master``, in ``ns`` as CNI_IFNAME (made under a temporary name)."""

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

    tmp = on_master.temp_name(cmd.container_id, cmd.ifname)
    return on_master.create(ns, cmd.ifname, "macvlan", master, make, conf.link_in_container, tmp)


# -- inside the container ---------------------------------------------------------------
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

    def mode(link: Link) -> None:
        if link.macvlan_mode != mode_value(conf.mode):
            raise CNIError(
                f"Container macvlan mode {mode_name(link.macvlan_mode)} does not match "
                f"expected value: {conf.mode}"
            )

    on_master.check_link(intf, "macvlan", master, result, mode)


# -- verbs ------------------------------------------------------------------------------
def cmd_add(cmd: skel.CmdArgs) -> Result:
    conf = load(cmd)
    with netns.NetNS(cmd.netns) as ns, Rollback(cmd.stderr) as undo:
        master = _master(conf, ns)
        link = create(ns, cmd, conf, master)
        undo.add(ns.run, delete_link, cmd.ifname)
        got = None
        if conf.ipam_type:
            got = ipam.exec_add(cmd, conf.ipam_type)
            undo.add(ipam.exec_del, cmd, conf.ipam_type)
        result = on_master.link_result(cmd, link.mac, got, conf.dns)
        if got is not None:
            # announced on the link, a refinement the reference does not insist on either
            ns.run(on_master.configure, cmd.ifname, result)
        else:
            ns.run(_set_up, cmd.ifname)
        return result


def cmd_del(cmd: skel.CmdArgs) -> None:
    on_master.delete(cmd, load_for_del(cmd).ipam_type, "macvlan")


def cmd_check(cmd: skel.CmdArgs) -> None:
    conf = load(cmd)
    with netns.NetNS(cmd.netns) as ns:
        master = _master(conf, ns)
        on_master.check(
            cmd,
            ns,
            conf.ipam_type,
            lambda: ipam.prev_result(conf.raw),
            lambda intf, result: check_link(intf, conf, master, result),
        )
