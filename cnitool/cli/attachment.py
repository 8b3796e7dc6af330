"""``cnitool inspect <netns | container ID>``: everything about one attachment in one view.

For each cached attachment of the netns (or container): its network and cached result,
the host-local leases it holds, the links, addresses and routes inside its netns, its
host-side veth and bridge port, its nat chains with their port mappings and counters,
and where all of that no longer agrees with the cached result (drift).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from .errors import UsageError, reporting
from .options import cache_dir_option, conf_dir_option, debug_option, output_option
from .output import write_json
from .settings import DEFAULT_CACHE_DIR, NETNS_DIR, wants_json

if TYPE_CHECKING:
    from ..libcni.cache import CachedAttachment

DEFAULT_DATA_DIR = "/var/lib/cni/networks"


def _view(view: Any) -> dict[str, Any]:
    return {
        "links": [lk._asdict() for lk in view.links],
        "addresses": [a._asdict() for a in view.addresses],
        "routes": [r._asdict() for r in view.routes],
    }


def _select(target: str, attachments: list[CachedAttachment]) -> tuple[str, list[Any]]:
    """('netns' | 'container', the cached attachments it names)."""
    if "/" in target or os.path.lexists(os.path.join(NETNS_DIR, target)):
        path = target if "/" in target else os.path.join(NETNS_DIR, target)
        wanted = {os.path.abspath(path), os.path.realpath(path)}
        if path.startswith(NETNS_DIR + "/"):  # /var/run is usually a link to /run
            wanted.add("/run/netns/" + path[len(NETNS_DIR) + 1 :])
        return "netns", [a for a in attachments if a.netns in wanted]
    exact = [a for a in attachments if a.container_id == target]
    if exact:
        return "container", exact
    ids = {a.container_id for a in attachments if a.container_id.startswith(target)}
    if len(ids) > 1 and len(target) >= 1:
        raise UsageError(f'container ID prefix "{target}" is ambiguous: {", ".join(sorted(ids))}')
    return "container", [a for a in attachments if a.container_id in ids]


def _result_ifaces(result: dict[str, Any]) -> list[dict[str, Any]]:
    ifaces = result.get("interfaces") or []
    return [i for i in ifaces if isinstance(i, dict)]


def _drift(record: dict[str, Any], att: CachedAttachment) -> list[str]:
    """Where the node no longer matches the cached result."""
    result = att.result or {}
    out: list[str] = []
    inside = record.get("netnsView")
    if inside is None:
        return [f"the netns {att.netns or '(none)'} is gone: a stale attachment"]
    ifaces = _result_ifaces(result)
    links = {lk["name"]: lk for lk in inside["links"]}
    addrs = {(a["ifname"], a["address"]) for a in inside["addresses"]}
    for iface in ifaces:
        if not iface.get("sandbox"):
            continue
        link = links.get(str(iface.get("name")))
        if link is None:
            out.append(f"interface {iface.get('name')} is missing from the netns")
        elif iface.get("mac") and str(iface["mac"]).lower() != link["mac"].lower():
            out.append(f"{iface['name']} has MAC {link['mac']}, the result says {iface['mac']}")
    for ip in result.get("ips") or []:
        idx = ip.get("interface")
        name = ifaces[idx].get("name") if isinstance(idx, int) and 0 <= idx < len(ifaces) else None
        name = name or att.ifname
        if (name, ip.get("address")) not in addrs:
            out.append(f"address {ip.get('address')} is not on {name}")
    routes = {r["dst"] for r in inside["routes"]}
    for route in result.get("routes") or []:
        if route.get("dst") not in routes:
            out.append(f"route to {route.get('dst')} is missing from the netns")
    host_links = {lk["name"]: lk for lk in record["host"]["links"]}
    for iface in ifaces:
        if iface.get("sandbox") or not iface.get("name"):
            continue
        link = host_links.get(str(iface["name"]))
        if link is None:
            out.append(f"host interface {iface['name']} is gone")
    held = {lease["ip"] for lease in record["leases"]}
    if record["leases"] or record.get("hostLocal"):
        for ip in result.get("ips") or []:
            addr = str(ip.get("address", "")).split("/")[0]
            if addr and addr not in held:
                out.append(f"no lease names this attachment for {addr}")
    wanted = att.capability_args.get("portMappings") or []
    mapped = {(m["hostPort"], m["protocol"]) for m in record["portMappings"]}
    for pm in wanted if isinstance(wanted, list) else []:
        key = (pm.get("hostPort"), str(pm.get("protocol") or "tcp").lower())
        if isinstance(pm, dict) and key not in mapped:
            out.append(f"host port {key[0]}/{key[1]} has no DNAT rule")
    return out


def collect(
    target: str,
    cache_dir: str = DEFAULT_CACHE_DIR,
    data_dir: str = DEFAULT_DATA_DIR,
    conf_dir: str = "/etc/cni/net.d",
) -> dict[str, Any]:
    """The records of every attachment ``target`` names (see the module docstring)."""
    from cnitool_plugins import inspect

    from ..libcni.cache import ResultCache
    from ..spec.errors import CNIError
    from .chains import collect as collect_chains
    from .chains import read_snapshots
    from .gc import stale_netns
    from .leases import _networks

    kind, chosen = _select(target, ResultCache(cache_dir).attachments())
    report: dict[str, Any] = {"target": target, "by": kind, "attachments": []}
    if not chosen:
        return report
    host = inspect.netns_view()
    host_by_name = {lk.name: lk for lk in host.links}
    chains = collect_chains(read_snapshots())
    lease_dirs = dict(_networks(data_dir, conf_dir, None))
    for att in chosen:
        result = att.result or {}
        record: dict[str, Any] = {
            "network": att.network,
            "containerID": att.container_id,
            "ifname": att.ifname,
            "netns": att.netns,
            "cacheFile": att.path,
            "result": att.result,
        }
        view = None
        if not stale_netns(att.netns):
            try:
                view = inspect.netns_view(att.netns)
            except (CNIError, OSError):
                view = None
        record["netnsView"] = _view(view) if view is not None else None
        host_links = []
        for iface in _result_ifaces(result):
            if iface.get("sandbox"):
                continue
            link = host_by_name.get(str(iface.get("name")))
            if link is None:
                continue
            peer = None
            if view is not None and link.kind == "veth":
                peer = next((lk.name for lk in view.links if lk.peer_index == link.index), None)
            host_links.append({**link._asdict(), "bridge": link.master, "peer": peer})
        record["host"] = {"links": host_links}
        lease_dir = lease_dirs.get(att.network, "")
        held = inspect.leases(lease_dir) if lease_dir else []
        record["leases"] = [
            {**lease._asdict(), "file": os.path.join(lease_dir, lease.ip)}
            for lease in held
            if lease.container_id == att.container_id and lease.ifname in ("", att.ifname)
        ]
        record["hostLocal"] = bool(lease_dir)
        mine = [
            c
            for net in chains["networks"]
            if net["network"] == att.network
            for c in net["containers"]
            if c["containerID"] == att.container_id
        ]
        record["chains"] = [ch for c in mine for ch in c["chains"]]
        record["portMappings"] = [m for c in mine for m in c["portMappings"]]
        record["drift"] = _drift(record, att)
        report["attachments"].append(record)
    return report


def _draw(report: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.tree import Tree

    from .chains import endpoint
    from .output import console

    out = console()
    for rec in report["attachments"]:
        root = Tree(
            f"[bold]{escape(rec['network'])}[/bold] {escape(rec['containerID'])} "
            f"{escape(rec['ifname'])} [dim]({escape(rec['netns'] or 'no netns')})[/dim]"
        )
        result = rec["result"] or {}
        cached = root.add(f"cached result [dim]({escape(rec['cacheFile'])})[/dim]")
        for ip in result.get("ips") or []:
            gw = f" gateway {ip['gateway']}" if ip.get("gateway") else ""
            cached.add(escape(f"{ip.get('address')}{gw}"))
        for route in result.get("routes") or []:
            via = f" via {route['gw']}" if route.get("gw") else ""
            cached.add(escape(f"route {route.get('dst')}{via}"))
        leases = root.add("leases")
        for lease in rec["leases"]:
            leases.add(escape(f"{lease['ip']}  {lease['file']}"))
        view = rec["netnsView"]
        if view is None:
            root.add("[red]netns gone[/red]")
        else:
            inside = root.add("in the netns")
            addrs: dict[str, list[str]] = {}
            for a in view["addresses"]:
                addrs.setdefault(a["ifname"], []).append(a["address"])
            for lk in view["links"]:
                state = "up" if lk["up"] else "down"
                inside.add(
                    escape(
                        f"{lk['name']} {lk['kind'] or 'device'} {lk['mac']} {state} "
                        + " ".join(addrs.get(lk["name"], []))
                    )
                )
            for r in view["routes"]:
                via = f" via {r['gateway']}" if r["gateway"] else ""
                inside.add(escape(f"route {r['dst']}{via} dev {r['ifname']}"))
        host = root.add("on the host")
        for lk in rec["host"]["links"]:
            if lk["kind"] == "veth":
                where = f"port of bridge {lk['bridge']}" if lk["bridge"] else "on no bridge"
                host.add(escape(f"{lk['name']} veth, peer of {lk['peer'] or '?'}, {where}"))
            else:
                host.add(escape(f"{lk['name']} {lk['kind'] or 'device'} {lk['mac']}"))
        chains = root.add("chains")
        for m in rec["portMappings"]:
            chains.add(
                escape(
                    f"{endpoint(m['hostIP'], m['hostPort'])}/{m['protocol']} -> "
                    f"{endpoint(m['podIP'], m['podPort'])}  ({m['packets']} pkts, {m['bytes']} bytes)"
                )
            )
        for ch in rec["chains"]:
            chains.add(
                escape(
                    f"{ch['chain']} {ch['kind']} ipv{ch['family']}/{ch['backend']} "
                    f"({ch['packets']} pkts, {ch['bytes']} bytes)"
                )
            )
        if rec["drift"]:
            drift = root.add("[bold red]drift from the cached result[/bold red]")
            for d in rec["drift"]:
                drift.add(f"[red]{escape(d)}[/red]")
        else:
            root.add("[green]matches the cached result[/green]")
        out.print(root)


@click.command("inspect", short_help="Everything about one attachment: result, links, rules.")
@click.argument("target", metavar="NETNS|CONTAINER-ID")
@cache_dir_option()
@click.option(
    "--data-dir",
    default=DEFAULT_DATA_DIR,
    show_default=True,
    metavar="DIR",
    help="host-local's default dataDir (a network's own dataDir is read from the conf dir).",
)
@conf_dir_option()
@output_option("auto: a tree on a terminal, JSON otherwise.", ("auto", "json", "tree", "table"))
@debug_option()
def command(
    target: str, cache_dir: str, data_dir: str, conf_dir: str, output: str, debug: bool
) -> None:
    """Show the cached attachments of a netns (a path, or a name under /var/run/netns)
    or of a container ID (or a unique prefix of one): network and cached result,
    leases held, the links, addresses and routes inside the netns, the host-side veth
    and its bridge, nat chains with port mappings and counters, and any drift from
    the cached result (a missing interface, address, route, lease or DNAT rule, or a
    netns that is gone).

    Exit status 1 when nothing is cached for TARGET or any attachment has drifted."""
    with reporting("inspect", debug):
        report = collect(target, cache_dir, data_dir, conf_dir)
        if not report["attachments"]:
            from ..spec.errors import CNIError

            raise CNIError(f"no cached attachment for {report['by']} {target} in {cache_dir}")
    if wants_json(output):
        write_json(report)
    else:
        _draw(report)
    if any(rec["drift"] for rec in report["attachments"]):
        raise SystemExit(1)
