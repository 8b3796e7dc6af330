"""``cnitool networks``: every configuration file in the conf dir and what is wrong with it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from ..spec.errors import CNIError
from ..spec.names import validate_network_name
from ..spec.version import ALL
from .errors import reporting
from .options import bin_dirs_option, conf_dir_option, debug_option, output_option, timeout_option
from .output import print_table, write_json
from .settings import split_bin_dirs, wants_json

if TYPE_CHECKING:
    from ..invoke.exec import VersionInfo
    from ..libcni.api import CNIConfig
    from ..libcni.config import NetworkConfigList


def _entries(conf_dir: str) -> list[tuple[dict[str, Any], NetworkConfigList | None]]:
    """One dict per candidate file (with the parsed list), in the order libcni considers
    them; ``active`` marks the file ``cnitool add`` would load for that name."""
    from ..libcni.config import scan_dir

    rows: list[tuple[dict[str, Any], NetworkConfigList | None]] = []
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
        elif entry.blocked_by and net is not None:
            # libcni stops at the broken file before it reaches this one
            row["active"] = False
            row["problems"].append(
                f"unreachable: {os.path.basename(entry.blocked_by)} fails to load first"
            )
        if net is not None:
            try:
                validate_network_name(net.name)
            except CNIError as exc:  # add refuses such a name; say so here too
                row["problems"].append(str(exc))
        if net is not None and net.cni_version not in ALL:
            row["problems"].append(f'cniVersion "{net.cni_version}" is not a CNI spec version')
        if net is not None:
            dropins = sorted({p.source for p in net.plugins if p.source and p.source != entry.path})
            if dropins:
                row["dropIns"] = dropins
        rows.append((row, net))
    return rows


def _validate(
    nets: list[NetworkConfigList], bin_dirs: list[str], timeout: float
) -> list[tuple[list[str], list[str]]]:
    """libcni's ValidateNetworkList for each network: every plugin is found in the bin
    dirs and lists the network's cniVersion in its VERSION answer. Returns, per network,
    (enabled capabilities, problems); each plugin is asked once."""
    from ..libcni.api import CNIConfig, SubprocessExecutor
    from ..spec.errors import CNIError

    class OnceExecutor(SubprocessExecutor):
        def __init__(self) -> None:
            super().__init__(timeout=timeout)
            self.answers: dict[str, VersionInfo | CNIError] = {}

        def version_info(self, plugin_path: str, env: Any) -> VersionInfo:
            if plugin_path not in self.answers:
                try:
                    self.answers[plugin_path] = super().version_info(plugin_path, env)
                except CNIError as err:
                    self.answers[plugin_path] = err
            answer = self.answers[plugin_path]
            if isinstance(answer, CNIError):
                raise answer
            return answer

    from .output import progress

    cni = CNIConfig(bin_dirs, executor=OnceExecutor())
    out: list[tuple[list[str], list[str]]] = []
    with progress("validating", len(nets)) as step:
        for net in nets:
            step(net.name)
            out.append(_validate_one(cni, net))
    return out


def _validate_one(cni: CNIConfig, net: NetworkConfigList) -> tuple[list[str], list[str]]:
    from ..libcni.api import PluginErrors
    from ..spec.errors import CNIError

    caps = sorted({c for p in net.plugins for c, on in p.capabilities.items() if on})
    try:
        return cni.validate_network_list(net), []
    except PluginErrors as err:
        return caps, [str(e) for e in err.errors]
    except CNIError as err:
        return caps, [str(err)]


def _problems(row: dict[str, Any]) -> str:
    """Problems for the table: the file name is already in its own column."""
    prefix = row["file"] + ": "
    texts = [p[len(prefix) :] if p.startswith(prefix) else p for p in row["problems"]]
    return "; ".join(texts) or "ok"


@click.command("networks", short_help="List the network configurations in the conf dir.")
@conf_dir_option()
@output_option()
@click.option(
    "--validate",
    is_flag=True,
    help="Also ask every plugin of each network for its VERSION: a plugin that is "
    "missing or does not support the network's cniVersion is a problem.",
)
@bin_dirs_option("Plugin directories for --validate [env CNI_PATH, else /opt/cni/bin].")
@timeout_option(10.0, "Time allowed for each plugin's VERSION answer (--validate).")
@debug_option()
def command(
    conf_dir: str,
    output: str,
    validate: bool,
    bin_dirs: tuple[str, ...],
    timeout: float,
    debug: bool,
) -> None:
    """List every *.conflist, *.conf and *.json file of the conf dir: network name,
    cniVersion, plugin chain and problems (parse errors, a file shadowed by an earlier
    one with the same name). With --validate, each network's plugins are also checked
    against its cniVersion, as libcni's ValidateNetworkList does, and the JSON output
    gains the enabled capabilities.

    Exit status 1 when a file fails to load or a network that add would use has a
    problem; a shadowed file is listed with its problem but does not fail the command."""
    with reporting("networks", debug):
        if not os.path.isdir(conf_dir):
            from ..spec.errors import CNIError

            raise CNIError(f"the conf dir {conf_dir} does not exist (--cni-conf-dir, NETCONFPATH)")
        entries = _entries(conf_dir)
        rows = [row for row, _net in entries]
        if validate:
            checked = [(row, net) for row, net in entries if net is not None and row["active"]]
            dirs = split_bin_dirs(bin_dirs, os.environ.get("CNI_PATH"))
            answers = _validate([net for _row, net in checked], dirs, timeout)
            for (row, _net), (caps, problems) in zip(checked, answers, strict=True):
                row["capabilities"] = caps
                row["problems"].extend(problems)
    if wants_json(output):
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
