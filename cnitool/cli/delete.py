"""``cnitool del <network> <netns>``: run DEL over the chain in reverse order."""

from __future__ import annotations

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


@click.command("del", short_help="Detach a container netns from a network (runs DEL).")
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
    """Run DEL for each plugin of NETWORK in reverse order and drop the cached result.

    The netns does not have to exist any more: plugins must release what they hold
    (addresses, rules) anyway. No output on success.
    """
    settings = Settings.from_kwargs(kw)
    with reporting("del", settings.debug):
        path = resolve_netns(netns)
        rt = runtime_conf(path, settings.extra)
        net = settings.load_network(network)
        if settings.extra.get("dry_run"):
            from .dryrun import plan, show

            show(plan(settings.cni_config(), net, rt, "DEL"), settings.json_output())
            return
        settings.cni_config().del_network_list(net, rt)
    if not settings.json_output():
        note(f"{network}: detached {path} ({rt.ifname})")
