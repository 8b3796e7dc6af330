"""``cnitool cache list``: the attachments recorded in the libcni result cache."""

from __future__ import annotations

import sys
from typing import Any

import click

from .common import DEFAULT_CACHE_DIR, reporting
from .output import print_table, write_json


@click.group("cache", short_help="Inspect the result cache of attachments.")
def command() -> None:
    """Inspect the result cache (<cache-dir>/results/<network>-<containerID>-<ifname>)."""


def _addresses(result: dict[str, Any] | None) -> list[str]:
    if not result:
        return []
    out = [str(ip.get("address", "")) for ip in result.get("ips") or []]
    for key in ("ip4", "ip6"):
        if key in result:
            out.append(str(result[key].get("ip", "")))
    return out


@command.command("list")
@click.option("--cache-dir", default=DEFAULT_CACHE_DIR, show_default=True, metavar="DIR",
              help="Result cache directory.")
@click.option("--container-id", default="", metavar="ID", help="Only this container's attachments.")
@click.option("--network", default="", metavar="NAME", help="Only this network's attachments.")
@click.option("--output", "-o", type=click.Choice(["auto", "json", "table"]), default="auto",
              show_default=True, help="auto: a table on a terminal, JSON otherwise.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def list_(cache_dir: str, container_id: str, network: str, output: str, debug: bool) -> None:
    """List cached attachments: network, container ID, interface, netns and addresses."""
    from ..libcni.cache import ResultCache

    with reporting("cache list", debug):
        atts = ResultCache(cache_dir).attachments(container_id)
    rows: list[dict[str, Any]] = [
        {
            "network": a.network,
            "containerId": a.container_id,
            "ifName": a.ifname,
            "netns": a.netns,
            "cniArgs": [list(p) for p in a.cni_args],
            "addresses": _addresses(a.result),
            "file": a.path,
        }
        for a in atts
        if not network or a.network == network
    ]
    if output == "json" or (output == "auto" and not sys.stdout.isatty()):
        write_json(rows)
    elif not rows:
        click.echo(f"no cached attachments in {cache_dir}", err=True)
    else:
        print_table(
            f"Cached attachments in {cache_dir}",
            ["network", "container ID", "ifname", "netns", "addresses"],
            [[r["network"], r["containerId"], r["ifName"], r["netns"], ", ".join(r["addresses"])]
             for r in rows],
        )
