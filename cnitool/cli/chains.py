"""``cnitool chains``: the iptables nat chains the CNI plugins own, grouped by attachment.

Reads table ``nat`` of both families from the nf_tables backend and, where its tables
already exist, the legacy one (listing legacy tables would create them). CNI chains are
``CNI-HOSTPORT-*`` (shared by every portmap user), ``CNI-DN-<hash>`` (portmap, per
container), ``CNI-SN-<hash>`` (old portmap) and ``CNI-<hash>`` (bridge/ptp ipMasq). They are
attributed to a network and container through the comments the plugins put on their rules
(``name: "<net>" id: "<cid>"``), and the hash is recomputed to show the name really belongs
to that pair. Works the same for chains written by the Go plugins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import click

from .errors import reporting
from .options import debug_option, output_option
from .output import note, write_json
from .settings import wants_json

COMMENT_RE = re.compile(r'^(?:dnat |snat )?name: "(?P<net>.*)" id: "(?P<cid>.*)"$')
HASHED_RE = re.compile(r"^CNI-(?:(?P<kind>DN|SN)-)?[0-9a-f]{21,24}$")
KINDS = {"DN": "portmap dnat", "SN": "portmap snat (old)", None: "ipMasq"}

Snapshot = tuple[int, str, Any]  # (family, backend name, firewall TableState)


def read_snapshots(families: Iterable[int] = (4, 6)) -> list[Snapshot]:
    """nat tables of each family from nf_tables and, if present, legacy x_tables."""
    from cnitool_plugins import inspect

    return list(inspect.nat_tables(families))


def _chain_hash(net: str, cid: str, prefix: str) -> str:
    from cnitool_plugins import inspect

    return inspect.chain_name(net, cid, prefix)


def _rule_records(state: Any, chain: str) -> list[dict[str, Any]]:
    rules = state.rules(chain)
    counters = state.counters.get(chain, [])
    out = []
    for i, r in enumerate(rules):
        pk, by = counters[i] if i < len(counters) else (0, 0)
        out.append({"rule": r.text(), "packets": pk, "bytes": by})
    return out


def _mapping(rule: Any, counters: tuple[int, int], family: int) -> dict[str, Any] | None:
    a = list(rule.args)
    if rule.target != "DNAT" or "--to-destination" not in a or "--dport" not in a:
        return None
    to = a[a.index("--to-destination") + 1]
    host, _, port = to.rpartition(":")
    host_ip = a[a.index("-d") + 1].split("/")[0] if "-d" in a else ""
    proto = a[a.index("-p") + 1] if "-p" in a else ""
    return {
        "family": family,
        "hostIP": host_ip,
        "hostPort": int(a[a.index("--dport") + 1]),
        "protocol": proto,
        "podIP": host.strip("[]"),
        "podPort": int(port) if port.isdigit() else port,
        "packets": counters[0],
        "bytes": counters[1],
    }


def endpoint(ip: str, port: object) -> str:
    """``10.0.0.2:80``, ``[fd00::2]:80``, ``*:8080`` (any host address)."""
    if not ip:
        return f"*:{port}"
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _index(
    state: Any,
) -> tuple[dict[str, tuple[str, str]], dict[str, list[dict[str, Any]]]]:
    """One pass over the table: who owns which hashed chain (from the comments on the
    rules jumping to it or inside it), and the rules jumping to each CNI chain. Looking
    the jumps up per chain instead would rescan the table once per chain."""
    owner: dict[str, tuple[str, str]] = {}
    jumps_to: dict[str, list[dict[str, Any]]] = {}
    for chain in state.chains:
        rules = state.rules(chain)
        for r, c in zip(rules, state.counters.get(chain, []), strict=False):
            if (r.target or "").startswith("CNI-"):
                jump = {"from": chain, "rule": r.text(), "packets": c[0], "bytes": c[1]}
                jumps_to.setdefault(r.target, []).append(jump)
        for rule in rules:
            m = COMMENT_RE.match(rule.comment())
            if not m:
                continue
            pair = (m.group("net"), m.group("cid"))
            if HASHED_RE.match(rule.target or ""):
                owner.setdefault(rule.target, pair)
            if HASHED_RE.match(rule.chain):
                owner.setdefault(rule.chain, pair)
    return owner, jumps_to


def collect(snapshots: list[Snapshot], network: str | None = None) -> dict[str, Any]:
    """Group every CNI chain by network and container; list shared chains and orphans."""
    shared: list[dict[str, Any]] = []
    orphans: list[dict[str, Any]] = []
    tree: dict[str, dict[str, dict[str, Any]]] = {}
    for fam, backend, state in snapshots:
        owner, jumps_to = _index(state)
        for chain in state.chains:
            if not chain.startswith("CNI-"):
                continue
            base: dict[str, Any] = {"chain": chain, "family": fam, "backend": backend}
            rules = _rule_records(state, chain)
            jumps = jumps_to.get(chain, [])
            if chain.startswith("CNI-HOSTPORT-"):
                shared.append({**base, "rules": rules, "jumps": jumps})
                continue
            hm = HASHED_RE.match(chain)
            if not hm or chain not in owner:
                orphans.append({**base, "rules": rules, "jumps": jumps})
                continue
            net, cid = owner[chain]
            if network is not None and net != network:
                continue
            kind = hm.group("kind")
            prefix = f"CNI-{kind}-" if kind else "CNI-"
            entry = tree.setdefault(net, {}).setdefault(
                cid, {"containerID": cid, "chains": [], "portMappings": []}
            )
            entry["chains"].append(
                {
                    **base,
                    "kind": KINDS[kind],
                    "hashVerified": _chain_hash(net, cid, prefix) == chain,
                    "packets": sum(j["packets"] for j in jumps),
                    "bytes": sum(j["bytes"] for j in jumps),
                    "rules": rules,
                    "jumps": jumps,
                }
            )
            if kind == "DN":
                for r, c in zip(state.rules(chain), state.counters.get(chain, []), strict=False):
                    mp = _mapping(r, c, fam)
                    if mp is not None:
                        entry["portMappings"].append(mp)
    networks = [
        {"network": net, "containers": [conts[c] for c in sorted(conts)]}
        for net, conts in sorted(tree.items())
    ]
    return {
        "sources": [{"family": f, "backend": b} for f, b, _ in snapshots],
        "networks": networks,
        "shared": shared,
        "orphans": orphans,
    }


def _draw(report: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.tree import Tree

    from .output import console

    out = console()
    srcs = ", ".join(f"ipv{s['family']}/{s['backend']}" for s in report["sources"]) or "none"
    root = Tree(f"[bold]CNI nat chains[/bold] (read from {srcs})")
    for net in report["networks"]:
        nt = root.add(f"[bold cyan]network {escape(net['network'])}[/bold cyan]")
        for c in net["containers"]:
            ct = nt.add(f"container [bold]{escape(c['containerID'])}[/bold]")
            for m in c["portMappings"]:
                host = endpoint(m["hostIP"], m["hostPort"])
                pod = endpoint(m["podIP"], m["podPort"])
                ct.add(
                    f"[green]{escape(host)}/{m['protocol']} -> {escape(pod)}[/green]"
                    f"  ({m['packets']} pkts, {m['bytes']} bytes)"
                )
            for ch in c["chains"]:
                ok = "" if ch["hashVerified"] else " [red](name does not match hash)[/red]"
                cht = ct.add(
                    f"{ch['chain']} [dim]{ch['kind']}, ipv{ch['family']}/{ch['backend']}, "
                    f"{ch['packets']} pkts, {ch['bytes']} bytes[/dim]{ok}"
                )
                for r in ch["rules"]:
                    cht.add(f"[dim][{r['packets']}:{r['bytes']}][/dim] {escape(r['rule'])}")
    if report["shared"]:
        st = root.add("[bold]shared chains[/bold]")
        for ch in report["shared"]:
            cht = st.add(f"{ch['chain']} [dim]ipv{ch['family']}/{ch['backend']}[/dim]")
            for r in ch["rules"]:
                cht.add(f"[dim][{r['packets']}:{r['bytes']}][/dim] {escape(r['rule'])}")
    if report["orphans"]:
        ot = root.add("[bold yellow]chains no comment attributes to a container[/bold yellow]")
        for ch in report["orphans"]:
            ot.add(
                f"{ch['chain']} [dim]ipv{ch['family']}/{ch['backend']}, {len(ch['rules'])} rules[/dim]"
            )
    out.print(root)


@click.command("chains", short_help="Inspect the iptables chains the plugins wrote.")
@click.argument("network", required=False)
@click.option(
    "--family",
    type=click.Choice(["4", "6", "all"]),
    default="all",
    show_default=True,
    help="IP family to read.",
)
@output_option(
    "auto: a tree on a terminal, JSON otherwise (table is another name for tree).",
    ("auto", "json", "tree", "table"),
)
@debug_option()
def command(network: str | None, family: str, output: str, debug: bool) -> None:
    """Show the nat chains of portmap and ipMasq as a tree: network, container, chains.

    Each container lists its host port -> pod mappings and its chains with packet and
    byte counters; the CNI-HOSTPORT-* chains shared by all containers and any CNI chain no
    comment ties to a container are listed after. Reads both iptables backends (legacy
    only where its tables exist) and chains made by the Go plugins alike.
    """
    fams = (4, 6) if family == "all" else (int(family),)
    with reporting("chains", debug):
        report = collect(read_snapshots(fams), network)
    if wants_json(output):
        write_json(report)
    elif report["networks"] or report["shared"] or report["orphans"]:
        _draw(report)
    else:
        note("no CNI chains in the nat table")
