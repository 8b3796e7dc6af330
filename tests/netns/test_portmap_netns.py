"""portmap in a fresh "node" netns per test, on both iptables backends, mixed with the Go
reference portmap in both directions (rules made by one are checked/removed by the other)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.root

CID = "cnitool-77383ca0a0715733ca6f"
DN = "CNI-DN-d0b3203be6ffc55cd4087"
PREV = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "cni0", "mac": "aa:bb:cc:dd:ee:ff"},
        {"name": "veth404c9fa6", "mac": "aa:bb:cc:dd:ee:01"},
        {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/var/run/netns/cnictest"},
    ],
    "ips": [{"interface": 2, "address": "10.22.0.2/16", "gateway": "10.22.0.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
}
MAPS = [
    {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
    {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
]
SAVE = {"nft": "iptables-nft-save", "legacy": "iptables-legacy-save"}
OTHER = {"nft": "legacy", "legacy": "nft"}


def conf(**extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "cniVersion": "1.0.0",
        "name": "mynet",
        "type": "portmap",
        "capabilities": {"portMappings": True},
        "runtimeConfig": {"portMappings": MAPS},
        "prevResult": PREV,
    }
    c.update(extra)
    return c


def nat_rules(node: str, tool: str) -> list[str]:
    out = subprocess.run(
        ["nsenter", f"--net={node}", tool, "-t", "nat"], capture_output=True, text=True, check=True
    ).stdout
    return [ln for ln in out.splitlines() if ln.startswith("-A ")]


def legacy_tables(node: str) -> str:
    out = subprocess.run(
        ["nsenter", f"--net={node}", "cat", "/proc/net/ip_tables_names"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout


@pytest.fixture
def node(netns_factory: Callable[[], str]) -> str:
    return netns_factory()


@pytest.fixture
def pod(netns_factory: Callable[[], str]) -> str:
    return netns_factory()


@pytest.fixture(params=["nft", "legacy"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def go_path(tmp_path: Path, backend: str) -> str:
    """A PATH under which the Go plugin's `iptables` is the backend under test."""
    d = tmp_path / "gobin"
    d.mkdir()
    for base in ("iptables", "ip6tables"):
        for suffix in ("", "-save", "-restore"):
            target = shutil.which(f"{base}-{backend}{suffix}")
            assert target, f"{base}-{backend}{suffix} missing"
            (d / f"{base}{suffix}").symlink_to(target)
    return f"{d}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"


def ours(node: str, pod: str, verb: str, c: dict[str, Any], backend: str) -> tuple[Any, int]:
    from cnitool_plugins._lib.netns import open_netns, run_in_netns
    from cnitool_plugins.portmap.__main__ import PLUGIN

    from cnitool import skel

    env = {
        "CNI_COMMAND": verb,
        "CNI_CONTAINERID": CID,
        "CNI_NETNS": pod,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/usr/lib/cni",
        "PATH": os.environ.get("PATH", ""),
    }
    if backend:
        env["PYCNI_IPTABLES_BACKEND"] = backend
    fd = open_netns(node)
    try:
        out, code = run_in_netns(fd, skel.run, PLUGIN, env, json.dumps(c).encode(), io.StringIO())
    finally:
        os.close(fd)
    return (json.loads(out) if out.strip() else None), code


def go(node: str, pod: str, verb: str, c: dict[str, Any], path: str, ref: Path) -> tuple[Any, int]:
    env = {
        "CNI_COMMAND": verb,
        "CNI_CONTAINERID": CID,
        "CNI_NETNS": pod,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(ref),
        "PATH": path,
    }
    proc = subprocess.run(
        ["nsenter", f"--net={node}", str(ref / "portmap")],
        input=json.dumps(c).encode(),
        env=env,
        capture_output=True,
        check=False,
    )
    return (json.loads(proc.stdout) if proc.stdout.strip() else None), proc.returncode


def test_ours_add_check_del(node: str, pod: str, backend: str) -> None:
    out, code = ours(node, pod, "ADD", conf(), backend)
    assert code == 0, out
    rules = nat_rules(node, SAVE[backend])
    assert sum(DN in r for r in rules) == 8
    assert "-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE" in rules
    # written to exactly one backend
    if backend == "nft":
        assert "nat" not in legacy_tables(node)  # legacy tables were not even created
    else:
        import sys

        assert "iptc" in sys.modules  # the libiptc backend did the work
        assert not any("CNI-" in r for r in nat_rules(node, SAVE["nft"]))
    assert ours(node, pod, "ADD", conf(), backend)[1] == 0
    assert nat_rules(node, SAVE[backend]) == rules  # idempotent
    assert ours(node, pod, "CHECK", conf(), backend)[1] == 0
    no_maps = conf()
    del no_maps["runtimeConfig"]
    assert ours(node, pod, "DEL", no_maps, backend)[1] == 0
    left = nat_rules(node, SAVE[backend])
    assert not any(DN in r for r in left)
    assert len(left) == 5
    out, code = ours(node, pod, "CHECK", conf(), backend)
    assert code == 1 and f"chain {DN} not found" in out["msg"]


