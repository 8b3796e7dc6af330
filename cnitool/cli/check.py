"""``cnitool check <network> <netns>``: run CHECK against the cached ADD result."""

from __future__ import annotations

import os
from typing import Any

import click

from .common import (
    Settings,
    attachment_options,
    common_options,
    complete_netns,
    complete_network,
    reporting,
    resolve_netns,
    runtime_conf,
)
from .output import note


@click.command("check", short_help="Verify an attachment (runs CHECK).")
@click.argument("network", shell_complete=complete_network)
@click.argument("netns", shell_complete=complete_netns)
@attachment_options
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show what each plugin would get (path, CNI_* variables, stdin); run nothing.",
)
@common_options
def command(network: str, netns: str, **kw: Any) -> None:
    """Run CHECK for each plugin of NETWORK with the cached result of the earlier ADD.
    No output on success."""
    settings = Settings.from_kwargs(kw)
    with reporting("check", settings.debug):
        from ..spec.errors import InvalidNetNSError

        path = resolve_netns(netns)
        rt = runtime_conf(path, settings.extra)
        net = settings.load_network(network)
        if settings.extra.get("dry_run"):
            from .dryrun import plan, show

            show(plan(settings.cni_config(), net, rt, "CHECK"), settings.json_output())
            return
        if not os.path.lexists(path):
            raise InvalidNetNSError(f"netns {path} does not exist")
        settings.cni_config().check_network_list(net, rt)
    if not settings.json_output():
        note(f"{network}: {path} ({rt.ifname}) checks out")
