"""Mixed chains with the Go reference plugins, launchers, and import discipline."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from plugin_helpers import (
    Call,
    Runner,
    addrs,
    cid,
    host_local,
    lease_files,
    link,
    links,
    tcp_echo,
    unique_net,
)

pytestmark = pytest.mark.root


def exec_plugin(
    path: Path | str,
    runner: Runner,
    command: str,
    conf: dict[str, Any],
    *,
    cid: str = "",
    netns: str = "",
    ifname: str = "eth0",
) -> Call:
    env = runner.env(command, cid=cid, netns=netns, ifname=ifname)
    proc = subprocess.run(
        [str(path)], input=json.dumps(conf).encode(), env=env, capture_output=True, timeout=60
    )
    return Call(proc.stdout, proc.returncode, proc.stderr.decode())


def bridge_conf(runner: Runner, version: str, **extra: Any) -> dict[str, Any]:
    br, subnet, name = unique_net()
    conf: dict[str, Any] = {
        "cniVersion": version,
        "name": name,
        "type": "bridge",
        "bridge": br,
        "isGateway": True,
        "ipam": host_local(subnet, runner.data_dir),
    }
    conf.update(extra)
    return conf


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_our_bridge_with_go_host_local(go_runner: Runner, netns_factory: Any, version: str) -> None:
    pod, c = netns_factory(), cid()
    conf = bridge_conf(go_runner, version)
    add = go_runner.run("bridge", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    ip = add.json["ips"][0]["address"]
    assert ip in addrs(pod, "eth0")
    lease = Path(go_runner.data_dir) / conf["name"] / ip.split("/")[0]
    assert lease.read_bytes() == f"{c}\r\neth0".encode()  # written by the Go host-local
    chk = go_runner.run("bridge", "CHECK", dict(conf, prevResult=add.json), cid=c, netns=pod)
    assert chk.code == 0, chk.out
    dele = go_runner.run("bridge", "DEL", dict(conf, prevResult=add.json), cid=c, netns=pod)
    assert dele.code == 0, dele.out
    assert not lease.exists() and links(pod) == ["lo"]


def test_go_bridge_with_our_host_local(
    bin_dir: Path, reference_bin: Path, tmp_path: Path, netns_factory: Any
) -> None:
    # CNI_PATH holds only our launchers, so the Go bridge delegates to our host-local
    runner = Runner(cni_path=str(bin_dir), data_dir=str(tmp_path / "ipam"))
    pod, c = netns_factory(), cid()
    conf = bridge_conf(runner, "1.0.0")
    add = exec_plugin(reference_bin / "bridge", runner, "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, (add.out, add.stderr)
    ip = add.json["ips"][0]["address"]
    assert lease_files(runner.data_dir, conf["name"]) == [ip.split("/")[0]]
    assert ip in addrs(pod, "eth0")
    chk = exec_plugin(
        reference_bin / "bridge", runner, "CHECK", dict(conf, prevResult=add.json), cid=c, netns=pod
    )
    assert chk.code == 0, chk.out
    dele = exec_plugin(
        reference_bin / "bridge", runner, "DEL", dict(conf, prevResult=add.json), cid=c, netns=pod
    )
    assert dele.code == 0, dele.out
    assert lease_files(runner.data_dir, conf["name"]) == [] and links(pod) == ["lo"]


@pytest.mark.parametrize("dual", [False, True])
def test_cross_implementation_check_and_del(
    runner: Runner, reference_bin: Path, netns_factory: Any, dual: bool
) -> None:
    """What one bridge sets up, the other one CHECKs and DELetes."""
    conf = bridge_conf(runner, "1.0.0", isDefaultGateway=True)
    if dual:
        subnet = conf["ipam"]["ranges"][0][0]["subnet"]
        v6 = f"fd00:{conf['bridge'][2:]}::/64"
        conf["ipam"]["ranges"] = [[{"subnet": subnet}], [{"subnet": v6}]]
    go_pod, go_c = netns_factory(), cid()
    go_add = exec_plugin(reference_bin / "bridge", runner, "ADD", conf, cid=go_c, netns=go_pod)
    assert go_add.code == 0, go_add.out
    py_pod, py_c = netns_factory(), cid()
    py_add = runner.run("bridge", "ADD", conf, cid=py_c, netns=py_pod)
    assert py_add.code == 0, py_add.out
    # both results have the same shape apart from names and addresses
    assert [sorted(i) for i in go_add.json["interfaces"]] == [
        sorted(i) for i in py_add.json["interfaces"]
    ]
    assert go_add.json["routes"] == py_add.json["routes"]
    assert [sorted(i) for i in go_add.json["ips"]] == [sorted(i) for i in py_add.json["ips"]]

    # the two pods talk over the shared bridge
    go_ip = go_add.json["ips"][0]["address"].split("/")[0]
    assert tcp_echo(go_pod, go_ip, py_pod, b"py pod to go pod") == b"py pod to go pod"

    ours = runner.run("bridge", "CHECK", dict(conf, prevResult=go_add.json), cid=go_c, netns=go_pod)
    assert ours.code == 0, ours.out
    theirs = exec_plugin(
        reference_bin / "bridge",
        runner,
        "CHECK",
        dict(conf, prevResult=py_add.json),
        cid=py_c,
        netns=py_pod,
    )
    assert theirs.code == 0, theirs.out

    assert (
        runner.run("bridge", "DEL", dict(conf, prevResult=go_add.json), cid=go_c, netns=go_pod).code
        == 0
    )
    assert (
        exec_plugin(
            reference_bin / "bridge",
            runner,
            "DEL",
            dict(conf, prevResult=py_add.json),
            cid=py_c,
            netns=py_pod,
        ).code
        == 0
    )
    assert links(go_pod) == ["lo"] and links(py_pod) == ["lo"]
    assert lease_files(runner.data_dir, conf["name"]) == []


@pytest.mark.parametrize("dual", [False, True])
def test_ptp_results_match_go(
    runner: Runner, reference_bin: Path, netns_factory: Any, dual: bool
) -> None:
    tag, subnet, name = unique_net()
    conf = {
        "cniVersion": "1.0.0",
        "name": name,
        "type": "ptp",
        "ipam": host_local(subnet, runner.data_dir),
    }
    if dual:
        conf["ipam"]["ranges"] = [[{"subnet": subnet}], [{"subnet": f"fd00:{tag[2:]}::/64"}]]
    go_pod, py_pod = netns_factory(), netns_factory()
    go = exec_plugin(reference_bin / "ptp", runner, "ADD", conf, cid=cid(), netns=go_pod)
    py = runner.run("ptp", "ADD", conf, cid=cid(), netns=py_pod)
    assert go.code == 0 and py.code == 0, (go.out, py.out)
    assert [sorted(i) for i in go.json["interfaces"]] == [sorted(i) for i in py.json["interfaces"]]
    assert go.json["ips"][0]["interface"] == py.json["ips"][0]["interface"] == 1

    def route_set(pod: str) -> set[tuple[str, str, int]]:
        from plugin_helpers import routes

        return {
            (r["dst"], str(r["gw"]), r["scope"])
            for fam in (2, 10)
            for r in routes(pod, fam)
            if not r["dst"].startswith(("fe80", "ff00"))
        }

    go_ip = go.json["ips"][0]["address"].split("/")[0]
    py_ip = py.json["ips"][0]["address"].split("/")[0]
    assert route_set(go_pod) == route_set(py_pod)
    assert go_ip != py_ip
    assert tcp_echo(go_pod, go_ip, py_pod, b"ptp py->go") == b"ptp py->go"


def test_launchers_exec_and_loopback_versions(
    bin_dir: Path, reference_bin: Path, runner: Runner, netns_factory: Any
) -> None:
    pod = netns_factory()
    for version in ("0.3.1", "1.0.0"):
        conf = {"cniVersion": version, "name": "lo", "type": "loopback"}
        ours = exec_plugin(bin_dir / "loopback", runner, "ADD", conf, cid=cid(), netns=pod)
        theirs = exec_plugin(reference_bin / "loopback", runner, "ADD", conf, cid=cid(), netns=pod)
        assert ours.code == 0 and theirs.code == 0, (ours.out, theirs.out)
        go = theirs.json
        if go.get("dns") == {}:
            del go["dns"]  # Debian's 1.1.1 still prints an empty dns; current libcni drops it
        assert ours.json == go  # the 0.3.1 quirk (no "version" in ips) included
    ver = subprocess.run(
        [str(bin_dir / "bridge")], env={"CNI_COMMAND": "VERSION"}, input=b"{}", capture_output=True
    )
    assert ver.returncode == 0
    assert "1.1.0" in json.loads(ver.stdout)["supportedVersions"]


def test_version_and_status_load_no_netlink_code(runner: Runner) -> None:
    """VERSION and STATUS (config check + IPAM STATUS) import neither pyroute2 nor the
    netns/netlink layer: every plugin call is a new process."""
    br, subnet, name = unique_net()
    code = f"""
