"""Helpers for the in-process plugin tests (bridge, ptp, loopback).

The whole pytest process already runs in a throwaway "node" namespace (tests/conftest.py);
pods are named namespaces from ``netns_factory``. Plugins run in-process through
``cnitool.skel.run``; IPAM delegation execs launchers installed into a temp bin dir.
Assertions read the kernel state over netlink (pyroute2) from a thread switched into
the namespace being inspected.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERSIONS = ("0.3.1", "0.4.0", "1.0.0", "1.1.0")


@dataclass
class Call:
    out: bytes
    code: int
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.out) if self.out else None


def plugin_by_name(name: str) -> Any:
    import importlib

    return importlib.import_module(f"cnitool_plugins.{name}.__main__").PLUGIN


@dataclass
class Runner:
    """Runs one plugin in-process with a CNI environment; remembers the last ADD result."""

    cni_path: str
    data_dir: str
    base_env: dict[str, str] = field(default_factory=dict)

    def env(
        self, command: str, *, cid: str, netns: str, ifname: str = "eth0", args: str = ""
    ) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.base_env)
        env.update(
            {
                "CNI_COMMAND": command,
                "CNI_CONTAINERID": cid,
                "CNI_NETNS": netns,
                "CNI_IFNAME": ifname,
                "CNI_ARGS": args,
                "CNI_PATH": self.cni_path,
            }
        )
        return env

    def run(
        self,
        plugin: str,
        command: str,
        conf: dict[str, Any] | bytes,
        *,
        cid: str = "",
        netns: str = "",
        ifname: str = "eth0",
        args: str = "",
        env_extra: dict[str, str] | None = None,
    ) -> Call:
        from cnitool import skel

        stdin = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
        env = self.env(command, cid=cid, netns=netns, ifname=ifname, args=args)
        if env_extra:
            env.update(env_extra)
        err = io.StringIO()
        out, code = skel.run(plugin_by_name(plugin), env, stdin, err)
        return Call(out, code, err.getvalue())


def cid() -> str:
    return "ctr-" + secrets.token_hex(6)


def host_local(subnet: str = "10.88.0.0/24", data_dir: str = "", **extra: Any) -> dict[str, Any]:
    ipam: dict[str, Any] = {"type": "host-local", "ranges": [[{"subnet": subnet}]]}
    if data_dir:
        ipam["dataDir"] = data_dir
    ipam.update(extra)
    return ipam


# -- kernel state, read over netlink ------------------------------------------------------
def in_ns(path: str | None, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(ipr, *args)`` with a pyroute2 IPRoute in netns ``path`` (None = node)."""
    from pyroute2 import IPRoute

    def work() -> Any:
        with IPRoute() as ipr:
            return fn(ipr, *args)

    return run_in(path or "/proc/thread-self/ns/net", work)


