"""ptp verbs: ADD, CHECK, DEL (STATUS is in ``config``)."""

from __future__ import annotations

import errno
import ipaddress
from typing import TYPE_CHECKING

from cnitool import skel
from cnitool.spec.errors import CNIError

from .._lib import iface, ipam, netns, sysctl
from .._lib.link import (
    add_veth_pair,
    check_container_link,
    container_interface,
    delete_container_link,
)
from .._lib.netlink import RT_SCOPE_HOST, RT_SCOPE_LINK, Netlink, NetlinkError
from .._lib.steps import DelSteps, Rollback
from .config import load

if TYPE_CHECKING:
    from cnitool.spec.results import Result


def _host_len(addr: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> int:
    return 32 if addr.version == 4 else 128


def _configure(ifname: str, result: Result) -> None:
    """Addresses, the /32 (/128) route to the gateway and the subnet via the gateway."""
    with Netlink() as nl:
        iface.configure_iface(nl, ifname, result)
        link = nl.link(ifname)
        if link is None:
            raise CNIError(f'failed to lookup "{ifname}"')
        for ipc in result["ips"]:
            addr = ipaddress.ip_interface(ipc["address"])
            gw = ipc["gateway"]
            hl = _host_len(addr)
            try:
                nl.add_route(f"{gw}/{hl}", oif=link.index, scope=RT_SCOPE_LINK, src=str(addr.ip))
            except NetlinkError as exc:
                raise CNIError(f"failed to add host route dst {gw}: {exc}") from exc
            subnet = str(addr.network)
            try:
                nl.del_route(subnet, oif=link.index)
            except NetlinkError as exc:
                if exc.errno != errno.ESRCH:
                    raise CNIError(f"failed to delete route {subnet}: {exc}") from exc
            try:
                nl.add_route(subnet, oif=link.index, gateway=gw, scope=0, src=str(addr.ip))
            except NetlinkError as exc:
                raise CNIError(f"failed to add route {subnet} via {gw}: {exc}") from exc


def cmd_add(cmd: skel.CmdArgs) -> Result:
    conf = load(cmd)
    with netns.NetNS(cmd.netns) as ns, Netlink() as nl, Rollback(cmd.stderr) as undo:
        result = ipam.exec_add(cmd, conf.ipam_type)
        undo.add(ipam.exec_del, cmd, conf.ipam_type)
        result["cniVersion"] = "1.1.0"
        fams = set()
        for ipc in result["ips"]:
            ipc["interface"] = 1
            if not ipc.get("gateway"):
                raise CNIError(f"ptp needs a gateway for {ipc['address']} from IPAM")
            fams.add(ipaddress.ip_interface(ipc["address"]).version)
        try:
            sysctl.enable_forwarding(4 in fams, 6 in fams)
        except OSError as exc:
            raise CNIError(f"Could not enable IP forwarding: {exc}") from exc
        result["interfaces"] = [{"name": ""}, {"name": cmd.ifname, "sandbox": cmd.netns}]

        # the host end goes up first: without carrier the container's IPv6 DAD never ends
        host, cont = add_veth_pair(nl, ns, cmd.ifname, mtu=conf.mtu, mac="", undo=undo)
        ns.run(_configure, cmd.ifname, result)
        for ipc in result["ips"]:
            addr = ipaddress.ip_interface(ipc["address"])
            hl = _host_len(addr)
            try:
                nl.add_addr(host.index, f"{ipc['gateway']}/{hl}")
            except NetlinkError as exc:
                raise CNIError(
                    f"failed to add IP addr {ipc['gateway']}/{hl} to veth: {exc}"
                ) from exc
            try:
                # scope host, as the reference plugin adds it
                nl.add_route(f"{addr.ip}/{hl}", oif=host.index, scope=RT_SCOPE_HOST)
            except NetlinkError as exc:
                if exc.errno != errno.EEXIST:
                    raise CNIError(f"failed to add route on host: {exc}") from exc

        if conf.ip_masq:
            cidrs = [ipc["address"] for ipc in result["ips"]]
            from .._lib import ipmasq

            ipmasq.setup_masq(
                conf.network, cmd.container_id, cidrs, conf.ip_masq_backend, undo=undo
            )

        result["interfaces"] = [
            {"name": host.name, "mac": host.mac},
            {"name": cmd.ifname, "mac": cont.mac, "sandbox": cmd.netns},
        ]
        if conf.dns is not None:
            result["dns"] = conf.dns
        return result


def cmd_del(cmd: skel.CmdArgs) -> None:
    conf = load(cmd)
    steps = DelSteps()
    steps.run(ipam.exec_del, cmd, conf.ipam_type)
    cidrs = steps.run(delete_container_link, cmd.netns, cmd.ifname) or []
    if conf.ip_masq:
        from .._lib import ipmasq

        steps.run(ipmasq.teardown_masq, cmd, conf.raw, cidrs, conf.ip_masq_backend)
    steps.finish()


def cmd_check(cmd: skel.CmdArgs) -> None:
    conf = load(cmd)
    ipam.exec_check(cmd, conf.ipam_type)
    result = ipam.prev_result(conf.raw)
    if result is None:
        raise CNIError("ptp: Required prevResult missing")
    cont_map = container_interface(result, cmd.ifname, cmd.netns)
    with netns.NetNS(cmd.netns) as ns:
        ns.run(check_container_link, cmd.ifname, cont_map.get("mac", ""), result)
