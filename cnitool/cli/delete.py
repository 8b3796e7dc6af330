"""``cnitool del <network> <netns>``: run DEL over the chain in reverse order."""

from __future__ import annotations

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


@click.command("del", short_help="Detach a container netns from a network (runs DEL).")
@attachment_options
@dry_run_option
@common_options(DRY_RUN_OUTPUT_HELP)
def command(network: str, netns: str, **kw: Any) -> None:
    """Run DEL for each plugin of NETWORK in reverse order and drop the cached result.

    NETNS is a path, or the name of a netns under /var/run/netns. It does not have to
    exist any more: plugins must release what they hold (addresses, rules) anyway.
    Without --cap-args or CAP_ARGS, the capability args cached at ADD are passed again
    (portmap needs its mappings to remove its rules). No output on stdout on success.
    """
    settings = Settings.from_kwargs(kw)
    with reporting("del", settings.debug):
        loaded = load_attachment(settings, network, netns, "DEL")
        if loaded is None:
            return
        path, rt, net = loaded
        settings.cni_config().del_network_list(net, rt)
    if not settings.json_output():
        note(f"{network}: detached {path} ({rt.ifname})")
