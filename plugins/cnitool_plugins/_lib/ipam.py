"""IPAM delegation, interface configuration from a result, and common netconf checks.

``configure_iface`` runs inside a container-netns worker with a ``Netlink`` opened there.
Delegation execs the plugin named by ``ipam.type`` from CNI_PATH with the whole stdin of
the calling plugin (prevResult included), as the reference plugins do.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from cnitool.spec.errors import CNIError

from . import sysctl

if TYPE_CHECKING:
    from cnitool.skel import CmdArgs

    from .netlink import Link, Netlink

Result = dict[str, Any]

_TYPE_NAMES = {
    bool: "a boolean",
    str: "a string",
    int: "an integer",
    dict: "an object",
    list: "a list",
}


# -- netconf checks ---------------------------------------------------------------------
def typed(conf: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    """``conf[key]`` checked against a JSON type (``None``/absent gives ``default``)."""
    value = conf.get(key)
    if value is None:
        return default
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise CNIError(
            f'failed to load netconf: "{key}" must be {_TYPE_NAMES.get(kind, kind.__name__)}, '
            f"got {json.dumps(value)}"
        )
    return value


def ipam_type(conf: Mapping[str, Any]) -> str:
    """The IPAM plugin name, or "" for layer-2 only (no ``ipam`` or ``ipam: {}``)."""
    ipam = typed(conf, "ipam", dict, {})
    return str(typed(ipam, "type", str, ""))


def parse_mac(value: str, where: str) -> str:
    parts = value.split(":") if ":" in value else value.split("-")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise CNIError(f'invalid MAC address "{value}" in {where}')
    try:
        raw = bytes(int(p, 16) for p in parts)
    except ValueError:
        raise CNIError(f'invalid MAC address "{value}" in {where}') from None
    return ":".join(f"{b:02x}" for b in raw)


def requested_mac(conf: Mapping[str, Any], cni_args: str) -> str:
    """The MAC asked for: CNI_ARGS ``MAC`` < ``args.cni.mac`` < ``runtimeConfig.mac``."""
    from cnitool.spec.args import load_args

    mac = ""
    if cni_args:
        env_mac = load_args(cni_args, ("MAC",)).get("MAC", "")
        if env_mac:
            mac = parse_mac(env_mac, "CNI_ARGS MAC")
    args = typed(conf, "args", dict, {})
    cni = args.get("cni") if isinstance(args.get("cni"), dict) else {}
    if cni.get("mac"):
        mac = parse_mac(str(typed(cni, "mac", str, "")), "args.cni.mac")
    rc = typed(conf, "runtimeConfig", dict, {})
    if rc.get("mac"):
        mac = parse_mac(str(typed(rc, "mac", str, "")), "runtimeConfig.mac")
    return mac


def dns_override(conf: Mapping[str, Any]) -> dict[str, Any] | None:
    """The config's ``dns`` when any part of it is set (it then replaces the IPAM DNS)."""
    dns = typed(conf, "dns", dict, {})
    out: dict[str, Any] = {}
    for key in ("nameservers", "domain", "search", "options"):
        if dns.get(key):
            out[key] = dns[key]
    return out or None


# -- delegation -------------------------------------------------------------------------
# The delegate's stderr goes to the calling plugin's own stderr stream (``cmd.stderr``),
# which is the process's stderr when exec'd and a caller-chosen stream when run in-process.
def _env(cmd: CmdArgs) -> dict[str, str]:
    return dict(cmd.env)


def exec_add(cmd: CmdArgs, plugin_type: str) -> Result:
    """IPAM ADD; the result converted to the 1.1.0 shape; at least one IP required."""
    from cnitool import invoke
    from cnitool.spec import results

    res = invoke.delegate_add(plugin_type, cmd.stdin_data, _env(cmd), cmd.stderr)
    with Rollback(cmd.stderr) as undo:
        # the IPAM plugin succeeded, so it may hold an allocation: give it back on failure
        undo.add(exec_del, cmd, plugin_type)
        if res is None:
            raise CNIError("IPAM plugin returned missing IP config")
        res = results.convert(res, "1.1.0")
        if not res.get("ips"):
            raise CNIError("IPAM plugin returned missing IP config")
    return res


