"""``cnitool cache list|show|rm``: the attachments recorded in the libcni result cache."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .errors import reporting
from .options import (
    F,
    attachment_arguments,
    cache_dir_option,
    container_id_option,
    debug_option,
    ifname_option,
    output_option,
    stack_options,
)
from .output import print_table, short_ids, short_netns, write_json
from .settings import wants_json


@click.group("cache", short_help="Inspect the result cache of attachments.")
def command() -> None:
    """Inspect the result cache: one file per attachment, named
    <network>-<containerID>-<ifname>, in the results/ folder of the cache dir."""


def result_addresses(result: dict[str, Any] | None) -> list[str]:
    """The addresses (CIDR) of a cached result of any spec era. The cache only promises
    an object, so entries of another shape are passed over, never a crash."""
    if not result:
        return []
    ips = result.get("ips")
    found = (
        [ip.get("address") for ip in ips if isinstance(ip, dict)] if isinstance(ips, list) else []
    )
    found += [result[k].get("ip") for k in ("ip4", "ip6") if isinstance(result.get(k), dict)]
    return [a for a in found if isinstance(a, str)]


@command.command("list", short_help="List the cached attachments.")
@cache_dir_option()
@click.option("--container-id", default="", metavar="ID", help="Only this container's attachments.")
@click.option("--network", default="", metavar="NAME", help="Only this network's attachments.")
@output_option()
@debug_option()
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
            "addresses": result_addresses(a.result),
            "file": a.path,
        }
        for a in atts
        if not network or a.network == network
    ]
    if wants_json(output):
        write_json(rows)
    elif not rows:
        click.echo(f"no cached attachments in {cache_dir}", err=True)
    else:
        ids = short_ids([r["containerId"] for r in rows])
        print_table(
            f"Cached attachments in {cache_dir}",
            ["network", "container ID", "ifname", "netns", "addresses"],
            [
                [
                    r["network"],
                    ids[r["containerId"]],
                    r["ifName"],
                    short_netns(r["netns"]),
                    ", ".join(r["addresses"]),
                ]
                for r in rows
            ],
            # network, ID, netns and addresses give way; the interface name stays
            squeeze={0: 8, 1: 12, 3: 10, 4: 15},
        )


def _attachment_args(func: F) -> F:
    return stack_options(
        func,
        [
            *attachment_arguments(),
            cache_dir_option(),
            container_id_option(
                "Container ID (default: derived from the netns path, as add does)."
            ),
            ifname_option(),
            debug_option(),
        ],
    )


def _key(network: str, netns: str, container_id: str | None, ifname: str) -> tuple[str, str, str]:
    from ..spec.names import validate_container_id, validate_interface_name, validate_network_name
    from .settings import container_id_for, resolve_netns

    validate_network_name(network)
    cid = container_id or container_id_for(resolve_netns(netns))
    validate_container_id(cid)
    validate_interface_name(ifname)
    return network, cid, ifname


@command.command("show", short_help="Print one attachment's cached result.")
@_attachment_args
def show(
    network: str, netns: str, cache_dir: str, container_id: str | None, ifname: str, debug: bool
) -> None:
    """Print the cached result of one attachment (what CHECK and DEL will be given),
    as the Go tool prints results. Exit status 1 when nothing is cached."""
    from ..libcni.cache import ResultCache
    from ..spec.errors import CNIError
    from .output import write_json_result

    with reporting("cache show", debug):
        key = _key(network, netns, container_id, ifname)
        cache = ResultCache(cache_dir)
        att = cache.load(*key)
        if att is None:
            raise CNIError(
                f"no cached result for {network} {key[1]} {ifname} ({cache.file_path(*key)})",
                code=3,
            )
        if att.result is None:
            raise CNIError(f"the cache entry {att.path} holds no result", code=3)
    write_json_result(att.result)
    if sys.stdout.isatty():
        click.echo()


@command.command("rm", short_help="Remove one cache entry without running plugins.")
@_attachment_args
def rm(
    network: str, netns: str, cache_dir: str, container_id: str | None, ifname: str, debug: bool
) -> None:
    """Remove one attachment's cache entry without running any plugin (for an entry
    whose plugins' state is known to be gone; otherwise use `cnitool del`)."""
    from ..libcni.cache import ResultCache

    with reporting("cache rm", debug):
        key = _key(network, netns, container_id, ifname)
        cache = ResultCache(cache_dir)
        path = cache.file_path(*key)
        existed = os.path.lexists(path)
        cache.delete(*key)
    click.echo(f"removed {path}" if existed else f"nothing cached at {path}", err=True)
