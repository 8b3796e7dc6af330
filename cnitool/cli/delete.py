"""``cnitool del <network> <netns>``: run DEL over the chain in reverse order."""

from __future__ import annotations

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
@common_options(DRY_RUN_OUTPUT_HELP)
def command(
    network: str,
    netns: str,
    ifname: str,
    container_id: str | None,
    cni_args: str,
    cap_args: str,
    dry_run: bool,
    **common: Any,
) -> None:
    """Run DEL for each plugin of NETWORK in reverse order and drop the cached result.

    NETNS is a path, or the name of a netns under /var/run/netns. It does not have to
    exist any more: plugins must release what they hold (addresses, rules) anyway.
    Without --cap-args or CAP_ARGS, the capability args cached at ADD are passed again
    (portmap needs its mappings to remove its rules). No output on stdout on success.
    """
    settings = Settings.from_options(**common)
    attachment = Attachment(ifname, container_id, cni_args, cap_args)
    with reporting("del", settings.debug):
        path, rt, net = load_attachment(settings, attachment, network, netns, "DEL")
        if dry_run:
            show_plan(settings, net, rt, "DEL")
            return
        settings.cni_config().del_network_list(net, rt)
    if not settings.json_output():
        note(f"{network}: detached {path} ({rt.ifname})")