def run_in(path: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a worker thread switched into the netns at ``path``."""
    from cnitool_plugins._lib import netns

    with netns.NetNS(path) as ns:
        return ns.run(fn, *args)


def _protinfo(ipr: Any, index: int) -> dict[str, Any]:
    for m in ipr.brport("show", index=index):
        info = m.get("IFLA_PROTINFO")
        if info is not None:
            return dict(info["attrs"])
    return {}


def _link(ipr: Any, name: str) -> dict[str, Any] | None:
    idx = ipr.link_lookup(ifname=name)
    if not idx:
        return None
    msg = ipr.get_links(idx[0])[0]
    info = msg.get("IFLA_LINKINFO")
    return {
        "index": msg["index"],
        "name": name,
        "mac": msg.get("IFLA_ADDRESS"),
        "mtu": msg.get("IFLA_MTU"),
        "kind": info.get("IFLA_INFO_KIND") if info else None,
        "up": bool(msg["flags"] & 1),
        "promisc": bool(msg["flags"] & 0x100),
        "master": msg.get("IFLA_MASTER"),
        "oper": msg.get("IFLA_OPERSTATE"),
        "peer": msg.get("IFLA_LINK"),
        "protinfo": _protinfo(ipr, msg["index"]) if msg.get("IFLA_MASTER") else None,
    }


def link(path: str | None, name: str) -> dict[str, Any] | None:
    return in_ns(path, _link, name)


def links(path: str | None) -> list[str]:
    return in_ns(path, lambda ipr: [m.get("IFLA_IFNAME") for m in ipr.get_links()])


def addrs(path: str | None, name: str) -> list[str]:
    def f(ipr: Any) -> list[str]:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return []
        return [f"{m.get('IFA_ADDRESS')}/{m['prefixlen']}" for m in ipr.get_addr(index=idx[0])]

    return in_ns(path, f)


def routes(path: str | None, family: int = 2) -> list[dict[str, Any]]:
    def f(ipr: Any) -> list[dict[str, Any]]:
        out = []
        for m in ipr.get_routes(family=family, table=254):
            dst = m.get("RTA_DST")
            out.append(
                {
                    "dst": f"{dst or ('0.0.0.0' if family == 2 else '::')}/{m['dst_len']}",
                    "gw": m.get("RTA_GATEWAY"),
                    "oif": m.get("RTA_OIF"),
                    "src": m.get("RTA_PREFSRC"),
                    "scope": m["scope"],
                }
            )
        return out

    return in_ns(path, f)


def nat_rules() -> str:
    """The nat table of this (throwaway node) namespace, as iptables-save prints it."""
    import subprocess

    return subprocess.run(
        ["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True
    ).stdout


def delete_netns(path: str) -> None:
    """Delete the named netns at ``path`` (a pod going away before its DEL)."""
    import subprocess

    subprocess.run(["ip", "netns", "del", os.path.basename(path)], check=True)


def lease_files(data_dir: str, network: str) -> list[str]:
    d = Path(data_dir) / network
    if not d.is_dir():
        return []
    return sorted(
        p.name
        for p in d.iterdir()
        if p.name != "lock" and not p.name.startswith(("last_reserved_ip", "."))
    )


def tcp_echo(
    server_ns: str | None,
    server_ip: str,
    client_ns: str | None,
    payload: bytes = b"hello over cni",
    timeout: float = 10,
) -> bytes:
    """Listen in ``server_ns`` on ``server_ip``, connect from ``client_ns``, echo once.

    Both ends are namespaces the test made (or the throwaway node netns).
    """
    import errno
    import socket
    import threading
    import time

    family = socket.AF_INET6 if ":" in server_ip else socket.AF_INET
    ready = threading.Event()
    port: list[int] = []
    errors: list[BaseException] = []

    def serve() -> None:
        with socket.socket(family, socket.SOCK_STREAM) as srv:
            for _ in range(50):  # a fresh IPv6 address stays tentative until DAD ends
                try:
                    srv.bind((server_ip, 0))
                    break
                except OSError as exc:
                    if exc.errno != errno.EADDRNOTAVAIL:
                        raise
                    time.sleep(0.1)
            else:
                srv.bind((server_ip, 0))
            srv.listen(1)
            srv.settimeout(timeout)
            port.append(srv.getsockname()[1])
            ready.set()
            conn, _ = srv.accept()
            with conn:
                conn.sendall(conn.recv(1024))

    def server_thread() -> None:
        try:
            if server_ns is None:
                serve()
            else:
                run_in(server_ns, serve)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
            ready.set()

    t = threading.Thread(target=server_thread, daemon=True)
    t.start()
    assert ready.wait(10)
    if errors:
        raise errors[0]

    def client() -> bytes:
        with socket.create_connection((server_ip, port[0]), timeout=timeout) as s:
            s.sendall(payload)
            return s.recv(1024)

    data = client() if client_ns is None else run_in(client_ns, client)
    t.join(10)
    return data


def unique_net() -> tuple[str, str, str]:
    """(bridge name, /24 subnet, network name) unique within the run."""
    raw = secrets.token_bytes(2)
    return (f"cb{raw.hex()}", f"10.{100 + raw[0] % 100}.{raw[1]}.0/24", f"net{raw.hex()}")


# -- links on a master (macvlan, ipvlan, vlan) ---------------------------------------------
def ip_cmd(*args: str, ns: str | None = None) -> str:
    """``ip [-n <ns>] args...``; its stdout."""
    import subprocess

    cmd = ["ip"] + (["-n", os.path.basename(ns)] if ns else []) + list(args)
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def details(ns: str | None, name: str) -> dict[str, Any] | None:
    """``ip -d -j link show`` of ``name`` (kind, mode, VLAN ID, parent index, mtu ...)."""
    import subprocess

    try:
        out = ip_cmd("-d", "-j", "link", "show", "dev", name, ns=ns)
    except subprocess.CalledProcessError:
        return None
    (link,) = json.loads(out)
    info = link.get("linkinfo", {})
    data = info.get("info_data", {})
    return {
        "kind": info.get("info_kind"),
        "mode": data.get("mode"),
        "vlan_id": data.get("id"),
        "bcqueuelen": data.get("bcqueuelen"),
        # a parent in another netns is given by index, one in the same netns by name
        "parent": link.get("link_index")
        or (index_of(ns, link["link"]) if "link" in link else None),
        "mtu": link["mtu"],
        "mac": link["address"],
        "up": "UP" in link["flags"],
    }


def index_of(ns: str | None, name: str) -> int:
    return int(json.loads(ip_cmd("-j", "link", "show", "dev", name, ns=ns))[0]["ifindex"])


def sysctl_in(ns: str, key: str) -> str:
    def read() -> str:
        with open(f"/proc/sys/{key}") as fh:
            return fh.read().strip()

    return str(run_in(ns, read))


def go_plugin(
    plugin: str,
    command: str,
    conf: dict[str, Any],
    *,
    netns: str,
    cid: str,
    ifname: str = "eth0",
    args: str = "",
) -> tuple[int, Any]:
    """The reference ``plugin`` (and the Go IPAM plugins) for the same request: its exit
    status and its JSON answer."""
    import subprocess

    env = dict(os.environ)
    env.update(
        {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": args,
            "CNI_PATH": "/usr/lib/cni",
        }
    )
    proc = subprocess.run(
        [f"/usr/lib/cni/{plugin}"], input=json.dumps(conf).encode(), env=env, capture_output=True
    )
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None


def shape(result: dict[str, Any]) -> dict[str, Any]:
    """A result with the values that differ per attachment (MACs, addresses) blanked;
    the reference's empty ``"dns": {}`` is dropped as libcni does."""
    import copy

    res = copy.deepcopy(result)
    if res.get("dns") == {}:
        del res["dns"]
    for intf in res.get("interfaces", []):
        assert len(intf["mac"]) == 17 and intf["mac"] == intf["mac"].lower()
        intf["mac"] = "<mac>"
        intf["sandbox"] = "<netns>"
    for ipc in res.get("ips", []):
        ipc["address"] = "<addr>"
    return res


def route_set(ns: str) -> list[tuple[Any, ...]]:
    """The main-table routes of both families, without interface indexes."""
    return sorted(
        (r["dst"], r["gw"] or "", bool(r["src"]), r["scope"]) for r in routes(ns) + routes(ns, 10)
    )


def node_links() -> set[str]:
    return set(links(None))


def swap_with_go(
    runner: Runner,
    netns_factory: Callable[[], str],
    plugin: str,
    conf: dict[str, Any],
    link_keys: tuple[str, ...],
    go_conf: dict[str, Any] | None = None,
) -> None:
    """ADD with ours and with the Go ``plugin`` (``go_conf``, default ``conf``) in two
    pods: the same result shape, link details (``link_keys``) and routes; then each one's
    CHECK (from 0.4.0) accepts and each one's DEL removes the other's attachment, leaving
    neither link nor lease."""
    go_conf = conf if go_conf is None else go_conf
    ours_ns, go_ns, c1, c2 = netns_factory(), netns_factory(), cid(), cid()
    ours = runner.run(plugin, "ADD", conf, cid=c1, netns=ours_ns)
    code, go = go_plugin(plugin, "ADD", go_conf, netns=go_ns, cid=c2)
    assert ours.code == 0 and code == 0, (ours.out, go)
    assert shape(ours.json) == shape(go)
    mine, theirs = details(ours_ns, "eth0"), details(go_ns, "eth0")
    assert mine is not None and theirs is not None
    for key in link_keys:
        assert mine[key] == theirs[key], key
    assert route_set(ours_ns) == route_set(go_ns)
    if conf["cniVersion"] != "0.3.1":
        chk = runner.run(plugin, "CHECK", dict(go_conf, prevResult=go), cid=c2, netns=go_ns)
        assert chk.code == 0, chk.out
        code, err = go_plugin(
            plugin, "CHECK", dict(conf, prevResult=ours.json), netns=ours_ns, cid=c1
        )
        assert code == 0, err
    assert runner.run(plugin, "DEL", go_conf, cid=c2, netns=go_ns).code == 0
    assert go_plugin(plugin, "DEL", conf, netns=ours_ns, cid=c1)[0] == 0
    assert links(ours_ns) == ["lo"] and links(go_ns) == ["lo"]
    assert lease_files(runner.data_dir, conf["name"]) == []


def add_in_pod(
    run: Runner, plugin: str, conf: dict[str, Any], pod: str, container: str, gw: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """ADD with ``conf`` (host-local with a default route) in ``pod``; check what every
    link plugin shares: the result's interface, address and route, the link born in the
    pod (nothing new on the node), the route in the pod and one lease. The result, its
    one IP and the link's details."""
    before = node_links()
    add = run.run(plugin, "ADD", conf, cid=container, netns=pod)
    assert add.code == 0, add.out
    res = add.json
    assert res["cniVersion"] == conf["cniVersion"]
    d = details(pod, "eth0")
    assert d is not None
    assert res["interfaces"] == [{"name": "eth0", "mac": d["mac"], "sandbox": pod}]
    (ip,) = res["ips"]
    assert ip["interface"] == 0 and ip["gateway"] == gw
    assert res["routes"] == [{"dst": "0.0.0.0/0"}]
    assert ip["address"] in addrs(pod, "eth0")
    assert [r for r in routes(pod) if r["dst"] == "0.0.0.0/0" and r["gw"] == gw]
    assert node_links() == before  # born in the pod under a temporary name: nothing here
    assert len(lease_files(run.data_dir, conf["name"])) == 1
    return res, ip, d
