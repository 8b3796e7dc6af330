"""``cnitool check <network> <netns>``: run CHECK against the cached ADD result."""

from __future__ import annotations

import os
from typing import Any

import click

from .dryrun import show_plan
from .errors import reporting
from .options import DRY_RUN_OUTPUT_HELP, attachment_options, common_options, dry_run_option
from .output import note
from .settings import Attachment, Settings, load_attachment


@click.command("check", short_help="Verify an attachment (runs CHECK).")
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
    """Run CHECK for each plugin of NETWORK with the cached result of the earlier ADD.

    NETNS is a path, or the name of a netns under /var/run/netns; it must exist.
    No output on stdout on success.
    """
    settings = Settings.from_options(**common)
    attachment = Attachment(ifname, container_id, cni_args, cap_args)
    with reporting("check", settings.debug):
        from ..spec.errors import InvalidNetNSError

        path, rt, net = load_attachment(settings, attachment, network, netns, "CHECK")
        if dry_run:
            show_plan(settings, net, rt, "CHECK")
            return
        if not os.path.lexists(path):
            raise InvalidNetNSError(f"netns {path} does not exist")
        settings.cni_config().check_network_list(net, rt)
    if not settings.json_output():
        note(f"{network}: {path} ({rt.ifname}) checks out")
