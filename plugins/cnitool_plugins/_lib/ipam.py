"""IPAM delegation and the request's ``prevResult``.

Delegation execs the plugin named by ``ipam.type`` from CNI_PATH with the whole stdin of
the calling plugin (prevResult included), as the reference plugins do (Go's
``pkg/ipam``). Key readers live in ``netconf``, the container interface in ``iface``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from cnitool.spec.errors import CNIError

from .steps import Rollback

if TYPE_CHECKING:
    from cnitool.skel import CmdArgs
    from cnitool.spec.results import Result


# -- delegation -------------------------------------------------------------------------
# The delegate's stderr goes to the calling plugin's own stderr stream (``cmd.stderr``),
# which is the process's stderr when exec'd and a caller-chosen stream when run in-process.
def _env(cmd: CmdArgs) -> dict[str, str]:
    return dict(cmd.env)


def exec_add(cmd: CmdArgs, plugin_type: str) -> Result:
    """IPAM ADD; the result converted to the 1.1.0 shape; at least one IP required."""
    from cnitool import invoke
    from cnitool.spec import results

    res = invoke.delegate_add(plugin_type, cmd.stdin_data, _env(cmd), cmd.stderr)
    with Rollback(cmd.stderr) as undo:
        # the IPAM plugin succeeded, so it may hold an allocation: give it back on failure
        undo.add(exec_del, cmd, plugin_type)
        if res is None:
            raise CNIError("IPAM plugin returned missing IP config")
        res = results.convert(res, "1.1.0")
        if not res.get("ips"):
            raise CNIError("IPAM plugin returned missing IP config")
    return res


def exec_del(cmd: CmdArgs, plugin_type: str) -> None:
    from cnitool import invoke

    invoke.delegate_del(plugin_type, cmd.stdin_data, _env(cmd), cmd.stderr)


def exec_check(cmd: CmdArgs, plugin_type: str) -> None:
    from cnitool import invoke

    invoke.delegate_check(plugin_type, cmd.stdin_data, _env(cmd), cmd.stderr)


def exec_status(cmd: CmdArgs, plugin_type: str) -> None:
    from cnitool import invoke

    invoke.delegate_status(plugin_type, cmd.stdin_data, _env(cmd), cmd.stderr)


def exec_gc(cmd: CmdArgs, plugin_type: str) -> None:
    from cnitool import invoke

    invoke.delegate_gc(plugin_type, cmd.stdin_data, _env(cmd), cmd.stderr)


def prev_result(conf: Mapping[str, Any]) -> Result | None:
    """``prevResult`` from the request (``netconf.prev_result``), converted to the 1.1.0
    shape the link plugins work on (None when absent)."""
    from cnitool.spec import results

    from .netconf import prev_result as read

    res = read(conf)
    return None if res is None else results.convert(res, "1.1.0")


def prev_cidrs(raw: Mapping[str, Any], ifname: str) -> list[str]:
    """The addresses ``prevResult`` gives ``ifname`` (for a DEL whose netns is gone)."""
    try:
        prev = prev_result(raw)
    except CNIError:
        # DEL is best effort and must not fail on a prevResult it cannot use: an
        # unreadable one only means there are no addresses to fall back on
        return []
    if not prev:
        return []
    ifaces = prev.get("interfaces") or []
    out = []
    for ipc in prev.get("ips") or []:
        idx = ipc.get("interface")
        if idx is None or (0 <= idx < len(ifaces) and ifaces[idx].get("name") == ifname):
            out.append(ipc["address"])
    return out


# -- STATUS and GC of a plugin that delegates IPAM ---------------------------------------
class _HasIpam(Protocol):
    @property
    def ipam_type(self) -> str: ...


def forwarded_verbs(
    load: Callable[[CmdArgs], _HasIpam],
) -> tuple[Callable[[CmdArgs], None], Callable[[CmdArgs], None]]:
    """STATUS and GC for a plugin whose own state needs nothing: the config is loaded
    (so its checks apply), then the verb goes to the IPAM plugin, if there is one. GC
    there releases the addresses of attachments that are not valid any more; the
    reference plugins have no GC at all."""

    def cmd_status(cmd: CmdArgs) -> None:
        ipam = load(cmd).ipam_type
        if ipam:
            exec_status(cmd, ipam)

    def cmd_gc(cmd: CmdArgs) -> None:
        ipam = load(cmd).ipam_type
        if ipam:
            exec_gc(cmd, ipam)

    return cmd_status, cmd_gc