import io, json, sys
from cnitool import skel
from cnitool_plugins.bridge.__main__ import PLUGIN as BR
from cnitool_plugins.ptp.__main__ import PLUGIN as PTP
from cnitool_plugins.loopback.__main__ import PLUGIN as LO
env = {{"CNI_COMMAND": "VERSION", "PATH": "/usr/bin:/bin"}}
for p in (BR, PTP, LO):
    out, rc = skel.run(p, env, b"{{}}", io.StringIO())
    assert rc == 0, out
conf = {{"cniVersion": "1.1.0", "name": "{name}", "type": "bridge",
        "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "{subnet}"}}]],
                 "dataDir": "{runner.data_dir}"}}}}
env = {{"CNI_COMMAND": "STATUS", "CNI_PATH": "{runner.cni_path}", "PATH": "/usr/bin:/bin"}}
for p in (BR, PTP):
    out, rc = skel.run(p, env, json.dumps(dict(conf, type=p.name)).encode(), io.StringIO())
    assert rc == 0, out
heavy = ("pyroute2", "cnitool_plugins._lib.netlink", "cnitool_plugins._lib.netns", "ctypes")
print(json.dumps(sorted(m for m in sys.modules if m.startswith(heavy))))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_gateway_address_is_the_first_host(runner: Runner, netns_factory: Any) -> None:
    conf = bridge_conf(runner, "1.1.0")
    add = runner.run("bridge", "ADD", conf, cid=cid(), netns=netns_factory())
    assert add.code == 0
    net = ipaddress.ip_network(conf["ipam"]["ranges"][0][0]["subnet"])
    assert add.json["ips"][0]["gateway"] == str(net.network_address + 1)
    assert link(None, conf["bridge"])["up"]


