"""The checks of ``cnitool doctor``: each reads one part of the node and returns findings.

A :class:`Finding` names what is wrong (``kind``, ``severity``, ``subject``, ``detail``)
and the command that fixes it (``fix``). Those ``doctor --fix`` may repair itself carry a
``repair`` callable; only findings whose cause is proven get one:

- a stale attachment: cached, and its netns is gone (DEL from the cached config);
- a leaked lease: no cached attachment of its network and container, and older than
  ``min_age`` (an ADD in flight writes its lease before its result is cached); released
  under host-local's lock, only while it still names that container;
- an orphan chain: its rules' comments name a network and container, the chain's name is
  the hash of exactly that pair, no cached attachment of the pair exists, and the pair
  holds no lease younger than ``min_age``.

Everything else (other tools' rules, unattributed chains, veths, sysctls, launchers) is
reported with its command and left to the operator. The checks read nothing but files,
netlink and ``iptables-save``; legacy tables are read only where the kernel lists them.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..libcni.api import CNIConfig
    from ..libcni.cache import CachedAttachment
    from ..libcni.config import NetworkConfigList

SEVERITIES = ("error", "warning", "info")
# plugin types whose networks route through the node (ip_forward must be on)
ROUTING = ("ptp", "flannel")
# present once br_netfilter is loaded (probed by reading: doctor never loads modules)
BRIDGE_SYSCTLS = "/proc/sys/net/bridge"


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: str  # error | warning | info
    subject: str
    detail: str
    fix: str = ""  # the command that repairs it ("" when there is none to run)
    repair: Callable[[], str] | None = field(default=None, compare=False, repr=False)

    def record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "subject": self.subject,
            "detail": self.detail,
            "fix": self.fix,
            "autoFix": self.repair is not None,
        }


@dataclass
class Node:
    """Where the node keeps its CNI state (the doctor's options)."""

    conf_dir: str
    bin_dirs: list[str]
    cache_dir: str
    data_dir: str
    socket: str
    timeout: float
    # leases younger than this may belong to an ADD still running (its result is cached
    # only at the end): reported, never released, nor their owner's chains removed
    min_age: float = 60.0
    _attachments: list[CachedAttachment] | None = None
    _networks: list[NetworkConfigList] | None = None
    # (network, container ID) pairs holding a lease younger than min_age (check_leases)
    young: set[tuple[str, str]] = field(default_factory=set)

    def cni(self) -> CNIConfig:
        from ..libcni.api import CNIConfig

        return CNIConfig(self.bin_dirs, self.cache_dir, timeout=self.timeout)

    def attachments(self, fresh: bool = False) -> list[CachedAttachment]:
        from ..libcni.cache import ResultCache

        if self._attachments is None or fresh:
            self._attachments = ResultCache(self.cache_dir).attachments()
        return self._attachments

    def networks(self) -> list[NetworkConfigList]:
        """The networks ``cnitool add`` would load from the conf dir."""
        from .networks import _entries

        if self._networks is None:
            if not os.path.isdir(self.conf_dir):
                self._networks = []
            else:
                self._networks = [
                    net for row, net in _entries(self.conf_dir) if net is not None and row["active"]
                ]
        return self._networks

    def refresh(self) -> None:
        """Read the cache and the conf dir again (after repairs)."""
        self._attachments = None
        self._networks = None
        self.young = set()


def sh(*argv: str) -> str:
    return shlex.join(argv)


# -- configurations and plugins ------------------------------------------------------------


def check_configs(node: Node) -> list[Finding]:
    """Parse errors, shadowed or unreachable files, invalid names (what ``networks`` lists)."""
    from .networks import _entries

    if not os.path.isdir(node.conf_dir):
        return [
            Finding(
                "conf-dir-missing",
                "error",
                node.conf_dir,
                "the conf dir does not exist: no network can be attached",
                sh("mkdir", "-p", node.conf_dir),
            )
        ]
    out = []
    for row, net in _entries(node.conf_dir):
        path = row["file"]
        for problem in row["problems"]:
            text = problem[len(path) + 2 :] if problem.startswith(path + ": ") else problem
            if problem.startswith("shadowed by"):
                kind, severity = "config-shadowed", "warning"
                text += f": {row['name']} is loaded from there, never from this file"
                fix = sh("mv", path, path + ".disabled")
            elif problem.startswith("unreachable"):
                kind, severity, fix = "config-unreachable", "error", ""
            elif net is None:
                kind, severity = "config-invalid", "error"
                fix = f"${{EDITOR:-vi}} {shlex.quote(path)}"
            else:
                kind, severity = "config-invalid", "error"
                fix = f"${{EDITOR:-vi}} {shlex.quote(path)}"
            out.append(Finding(kind, severity, path, text, fix))
    return out


def _plugin_origin(path: str) -> str:
    from .. import launchers

    return "pycni" if launchers.is_ours(path) else "other"


def check_plugins(node: Node) -> list[Finding]:
    """Per active network: each plugin is in a bin dir and supports the cniVersion;
    chains mixing pycni launchers and other (Go) binaries are noted."""
    from .. import launchers
    from ..invoke import PluginExecError
    from ..spec import version as cniversion
    from ..spec.errors import CNIError

    cni = node.cni()
    answers: dict[str, Any] = {}
    out: list[Finding] = []
    dirs = ":".join(node.bin_dirs)
    for net in node.networks():
        where = net.path or net.name
        origins: dict[str, str] = {}
        for plugin in net.plugins:
            try:
                path = cni.find_plugin(plugin, "VERSION")
            except CNIError:
                known = plugin.type in launchers.PLUGINS
                fix = (
                    sh("cnitool", "plugins", "install", "--bin-dir", node.bin_dirs[0], plugin.type)
                    if known
                    else f"install the {plugin.type} plugin into {node.bin_dirs[0]}"
                )
                out.append(
                    Finding(
                        "plugin-missing",
                        "error",
                        f"{net.name}: {plugin.type}",
                        f"no {plugin.type} in the bin dirs ({dirs}); {where} needs it",
                        fix,
                    )
                )
                continue
            origins[plugin.type] = _plugin_origin(path)
            if path not in answers:
                try:
                    answers[path] = cni.version_info_at(path)
                except (CNIError, PluginExecError) as exc:
                    answers[path] = exc
            answer = answers[path]
            if isinstance(answer, Exception):
                if _dead_launcher(path):
                    continue  # reported once, by check_launchers
                out.append(
                    Finding(
                        "plugin-broken",
                        "error",
                        f"{net.name}: {plugin.type}",
                        f"{path} does not answer VERSION: {answer}",
                        sh(path) + " </dev/null  # with CNI_COMMAND=VERSION, to see why",
                    )
                )
                continue
            try:
                wanted = cniversion.normalize(net.cni_version)
            except CNIError:
                continue  # an invalid cniVersion is a config problem, reported there
            if wanted not in answer.supported_versions:
                out.append(
                    Finding(
                        "cni-version",
                        "error",
                        f"{net.name}: {plugin.type}",
                        f'{path} does not support cniVersion "{net.cni_version}" of {where} '
                        f"(it supports {', '.join(answer.supported_versions)})",
                        f"${{EDITOR:-vi}} {shlex.quote(where)}  # a cniVersion it supports",
                    )
                )
        kinds = set(origins.values())
        if len(kinds) > 1:
            listed = ", ".join(
                f"{t} ({'pycni' if o == 'pycni' else 'Go/other'})" for t, o in origins.items()
            )
            out.append(
                Finding(
                    "mixed-chain",
                    "info",
                    net.name,
                    f"the chain mixes pycni launchers and other plugins: {listed}",
                )
            )
    return out


def _dead_launcher(path: str) -> bool:
    from .. import launchers

    for status in launchers.list_installed(os.path.dirname(path)):
        if status.path == path and status.state == "ours":
            return not status.interpreter_ok
    return False


def check_launchers(node: Node) -> list[Finding]:
    """Our launchers whose interpreter is gone (a removed venv or Python)."""
    from .. import launchers

    out = []
    for directory in node.bin_dirs:
        if not os.path.isdir(directory):
            continue
        for status in launchers.list_installed(directory):
            if status.state == "ours" and not status.interpreter_ok:
                out.append(
                    Finding(
                        "launcher-interpreter",
                        "error",
                        status.path,
                        f"the launcher's interpreter {status.interpreter} is gone: "
                        f"every call of {status.name} fails",
                        sh("cnitool", "plugins", "install", "--bin-dir", directory, status.name),
                    )
                )
    return out


# -- kernel settings -----------------------------------------------------------------------


def _sysctl(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _plugins(net: NetworkConfigList) -> list[dict[str, Any]]:
    try:
        raw = json.loads(net.raw_bytes)
    except ValueError:
        return []
    plugins = raw.get("plugins") if isinstance(raw, dict) else None
    if isinstance(plugins, list):
        return [p for p in plugins if isinstance(p, dict)]
    return [raw] if isinstance(raw, dict) else []


def _routes_through_node(plugin: dict[str, Any]) -> bool:
    kind = plugin.get("type")
    if kind in ROUTING:
        return True
    return kind == "bridge" and bool(plugin.get("isGateway") or plugin.get("ipMasq"))


def _has_v6(plugin: dict[str, Any]) -> bool:
    return ":" in json.dumps(plugin.get("ipam", {}).get("ranges", "")) or ":" in str(
        plugin.get("ipam", {}).get("subnet", "")
    )


def check_sysctls(node: Node) -> list[Finding]:
    """ip_forward for networks that route through the node; br_netfilter and
    bridge-nf-call-iptables where portmap works on a bridge."""
    needs: dict[str, list[str]] = {}  # sysctl path -> networks
    bridged_portmap: list[str] = []
    for net in node.networks():
        plugins = _plugins(net)
        types = {p.get("type") for p in plugins}
        for plugin in plugins:
            if _routes_through_node(plugin):
                needs.setdefault("/proc/sys/net/ipv4/ip_forward", []).append(net.name)
                if _has_v6(plugin):
                    needs.setdefault("/proc/sys/net/ipv6/conf/all/forwarding", []).append(net.name)
        if "portmap" in types and types & {"bridge", "flannel"}:
            bridged_portmap.append(net.name)
    out = []
    for path, nets in sorted(needs.items()):
        if _sysctl(path) == "0":
            key = path[len("/proc/sys/") :].replace("/", ".")
            out.append(
                Finding(
                    "ip-forward",
                    "warning",
                    key,
                    f"forwarding is off; {', '.join(sorted(set(nets)))} route pod traffic "
                    "through this node",
                    sh("sysctl", "-w", f"{key}=1"),
                )
            )
    if bridged_portmap:
        names = ", ".join(sorted(set(bridged_portmap)))
        if not os.path.isdir(BRIDGE_SYSCTLS):
            out.append(
                Finding(
                    "br-netfilter",
                    "warning",
                    "br_netfilter",
                    f"the module is not loaded: on {names}, traffic from a pod to a host port "
                    "on the same bridge skips portmap's rules",
                    sh("modprobe", "br_netfilter"),
                )
            )
        elif _sysctl(f"{BRIDGE_SYSCTLS}/bridge-nf-call-iptables") == "0":
            out.append(
                Finding(
                    "br-netfilter",
                    "warning",
                    "net.bridge.bridge-nf-call-iptables",
                    f"bridged traffic skips iptables: on {names}, traffic from a pod to a host "
                    "port on the same bridge skips portmap's rules",
                    sh("sysctl", "-w", "net.bridge.bridge-nf-call-iptables=1"),
                )
            )
    return out


# -- the plugin service --------------------------------------------------------------------


def check_service(node: Node) -> list[Finding]:
    from ..warm import service

    path = node.socket
    try:
        info = service.query_status(path, timeout=2.0)
    except (OSError, ValueError) as exc:
        try:
            st = os.lstat(path)
        except OSError:
            return [
                Finding(
                    "service",
                    "info",
                    path,
                    "the plugin service is not running: the launchers run plugins cold",
                    sh("cnitool", "serve", "--socket", path)
                    + "  # or: systemctl start pycni-plugins.socket",
                )
            ]
        what = "socket" if stat.S_ISSOCK(st.st_mode) else "file that is not a socket"
        return [
            Finding(
                "service",
                "warning",
                path,
                f"a stale {what}: nothing answers there ({exc or type(exc).__name__}); "
                "each launcher call tries it before running cold",
                sh("rm", "-f", path) + "  # then start the service again",
            )
        ]
    return [
        Finding(
            "service",
            "info",
            path,
            f"the plugin service is up (pid {info.get('pid')}, version {info.get('version')}, "
            f"{info.get('requests')} calls served)",
        )
    ]


# -- attachments, leases, chains, links ----------------------------------------------------


def check_attachments(node: Node) -> list[Finding]:
    """Cached attachments whose netns is gone."""
    from .gc import stale_netns

    out = []
    for att in node.attachments():
        if not stale_netns(att.netns):
            continue
        known = any(net.name == att.network for net in node.networks())
        fix = (
            sh("cnitool", "gc", att.network, "--stale", "--cache-dir", node.cache_dir)
            if known
            else sh("cnitool", "doctor", "--fix", "--cache-dir", node.cache_dir)
        )
        out.append(
            Finding(
                "stale-attachment",
                "warning",
                f"{att.network} {att.container_id} {att.ifname}",
                f"cached, but its netns {att.netns or '(none)'} is gone: its leases, "
                "chains and host links stay until a DEL",
                fix,
                repair=_del_repair(node, att),
            )
        )
    return out


def _del_repair(node: Node, att: CachedAttachment) -> Callable[[], str]:
    def repair() -> str:
        from ..libcni.config import conf_list_from_bytes
        from ..libcni.runtime import RuntimeConf

        net = conf_list_from_bytes(att.config, att.path)
        rt = RuntimeConf(
            container_id=att.container_id,
            netns=att.netns,
            ifname=att.ifname,
            args=list(att.cni_args),
            capability_args=dict(att.capability_args),
        )
        node.cni().del_network_list(net, rt)
        return f"ran DEL from the cached config of {att.path}"

    return repair


def check_leases(node: Node) -> list[Finding]:
    """Lease files no cached attachment of their network and container accounts for."""
    from cnitool_plugins import inspect

    from .leases import _networks

    owners = {(a.network, a.container_id) for a in node.attachments()}
    out = []
    for network, directory in _networks(node.data_dir, node.conf_dir, None):
        for lease in inspect.leases(directory):
            if (network, lease.container_id) in owners:
                continue
            content = lease.container_id + (f"\r\n{lease.ifname}" if lease.ifname else "")
            path = os.path.join(directory, lease.ip)
            held = f"{lease.container_id} {lease.ifname}".strip()
            detail = f"{path} holds the address for {held}, which has no cached attachment"
            repair: Callable[[], str] | None = _lease_repair(
                network, os.path.dirname(directory), lease.ip, content
            )
            if _young(path, node.min_age):
                node.young.add((network, lease.container_id))
                detail += (
                    f" (written less than {node.min_age:g} s ago: an ADD may still be running; "
                    "left alone until it is older)"
                )
                repair = None
            out.append(
                Finding(
                    "leaked-lease",
                    "warning",
                    f"{network} {lease.ip}",
                    detail,
                    sh("rm", path),
                    repair,
                )
            )
    return out


def _young(path: str, min_age: float) -> bool:
    try:
        return time.time() - os.lstat(path).st_mtime < min_age
    except OSError:
        return False


def _lease_repair(network: str, data_dir: str, ip: str, content: str) -> Callable[[], str]:
    def repair() -> str:
        from cnitool_plugins import inspect

        if inspect.release_lease(network, data_dir, ip, content):
            return f"released {os.path.join(data_dir, network, ip)}"
        return "left: the lease changed hands or went away meanwhile"

    return repair


def _iptables(family: int, backend: str) -> str:
    return f"{'iptables' if family == 4 else 'ip6tables'}-{backend}"


def _chain_fix(chain: dict[str, Any]) -> str:
    tool = _iptables(chain["family"], chain["backend"])
    steps = [f"{tool} -t nat " + jump["rule"].replace("-A ", "-D ", 1) for jump in chain["jumps"]]
    steps += [
        sh(tool, "-t", "nat", "-F", chain["chain"]),
        sh(tool, "-t", "nat", "-X", chain["chain"]),
    ]
    return " && ".join(steps)


def check_chains(node: Node) -> list[Finding]:
    """CNI chains no cached attachment owns, and chains in the backend the node does not
    use (the Go plugins and ours write where the host's iptables writes)."""
    from cnitool_plugins import inspect

    from .chains import HASHED_RE, collect, read_snapshots

    report = collect(read_snapshots())
    owners = {(a.network, a.container_id) for a in node.attachments()}
    used = {fam: inspect.host_backend(fam) for fam in {s["family"] for s in report["sources"]}}
    out = []
    for net in report["networks"]:
        for cont in net["containers"]:
            cid = cont["containerID"]
            for chain in cont["chains"]:
                where = f"ipv{chain['family']}/{chain['backend']}"
                subject = f"{chain['chain']} ({where})"
                if (net["network"], cid) not in owners:
                    proven = chain["hashVerified"]
                    detail = f"{chain['kind']} chain of {net['network']} {cid}, which has no cached attachment"
                    if not proven:
                        detail += " (its name is not that pair's hash: left alone)"
                    elif (net["network"], cid) in node.young:
                        proven = False
                        detail += " (it holds a lease written moments ago: left alone for now)"
                    out.append(
                        Finding(
                            "orphan-chain",
                            "warning",
                            subject,
                            detail,
                            _chain_fix(chain),
                            repair=_chain_repair(chain) if proven else None,
                        )
                    )
                elif used.get(chain["family"]) and chain["backend"] != used[chain["family"]]:
                    out.append(
                        Finding(
                            "iptables-backend",
                            "warning",
                            subject,
                            f"{net['network']} {cid} has rules in {chain['backend']} tables, but "
                            f"this node's iptables uses {used[chain['family']]}: other tools "
                            "never see them",
                            f"cnitool del {shlex.quote(net['network'])} NETNS --container-id "
                            f"{shlex.quote(cid)} && cnitool add ... (re-attach to rewrite them)",
                        )
                    )
    for chain in report["orphans"]:
        if not HASHED_RE.match(chain["chain"]):
            continue  # not a per-container chain of the CNI plugins
        out.append(
            Finding(
                "orphan-chain",
                "warning",
                f"{chain['chain']} (ipv{chain['family']}/{chain['backend']})",
                "no rule comment names the attachment that made it: left alone",
                _chain_fix(chain),
            )
        )
    return out


def _chain_repair(chain: dict[str, Any]) -> Callable[[], str]:
    def repair() -> str:
        from cnitool_plugins import inspect

        gone = inspect.remove_chains(chain["family"], chain["backend"], [chain["chain"]])
        where = f"ipv{chain['family']}/{chain['backend']}"
        if gone:
            return f"removed {chain['chain']} and the rules jumping to it ({where})"
        return f"left: {chain['chain']} was already gone ({where})"

    return repair


def _bridges(node: Node) -> set[str]:
    names = set()
    docs = [_plugins(net) for net in node.networks()]
    for att in node.attachments():
        try:
            raw = json.loads(att.config)
        except ValueError:
            continue
        plugins = raw.get("plugins") if isinstance(raw, dict) else None
        docs.append(
            [p for p in plugins if isinstance(p, dict)] if isinstance(plugins, list) else []
        )
    for plugins in docs:
        for p in plugins:
            if p.get("type") == "bridge":
                names.add(str(p.get("bridge") or "cni0"))
            elif p.get("type") == "flannel":
                delegate = p.get("delegate")
                bridge = delegate.get("bridge") if isinstance(delegate, dict) else None
                names.add(str(bridge or "cni0"))
    return names


def _host_interfaces(node: Node) -> set[str]:
    found = set()
    for att in node.attachments():
        for iface in (att.result or {}).get("interfaces") or []:
            if isinstance(iface, dict) and not iface.get("sandbox"):
                found.add(str(iface.get("name", "")))
    return found


def check_links(node: Node) -> list[Finding]:
    """veths on a CNI bridge that no cached result lists as an attachment's host side."""
    from cnitool_plugins import inspect

    bridges = _bridges(node)
    if not bridges:
        return []
    owned = _host_interfaces(node)
    out = []
    for link in inspect.netns_view().links:
        if link.kind != "veth" or link.master not in bridges or link.name in owned:
            continue
        out.append(
            Finding(
                "orphan-veth",
                "warning",
                link.name,
                f"a veth on bridge {link.master} that no cached attachment lists: its peer "
                "belongs to no known pod (left alone: another tool may own it)",
                sh("ip", "link", "delete", link.name),
            )
        )
    return out


CHECKS: list[tuple[str, Callable[[Node], list[Finding]]]] = [
    ("configurations", check_configs),
    ("plugins", check_plugins),
    ("launchers", check_launchers),
    ("kernel settings", check_sysctls),
    ("plugin service", check_service),
    ("attachments", check_attachments),
    ("leases", check_leases),
    ("iptables chains", check_chains),
    ("bridge ports", check_links),
]


def run_checks(node: Node, step: Callable[[str], None] | None = None) -> Iterator[Finding]:
    """Every check in order; ``step`` is told each check's name before it runs. A check
    that fails is itself a finding, and the others still run."""
    from ..spec.errors import CNIError

    node.refresh()
    for name, check in CHECKS:
        if step is not None:
            step(name)
        try:
            found = check(node)
        except (CNIError, OSError) as exc:
            found = [Finding("check-failed", "error", name, f"the check could not run: {exc}")]
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            detail = f"the check could not run: {type(exc).__name__}: {exc}"
            found = [Finding("check-failed", "error", name, detail)]
        yield from found
