"""bridge verbs: ADD, CHECK, DEL (STATUS is in ``config``).

Host-side work runs in the calling thread (the node's namespace); container-side work runs
in a netns worker with its own netlink socket. A failed ADD undoes what it did, in
reverse order, including the IPAM allocation.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from typing import TYPE_CHECKING, Any

from cnitool import skel
from cnitool.spec.errors import CNIError

from .._lib import iface, ipam, netns, sysctl
from .._lib.link import (
    add_veth_pair,
    check_container_link,
    container_interface,
    delete_container_link,
    make_veth,
)
from .._lib.netlink import AF_INET, AF_INET6, Link, Netlink, NetlinkError
from .._lib.steps import DelSteps, Rollback
from .config import BridgeConf, load

if TYPE_CHECKING:
    from cnitool.spec.results import Result


# -- host side --------------------------------------------------------------------------
def _ensure_bridge(nl: Netlink, conf: BridgeConf) -> Link:
    br = nl.link(conf.bridge)
    if br is None:
        try:
            nl.create_bridge(conf.bridge, conf.mtu, vlan_filtering=conf.uses_vlan)
        except NetlinkError as exc:
            if exc.errno == errno.EOPNOTSUPP and conf.uses_vlan:
                raise CNIError(
                    f'"vlan"/"vlanTrunk" need bridge vlan_filtering, which this kernel does '
                    f'not support (creating "{conf.bridge}" with it failed: {exc})'
                ) from exc
            if exc.errno != errno.EEXIST:
                raise CNIError(f'could not add "{conf.bridge}": {exc}') from exc
        br = nl.link(conf.bridge)
        if br is None:
            raise CNIError(f'could not look up "{conf.bridge}" after creating it')
    if br.kind != "bridge":
        raise CNIError(f'"{conf.bridge}" already exists but is not a bridge')
    if conf.uses_vlan and not br.vlan_filtering:
        try:
            nl.set_bridge_vlan_filtering(br.index, True)
        except NetlinkError as exc:
            raise CNIError(f'cannot enable vlan_filtering on "{conf.bridge}": {exc}') from exc
        br = nl.link(conf.bridge)
        if br is None or not br.vlan_filtering:
            raise CNIError(
                f'"vlan"/"vlanTrunk" need bridge vlan_filtering, which this kernel does not '
                f'support (could not enable it on "{conf.bridge}")'
            )
    if conf.promisc and not br.promisc:
        nl.set_promisc(br.index, True)
    sysctl.ensure_optional(f"net/ipv6/conf/{conf.bridge}/accept_ra", "0")
    if not br.up:
        nl.set_up(br.index)
    out = nl.link(conf.bridge)
    if out is None:
        raise CNIError(f'"{conf.bridge}" disappeared while it was being set up')
    return out


def _ensure_addr(nl: Netlink, br: Link, gw_cidr: str, force: bool) -> None:
    want = ipaddress.ip_interface(gw_cidr)
    family = AF_INET6 if want.version == 6 else AF_INET
    for a in nl.addrs(br.index, family):
        have = a.interface
        if have == want:
            return
        if have.version == 6 and have.ip.is_link_local:
            continue
        if family == AF_INET or want.ip in have.network or have.ip in want.network:
            if not force:
                raise CNIError(f'"{br.name}" already has an IP address different from {want}')
            nl.del_addr(br.index, a.cidr)
    try:
        nl.add_addr(br.index, str(want))
    except NetlinkError as exc:
        if exc.errno != errno.EEXIST:
            raise CNIError(f'could not add IP address to "{br.name}": {exc}') from exc
    # Pin the bridge MAC, or it follows the lowest port MAC as ports come and go. Read it
    # now, not from an earlier snapshot: a bridge that lost its last port has a zero MAC
    # until a port joins (the stale snapshot is the reference's "could not set bridge's mac").
    now = nl.link_by_index(br.index)
    if now is None or now.mac in ("", "00:00:00:00:00:00"):
        return
    try:
        nl.set_mac(br.index, now.mac)
    except NetlinkError as exc:
        raise CNIError(f"could not set bridge's mac: {exc}") from exc


def _calc_gateways(result: Result, conf: BridgeConf) -> list[str]:
    """Set ``interface: 2`` and missing gateways; add default routes; gateway CIDRs."""
    gws: list[str] = []
    default_found = {4: False, 6: False}
    routes = result.setdefault("routes", [])
    for ipc in result["ips"]:
        iface = ipaddress.ip_interface(ipc["address"])
        ipc["interface"] = 2
        if not ipc.get("gateway") and conf.is_gw:
            ipc["gateway"] = str(iface.network.network_address + 1)
        fam = iface.version
        if conf.is_default_gw and not default_found[fam]:
            default = "0.0.0.0/0" if fam == 4 else "::/0"
            for r in routes:
                if r.get("gw") and str(ipaddress.ip_network(r["dst"], strict=False)) == default:
                    default_found[fam] = True
                    break
            if not default_found[fam]:
                route: dict[str, Any] = {"dst": default}
                if ipc.get("gateway"):
                    route["gw"] = ipc["gateway"]
                routes.append(route)
                default_found[fam] = True
        if conf.is_gw and ipc.get("gateway"):
            gws.append(f"{ipc['gateway']}/{iface.network.prefixlen}")
    if not routes:
        del result["routes"]
    return gws


# -- container side (run inside the netns worker) ---------------------------------------
def _configure_container(ifname: str, result: Result | None, conf: BridgeConf) -> None:
    if conf.enable_dad:
        sysctl.ensure_optional(f"net/ipv6/conf/{ifname}/enhanced_dad", "1")
    sysctl.ensure_optional(f"net/ipv6/conf/{ifname}/accept_dad", "1" if conf.enable_dad else "0")
    sysctl.ensure_optional(f"net/ipv4/conf/{ifname}/arp_notify", "1")
    with Netlink() as nl:
        if result is not None:
            iface.configure_iface(nl, ifname, result)
        elif not conf.disable_container_interface:
            link = nl.link(ifname)
            if link is None:
                raise CNIError(f'failed to lookup "{ifname}"')
            nl.set_up(link.index)


# -- ADD --------------------------------------------------------------------------------
def _port_setup(nl: Netlink, conf: BridgeConf, br: Link, host: Link) -> None:
    try:
        nl.set_master(host.index, br.index)
    except NetlinkError as exc:
        raise CNIError(f'failed to connect "{host.name}" to bridge {br.name}: {exc}') from exc
    if conf.hairpin or conf.port_isolation:
        try:
            nl.brport_set(
                host.index,
                hairpin=True if conf.hairpin else None,
                isolated=True if conf.port_isolation else None,
            )
        except NetlinkError as exc:
            raise CNIError(f'failed to set bridge port options on "{host.name}": {exc}') from exc
    if conf.uses_vlan:
        _port_vlans(nl, host, conf.vlan, conf.vlan_trunk, conf.preserve_default_vlan)


def _port_vlans(
    nl: Netlink, port: Link, vlan: int, trunk: list[tuple[int, int]], preserve_default: bool
) -> None:
    """The VLANs of a bridge port: without ``preserveDefaultVlan`` the ones it was born
    with (the bridge's default PVID) go; ``vlan`` is its PVID, untagged; the trunk's are
    tagged; a trunk without ``vlan`` keeps VLAN 1 as its native (PVID, untagged) one."""
    try:
        if not preserve_default:
            for vid, _flags in nl.port_vlans(port.index):
                nl.vlan_del(port.index, vid)
        if vlan:
            nl.vlan_add(port.index, vlan, pvid=True, untagged=True)
        for lo, hi in trunk:
            nl.vlan_add(port.index, lo, vid_end=hi)
        if not vlan and trunk:
            nl.vlan_add(port.index, 1, pvid=True, untagged=True)
    except NetlinkError as exc:
        raise CNIError(f'failed to set VLANs on "{port.name}": {exc}') from exc


def _vlan_gateway(nl: Netlink, conf: BridgeConf, br: Link) -> Link:
    """The gateway port of ``vlan`` (``isGateway`` with ``vlan``): a veth named
    ``<bridge>.<vlan>`` in the node, whose peer is a bridge port with that VLAN as its
    PVID, untagged. The gateway addresses go on it, not on the bridge. Made by the first
    ADD that needs it and kept, like the bridge, for every later one."""
    name = f"{br.name}.{conf.vlan}"
    gw = nl.link(name)
    if gw is not None:
        return gw
    if len(name) > 15:
        raise CNIError(
            f'failed to create vlan gateway "{name}": the name is longer than 15 characters'
        )
    host_fd = netns.current_netns()
    try:
        peer, gw = make_veth(name, host_fd, br.mtu, "")
    except CNIError as exc:
        raise CNIError(f'failed to create vlan gateway "{name}": {exc.msg}') from exc
    finally:
        os.close(host_fd)
    port = nl.link(peer)
    if port is None:
        raise CNIError(f'failed to create vlan gateway "{name}": its peer "{peer}" is gone')
    try:
        nl.set_master(port.index, br.index)
        nl.set_up(port.index)
        _port_vlans(nl, port, conf.vlan, [], conf.preserve_default_vlan)
        nl.set_up(gw.index)
    except NetlinkError as exc:
        raise CNIError(f'failed to set up vlan gateway "{name}": {exc}') from exc
    return nl.link(name) or gw


def cmd_add(cmd: skel.CmdArgs) -> Result:
    conf = load(cmd)
    with netns.NetNS(cmd.netns) as ns, Netlink() as nl, Rollback(cmd.stderr) as undo:
        br = _ensure_bridge(nl, conf)
        host, cont = add_veth_pair(nl, ns, cmd.ifname, mtu=conf.mtu, mac=conf.mac, undo=undo)
        _port_setup(nl, conf, br, host)

        if conf.macspoofchk:
            from . import spoofcheck

            spoofcheck.setup(cmd.container_id, cmd.ifname, host.name, cont.mac)
            undo.add(spoofcheck.teardown, cmd.container_id, cmd.ifname)

        ipam_result: Result | None = None
        if conf.ipam_type:
            ipam_result = ipam.exec_add(cmd, conf.ipam_type)
            undo.add(ipam.exec_del, cmd, conf.ipam_type)
        result: Result = ipam_result if ipam_result is not None else {}
        result["cniVersion"] = "1.1.0"
        # the names now (configure_iface picks interface 2's addresses by name), MACs last
        result["interfaces"] = [
            {"name": br.name},
            {"name": host.name},
            {"name": cmd.ifname, "sandbox": cmd.netns},
        ]
        gws = _calc_gateways(result, conf) if ipam_result is not None else []
        ns.run(_configure_container, cmd.ifname, ipam_result, conf)

        if conf.is_gw:
            # with a vlan the gateway is that VLAN's own port, appended to the interfaces
            gw_link = _vlan_gateway(nl, conf, br) if conf.vlan and gws else br
            for gw in gws:
                _ensure_addr(nl, gw_link, gw, conf.force_address)
            fams = {ipaddress.ip_interface(g).version for g in gws}
            try:
                sysctl.enable_forwarding(4 in fams, 6 in fams)
            except OSError as exc:
                raise CNIError(f"failed to enable forwarding: {exc}") from exc

        if conf.ip_masq and ipam_result is not None:
            cidrs = [ipc["address"] for ipc in result["ips"]]
            from .._lib import ipmasq

            ipmasq.setup_masq(
                conf.network,
                cmd.container_id,
                cidrs,
                conf.ip_masq_backend,
                undo=undo,
            )

        if not conf.disable_container_interface:
            # a port whose peer is down never forwards; only wait when the peer is up
            state = nl.wait_oper_up(host.index)
            if state != "UP":
                raise CNIError(f"bridge port in error state: {state.lower()}")

        # read again: the bridge MAC follows its ports until _ensure_addr pins it
        br = nl.link(br.name) or br
        result["interfaces"] = [
            {"name": br.name, "mac": br.mac},
            {"name": host.name, "mac": host.mac},
            {"name": cmd.ifname, "mac": cont.mac, "sandbox": cmd.netns},
        ]
        if conf.is_gw and conf.vlan and gws:
            gw_port = nl.link(f"{br.name}.{conf.vlan}")
            if gw_port is not None:
                result["interfaces"].append({"name": gw_port.name, "mac": gw_port.mac})
        if conf.dns is not None:
            result["dns"] = conf.dns
        return result


# -- DEL --------------------------------------------------------------------------------
def cmd_del(cmd: skel.CmdArgs) -> None:
    conf = load(cmd)
    steps = DelSteps()
    cidrs = steps.run(delete_container_link, cmd.netns, cmd.ifname) or []
    if conf.ipam_type:
        steps.run(ipam.exec_del, cmd, conf.ipam_type)
    if cmd.netns and conf.macspoofchk:
        steps.run(_spoofcheck_teardown, cmd.container_id, cmd.ifname)
    if conf.ip_masq:
        from .._lib import ipmasq

        steps.run(ipmasq.teardown_masq, cmd, conf.raw, cidrs, conf.ip_masq_backend)
    steps.finish()


def _spoofcheck_teardown(container_id: str, ifname: str) -> None:
    from . import spoofcheck

    spoofcheck.teardown(container_id, ifname)


# -- CHECK ------------------------------------------------------------------------------
def cmd_check(cmd: skel.CmdArgs) -> None:
    conf = load(cmd)
    if conf.ipam_type:
        ipam.exec_check(cmd, conf.ipam_type)
    result = ipam.prev_result(conf.raw)
    if result is None:
        raise CNIError("Required prevResult missing")
    cont_map = container_interface(result, cmd.ifname, cmd.netns)
    br_map: dict[str, Any] = next(
        (i for i in result.get("interfaces") or [] if i.get("name") == conf.bridge), {}
    )
    with Netlink() as nl:
        br = nl.link(conf.bridge)
        if br is None:
            raise CNIError(f"Error: Bridge interface {conf.bridge} not found")
        if br.kind != "bridge":
            raise CNIError(f"Error: interface {conf.bridge} not a bridge")
        if br_map.get("mac") and br_map["mac"].lower() != br.mac.lower():
            raise CNIError(f"Bridge interface {conf.bridge} Mac doesn't match: {br_map['mac']}")
        if conf.promisc and not br.promisc:
            raise CNIError(
                f"Bridge interface {conf.bridge} configured Promisc Mode "
                f"{conf.promisc} doesn't match current state: {br.promisc}"
            )
        with netns.NetNS(cmd.netns) as ns:
            cont = ns.run(check_container_link, cmd.ifname, cont_map.get("mac", ""), result)
        found = False
        for intf in result.get("interfaces") or []:
            name = intf.get("name")
            if name in (br_map.get("name"), cont_map.get("name")):
                continue
            host = nl.link(str(name))
            if host is None or host.kind != "veth":
                continue
            if host.peer_index != cont.index or cont.peer_index != host.index:
                continue
            if host.master != br.index:
                raise CNIError(f"Interface {name} veth not on bridge {conf.bridge}")
            if intf.get("mac") and intf["mac"].lower() != host.mac.lower():
                raise CNIError(f"Interface {name} Mac doesn't match: {intf['mac']}")
            found = True
            break
        if not found:
            raise CNIError(f"Could not find veth peer of {cmd.ifname} on bridge {conf.bridge}")
