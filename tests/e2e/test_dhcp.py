"""dhcp: our plugin and daemon against dnsmasq, behind our bridge, our macvlan and the Go
bridge; leases checked in dnsmasq's lease file (see dhcp_lab.py for the topology)."""

from __future__ import annotations

import ipaddress
import json
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dhcp_lab import T1, Daemon, Server, ip, run_plugin

from cnitool import launchers

pytestmark = pytest.mark.root

NET = "dhcpnet"
VERSIONS = ("0.3.1", "0.4.0", "1.0.0", "1.1.0")


def _cid() -> str:
    return "c" + secrets.token_hex(8)


class Lab:
    def __init__(self, tmp: Path, bin_dir: Path, server: Server, daemon: Daemon) -> None:
        self.tmp, self.bin, self.server, self.daemon = tmp, bin_dir, server, daemon
        self.cni_path = f"{bin_dir}:/usr/lib/cni"

    def ipam(self, **extra: Any) -> dict[str, Any]:
        return {"type": "dhcp", "daemonSocketPath": str(self.daemon.socket), **extra}

    def bridge_conf(self, version: str = "1.0.0", **ipam: Any) -> dict[str, Any]:
        return {
            "cniVersion": version,
            "name": NET,
            "type": "bridge",
            "bridge": "dhcpbr0",
            "ipam": self.ipam(**ipam),
        }

    def run(
        self, plugin: str, cmd: str, conf: dict[str, Any], cid: str, netns: str, **kw: Any
    ) -> tuple[int, Any, str]:
        return run_plugin(plugin, cmd, conf, cid=cid, netns=netns, cni_path=self.cni_path, **kw)

    def ok(
        self, plugin: str, cmd: str, conf: dict[str, Any], cid: str, netns: str, **kw: Any
    ) -> Any:
        code, out, err = self.run(plugin, cmd, conf, cid, netns, **kw)
        assert code == 0, (plugin, cmd, out, err, self.daemon.text()[-3000:])
        return out


def _have_dnsmasq() -> None:
    if shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq not installed (apt-get install dnsmasq-base)")


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    d = tmp_path / "bin"
    launchers.install(str(d), ["bridge", "macvlan", "dhcp"], compile_bytecode=False)
    return d


@pytest.fixture
def make_lab(
    tmp_path: Path, bin_dir: Path, netns_factory: Callable[[], str]
) -> Iterator[Callable[..., Lab]]:
    """A server netns with dnsmasq on 10.77.0.1/24, reached from the node's bridge
    ``dhcpbr0`` (``topology="bridge"``) or from the macvlan master ``dmaster0``
    (``"macvlan"``), and our daemon; all stopped and removed afterwards."""
    _have_dnsmasq()
    started: list[tuple[Server, Daemon]] = []
    links: list[str] = []

    def make(topology: str = "bridge", daemon_flags: tuple[str, ...] = ()) -> Lab:
        srv_ns = netns_factory()
        node_end = "dmaster0" if topology == "macvlan" else "dsrvh0"
        ip("link", "add", node_end, "type", "veth", "peer", "name", "dsrv0", "netns", srv_ns)
        links.append(node_end)
        ip("addr", "add", "10.77.0.1/24", "dev", "dsrv0", ns=srv_ns)
        ip("link", "set", "dsrv0", "up", ns=srv_ns)
        node_if = node_end
        if topology == "bridge":
            node_if = "dhcpbr0"
            ip("link", "add", "dhcpbr0", "type", "bridge")
            links.append("dhcpbr0")
            ip("link", "set", node_end, "master", "dhcpbr0")
        # the node's own address on the server's network (the route a DHCPRELEASE takes
        # once the bridge or macvlan plugin has removed the pod's interface)
        ip("addr", "add", "10.77.0.254/24", "dev", node_if)
        ip("link", "set", node_if, "up")
        ip("link", "set", node_end, "up")
        server = Server(tmp_path, srv_ns, "dsrv0", "10.77.0", [])
        server.start()
        daemon = Daemon(bin_dir / "dhcp", tmp_path, "-timeout", "2s", *daemon_flags)
        daemon.start()
        started.append((server, daemon))
        return Lab(tmp_path, bin_dir, server, daemon)

    yield make
    for server, daemon in started:
        daemon.stop()
        server.stop()
    for name in links:
        ip("link", "del", name, check=False)


def _in_ns_addrs(netns: str, ifname: str = "eth0") -> list[str]:
    out = json.loads(ip("-j", "-4", "addr", "show", "dev", ifname, ns=netns) or "[]")
    return [f"{a['local']}/{a['prefixlen']}" for link in out for a in link.get("addr_info", [])]


def _link_up(netns: str, ifname: str = "eth0") -> bool:
    (link,) = json.loads(ip("-j", "link", "show", "dev", ifname, ns=netns))
    return "UP" in link["flags"]


# -- ADD, CHECK, renewal, DEL: our bridge ------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_bridge_add_check_renew_del(
    make_lab: Callable[..., Lab], netns_factory: Callable[[], str], version: str
) -> None:
    lab = make_lab()
    pod, cid = netns_factory(), _cid()
    client_id = f"{cid}/{NET}/eth0"
    conf = lab.bridge_conf(version)

    result = lab.ok("bridge", "ADD", conf, cid, pod)
    addr = result["ips"][0]["address"]
    assert ipaddress.ip_interface(addr).network == ipaddress.ip_network("10.77.0.0/24")
    assert result["ips"][0]["gateway"] == "10.77.0.1"
    assert {"dst": "0.0.0.0/0", "gw": "10.77.0.1"} in result["routes"]
    assert _in_ns_addrs(pod) == [addr]
    added = lab.server.lease_of(client_id)
    assert added is not None and added.ip == addr.split("/")[0]

    # renewal at T1, seen as a later expiry in dnsmasq's lease file
    renewed = lab.server.wait_for(
        "renewal",
        lambda: (lease := lab.server.lease_of(client_id)) and lease.expiry > added.expiry and lease,
        timeout=T1 + 20,
    )
    assert renewed.ip == added.ip
    assert "lease renewed" in lab.daemon.text()

    if version != "0.3.1":  # CHECK needs 0.4.0
        time.sleep(1.1)  # a new expiry second
        lab.ok("bridge", "CHECK", {**conf, "prevResult": result}, cid, pod)
        checked = lab.server.lease_of(client_id)
        assert checked is not None and checked.expiry > renewed.expiry
        assert checked.ip == added.ip

    lab.ok("bridge", "DEL", conf, cid, pod)
    lab.server.wait_for("release", lambda: lab.server.lease_of(client_id) is None, timeout=10)
    assert f"{client_id}: lease released" in lab.daemon.text()
    # a second DEL (the lease is unknown now) succeeds
    lab.ok("bridge", "DEL", conf, cid, pod)
