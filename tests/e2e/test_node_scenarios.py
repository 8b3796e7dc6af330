"""A node whose CNI bin dir is switched between the Go reference plugins and the installed
pycni launchers: the kernel state one plugin leaves must be the state the other leaves."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cnitool import launchers

pytestmark = pytest.mark.root


@pytest.fixture
def ours(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    actions = launchers.install(str(bin_dir), ["ptp", "host-local"], compile_bytecode=False)
    assert all(a.action == "installed" for a in actions), actions
    return bin_dir


def run_plugin(
    bin_dir: Path, plugin: str, cmd: str, cid: str, netns: str, conf: dict[str, Any]
) -> Any:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": cmd,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(bin_dir),
    }
    p = subprocess.run(
        [str(bin_dir / plugin)],
        input=json.dumps(conf).encode(),
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 0, (bin_dir, cmd, p.stdout, p.stderr)
    return json.loads(p.stdout) if p.stdout.strip() else None


def host_route(address: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ip", "-j", "-d", "route", "show", "exact", address],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found: list[dict[str, Any]] = json.loads(out or "[]")
    assert len(found) == 1, found
    return found[0]


def test_ptp_host_route_to_the_pod_matches_the_reference(
    netns_factory: Any, reference_bin: Path, ours: Path, tmp_path: Path
) -> None:
    if not (reference_bin / "ptp").is_file():
        pytest.skip("reference ptp not installed")
    conf = {
        "cniVersion": "1.0.0",
        "name": "ptpnode",
        "type": "ptp",
        "ipam": {
            "type": "host-local",
            "dataDir": str(tmp_path / "ipam"),
            "ranges": [[{"subnet": "10.76.0.0/24"}]],
        },
    }
    routes = {}
    for name, bin_dir in (("go", reference_bin), ("pycni", ours)):
        netns = netns_factory()
        cid = f"{name}-{os.path.basename(netns)}"
        result = run_plugin(bin_dir, "ptp", "ADD", cid, netns, conf)
        pod_ip = result["ips"][0]["address"].split("/")[0]
        route = host_route(pod_ip)
        routes[name] = {k: route.get(k) for k in ("type", "scope", "protocol", "gateway")}
        run_plugin(bin_dir, "ptp", "DEL", cid, netns, conf)
    # the Go plugin adds the host route to the pod with scope host
    assert routes["go"]["scope"] == "host", routes
    assert routes["pycni"] == routes["go"]


@pytest.mark.parametrize("plugin", ["bridge", "ptp", "macvlan"])
def test_gc_through_a_main_plugin_reaches_host_local(
    plugin: str, netns_factory: Any, tmp_path: Path
) -> None:
    """GC sent to the plugin of a network must reach its IPAM plugin (the spec asks plugins to
    forward GC to their delegates): a lease whose attachment is not valid any more is released,
    the valid one stays. Without it host-local's GC is unreachable from any network config."""
    bin_dir = tmp_path / "bin"
    actions = launchers.install(str(bin_dir), [plugin, "host-local"], compile_bytecode=False)
    assert all(a.action == "installed" for a in actions), actions
    if plugin == "macvlan":
        subprocess.run(
            ["ip", "link", "add", "gcm0", "type", "veth", "peer", "name", "gcm0p"], check=True
        )
        subprocess.run(["ip", "link", "set", "gcm0", "up"], check=True)
    conf: dict[str, Any] = {
        "cniVersion": "1.1.0",
        "name": "gcnet",
        "type": plugin,
        "bridge": "cni-gc0",
        "master": "gcm0",
        "ipam": {
            "type": "host-local",
            "dataDir": str(tmp_path / "ipam"),
            "ranges": [[{"subnet": "10.75.0.0/24"}]],
        },
    }
    if plugin != "bridge":
        del conf["bridge"]
    if plugin != "macvlan":
        del conf["master"]
    try:
        kept, gone = netns_factory(), netns_factory()
        ip_kept = run_plugin(bin_dir, plugin, "ADD", "kept", kept, conf)["ips"][0]["address"]
        ip_gone = run_plugin(bin_dir, plugin, "ADD", "gone", gone, conf)["ips"][0]["address"]
        lease_dir = tmp_path / "ipam" / "gcnet"
        leases = {p.name for p in lease_dir.iterdir()}
        assert {ip_kept.split("/")[0], ip_gone.split("/")[0]} <= leases

        gc_conf = {**conf, "cni.dev/valid-attachments": [{"containerID": "kept", "ifname": "eth0"}]}
        run_plugin(bin_dir, plugin, "GC", "", "", gc_conf)

        leases = {p.name for p in lease_dir.iterdir()}
        assert ip_kept.split("/")[0] in leases
        assert ip_gone.split("/")[0] not in leases
    finally:
        subprocess.run(["ip", "link", "del", "gcm0"], check=False, capture_output=True)
