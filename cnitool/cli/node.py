"""``cnitool node install|uninstall``: put the launchers, the packages and a conflist on a
node from a container (a DaemonSet's install step), and take them off again."""

from __future__ import annotations

from typing import Any

import click

from .errors import reporting
from .options import debug_option, output_option
from .output import print_table, progress, write_json
from .settings import wants_json

_ROOT_HELP = "Where the host's / is mounted (in a DaemonSet: a hostPath volume)."


@click.group("node", short_help="Install onto a node from a container, or uninstall.")
def command() -> None:
    """Install this project onto a node through the node's root mounted in a container,
    as kube-flannel's install-cni step copies its plugin and conflist (see the DaemonSet
    in deploy/kubernetes/), and remove exactly that again."""


def _show(steps: list[Any], title: str, output: str) -> None:
    rows = [{"path": s.path, "action": s.action, "detail": s.detail} for s in steps]
    if wants_json(output):
        write_json(rows)
    else:
        print_table(
            title,
            ["path", "action", "detail"],
            [[r["path"], r["action"], r["detail"]] for r in rows],
        )


@command.command("install", short_help="Install launchers, packages and a conflist.")
@click.argument("plugins", nargs=-1)
@click.option("--host-root", required=True, metavar="DIR", help=_ROOT_HELP)
@click.option(
    "--bin-dir",
    default="/opt/cni/bin",
    show_default=True,
    metavar="DIR",
    help="CNI bin dir on the host.",
)
@click.option(
    "--conf-dir",
    default="/etc/cni/net.d",
    show_default=True,
    metavar="DIR",
    help="CNI conf dir on the host.",
)
@click.option(
    "--python",
    "python",
    default="/usr/bin/python3",
    show_default=True,
    metavar="PATH",
    help="The host's Python (3.11+) that runs the launchers.",
)
@click.option(
    "--conflist",
    default=None,
    metavar="FILE",
    help="A network configuration to place in the conf dir (e.g. from a ConfigMap).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace files this install did not write (kept in /opt/pycni/backup; "
    "uninstall puts them back).",
)
@click.option(
    "--native-launcher",
    default=None,
    envvar="PYCNI_NATIVE_LAUNCHER",
    metavar="FILE",
    help="A native launcher program (cnitool/warm/native.c, compiled; the image sets it) "
    "to write as each launcher: no interpreter starts on the warm path. Default: Python "
    "launchers.",
)
@output_option()
@debug_option()
def install(
    plugins: tuple[str, ...],
    host_root: str,
    bin_dir: str,
    conf_dir: str,
    python: str,
    conflist: str | None,
    force: bool,
    native_launcher: str | None,
    output: str,
    debug: bool,
) -> None:
    """Write under --host-root: the packages to /opt/pycni/lib (a symlink switched in one
    rename), a launcher per plugin (PLUGINS, default all) in the bin dir run by the
    host's Python (or the --native-launcher program, which starts no interpreter on
    the warm path), the --conflist in the conf dir, and /opt/pycni/install.json listing
    them. Every file is written to a temporary name and renamed; running it again
    changes nothing. Files it did not write are refused unless --force.

    Exit status 1 when a file was refused."""
    from .. import nodeinstall

    with reporting("node install", debug), progress("installing") as step:
        step(host_root)
        steps = nodeinstall.install(
            host_root,
            bin_dir=bin_dir,
            conf_dir=conf_dir,
            python=python,
            plugins=list(plugins) or None,
            conflist=conflist,
            force=force,
            native_launcher=native_launcher,
        )
    _show(steps, f"Installed under {host_root}", output)
    if any(s.action == "refused" for s in steps):
        raise SystemExit(1)


@command.command("uninstall", short_help="Remove what node install wrote.")
@click.option("--host-root", required=True, metavar="DIR", help=_ROOT_HELP)
@output_option()
@debug_option()
def uninstall(host_root: str, output: str, debug: bool) -> None:
    """Remove what `cnitool node install` listed in /opt/pycni/install.json, if still as
    it was written, and put back the files --force replaced; anything changed since is
    kept (and listed)."""
    from .. import nodeinstall

    with reporting("node uninstall", debug):
        steps = nodeinstall.uninstall(host_root)
    _show(steps, f"Removed from {host_root}", output)