def exec_del(cmd: CmdArgs, plugin_type: str) -> None:
    from cnitool import invoke

    invoke.delegate_del(plugin_type, cmd.stdin_data, _env(cmd), cmd.stderr)


def exec_check(cmd: CmdArgs, plugin_type: str) -> None:
    from cnitool import invoke

    invoke.delegate_check(plugin_type, cmd.stdin_data, _env(cmd), cmd.stderr)


def exec_status(cmd: CmdArgs, plugin_type: str) -> None:
    from cnitool import invoke

    invoke.delegate_status(plugin_type, cmd.stdin_data, _env(cmd), cmd.stderr)


def exec_gc(cmd: CmdArgs, plugin_type: str) -> None:
    from cnitool import invoke

    invoke.delegate_gc(plugin_type, cmd.stdin_data, _env(cmd), cmd.stderr)


def prev_result(conf: Mapping[str, Any]) -> Result | None:
    """``prevResult`` from the request, converted to the 1.1.0 shape (None when absent)."""
    from cnitool.spec import results

    raw = conf.get("prevResult")
    if raw is None:
        return None
    res = results.new_result(raw, str(conf.get("cniVersion") or ""))
    return results.convert(res, "1.1.0")


def prev_cidrs(raw: Mapping[str, Any], ifname: str) -> list[str]:
    """The addresses ``prevResult`` gives ``ifname`` (for a DEL whose netns is gone)."""
    try:
        prev = prev_result(raw)
    except CNIError:
        # DEL is best effort and must not fail on a prevResult it cannot use: an
        # unreadable one only means there are no addresses to fall back on
        return []
    if not prev:
        return []
    ifaces = prev.get("interfaces") or []
    out = []
    for ipc in prev.get("ips") or []:
        idx = ipc.get("interface")
        if idx is None or (0 <= idx < len(ifaces) and ifaces[idx].get("name") == ifname):
            out.append(ipc["address"])
    return out


# -- interface configuration ------------------------------------------------------------
def configure_iface(nl: Netlink, ifname: str, result: Result) -> None:
    """Give ``ifname`` the result's addresses for it, bring it up, add the routes."""
    from .netlink import NetlinkError

    link = nl.link(ifname)
    if link is None:
        raise CNIError(f'failed to lookup "{ifname}": link not found')
    interfaces = result.get("interfaces") or []
    v4gw = v6gw = ""
    has_v6 = False
    for ipc in result.get("ips") or []:
        idx = ipc.get("interface")
        if idx is None or idx < 0 or idx >= len(interfaces):
            continue
        if interfaces[idx].get("name") != ifname:
            continue
        iface = ipaddress.ip_interface(ipc["address"])
        if iface.version == 6 and not has_v6:
            has_v6 = True
            for dev in ("lo", ifname):
                try:
                    sysctl.ensure(f"net/ipv6/conf/{dev}/disable_ipv6", "0")
                except OSError as exc:
                    raise CNIError(f"failed to enable IPv6 for {dev}: {exc}") from exc
            sysctl.ensure_optional(f"net/ipv6/conf/{ifname}/keep_addr_on_down", "1")
        try:
            nl.add_addr(link.index, ipc["address"])
        except NetlinkError as exc:
            raise CNIError(f'failed to add IP addr {ipc["address"]} to "{ifname}": {exc}') from exc
        gw = ipc.get("gateway") or ""
        if gw and iface.version == 4 and not v4gw:
            v4gw = gw
        if gw and iface.version == 6 and not v6gw:
            v6gw = gw
    try:
        nl.set_up(link.index)
    except NetlinkError as exc:
        raise CNIError(f'failed to set "{ifname}" UP: {exc}') from exc
    if v6gw:
        try:
            nl.wait_dad(link.index)
        except NetlinkError as exc:
            raise CNIError(str(exc)) from exc
    for route in result.get("routes") or []:
        dst = ipaddress.ip_network(route["dst"], strict=False)
        gw = route.get("gw") or (v4gw if dst.version == 4 else v6gw)
        try:
            nl.add_route(
                str(dst),
                oif=link.index,
                gateway=gw,
                scope=route.get("scope"),
                priority=int(route.get("priority") or 0),
                table=int(route.get("table") or 0),
                mtu=int(route.get("mtu") or 0),
                advmss=int(route.get("advmss") or 0),
            )
        except NetlinkError as exc:
            raise CNIError(
                f"failed to add route '{dst} via {gw or '<nil>'} dev {ifname}': {exc}"
            ) from exc


