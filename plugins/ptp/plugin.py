"""ptp verbs: ADD, CHECK, DEL, STATUS."""

from __future__ import annotations

import contextlib
import errno
import functools
import ipaddress
import os
from typing import Any, NamedTuple

from cnitool import skel
from cnitool.spec.errors import CNIError

from .._lib import ipam, netns, sysctl
from .._lib.ipam import typed

Result = dict[str, Any]


class PtpConf(NamedTuple):
    raw: dict[str, Any]
    network: str
    ip_masq: bool
    mtu: int
    ipam_type: str
    dns: dict[str, Any] | None
    masq_backend: str | None


def load(cmd: skel.CmdArgs) -> PtpConf:
    raw = cmd.config()
    mtu = typed(raw, "mtu", int, 0)
    if mtu < 0:
        raise CNIError(f'invalid "mtu" {mtu}: must not be negative')
    conf = PtpConf(
        raw=raw,
        network=str(raw.get("name", "")),
        ip_masq=typed(raw, "ipMasq", bool, False),
        mtu=mtu,
        ipam_type=ipam.ipam_type(raw),
        dns=ipam.dns_override(raw),
        masq_backend=ipam.masq_backend(raw),
    )
    if not conf.ipam_type:
        raise CNIError('ptp needs an IPAM plugin: "ipam.type" is missing')
    return conf


def _host_len(addr: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> int:
    return 32 if addr.version == 4 else 128


def _make_veth(ifname: str, host_fd: int, mtu: int) -> str:
    """Create the veth in the container, its host end born in the node; the host name."""
    from .._lib.netlink import Netlink, NetlinkError, random_veth_name

    with Netlink() as nl:
        if nl.link(ifname) is not None:
            raise CNIError(f'container veth name "{ifname}" already exists')
        host_name = ""
        for _ in range(10):
            host_name = random_veth_name()
            try:
                nl.create_veth(ifname, host_name, host_fd, mtu=mtu)
                break
            except NetlinkError as exc:
                if exc.errno == errno.EEXIST and nl.link(ifname) is None:
                    continue
                raise CNIError(f"failed to make veth pair: {exc}") from exc
        else:
            raise CNIError("failed to make veth pair: no free host veth name after 10 tries")
        return host_name


def _configure(ifname: str, result: Result) -> Any:
    """Addresses, the /32 (/128) route to the gateway and the subnet via the gateway."""
    from .._lib.netlink import Netlink

    with Netlink() as nl:
        return _configure_with(nl, ifname, result)


def _configure_with(nl: Any, ifname: str, result: Result) -> Any:
    from .._lib.netlink import RT_SCOPE_LINK, NetlinkError

    ipam.configure_iface(nl, ifname, result)
    link = nl.link(ifname)
    assert link is not None
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
    return link


def _delete_link(ifname: str) -> list[str]:
    from .._lib.netlink import Netlink

    with Netlink() as nl:
        return nl.delete_link_collect(ifname)


def cmd_add(cmd: skel.CmdArgs) -> Result:
    from .._lib.netlink import Netlink, NetlinkError

    conf = load(cmd)
    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(netns.NetNS(cmd.netns))
        host_fd = netns.current_netns()
        stack.callback(os.close, host_fd)
        nl = stack.enter_context(Netlink())
        undo = stack.enter_context(contextlib.ExitStack())
        quiet = ipam.quiet_undo(cmd)

        result = ipam.exec_add(cmd, conf.ipam_type)
        undo.callback(quiet, ipam.exec_del, cmd, conf.ipam_type)
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

        host_name = ns.run(_make_veth, cmd.ifname, host_fd, conf.mtu)
        undo.callback(quiet, ns.run, _delete_link, cmd.ifname)
        host = nl.link(host_name)
        if host is None:
            raise CNIError(f'failed to lookup host veth "{host_name}"')
        # the host end goes up first: without carrier the container's IPv6 DAD never ends
        nl.set_up(host.index)
        with contextlib.suppress(OSError):
            sysctl.ensure(f"net/ipv6/conf/{host_name}/accept_ra", "0")
        cont = ns.run(_configure, cmd.ifname, result)
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
                nl.add_route(f"{addr.ip}/{hl}", oif=host.index)
            except NetlinkError as exc:
                if exc.errno != errno.EEXIST:
                    raise CNIError(f"failed to add route on host: {exc}") from exc

        if conf.ip_masq:
            from .._lib import ipmasq

            cidrs = [ipc["address"] for ipc in result["ips"]]
            ipmasq.setup_ip_masq(conf.network, cmd.container_id, cidrs, backend=conf.masq_backend)
            undo.callback(
                quiet,
                functools.partial(ipmasq.teardown_ip_masq, backend=conf.masq_backend),
                conf.network,
                cmd.container_id,
                cidrs,
            )

        host = nl.link(host_name) or host
        result["interfaces"] = [
            {"name": host_name, "mac": host.mac},
            {"name": cmd.ifname, "mac": cont.mac, "sandbox": cmd.netns},
        ]
        if conf.dns is not None:
            result["dns"] = conf.dns
        undo.pop_all()
        return result


def cmd_del(cmd: skel.CmdArgs) -> None:
    conf = load(cmd)
    errors: list[Exception] = []
    try:
        ipam.exec_del(cmd, conf.ipam_type)
    except Exception as exc:  # noqa: BLE001 - keep cleaning the rest
        errors.append(exc)
    cidrs: list[str] = []
    if cmd.netns:
        try:
            with netns.NetNS(cmd.netns) as ns:
                cidrs = ns.run(_delete_link, cmd.ifname)
        except netns.NetNSNotFoundError:
            pass  # the namespace, and the veth pair with it, is already gone
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    if conf.ip_masq and not cidrs and cmd.netns:
        cidrs = ipam.prev_cidrs(conf.raw, cmd.ifname)  # the netns (and link) went first
    if cidrs and conf.ip_masq:
        try:
            from .._lib import ipmasq

            ipmasq.teardown_ip_masq(
                conf.network, cmd.container_id, cidrs, backend=conf.masq_backend
            )
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    ipam.raise_collected(errors)


def _check_container(ifname: str, want_mac: str, result: Result) -> None:
    from .._lib.netlink import Netlink

    with Netlink() as nl:
        ipam.validate_iface(nl, ifname, want_mac, result)


def cmd_check(cmd: skel.CmdArgs) -> None:
    conf = load(cmd)
    ipam.exec_check(cmd, conf.ipam_type)
    result = ipam.prev_result(conf.raw)
    if result is None:
        raise CNIError("ptp: Required prevResult missing")
    cont_map: dict[str, Any] = {}
    for intf in result.get("interfaces") or []:
        if intf.get("name") == cmd.ifname and intf.get("sandbox") == cmd.netns:
            cont_map = intf
    if cont_map.get("sandbox", "") != cmd.netns:
        raise CNIError(
            f"Sandbox in prevResult {cont_map.get('sandbox', '')} doesn't match "
            f"configured netns: {cmd.netns}"
        )
    with netns.NetNS(cmd.netns) as ns:
        ns.run(_check_container, cmd.ifname, cont_map.get("mac", ""), result)


def cmd_status(cmd: skel.CmdArgs) -> None:
    conf = load(cmd)
    ipam.exec_status(cmd, conf.ipam_type)
