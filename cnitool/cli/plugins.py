"""``cnitool plugins install|list|remove``: plugin launchers in a CNI bin dir."""

from __future__ import annotations

from typing import Any

import click

from .errors import reporting
from .options import debug_option, output_option
from .output import print_table, progress, write_json
from .settings import DEFAULT_BIN_DIR, wants_json

_BIN_DIR_HELP = "CNI bin dir to manage."


@click.group("plugins", short_help="Install, list or remove plugin launchers.")
def command() -> None:
    """Manage the launchers that make the Python plugins runnable from a CNI bin dir.

    A launcher is a tiny executable named like the reference plugin (bridge,
    host-local, ...) that runs this installation's plugin with an absolute interpreter
    path. Files that are not launchers (the Go plugins) are never overwritten or
    removed unless --force is given to install.
    """


@command.command("install", short_help="Write launchers into a bin dir.")
@click.argument("names", nargs=-1)
@click.option(
    "--bin-dir", default=DEFAULT_BIN_DIR, show_default=True, metavar="DIR", help=_BIN_DIR_HELP
)
@click.option(
    "--python",
    "python",
    default=None,
    metavar="PATH",
    help="Interpreter the launchers run (default: the one running cnitool).",
)
@click.option("--force", is_flag=True, help="Replace files that are not pycni launchers.")
@click.option(
    "--launcher",
    "kind",
    type=click.Choice(["auto", "native", "python"]),
    default="auto",
    show_default=True,
    help="native: a small C program (built here with musl-gcc, cc or gcc) forwards calls to the plugin "
    "service without starting Python; python: a Python script; auto: native when a C "
    "compiler is found.",
)
@output_option()
@debug_option()
def install(
    names: tuple[str, ...],
    bin_dir: str,
    python: str | None,
    force: bool,
    kind: str,
    output: str,
    debug: bool,
) -> None:
    """Write launchers for NAMES (default: every available plugin) into the bin dir.
    Exit status 1 when a launcher was refused."""
    from .. import launchers

    with reporting("plugins install", debug):
        kwargs: dict[str, Any] = {"force": force, "kind": kind}
        if python:
            kwargs["python"] = python
        count = len(names or launchers.PLUGINS) + 1
        with progress("installing", count) as step:
            actions = launchers.install(bin_dir, list(names) or None, step=step, **kwargs)
    rows: list[dict[str, str]] = [
        {
            "name": a.name,
            "path": a.path,
            "action": a.action,
            "detail": a.detail or (a.path if a.kind != "launcher" else ""),
            "kind": a.kind,
        }
        for a in actions
    ]
    if wants_json(output):
        write_json(rows)
    else:
        print_table(
            f"Launchers in {bin_dir}",
            ["plugin", "action", "detail"],
            [[r["name"], r["action"], r["detail"]] for r in rows],
        )
    refused = [a.name for a in actions if a.action == "refused"]
    if refused:
        click.echo(
            f"cnitool: plugins install: refused to overwrite {', '.join(refused)} "
            "(not pycni launchers; use --force)",
            err=True,
        )
        raise SystemExit(1)


@command.command("list", short_help="Show what a bin dir holds for each plugin name.")
@click.option(
    "--bin-dir", default=DEFAULT_BIN_DIR, show_default=True, metavar="DIR", help=_BIN_DIR_HELP
)
@click.option("--all", "show_all", is_flag=True, help="Also list names with no file.")
@output_option()
def list_(bin_dir: str, show_all: bool, output: str) -> None:
    """Show, for each known plugin name, whether the bin dir holds our launcher, a
    foreign file (such as a Go plugin) or nothing."""
    from .. import launchers

    rows: list[dict[str, Any]] = [
        {
            "name": s.name,
            "path": s.path,
            "state": s.state,
            "package": s.package,
            "interpreter": s.interpreter,
            "interpreterOk": s.interpreter_ok,
            "launcher": s.launcher,
        }
        for s in launchers.list_installed(bin_dir)
        if show_all or s.state != "missing"
    ]
    if wants_json(output):
        write_json(rows)
        return
    if not rows:
        click.echo(f"no plugins in {bin_dir}", err=True)
        return

    def state(r: dict[str, Any]) -> str:
        if r["state"] == "ours" and not r["interpreterOk"]:
            return "ours (interpreter missing!)"
        return str(r["state"])

    print_table(
        f"Plugins in {bin_dir}",
        ["plugin", "state", "launcher", "interpreter"],
        [[r["name"], state(r), r["launcher"], r["interpreter"]] for r in rows],
    )


@command.command("remove", short_help="Delete launchers from a bin dir.")
@click.argument("names", nargs=-1)
@click.option(
    "--bin-dir", default=DEFAULT_BIN_DIR, show_default=True, metavar="DIR", help=_BIN_DIR_HELP
)
@output_option()
@debug_option()
def remove(names: tuple[str, ...], bin_dir: str, output: str, debug: bool) -> None:
    """Delete our launchers for NAMES (default: all) from the bin dir; other files stay."""
    from .. import launchers

    with reporting("plugins remove", debug):
        actions = launchers.remove(bin_dir, list(names) or None)
    rows: list[dict[str, str]] = [
        {"name": a.name, "path": a.path, "action": a.action} for a in actions
    ]
    shown = [[r["name"], r["action"]] for r in rows if r["action"] != "missing"]
    if wants_json(output):
        write_json(rows)
    elif shown:
        print_table(f"Launchers in {bin_dir}", ["plugin", "action"], shown)
    else:
        click.echo(f"no plugins to remove in {bin_dir}", err=True)