def validate_iface(nl: Netlink, ifname: str, want_mac: str, result: Result) -> Link:
    """CHECK inside the container: ``ifname`` is a veth with the expected MAC, addresses
    and routes of ``result``. Returns the link."""
    from .netlink import AF_INET, AF_INET6

    link = nl.link(ifname)
    if link is None:
        raise CNIError(f'Container interface name "{ifname}" not found')
    if link.kind != "veth":
        raise CNIError(f"Error: Container interface {ifname} should be of type veth")
    if want_mac and link.mac.lower() != want_mac.lower():
        raise CNIError(f"Interface {ifname} Mac {want_mac} doesn't match container Mac: {link.mac}")
    ifaces = result.get("interfaces") or []
    have = {a.interface for a in nl.addrs(link.index)}
    for ipc in result.get("ips") or []:
        idx = ipc.get("interface")
        if idx is not None and 0 <= idx < len(ifaces) and ifaces[idx].get("name") != ifname:
            continue
        if ipaddress.ip_interface(ipc["address"]) not in have:
            raise CNIError(f"Failed to match addr {ipc['address']} on interface {ifname}")
    for route in result.get("routes") or []:
        dst = str(ipaddress.ip_network(route["dst"], strict=False))
        fam = AF_INET6 if ":" in dst else AF_INET
        table = int(route.get("table") or 254)
        found = [
            r
            for r in nl.routes(fam, table=table)
            if r.dst == dst and (not route.get("gw") or r.gateway == route["gw"])
        ]
        if not found:
            raise CNIError(
                f"Failed to match route {dst} via {route.get('gw') or '<nil>'} in the container"
            )
    return link


class Rollback:
    """The undo steps of an ADD: ``with Rollback(stderr) as undo: ... undo.add(fn, *args)``.

    When the block fails the steps run, last added first; a step's own failure is logged
    to ``stderr``, not raised, so the error that caused the rollback is the one reported.
    When the block succeeds nothing runs.
    """

    def __init__(self, stderr: TextIO) -> None:
        self._stderr = stderr
        self._steps: list[tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]] = []

    def add(self, fn: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        self._steps.append((fn, args, kwargs))

    def __enter__(self) -> Rollback:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            return
        for fn, args, kwargs in reversed(self._steps):
            try:
                fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - rollback is best effort, and logged
                name = getattr(fn, "__name__", fn)
                self._stderr.write(f"rollback step {name} failed: {exc}\n")


def masq_backend(conf: Mapping[str, Any]) -> str | None:
    """Check ``ipMasqBackend`` and return the iptables backend choice for ipMasq.

    Only the iptables layout is implemented; asking for the nftables one together with
    ``ipMasq`` is refused rather than silently served by iptables. ``iptablesBackend``
    (``auto``/``nft``/``legacy``) is passed on to the firewall layer, which checks it.
    """
    from cnitool.spec.errors import UnsupportedFieldError

    wanted = typed(conf, "ipMasqBackend", str, "")
    if wanted not in ("", "iptables", "nftables"):
        raise CNIError(f'invalid "ipMasqBackend" "{wanted}": must be "iptables" or "nftables"')
    if wanted == "nftables" and conf.get("ipMasq") is True:
        raise UnsupportedFieldError(
            '"ipMasqBackend": "nftables" is not supported by this plugin; use "iptables"'
        )
    value = conf.get("iptablesBackend")
    return value if isinstance(value, str) or value is None else str(value)
