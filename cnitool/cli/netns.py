"""``cnitool netns list|add|del``: named network namespaces, like ``ip netns``."""

from __future__ import annotations

import click

from .errors import reporting
from .options import debug_option, output_option
from .output import write_json
from .settings import wants_json


@click.group("netns", short_help="Create, list and delete named network namespaces.")
def command() -> None:
    """Named network namespaces under /var/run/netns, compatible with `ip netns`."""


@command.command("list")
@output_option("auto: one name per line on a terminal, JSON otherwise.")
def list_(output: str) -> None:
    """List the named network namespaces."""
    from .. import netns

    names = netns.list_names()
    if wants_json(output):
        write_json(names)
    else:
        for name in names:
            click.echo(name)


@command.command("add", short_help="Create a named netns.")
@click.argument("name")
@debug_option()
def add(name: str, debug: bool) -> None:
    """Create the named netns NAME (/var/run/netns/NAME) and print its path."""
    from .. import netns

    with reporting("netns add", debug):
        path = netns.create(name)
    click.echo(path)


@command.command("del", short_help="Delete named netns.")
@click.argument("names", nargs=-1, required=True)
@click.option("--missing-ok", is_flag=True, help="Do not fail when a netns does not exist.")
@debug_option()
def delete(names: tuple[str, ...], missing_ok: bool, debug: bool) -> None:
    """Delete the named netns NAMES (unmount and remove the files)."""
    from .. import netns

    with reporting("netns del", debug):
        for name in names:
            netns.delete(name, missing_ok=missing_ok)
