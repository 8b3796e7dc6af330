"""portmap in a fresh "node" netns per test, on both iptables backends, mixed with the Go
reference portmap in both directions (rules made by one are checked/removed by the other)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
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
        "PYCNI_IPTABLES_BACKEND": backend,
    }
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
