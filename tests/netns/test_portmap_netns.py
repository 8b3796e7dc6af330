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
        from cnitool_plugins.portmap import verbs as commands

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


# --- IPv6, failed ADDs, backend hygiene, exec counts ---------------------------------------

SAVE6 = {"nft": "ip6tables-nft-save", "legacy": "ip6tables-legacy-save"}
PREV_DUAL = json.loads(json.dumps(PREV))
PREV_DUAL["ips"].append({"interface": 2, "address": "fd00:22::2/64", "gateway": "fd00:22::1"})
MAPS_DUAL = [
    {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
    {"hostPort": 9090, "containerPort": 90, "protocol": "udp", "hostIP": "fd00::1"},
    {"hostPort": 9191, "containerPort": 91, "protocol": "tcp", "hostIP": "192.0.2.1"},
]


def dual(**extra: Any) -> dict[str, Any]:
    return conf(prevResult=PREV_DUAL, runtimeConfig={"portMappings": MAPS_DUAL}, **extra)


def ours_exec(
    node: str,
    pod: str,
    verb: str,
    c: dict[str, Any],
    backend: str,
    path: str | None = None,
    stdin: bytes | None = None,
) -> tuple[Any, int]:
    """Our portmap as its own process (fresh interpreter, as a runtime runs it); ``stdin``
    replaces ``c`` when a test needs exact bytes."""
    env = {
        "CNI_COMMAND": verb,
        "CNI_CONTAINERID": CID,
        "CNI_NETNS": pod,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/usr/lib/cni",
        "PATH": path or os.environ.get("PATH", ""),
    }
    if backend:
        env["PYCNI_IPTABLES_BACKEND"] = backend
    proc = subprocess.run(
        [
            "nsenter",
            f"--net={node}",
            sys.executable,
            "-c",
            "from cnitool_plugins._launch import run; run('portmap')",
        ],
        input=json.dumps(c).encode() if stdin is None else stdin,
        env=env,
        capture_output=True,
        check=False,
    )
    return (json.loads(proc.stdout) if proc.stdout.strip() else None), proc.returncode


def test_dual_stack_ipv6_rules_match_go_and_interoperate(
    node: str,
    pod: str,
    netns_factory: Callable[[], str],
    backend: str,
    go_path: str,
    reference_bin: Path,
) -> None:
    # a fresh process: with the legacy backend IPv4 goes through libiptc and IPv6 through
    # iptables-legacy-restore (libxtables serves one family per process)
    out, code = ours_exec(node, pod, "ADD", dual(), backend)
    assert code == 0, out
    v6 = nat_rules(node, SAVE6[backend])
    own6 = [r for r in v6 if DN in r]
    assert own6 == [
        f"-A {DN} -s fd00:22::/64 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK",
        f"-A {DN} -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:22::2]:80",
        f"-A {DN} -s fd00:22::/64 -d fd00::1/128 -p udp -m udp --dport 9090 -j CNI-HOSTPORT-SETMARK",
        f"-A {DN} -d fd00::1/128 -p udp -m udp --dport 9090 -j DNAT --to-destination [fd00:22::2]:90",
        f'-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"mynet\\" id: \\"{CID}\\"" '
        f"-m multiport --dports 8080,9191 -j {DN}",
        f'-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \\"mynet\\" id: \\"{CID}\\"" '
        f"-m multiport --dports 9090 -j {DN}",
    ]
    assert "-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE" in v6
    v4 = nat_rules(node, SAVE[backend])
    assert not any("9090" in r and DN in r and "-A CNI-DN" in r for r in v4)
    assert any("-d 192.0.2.1/32" in r for r in v4)
    assert not any("CNI-" in r for r in nat_rules(node, SAVE6[OTHER[backend]]))
    assert ours(node, pod, "CHECK", dual(), backend)[1] == 0
    # Go 1.1.1's CHECK looks for the IPv4 rules in ip6tables too, so it fails on any
    # dual-stack pod (its own included); ours checks each family against its own rules
    out, code = go(node, pod, "CHECK", dual(), go_path, reference_bin)
    assert code != 0 and "could not check ipv6 dnat" in out["msg"] and "10.22.0.2" in out["msg"]
    # Go's ADD writes the same rules in both families
    other = netns_factory()
    assert go(other, pod, "ADD", dual(), go_path, reference_bin)[1] == 0
    assert sorted(nat_rules(other, SAVE6[backend])) == sorted(v6)
    assert sorted(nat_rules(other, SAVE[backend])) == sorted(v4)
    # each removes the other's IPv6 rules
    out, code = go(node, pod, "DEL", dual(), go_path, reference_bin)
    assert code == 0, out
    assert not any(DN in r for r in nat_rules(node, SAVE6[backend]))
    assert ours_exec(other, pod, "DEL", conf(runtimeConfig={}), backend)[1] == 0
    assert not any(
        DN in r for r in nat_rules(other, SAVE6[backend]) + nat_rules(other, SAVE[backend])
    )


def test_failed_add_leaves_no_rules(node: str, pod: str, backend: str) -> None:
    # the IPv4 rules go in, then ip6tables refuses an unknown match in conditionsV6
    bad = dual(conditionsV6=["-m", "nosuchmatch"])
    out, code = ours_exec(node, pod, "ADD", bad, backend)
    assert code == 1 and "nosuchmatch" in out["msg"], out
    for save in (SAVE[backend], SAVE6[backend]):
        left = nat_rules(node, save)
        assert not any(DN in r or "dnat name" in r for r in left), left
    # a bad mapping after valid ones is refused before anything is written
    maps = [*MAPS_DUAL, {"hostPort": 80, "containerPort": 80, "protocol": "icmp"}]
    out, code = ours_exec(node, pod, "ADD", conf(runtimeConfig={"portMappings": maps}), backend)
    assert code == 1 and out["code"] == 7 and "protocol 'icmp'" in out["msg"], out
    assert not any(DN in r for r in nat_rules(node, SAVE[backend]))


def test_nft_node_never_gets_legacy_tables(node: str, pod: str) -> None:
    """A whole life cycle on an nf_tables node (auto choice) must not even create empty
    legacy tables: that only happens when something lists them."""
    from cnitool_plugins._lib import ipmasq

    assert ours_exec(node, pod, "ADD", dual(), "")[1] == 0
    assert ours_exec(node, pod, "CHECK", dual(), "")[1] == 0
    _in_node(node, ipmasq.setup_ip_masq, "mynet", CID, ["10.22.0.2/16", "fd00:22::2/64"])
    cnitool = str(Path(sys.executable).parent / "cnitool")
    shown = subprocess.run(
        ["nsenter", f"--net={node}", cnitool, "chains", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert {"family": 6, "backend": "nft"} in json.loads(shown)["sources"]
    _in_node(node, ipmasq.teardown_ip_masq, "mynet", CID, ["10.22.0.2/16", "fd00:22::2/64"])
    assert ours_exec(node, pod, "DEL", conf(runtimeConfig={}), "")[1] == 0
    assert ours(node, pod, "DEL", conf(runtimeConfig={}), "")[1] == 0
    for names in ("/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"):
        created = subprocess.run(
            ["nsenter", f"--net={node}", "cat", names], capture_output=True, text=True, check=False
        ).stdout
        assert created.strip() == "", (names, created)
    assert any("CNI-HOSTPORT-DNAT" in r for r in nat_rules(node, SAVE6["nft"]))


@pytest.fixture
def counting_path(tmp_path: Path) -> tuple[str, Path]:
    """A PATH whose iptables tools log each exec to a file before running the real one."""
    d = tmp_path / "countbin"
    d.mkdir()
    log = tmp_path / "execs.log"
    for base in ("iptables", "ip6tables"):
        for mode in ("nft", "legacy"):
            for tool in ("save", "restore"):
                name = f"{base}-{mode}-{tool}"
                real = shutil.which(name)
                assert real, name
                w = d / name
                w.write_text(f'#!/bin/sh\necho {name} >> {log}\nexec {real} "$@"\n')
                w.chmod(0o755)
    return f"{d}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}", log


def test_one_iptables_transaction_per_table_and_family(
    node: str, pod: str, backend: str, counting_path: tuple[str, Path]
) -> None:
    path, log = counting_path

    def execs(verb: str, c: dict[str, Any]) -> list[str]:
        log.write_text("")
        out, code = ours_exec(node, pod, verb, c, backend, path)
        assert code == 0, out
        return log.read_text().split()

    other = OTHER[backend]
    add = execs("ADD", dual())
    restores = [e for e in add if e.endswith("-restore")]
    if backend == "nft":
        assert sorted(add) == sorted(
            [
                "iptables-nft-save",
                "iptables-nft-restore",
                "ip6tables-nft-save",
                "ip6tables-nft-restore",
            ]
        )
    else:  # IPv4 through libiptc (no exec), IPv6 through one restore
        assert sorted(add) == ["ip6tables-legacy-restore", "ip6tables-legacy-save"]
    assert len(restores) == len(set(restores))  # at most one write per family
    assert not any(f"-{other}-" in e for e in add)  # never written to the other backend
    assert execs("ADD", dual()) == [e for e in add if e.endswith("-save")]  # no-op: no write
    check = execs("CHECK", dual())
    assert all(e.endswith("-save") for e in check) and len(check) <= 2
    delete = execs("DEL", conf(runtimeConfig={}))
    writes = [e for e in delete if e.endswith("-restore")]
    assert len(writes) == len(set(writes)) and not any(f"-{other}-" in e for e in writes)
    assert len(delete) <= 6, delete
    assert not any(
        DN in r for r in nat_rules(node, SAVE[backend]) + nat_rules(node, SAVE6[backend])
    )


def test_chain_created_after_our_snapshot_is_not_emptied(node: str, backend: str) -> None:
    """Another process creates a shared chain between our read and our write: the write
    must fail and be retried from a fresh read, not flush that process's rules."""
    from cnitool_plugins._lib import firewall as fw

    be = fw.RestoreBackend(4, backend)
    real_load = be.load
    raced: list[bool] = []
    other = ("-m", "comment", "--comment", "someone else", "-j", "RETURN")
    mine = ("-m", "comment", "--comment", "mine", "-j", "RETURN")

    def load(table: str, counters: bool = False) -> fw.TableState:
        state = real_load(table, counters)
        if not raced:
            raced.append(True)
            tool = f"iptables-{backend}"
            subprocess.run([tool, "-t", "nat", "-N", "CNI-HOSTPORT-DNAT"], check=True)
            subprocess.run([tool, "-t", "nat", "-A", "CNI-HOSTPORT-DNAT", *other], check=True)
        return state

    be.load = load  # type: ignore[method-assign]

    def plan(p: fw.Plan) -> None:
        p.append_unique(fw.Rule("CNI-HOSTPORT-DNAT", mine))

    _in_node(node, fw.transact, be, "nat", plan)
    rules = nat_rules(node, SAVE[backend])
    assert rules == [
        '-A CNI-HOSTPORT-DNAT -m comment --comment "someone else" -j RETURN',
        "-A CNI-HOSTPORT-DNAT -m comment --comment mine -j RETURN",
    ]


def test_parallel_adds_share_one_copy_of_the_shared_rules(
    node: str, pod: str, backend: str
) -> None:
    """Eight pods ADDed at once on a fresh node: every pod's chain is there and each shared
    rule (PREROUTING/OUTPUT/POSTROUTING entries, SETMARK, MASQ) exists exactly once."""
    procs = []
    for i in range(8):
        c = conf(
            runtimeConfig={"portMappings": [{"hostPort": 8000 + i, "containerPort": 80}]},
        )
        env = {
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": f"par-{i}",
            "CNI_NETNS": pod,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": "/usr/lib/cni",
            "PATH": os.environ.get("PATH", ""),
            "PYCNI_IPTABLES_BACKEND": backend,
        }
        p = subprocess.Popen(
            [
                "nsenter",
                f"--net={node}",
                sys.executable,
                "-c",
                "from cnitool_plugins._launch import run; run('portmap')",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert p.stdin is not None
        p.stdin.write(json.dumps(c).encode())
        p.stdin.close()
        procs.append(p)
    for p in procs:
        assert p.stdout is not None and p.stderr is not None
        out, err = p.stdout.read(), p.stderr.read()
        assert p.wait(timeout=60) == 0, (out, err)
        p.stdout.close()
        p.stderr.close()
    rules = nat_rules(node, SAVE[backend])
    shared = [r for r in rules if not r.startswith("-A CNI-DN-") and "dnat name" not in r]
    assert sorted(shared) == sorted(set(shared)) and len(shared) == 5, shared
    assert sum("dnat name" in r for r in rules) == 8


@pytest.mark.parametrize("version", ["0.2.0", "0.3.1", "0.4.0", "1.0.0"])
def test_spec_versions_against_go(
    node: str,
    pod: str,
    netns_factory: Callable[[], str],
    backend: str,
    go_path: str,
    reference_bin: Path,
    version: str,
) -> None:
    """The same request in each spec version: ours echoes prevResult in that version and
    writes Go's rules; Go's DEL removes ours."""
    from cnitool.spec.results import convert

    prev = convert(json.loads(json.dumps(PREV)), version)
    c = conf(cniVersion=version, prevResult=prev)
    out, code = ours_exec(node, pod, "ADD", c, backend)
    assert code == 0, out
    assert out == prev
    other = netns_factory()
    out, code = go(other, pod, "ADD", c, go_path, reference_bin)
    assert code == 0, out
    assert sorted(nat_rules(node, SAVE[backend])) == sorted(nat_rules(other, SAVE[backend]))
    if version not in ("0.2.0", "0.3.1"):  # CHECK exists from 0.4.0 on
        assert ours(node, pod, "CHECK", c, backend)[1] == 0
    out, code = go(node, pod, "DEL", c, go_path, reference_bin)
    assert code == 0, out
    assert not any(DN in r for r in nat_rules(node, SAVE[backend]))


OPTIONS = {
    "no-snat": {"snat": False},
    "mark-bit-5": {"markMasqBit": 5},
    "external-mark-chain": {"externalSetMarkChain": "KUBE-MARK-MASQ"},
    "conditions": {
        "conditionsV4": ["-m", "addrtype", "!", "--src-type", "LOCAL"],
        "conditionsV6": ["!", "-s", "fd00:99::/64"],
    },
    "masq-all": {"masqAll": True},  # not in Go 1.1.1
}


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_options_in_iptables(
    node: str,
    pod: str,
    netns_factory: Callable[[], str],
    backend: str,
    go_path: str,
    reference_bin: Path,
    option: str,
) -> None:
    """Each option's rules are accepted by iptables, a repeated ADD keeps them as they
    are, CHECK passes, DEL leaves no per-container rule; where Go 1.1.1 has the option
    its rules are the same as ours."""
    extra = OPTIONS[option]
    nodes = [node]
    if option != "masq-all":
        nodes.append(netns_factory())
    if "externalSetMarkChain" in extra:
        for n in nodes:
            for tool in (f"iptables-{backend}", f"ip6tables-{backend}"):
                subprocess.run(
                    ["nsenter", f"--net={n}", tool, "-t", "nat", "-N", "KUBE-MARK-MASQ"], check=True
                )
    c = dual(**extra)
    out, code = ours_exec(node, pod, "ADD", c, backend)
    assert code == 0, out
    first = (nat_rules(node, SAVE[backend]), nat_rules(node, SAVE6[backend]))
    assert ours_exec(node, pod, "ADD", c, backend)[1] == 0
    assert (nat_rules(node, SAVE[backend]), nat_rules(node, SAVE6[backend])) == first
    out, code = ours(node, pod, "CHECK", c, backend)
    assert code == 0, out
    v4 = "\n".join(first[0])
    if option == "no-snat":
        assert "SETMARK" not in v4 and "CNI-HOSTPORT-MASQ" not in v4
    elif option == "mark-bit-5":
        assert "--set-xmark 0x20/0x20" in v4 and "--mark 0x20/0x20 -j MASQUERADE" in v4
    elif option == "external-mark-chain":
        assert "-j KUBE-MARK-MASQ" in v4 and "CNI-HOSTPORT-SETMARK" not in v4
    elif option == "masq-all":
        assert f"-A {DN} -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK" in v4
        assert "127.0.0.1/32 -p tcp" not in v4
    if len(nodes) == 2:
        out, code = go(nodes[1], pod, "ADD", c, go_path, reference_bin)
        assert code == 0, out
        assert sorted(nat_rules(nodes[1], SAVE[backend])) == sorted(first[0])
        assert sorted(nat_rules(nodes[1], SAVE6[backend])) == sorted(first[1])
    assert ours_exec(node, pod, "DEL", conf(runtimeConfig={}), backend)[1] == 0
    for save in (SAVE[backend], SAVE6[backend]):
        assert not any(DN in r or "dnat name" in r for r in nat_rules(node, save))


# What containerd's CRI (go-cni) hands portmap: libcni's sorted, compact request with the
# port mappings marshalled from go-cni's untagged struct, so in Go field case.
CONTAINERD_STDIN = (
    b'{"capabilities":{"portMappings":true},"cniVersion":"1.0.0","name":"mynet",'
    b'"prevResult":' + json.dumps(PREV, separators=(",", ":")).encode() + b","
    b'"runtimeConfig":{"portMappings":['
    b'{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":""},'
    b'{"HostPort":5353,"ContainerPort":53,"Protocol":"udp","HostIP":"127.0.0.1"}]},'
    b'"type":"portmap"}'
)


def test_containerd_go_cased_mappings_give_the_go_plugins_rules(
    node: str,
    pod: str,
    netns_factory: Callable[[], str],
    backend: str,
    go_path: str,
    reference_bin: Path,
) -> None:
    c = json.loads(CONTAINERD_STDIN)
    assert go(node, pod, "ADD", c, go_path, reference_bin)[1] == 0
    go_rules = sorted(nat_rules(node, SAVE[backend]))
    assert sum(DN in r for r in go_rules) == 8
    other = netns_factory()
    out, code = ours_exec(other, pod, "ADD", c, backend, stdin=CONTAINERD_STDIN)
    assert code == 0, out
    assert out["ips"] == PREV["ips"]
    assert sorted(nat_rules(other, SAVE[backend])) == go_rules
    assert ours_exec(other, pod, "CHECK", c, backend, stdin=CONTAINERD_STDIN)[1] == 0
    assert ours_exec(other, pod, "DEL", c, backend, stdin=CONTAINERD_STDIN)[1] == 0
    assert not any(DN in r for r in nat_rules(other, SAVE[backend]))
    # and each removes the other's: our DEL of the Go plugin's rules, from the same bytes
    assert ours_exec(node, pod, "DEL", c, backend, stdin=CONTAINERD_STDIN)[1] == 0
    assert not any(DN in r for r in nat_rules(node, SAVE[backend]))
