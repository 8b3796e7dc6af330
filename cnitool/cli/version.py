"""``cnitool version``: this tool's version and what each plugin in the bin dirs supports."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import click

from .. import __version__
from ..spec.version import CURRENT
from .options import bin_dirs_option, output_option, timeout_option
from .output import print_table, write_json
from .settings import split_bin_dirs, wants_json

if TYPE_CHECKING:
    from ..libcni.api import CNIConfig


def plugin_files(bin_dirs: list[str]) -> list[str]:
    """Executable regular files of the bin dirs; a name met again later is shadowed."""
    seen: set[str] = set()
    out: list[str] = []
    for directory in bin_dirs:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            if name in seen or not os.path.isfile(path) or not os.access(path, os.X_OK):
                continue
            seen.add(name)
            out.append(path)
    return out


def probe(cni: CNIConfig, path: str) -> dict[str, Any]:
    row: dict[str, Any] = {"plugin": os.path.basename(path), "path": path}
    try:
        info = cni.version_info_at(path)
    except Exception as err:  # noqa: BLE001 - one broken plugin must not hide the others
        row["error"] = str(err)
        return row
    row["cniVersion"] = info.cni_version
    row["supportedVersions"] = list(info.supported_versions)
    return row


@click.command("version", short_help="Show the tool version and the plugins' spec versions.")
@bin_dirs_option()
@timeout_option(10.0, "Time allowed for each plugin's VERSION answer.")
@output_option()
def command(bin_dirs: tuple[str, ...], timeout: float, output: str) -> None:
    """Print the cnitool version and the spec version it speaks, then ask every plugin
    in the bin dirs for its VERSION (supported spec versions)."""
    dirs = split_bin_dirs(bin_dirs, os.environ.get("CNI_PATH"))
    files = plugin_files(dirs)
    from ..libcni.api import CNIConfig

    cni = CNIConfig(dirs, timeout=timeout)
    with ThreadPoolExecutor(max_workers=4) as pool:
        rows = list(pool.map(lambda p: probe(cni, p), files))
    if wants_json(output):
        write_json(
            {"version": __version__, "cniVersion": CURRENT, "binDirs": dirs, "plugins": rows}
        )
        return
    click.echo(f"cnitool {__version__} (pycni), CNI spec {CURRENT}")
    if not rows:
        click.echo(f"no plugins in {':'.join(dirs)}", err=True)
        return
    columns = ["plugin", "cniVersion", "supported versions"]
    table = [
        [
            r["plugin"],
            r.get("cniVersion", ""),
            ", ".join(r.get("supportedVersions", [])) or f"error: {r.get('error', '')}",
        ]
        for r in rows
    ]
    if len(dirs) > 1:
        columns.append("path")
        for line, r in zip(table, rows, strict=True):
            line.append(r["path"])
    print_table(f"Plugins in {':'.join(dirs)}", columns, table)
