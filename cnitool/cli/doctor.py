"""``cnitool doctor [--fix]``: what is wrong with this node's CNI set-up, and the fix."""

from __future__ import annotations

import os
from typing import Any

import click

from .errors import reporting
from .options import (
    bin_dirs_option,
    cache_dir_option,
    conf_dir_option,
    debug_option,
    output_option,
    timeout_option,
)
from .output import progress, write_json
from .settings import split_bin_dirs, wants_json

DEFAULT_DATA_DIR = "/var/lib/cni/networks"
# what --fix repairs first: a DEL releases the attachment's leases and chains itself
FIRST = ("stale-attachment",)


def _repair(findings: list[Any], kinds: tuple[str, ...] | None) -> list[dict[str, Any]]:
    from .errors import describe_error

    actions = []
    todo = [f for f in findings if f.repair is not None and (kinds is None or f.kind in kinds)]
    with progress("repairing", len(todo)) as step:
        for f in todo:
            step(f.subject)
            try:
                done = f.repair()
            except Exception as exc:  # noqa: BLE001 - reported, and the other repairs go on
                actions.append(
                    {
                        "kind": f.kind,
                        "subject": f.subject,
                        "ok": False,
                        "action": describe_error(exc, "repair"),
                    }
                )
            else:
                ok = not done.startswith("left:")
                actions.append({"kind": f.kind, "subject": f.subject, "ok": ok, "action": done})
    return actions


def diagnose(node: Any) -> list[Any]:
    from .diagnose import CHECKS, SEVERITIES, run_checks

    with progress("checking", len(CHECKS)) as step:
        found = list(run_checks(node, step))
    return sorted(found, key=lambda f: (SEVERITIES.index(f.severity), f.kind, f.subject))


def _draw(findings: list[Any], actions: list[dict[str, Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    from .output import console

    out = console()
    colour = {"error": "bold red", "warning": "yellow", "info": "cyan"}
    if actions:
        table = Table(title="Repairs", title_justify="left", expand=False)
        table.add_column("", no_wrap=True)
        table.add_column("subject", overflow="fold")
        table.add_column("action", overflow="fold")
        for a in actions:
            mark = Text("ok", "green") if a["ok"] else Text("FAILED", "bold red")
            table.add_row(mark, Text(a["subject"]), Text(a["action"]))
        out.print(table)
    if not findings:
        out.print("[green]no problems found[/green]")
        return
    table = Table(title="Findings", title_justify="left", show_lines=True, expand=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("kind / subject", overflow="fold", ratio=2)
    table.add_column("problem, and the fix", overflow="fold", ratio=5)
    for f in findings:
        what = Text(f.kind + "\n", "bold")
        what.append(f.subject)
        text = Text(f.detail)
        if f.fix:
            text.append("\nfix: ", "dim")
            text.append(f.fix, "green")
        if f.repair is not None:
            text.append("\n(cnitool doctor --fix does this)", "dim")
        table.add_row(Text(f.severity, colour[f.severity]), what, text)
    out.print(table)
    bad = sum(1 for f in findings if f.severity != "info")
    out.print(f"{bad} problem(s), {len(findings) - bad} note(s)")


@click.command("doctor", short_help="Check this node's CNI set-up; --fix repairs what it can.")
@conf_dir_option()
@bin_dirs_option()
@cache_dir_option("Result cache directory (results/ lives below it).")
@click.option(
    "--data-dir",
    default=DEFAULT_DATA_DIR,
    show_default=True,
    metavar="DIR",
    help="host-local's default dataDir (networks naming their own are read there too).",
)
@click.option(
    "--socket",
    "socket_path",
    default="/run/pycni/plugins.sock",
    show_default=True,
    envvar="PYCNI_SOCKET",
    metavar="PATH",
    help="Socket of the plugin service [env PYCNI_SOCKET].",
)
@timeout_option(10.0, "Time allowed for each plugin's VERSION answer and DEL.")
@click.option(
    "--min-age",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="A leaked lease younger than this (and its owner's chains) may be an ADD still "
    "running: reported, never repaired.",
)
@click.option(
    "--fix",
    is_flag=True,
    help="Repair what is proven safe: DEL stale attachments from their cached config, "
    "release leaked leases, remove orphan chains. Each action is reported.",
)
@output_option()
@debug_option()
def command(
    conf_dir: str,
    bin_dirs: tuple[str, ...],
    cache_dir: str,
    data_dir: str,
    socket_path: str,
    timeout: float,
    min_age: float,
    fix: bool,
    output: str,
    debug: bool,
) -> None:
    """Check the node and list each problem with its severity, the thing concerned and
    the exact command that fixes it.

    \b
    Checked: the conf dir (parse errors, shadowed files), each network's plugins (in
    the bin dirs, supporting its cniVersion; pycni and Go plugins mixed in a chain is
    a note), launchers whose interpreter is gone, ip_forward and br_netfilter where a
    network needs them, the plugin service (up, down, stale socket), cached attachments
    whose netns is gone, leases no cached attachment owns, CNI chains no cached
    attachment owns or that sit in the iptables backend the node does not use, and
    veths on a CNI bridge that no cached attachment lists.

    With --fix, stale attachments get a DEL from their cached config; then leaked leases
    are released and orphan chains removed, each re-checked under its lock. A lease
    younger than --min-age, and the chains of its owner, are left: an ADD still running
    writes them before its result is cached. Nothing it
    cannot prove orphaned is touched (a chain whose name is not the hash of the
    attachment its comments name, other tools' rules, links, sysctls). The node is then
    checked again and what is left is listed.

    Output: a table on a terminal, JSON otherwise ({"findings": [...], "actions":
    [...]}, each finding with kind, severity, subject, detail, fix, autoFix). Exit
    status 0 when nothing but notes (severity info) is left, 1 otherwise.
    """
    from .diagnose import Node

    node = Node(
        conf_dir=conf_dir,
        bin_dirs=split_bin_dirs(bin_dirs, os.environ.get("CNI_PATH")),
        cache_dir=cache_dir,
        data_dir=data_dir,
        socket=socket_path,
        timeout=timeout,
        min_age=min_age,
    )
    actions: list[dict[str, Any]] = []
    with reporting("doctor", debug):
        findings = diagnose(node)
        if fix:
            actions = _repair(findings, FIRST)
            if actions:
                findings = diagnose(node)
            actions += _repair(findings, None)
            findings = diagnose(node)
    if wants_json(output):
        write_json({"findings": [f.record() for f in findings], "actions": actions})
    else:
        _draw(findings, actions)
    if any(f.severity != "info" for f in findings) or not all(a["ok"] for a in actions):
        raise SystemExit(1)