def test_route_localnet_set_on_the_route_to_the_pod(node: str, pod: str, backend: str) -> None:
    subprocess.run(
        ["ip", "-n", os.path.basename(node), "link", "add", "cni0", "type", "bridge"], check=True
    )
    subprocess.run(
        ["ip", "-n", os.path.basename(node), "addr", "add", "10.22.0.1/16", "dev", "cni0"],
        check=True,
    )
    subprocess.run(["ip", "-n", os.path.basename(node), "link", "set", "cni0", "up"], check=True)
    assert ours(node, pod, "ADD", conf(), backend)[1] == 0
    val = subprocess.run(
        ["nsenter", f"--net={node}", "cat", "/proc/sys/net/ipv4/conf/cni0/route_localnet"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert val == "1"


def test_go_add_ours_check_and_del(
    node: str, pod: str, backend: str, go_path: str, reference_bin: Path
) -> None:
    out, code = go(node, pod, "ADD", conf(), go_path, reference_bin)
    assert code == 0, out
    go_rules = nat_rules(node, SAVE[backend])
    assert sum(DN in r for r in go_rules) == 8
    assert ours(node, pod, "CHECK", conf(), backend)[1] == 0
    # our ADD over Go's rules adds nothing new
    assert ours(node, pod, "ADD", conf(), backend)[1] == 0
    assert sorted(nat_rules(node, SAVE[backend])) == sorted(go_rules)
    assert ours(node, pod, "DEL", conf(runtimeConfig={}), backend)[1] == 0
    assert not any(DN in r for r in nat_rules(node, SAVE[backend]))


def test_ours_add_go_check_and_del(
    node: str, pod: str, backend: str, go_path: str, reference_bin: Path
) -> None:
    assert ours(node, pod, "ADD", conf(), backend)[1] == 0
    mine = nat_rules(node, SAVE[backend])
    out, code = go(node, pod, "CHECK", conf(), go_path, reference_bin)
    # Go 1.1.1 also checks the ip6tables chain of an IPv4-only pod (upstream #819)
    assert code != 0 and "could not check ipv6 dnat" in out["msg"], out
    out, code = go(node, pod, "DEL", conf(), go_path, reference_bin)
    assert code == 0, out
    left = nat_rules(node, SAVE[backend])
    assert not any(DN in r for r in left)
    assert len(left) == len(mine) - 8


def test_go_and_ours_produce_the_same_rules(
    node: str,
    pod: str,
    netns_factory: Callable[[], str],
    backend: str,
    go_path: str,
    reference_bin: Path,
) -> None:
    assert go(node, pod, "ADD", conf(), go_path, reference_bin)[1] == 0
    go_rules = sorted(nat_rules(node, SAVE[backend]))
    other = netns_factory()
    assert ours(other, pod, "ADD", conf(), backend)[1] == 0
    assert sorted(nat_rules(other, SAVE[backend])) == go_rules


def _in_node(node: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    from cnitool_plugins._lib.netns import open_netns, run_in_netns

    fd = open_netns(node)
    try:
        return run_in_netns(fd, fn, *args, **kw)
    finally:
        os.close(fd)


def test_ipmasq_rules_match_the_reference_and_tear_down(node: str, backend: str) -> None:
    from cnitool_plugins._lib import ipmasq

    _in_node(node, ipmasq.setup_ip_masq, "mynet", CID, ["10.22.0.2/16"], backend=backend)
    _in_node(node, ipmasq.setup_ip_masq, "mynet", CID, ["10.22.0.2/16"], backend=backend)
    rules = nat_rules(node, SAVE[backend])
    chain = "CNI-d0b3203be6ffc55cd4087ca5"
    comment = f'"name: \\"mynet\\" id: \\"{CID}\\""'
    assert rules == [
        f"-A POSTROUTING -s 10.22.0.2/32 -m comment --comment {comment} -j {chain}",
        f"-A {chain} -d 10.22.0.0/16 -m comment --comment {comment} -j ACCEPT",
        f"-A {chain} ! -d 224.0.0.0/4 -m comment --comment {comment} -j MASQUERADE",
    ]
    _in_node(node, ipmasq.teardown_ip_masq, "mynet", CID, ["10.22.0.2/16"], backend=backend)
    assert nat_rules(node, SAVE[backend]) == []
    # teardown of something that is not there is fine
    _in_node(node, ipmasq.teardown_ip_masq, "mynet", CID, [], backend=backend)


def test_auto_backend_follows_legacy_rules_and_teardown_finds_them(
    node: str, pod: str, go_path: str, reference_bin: Path, backend: str
) -> None:
    if backend != "legacy":
        pytest.skip("about a node whose rules live in legacy x_tables")
    assert go(node, pod, "ADD", conf(), go_path, reference_bin)[1] == 0
    # auto: the host's iptables is nf_tables, but the rules live in legacy -> use legacy
    other = dict(conf(), name="othernet")
    assert ours(node, pod, "ADD", other, "")[1] == 0
    legacy = nat_rules(node, SAVE["legacy"])
    assert any('dnat name: \\"othernet\\"' in r for r in legacy)
    assert not any("CNI-" in r for r in nat_rules(node, SAVE["nft"]))
    # DEL with the auto choice finds both containers' chains in legacy
    assert ours(node, pod, "DEL", conf(runtimeConfig={}), "")[1] == 0
    assert ours(node, pod, "DEL", dict(other, runtimeConfig={}), "")[1] == 0
    assert not any("CNI-DN-" in r for r in nat_rules(node, SAVE["legacy"]))


@pytest.mark.parametrize("via", ["conntrack-cli", "netlink"])
def test_udp_conntrack_entries_for_mapped_ports_are_flushed(
    node: str,
    pod: str,
    netns_factory: Callable[[], str],
    backend: str,
    via: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if shutil.which("conntrack") is None:
        pytest.skip("conntrack not installed (needed to create and list flows)")
    if via == "netlink":
        from cnitool_plugins.portmap import commands

        real = shutil.which
        monkeypatch.setattr(
            commands.shutil, "which", lambda n, *a, **k: None if n == "conntrack" else real(n)
        )
    client = netns_factory()
    n_node, n_client = os.path.basename(node), os.path.basename(client)
    subprocess.run(
        [
            "ip",
            "-n",
            n_node,
            "link",
            "add",
            "u0",
            "type",
            "veth",
            "peer",
            "name",
            "u1",
            "netns",
            n_client,
        ],
        check=True,
    )
    subprocess.run(["ip", "-n", n_node, "addr", "add", "192.168.78.1/24", "dev", "u0"], check=True)
    subprocess.run(
        ["ip", "-n", n_client, "addr", "add", "192.168.78.2/24", "dev", "u1"], check=True
    )
    subprocess.run(["ip", "-n", n_node, "link", "set", "u0", "up"], check=True)
    subprocess.run(["ip", "-n", n_client, "link", "set", "u1", "up"], check=True)
    # make conntrack track in the node (any nat table does) and send one UDP packet
    assert (
        ours(
            node,
            pod,
            "ADD",
            conf(
                runtimeConfig={
                    "portMappings": [{"hostPort": 9999, "containerPort": 99, "protocol": "tcp"}]
                }
            ),
            backend,
        )[1]
        == 0
    )
    send = "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('192.168.78.1', 5353))"
    subprocess.run(["nsenter", f"--net={client}", sys.executable, "-c", send], check=True)

    def flows() -> str:
        return subprocess.run(
            ["nsenter", f"--net={node}", "conntrack", "-L", "-p", "udp", "--orig-port-dst", "5353"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout

    assert "dport=5353" in flows()
    maps = [{"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]
    assert ours(node, pod, "ADD", conf(runtimeConfig={"portMappings": maps}), backend)[1] == 0
    assert "dport=5353" not in flows()


def test_chains_command_reads_go_rules(
    node: str, pod: str, go_path: str, reference_bin: Path, backend: str
) -> None:
    assert go(node, pod, "ADD", conf(), go_path, reference_bin)[1] == 0
    cnitool = str(Path(sys.executable).parent / "cnitool")
    out = subprocess.run(
        ["nsenter", f"--net={node}", cnitool, "chains", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    report = json.loads(out)
    assert {"family": 4, "backend": backend} in report["sources"]
    (net,) = report["networks"]
    (cont,) = net["containers"]
    assert net["network"] == "mynet" and cont["containerID"] == CID
    assert {(m["hostIP"], m["hostPort"], m["podPort"]) for m in cont["portMappings"]} == {
        ("", 8080, 80),
        ("127.0.0.1", 5353, 53),
    }
    assert all(c["hashVerified"] for c in cont["chains"])
    # the tree rendering works too
    tree = subprocess.run(
        ["nsenter", f"--net={node}", cnitool, "chains", "-o", "tree"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "network mynet" in tree and "127.0.0.1:5353/udp -> 10.22.0.2:53" in tree
