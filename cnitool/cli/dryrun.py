"""``--dry-run`` for add/check/del: what each plugin would be given, without running it.

For each plugin, in the order the verb runs them: the executable that would be run, the
CNI_* variables and the exact stdin bytes. ADD cannot know what earlier plugins would
return, so its requests carry no ``prevResult``; CHECK and DEL use the cached result as
the real run would (a note says when it cannot be read).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..spec import version as cniversion
from .output import console, plain, write_json

if TYPE_CHECKING:
    from ..libcni.api import CNIConfig
    from ..libcni.config import NetworkConfigList
    from ..libcni.runtime import RuntimeConf
    from .settings import Settings


def plan(
    cni: CNIConfig, net: NetworkConfigList, rt: RuntimeConf, verb: str
) -> list[dict[str, Any]]:
    from ..invoke import PluginExecError
    from ..spec.errors import CNIError

    prev = None
    cache_problem = ""
    if verb in ("CHECK", "DEL") and cniversion.gte(net.cni_version, "0.4.0"):
        try:
            prev = cni.get_cached_result(net, rt)
        except CNIError as err:  # CHECK would stop here, DEL go on without prevResult
            outcome = "CHECK would fail" if verb == "CHECK" else "DEL runs without prevResult"
            cache_problem = f"the cached result cannot be read ({outcome}): {err}"
    plugins = list(reversed(net.plugins)) if verb == "DEL" else list(net.plugins)
    steps: list[dict[str, Any]] = []
    for plugin in plugins:
        step: dict[str, Any] = {"plugin": plugin.type}
        try:
            step["path"] = cni.find_plugin(plugin, verb.lower())
        except PluginExecError as err:
            step["path"] = None
            step["error"] = err.reason
        step["env"] = cni.plugin_env(verb, rt, inherit=False)
        step["stdin"] = cni.build_request(net, plugin, rt, prev_result=prev, verb=verb).decode()
        if verb == "ADD" and steps:
            step["note"] = "prevResult: the result of the previous plugin"
        elif cache_problem:
            step["note"] = cache_problem
        steps.append(step)
    return steps


def show(steps: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        write_json(steps)
        return
    from rich.syntax import Syntax

    out = console()
    for i, step in enumerate(steps, 1):
        where = (
            plain(step["path"])
            if step["path"]
            else f"[red]not found: {plain(step.get('error', ''))}[/red]"
        )
        out.print(f"[bold]{i}. {plain(step['plugin'])}[/bold]  {where}")
        out.print(plain("   " + " ".join(f"{k}={v}" for k, v in step["env"].items())))
        out.print(
            Syntax(
                json.dumps(json.loads(step["stdin"]), indent=2), "json", background_color="default"
            )
        )
        if "note" in step:
            out.print(plain(f"   ({step['note']})"))


def show_plan(settings: Settings, net: NetworkConfigList, rt: RuntimeConf, verb: str) -> None:
    """``--dry-run``: print what each plugin of ``verb`` would get, run nothing."""
    show(plan(settings.cni_config(), net, rt, verb), settings.json_output())
