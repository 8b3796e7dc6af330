"""``cnitool gc <network> [netns]``: delete cached attachments, then send GC."""

from __future__ import annotations

import os
from typing import Any

import click

from .errors import UsageError, reporting
from .options import NOTE_OUTPUT_HELP, common_options, complete_network
from .output import note, progress
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


def stale_netns(netns: str) -> bool:
    """True when a cached attachment's netns is gone: no path, or nothing mounted there
    any more (an emptied bind-mount target stays as a plain file)."""
    if not netns or not os.path.lexists(netns):
        return True
    try:
        here, parent = os.stat(netns), os.stat(os.path.dirname(netns) or "/")
    except OSError:
        return True
    # a netns bind mount is on nsfs, another device than its directory's
    return here.st_dev == parent.st_dev and not netns.startswith("/proc/")


@click.command("gc", short_help="Delete stale cached attachments of a network (GC).")
@click.argument("network", shell_complete=complete_network)
@click.argument("netns", required=False)
@click.option(
    "--valid",
    multiple=True,
    metavar="CONTAINERID:IFNAME",
    help="An attachment to keep (repeatable). Without any (and without --stale), every "
    "cached attachment of the network is deleted, as the Go tool does.",
)
@click.option(
    "--stale",
    is_flag=True,
    help="Keep the cached attachments whose netns still exists; delete the others.",
)
@common_options(NOTE_OUTPUT_HELP)
def command(
    network: str, netns: str | None, valid: tuple[str, ...], stale: bool, **common: Any
) -> None:
    """Run DEL for every cached attachment of NETWORK that is not kept, then send GC to the
    plugins (cniVersion 1.1.0 and later), which release what no kept attachment holds.

    Kept are the --valid attachments, or with --stale every cached attachment whose netns
    still exists. With neither, every cached attachment goes, as with the Go tool; a
    terminal is told which first. NETNS is accepted for compatibility with the Go tool
    and ignored. No output on stdout on success.
    """
    settings = Settings.from_options(**common)
    with reporting("gc", settings.debug):
        if stale and valid:
            raise UsageError("--stale and --valid choose the kept attachments two ways: give one")
        net = settings.load_network(network)
        config = settings.cni_config()
        cached = [a for a in config.cached_attachments() if a.network == net.name]
        if stale:
            pairs = [(a.container_id, a.ifname) for a in cached if not stale_netns(a.netns)]
        else:
            pairs = parse_valid(valid)
        wanted = set(pairs)
        going = [a for a in cached if (a.container_id, a.ifname) not in wanted]
        if not settings.json_output():
            for att in going:
                note(
                    f"{network}: deleting {att.container_id} {att.ifname} ({att.netns or 'no netns'})"
                )
        with progress(f"{network}: deleting", len(going) + 1) as step:
            config.gc_network_list(net, pairs if (pairs or stale or valid) else None, step)
    if not settings.json_output():
        kept = len(cached) - len(going)
        note(f"{network}: garbage collected (deleted {len(going)}, kept {kept})")
