"""``cnitool status <network> [netns]``: ask each plugin whether it is ready."""

from __future__ import annotations

from typing import Any

import click

from .errors import reporting
from .options import NOTE_OUTPUT_HELP, common_options, complete_network
from .output import note
from .settings import Settings


@click.command("status", short_help="Ask the plugins whether a network is ready (STATUS).")
@click.argument("network", shell_complete=complete_network)
@click.argument("netns", required=False)
@common_options(NOTE_OUTPUT_HELP)
def command(network: str, netns: str | None, **common: Any) -> None:
    """Run STATUS for each plugin of NETWORK (skipped below cniVersion 1.1.0).

    NETNS is accepted for compatibility with the Go tool and ignored. No output on success.
    """
    settings = Settings.from_options(**common)
    with reporting("status", settings.debug):
        net = settings.load_network(network)
        settings.cni_config().get_status_network_list(net)
    if not settings.json_output():
        note(f"{network}: ready")
