"""``cnitool gc <network> [netns]``: delete cached attachments, then send GC."""

from __future__ import annotations

from typing import Any

import click

from .errors import UsageError, reporting
from .options import NOTE_OUTPUT_HELP, common_options, complete_network
from .output import note
from .settings import Settings


def parse_valid(values: tuple[str, ...]) -> list[tuple[str, str]]:
    """--valid CONTAINERID:IFNAME values as (container_id, ifname) pairs."""
    from ..spec.names import validate_container_id, validate_interface_name

    out: list[tuple[str, str]] = []
    for value in values:
        cid, sep, ifname = value.rpartition(":")
        if not sep or not cid or not ifname:
            raise UsageError(f'invalid --valid value "{value}": expected CONTAINERID:IFNAME')
        validate_container_id(cid)
        validate_interface_name(ifname)
        out.append((cid, ifname))
    return out


@click.command("gc", short_help="Delete stale cached attachments of a network (GC).")
@click.argument("network", shell_complete=complete_network)
@click.argument("netns", required=False)
@click.option(
    "--valid",
    multiple=True,
    metavar="CONTAINERID:IFNAME",
    help="An attachment to keep (repeatable). Without any, every cached "
    "attachment of the network is deleted, as the Go tool does.",
)
@common_options(NOTE_OUTPUT_HELP)
def command(network: str, netns: str | None, valid: tuple[str, ...], **common: Any) -> None:
    """Run DEL for every cached attachment of NETWORK that is not --valid, then send GC
    to the plugins (cniVersion 1.1.0 and later).

    NETNS is accepted for compatibility with the Go tool and ignored. No output on success.
    """
    settings = Settings.from_options(**common)
    with reporting("gc", settings.debug):
        pairs = parse_valid(valid)
        net = settings.load_network(network)
        config = settings.cni_config()
        wanted = set(pairs)
        kept = sum(
            1
            for att in config.cached_attachments()
            if att.network == net.name and (att.container_id, att.ifname) in wanted
        )
        config.gc_network_list(net, pairs or None)
    if not settings.json_output():
        note(f"{network}: garbage collected" + (f" (kept {kept})" if pairs else ""))
