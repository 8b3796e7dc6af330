"""ipvlan verbs: ADD, CHECK, DEL (STATUS is in ``config``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnitool import skel
from cnitool.spec.errors import CNIError

from .._lib import ipam, netns
from .._lib import master as on_master
from .._lib.link import delete_link
from .._lib.netlink import Link, Netlink
from .._lib.steps import Rollback
from .config import IpvlanConf, load, load_for_del, mode_name, mode_value

if TYPE_CHECKING:
    from cnitool.spec.results import Result


# -- the master and the link ------------------------------------------------------------
def master_name(conf: IpvlanConf) -> str:
    """The master as configured; chained without one, the previous result's single
    interface; else "" (the default route's interface)."""
    if conf.master or conf.prev is None:
        return conf.master
    interfaces = conf.prev.get("interfaces") or []
    if len(interfaces) == 1 and interfaces[0].get("name"):
        return str(interfaces[0]["name"])
    raise CNIError("chained master failure. PrevResult lacks a single named interface")


def create(ns: netns.NetNS, cmd: skel.CmdArgs, conf: IpvlanConf, master: Link) -> Link:
    """The ipvlan on ``master``, in ``ns`` as CNI_IFNAME (made under a temporary name)."""

    def make(tmp: str, master_index: int, netns_fd: int | None) -> None:
        with Netlink() as nl:
            nl.create_ipvlan(
                tmp, master_index, mode_value(conf.mode), netns_fd=netns_fd, mtu=conf.mtu
            )

    tmp = on_master.temp_name(cmd.container_id, cmd.ifname)
    return on_master.create(ns, cmd.ifname, "ipvlan", master, make, conf.link_in_container, tmp)


def _chained_addresses(conf: IpvlanConf) -> bool:
    """No IPAM plugin, and a previous result with addresses: those are the ipvlan's."""
    return not conf.ipam_type and conf.prev is not None and bool(conf.prev.get("ips"))


def _addresses(cmd: skel.CmdArgs, conf: IpvlanConf, undo: Rollback) -> Result:
    """The addresses and routes: the previous result's (chained), else the IPAM plugin's."""
    if _chained_addresses(conf):
        assert conf.prev is not None
        return conf.prev
    got = ipam.exec_add(cmd, conf.ipam_type)
    undo.add(ipam.exec_del, cmd, conf.ipam_type)
    if not got.get("ips"):
        raise CNIError("IPAM plugin returned missing IP config")
    return got


def check_link(intf: dict[str, Any], conf: IpvlanConf, master: Link | None, result: Result) -> None:
    """CHECK: the container link is an ipvlan in the configured mode (on ``master`` when
    the config names one), with the MAC, addresses and routes of ``result``."""

    def mode(link: Link) -> None:
        if link.ipvlan_mode != mode_value(conf.mode):
            raise CNIError(
                f"Container IPVlan mode {mode_name(link.ipvlan_mode)} does not match "
                f"expected value: {conf.mode}"
            )

    on_master.check_link(intf, "ipvlan", master, result, mode)


# -- verbs ------------------------------------------------------------------------------
def cmd_add(cmd: skel.CmdArgs) -> Result:
    conf = load(cmd)
    if not conf.ipam_type and not _chained_addresses(conf):
        raise CNIError(
            'ipvlan needs "ipam", unless it is chained after a plugin whose result has IPs'
        )
    name = master_name(conf)
    with netns.NetNS(cmd.netns) as ns, Rollback(cmd.stderr) as undo:
        master = on_master.lookup_master(name, ns, conf.link_in_container)
        link = create(ns, cmd, conf, master)
        undo.add(ns.run, delete_link, cmd.ifname)
        got = _addresses(cmd, conf, undo)
        result = on_master.link_result(cmd, link.mac, got, conf.dns)
        ns.run(on_master.configure, cmd.ifname, result)
        return result


def cmd_del(cmd: skel.CmdArgs) -> None:
    on_master.delete(cmd, load_for_del(cmd).ipam_type, "ipvlan")


def cmd_check(cmd: skel.CmdArgs) -> None:
    conf = load(cmd)
    with netns.NetNS(cmd.netns) as ns:
        # a named master must still be there, and hold the link; an unnamed one was the
        # default route's or the previous plugin's interface, which CHECK cannot tell now
        master = (
            on_master.lookup_master(conf.master, ns, conf.link_in_container)
            if conf.master
            else None
        )
        on_master.check(
            cmd,
            ns,
            conf.ipam_type,
            lambda: conf.prev,
            lambda intf, result: check_link(intf, conf, master, result),
        )
