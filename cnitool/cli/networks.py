"""``cnitool networks``: every configuration file in the conf dir and what is wrong with it."""

from __future__ import annotations

import os
from typing import Any

import click

from .common import DEFAULT_CONF_DIR, reporting
from .output import print_table, write_json


def _entries(conf_dir: str) -> list[dict[str, Any]]:
    """One dict per candidate file, in the order libcni considers them; ``active`` marks
    the file ``cnitool add`` would load for that name."""
    from ..libcni.config import scan_dir

    rows: list[dict[str, Any]] = []
    for entry in scan_dir(conf_dir):
        net = entry.network
        row: dict[str, Any] = {
            "file": entry.path,
            "name": net.name if net is not None else "",
            "cniVersion": net.cni_version if net is not None else "",
            "plugins": [p.type for p in net.plugins] if net is not None else [],
            "problems": [entry.error] if entry.error else [],
            "active": net is not None and entry.shadowed_by is None,
        }
        if entry.shadowed_by:
            row["problems"].append(f"shadowed by {os.path.basename(entry.shadowed_by)}")
        if net is not None:
            dropins = sorted({p.source for p in net.plugins if p.source and p.source != entry.path})
            if dropins:
                row["dropIns"] = dropins
        rows.append(row)
    return rows


def _problems(row: dict[str, Any]) -> str:
    """Problems for the table: the file name is already in its own column."""
    prefix = row["file"] + ": "
    texts = [p[len(prefix) :] if p.startswith(prefix) else p for p in row["problems"]]
    return "; ".join(texts) or "ok"


@click.command("networks", short_help="List the network configurations in the conf dir.")
@click.option(
    "--cni-conf-dir",
    "conf_dir",
    envvar="NETCONFPATH",
    default=DEFAULT_CONF_DIR,
    show_default=True,
    metavar="DIR",
    help="Directory of network configurations [env NETCONFPATH].",
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["auto", "json", "table"]),
    default="auto",
    show_default=True,
    help="auto: a table on a terminal, JSON otherwise.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def command(conf_dir: str, output: str, debug: bool) -> None:
    """List every *.conflist, *.conf and *.json file of the conf dir: network name,
    cniVersion, plugin chain and problems (parse errors, a file shadowed by an earlier
    one with the same name). Exit status 1 when any file has a problem."""
    import sys

    with reporting("networks", debug):
        rows = _entries(conf_dir)
    as_json = output == "json" or (output == "auto" and not sys.stdout.isatty())
    if as_json:
        write_json(rows)
    elif not rows:
        click.echo(f"no network configurations in {conf_dir}", err=True)
    else:
        print_table(
            f"Networks in {conf_dir}",
            ["file", "name", "cniVersion", "plugins", "problems"],
            [
                [
                    os.path.basename(r["file"]),
                    r["name"],
                    r["cniVersion"],
                    " → ".join(r["plugins"]),
                    _problems(r),
                ]
                for r in rows
            ],
        )
    if any(r["problems"] for r in rows if r["active"] or not r["name"]):
        raise SystemExit(1)