@pytest.mark.parametrize("plugin", ["bridge", "ptp", "loopback"])
@pytest.mark.parametrize(
    "netns", ["/run/netns/does-not-exist", "/etc/hostname", "/proc/self/ns/mnt"]
)
def test_unusable_netns_same_code_as_go(
    bin_dir: Path, reference_bin: Path, runner: Runner, plugin: str, netns: str
) -> None:
    """ADD into a missing or non-namespace CNI_NETNS: the Go plugin's code, nothing left."""
    outs = []
    for binary in (reference_bin / plugin, bin_dir / plugin):
        before = links(None)  # (the Go bridge makes its bridge before it opens the netns)
        conf = bridge_conf(runner, "1.0.0", type=plugin)
        if plugin == "loopback":
            del conf["ipam"]
        call = exec_plugin(binary, runner, "ADD", conf, cid=cid(), netns=netns)
        assert call.code == 1, (binary, call.out)
        outs.append(call.json)
        assert lease_files(runner.data_dir, conf["name"]) == []
        # nothing new on the node (a host veth of an earlier test's netns may still be
        # going away: the kernel removes those asynchronously)
        assert binary.parent == reference_bin or set(links(None)) <= set(before)
    go, ours = outs
    assert ours["code"] == go["code"] == 999
    assert netns in ours["msg"]
