"""flannel in a fresh node netns, delegating to a real bridge + host-local (ours and the
Go ones): the pod gets an address from FLANNEL_SUBNET and routes to the flannel networks;
DEL through the scratch file releases everything."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.root

SUBNET_ENV = "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=false\n"


def run(
    node: str,
    pod: str,
    verb: str,
    conf: dict[str, Any],
    cni_path: str,
    cid: str,
    extra_env: dict[str, str] | None = None,
) -> tuple[Any, int, str]:
    from cnitool_plugins._lib.netns import open_netns, run_in_netns
    from cnitool_plugins.flannel.__main__ import PLUGIN

    from cnitool import skel

    env = dict(os.environ)
    env.update(
        {
            "CNI_COMMAND": verb,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": pod,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": cni_path,
            "CNI_ARGS": "",
            **(extra_env or {}),
        }
    )
    err = io.StringIO()
    fd = open_netns(node)
    try:
        out, code = run_in_netns(fd, skel.run, PLUGIN, env, json.dumps(conf).encode(), err)
    finally:
        os.close(fd)
    return (json.loads(out) if out.strip() else None), code, err.getvalue()


def ip(ns: str, *args: str) -> str:
    return subprocess.run(
        ["ip", "-n", os.path.basename(ns), *args], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def bin_dir(tmp_path: Path, python: str) -> Path:
    from cnitool import launchers

    d = tmp_path / "bin"
    launchers.install(str(d), ["bridge", "host-local"], python=python)
    return d


@pytest.mark.parametrize("impl", ["ours", "go"])
def test_flannel_bridge_host_local(
    impl: str, netns_factory: Callable[[], str], tmp_path: Path, bin_dir: Path, reference_bin: Path
) -> None:
    node, pod = netns_factory(), netns_factory()
    sub = tmp_path / "subnet.env"
    sub.write_text(SUBNET_ENV)
    ipam_dir = tmp_path / "ipam"
    conf = {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "type": "flannel",
        "subnetFile": str(sub),
        "dataDir": str(tmp_path / "flannel"),
        "delegate": {"bridge": "cni0"},
        "ipam": {"dataDir": str(ipam_dir)},
    }
    cni_path = str(bin_dir) if impl == "ours" else str(reference_bin)
    cid = "flannel-" + impl
    out, code, err = run(node, pod, "ADD", conf, cni_path, cid)
    assert code == 0, (out, err)
    addr = out["ips"][0]["address"]
    assert addr.startswith("10.244.3.") and addr.endswith("/24")
    assert "10.244.0.0/16 via 10.244.3.1 dev eth0" in ip(pod, "route")
    assert "mtu 1400" in ip(pod, "link", "show", "eth0")
    scratch = tmp_path / "flannel" / cid
    delegate = json.loads(scratch.read_bytes())
    assert delegate["ipMasq"] is True and delegate["bridge"] == "cni0"
    assert (ipam_dir / "cbr0" / addr.split("/")[0]).exists()
    # ipMasq (FLANNEL_IPMASQ=false -> the bridge masquerades)
    save = subprocess.run(
        ["nsenter", f"--net={node}", "iptables-save", "-t", "nat"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f'id: \\"{cid}\\"' in save
    out, code, err = run(node, pod, "DEL", conf, cni_path, cid)
    assert code == 0, (out, err)
    assert not scratch.exists()
    assert not (ipam_dir / "cbr0" / addr.split("/")[0]).exists()
    assert "eth0" not in ip(pod, "link")
    save = subprocess.run(
        ["nsenter", f"--net={node}", "iptables-save", "-t", "nat"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert cid not in save
    # second DEL: nothing to replay, still success
    assert run(node, pod, "DEL", conf, cni_path, cid)[1] == 0


DUAL_ENV = (
    "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\n"
    "FLANNEL_IPV6_NETWORK=fd44::/56\nFLANNEL_IPV6_SUBNET=fd44:0:0:3::1/64\n"
    "FLANNEL_MTU=1400\nFLANNEL_IPMASQ=false\n"
)
V6_ONLY_ENV = (
    "FLANNEL_IPV6_NETWORK=fd44::/56\nFLANNEL_IPV6_SUBNET=fd44:0:0:3::1/64\n"
    "FLANNEL_MTU=1400\nFLANNEL_IPMASQ=false\n"
)


@pytest.mark.parametrize("backend", ["nft", "legacy"])
@pytest.mark.parametrize("text", [DUAL_ENV, V6_ONLY_ENV], ids=["dual-stack", "ipv6-only"])
def test_flannel_ipv6_subnet_env(
    text: str, backend: str, netns_factory: Callable[[], str], tmp_path: Path, bin_dir: Path
) -> None:
    """On legacy x_tables the bridge (a fresh process) masquerades IPv4 through libiptc
    and IPv6 through iptables-legacy-restore."""
    node, pod = netns_factory(), netns_factory()
    be_env = {"PYCNI_IPTABLES_BACKEND": backend}
    sub = tmp_path / "subnet.env"
    sub.write_text(text)
    ipam_dir = tmp_path / "ipam"
    conf = {
        "cniVersion": "1.0.0",
        "name": "cbr6",
        "type": "flannel",
        "subnetFile": str(sub),
        "dataDir": str(tmp_path / "flannel"),
        "ipam": {"dataDir": str(ipam_dir)},
    }
    cid = "flannel-v6"
    out, code, err = run(node, pod, "ADD", conf, str(bin_dir), cid, be_env)
    assert code == 0, (out, err)
    addrs = [i["address"] for i in out["ips"]]
    v4 = [a for a in addrs if ":" not in a]
    v6 = [a for a in addrs if ":" in a]
    assert len(v6) == 1 and v6[0].startswith("fd44:0:0:3::") and v6[0].endswith("/64")
    assert len(v4) == (1 if "FLANNEL_SUBNET" in text else 0)
    assert "fd44::/56 via fd44:0:0:3::1 dev eth0" in ip(pod, "-6", "route")
    if v4:
        assert "10.244.0.0/16 via 10.244.3.1 dev eth0" in ip(pod, "route")

    # FLANNEL_IPMASQ=false: the bridge masquerades the pod's IPv6 address too
    def save(tool: str) -> str:
        return subprocess.run(
            ["nsenter", f"--net={node}", f"{tool}-{backend}-save", "-t", "nat"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    save6 = save("ip6tables")
    assert f"-s {v6[0].split('/')[0]}/128" in save6 and f'id: \\"{cid}\\"' in save6
    if v4:
        assert f"-s {v4[0].split('/')[0]}/32" in save("iptables")
    out, code, err = run(node, pod, "DEL", conf, str(bin_dir), cid, be_env)
    assert code == 0, (out, err)
    assert not (tmp_path / "flannel" / cid).exists()
    assert not [f for f in os.listdir(ipam_dir / "cbr6") if ":" in f or f[0].isdigit()]
    for tool in ("iptables", "ip6tables"):
        left = save(tool)
        assert cid not in left, (tool, left)


def _imports(argv_env: dict[str, str], package: str, stdin: bytes, netns: str) -> set[str]:
    """The modules one plugin process imports (python -X importtime), run like a launcher."""
    proc = subprocess.run(
        [
            "nsenter",
            f"--net={netns}",
            sys.executable,
            "-X",
            "importtime",
            "-c",
            f"from cnitool_plugins._launch import run; run({package!r})",
        ],
        input=stdin,
        env=argv_env,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr[-2000:])
    names = set()
    for line in proc.stderr.decode().splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_paths_without_iptables_never_load_the_firewall_layer(
    netns_factory: Callable[[], str], tmp_path: Path, bin_dir: Path
) -> None:
    """bridge without ipMasq, host-local, and flannel DEL without a scratch file import
    neither python-iptables nor the firewall layer (each is a new process per call)."""
    node, pod = netns_factory(), netns_factory()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CNI_CONTAINERID": "imports",
        "CNI_NETNS": pod,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(bin_dir),
        "CNI_ARGS": "",
    }
    bridge = json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "imp",
            "type": "bridge",
            "bridge": "cni9",
            "isGateway": True,
            "ipam": {"type": "host-local", "subnet": "10.77.0.0/24", "dataDir": str(tmp_path)},
        }
    ).encode()
    host_local = json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "imp2",
            "type": "host-local",
            "ipam": {"type": "host-local", "subnet": "10.78.0.0/24", "dataDir": str(tmp_path)},
        }
    ).encode()
    flannel = json.dumps(
        {"cniVersion": "1.0.0", "name": "f", "type": "flannel", "dataDir": str(tmp_path / "f")}
    ).encode()
    runs = [
        ("bridge ADD", "bridge", bridge, "ADD"),
        ("host-local ADD", "host_local", host_local, "ADD"),
        ("flannel DEL without scratch", "flannel", flannel, "DEL"),
        ("bridge DEL", "bridge", bridge, "DEL"),
    ]
    for label, package, stdin, verb in runs:
        loaded = _imports(dict(env, CNI_COMMAND=verb), package, stdin, node)
        heavy = sorted(
            m for m in loaded if m.split(".")[0] == "iptc" or "_lib.firewall" in m or "ipmasq" in m
        )
        assert heavy == [], (label, heavy)
