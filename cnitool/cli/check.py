"""``cnitool check <network> <netns>``: run CHECK against the cached ADD result."""

from __future__ import annotations

import os
from typing import Any

import click

from .common import (
    DRY_RUN_OUTPUT_HELP,
    Settings,
    attachment_options,
    common_options,
    dry_run_option,
    load_attachment,
    reporting,
)
from .output import note


@click.command("check", short_help="Verify an attachment (runs CHECK).")
@attachment_options
@dry_run_option
@common_options(DRY_RUN_OUTPUT_HELP)
def command(network: str, netns: str, **kw: Any) -> None:
    """Run CHECK for each plugin of NETWORK with the cached result of the earlier ADD.

    NETNS is a path, or the name of a netns under /var/run/netns; it must exist.
    No output on stdout on success.
    """
    settings = Settings.from_kwargs(kw)
    with reporting("check", settings.debug):
        from ..spec.errors import InvalidNetNSError

        loaded = load_attachment(settings, network, netns, "CHECK")
        if loaded is None:
            return
        path, rt, net = loaded
        if not os.path.lexists(path):
            raise InvalidNetNSError(f"netns {path} does not exist")
        settings.cni_config().check_network_list(net, rt)
    if not settings.json_output():
        note(f"{network}: {path} ({rt.ifname}) checks out")
