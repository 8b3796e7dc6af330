"""``cnitool del <network> <netns>``: run DEL over the chain in reverse order."""

from __future__ import annotations

import os
from typing import Any

import click

from .dryrun import show_plan
from .errors import reporting
from .options import DRY_RUN_OUTPUT_HELP, attachment_options, common_options, dry_run_option
from .output import note
from .settings import Attachment, Settings, load_attachment


@click.command("del", short_help="Detach a container netns from a network (runs DEL).")
@attachment_options
@dry_run_option
@click.option(
    "--keep-netns",
    is_flag=True,
    help="Keep a named netns that add created (by default it goes once nothing uses it).",
)
@common_options(DRY_RUN_OUTPUT_HELP)
def command(
    network: str,
    netns: str,
    ifname: str,
    container_id: str | None,
    cni_args: str,
    cap_args: str,
    dry_run: bool,
    keep_netns: bool,
    **common: Any,
) -> None:
    """Run DEL for each plugin of NETWORK in reverse order and drop the cached result.

    NETNS is a path, or the name of a netns under /var/run/netns. It does not have to
    exist any more: plugins must release what they hold (addresses, rules) anyway.
    Without --cap-args or CAP_ARGS, the capability args cached at ADD are passed again
    (portmap needs its mappings to remove its rules). A named netns that add created is
    removed once no cached attachment uses it (--keep-netns keeps it); one that existed
    before add never is. No output on stdout on success.
    """
    settings = Settings.from_options(**common)
    attachment = Attachment(ifname, container_id, cni_args, cap_args)
    with reporting("del", settings.debug):
        path, rt, net = load_attachment(settings, attachment, network, netns, "DEL")
        if dry_run:
            show_plan(settings, net, rt, "DEL")
            return
        settings.cni_config().del_network_list(net, rt)
        dropped = not keep_netns and _drop_made_netns(settings.cache_dir, path)
    if dropped:  # said on stderr whatever the output, as add says it made the netns
        note(f"cnitool: removed network namespace {path}, which add had created")
    if not settings.json_output():
        note(f"{network}: detached {path} ({rt.ifname})")


def _drop_made_netns(cache_dir: str, path: str) -> bool:
    """Remove ``path`` when add made it and no cached attachment uses it any more."""
    from .. import netns as nsmod
    from . import made_netns

    if not made_netns.was_made(cache_dir, path) or made_netns.still_used(cache_dir, path):
        return False
    nsmod.delete(os.path.basename(path), os.path.dirname(path), missing_ok=True)
    made_netns.unmark(cache_dir, path)
    return True
