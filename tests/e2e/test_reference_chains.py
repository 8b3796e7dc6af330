"""CNIConfig driving the Go reference plugins (bridge + host-local + portmap) in private
network namespaces: addresses, routes, NAT rules, CHECK, DEL, rollback after a failure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cnitool.invoke import PluginExecError
from cnitool.libcni.api import CNIConfig
from cnitool.libcni.config import NetworkConfigList, conf_list_from_bytes
from cnitool.libcni.runtime import RuntimeConf
from cnitool.spec.errors import IncompatibleVersionError

pytestmark = pytest.mark.root

VERSIONS = {"0.3.1": 31, "0.4.0": 40, "1.0.0": 100}
PORTS = [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]


def ip_json(*args: str) -> Any:
    out = subprocess.run(["ip", "-j", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout or "[]")


def addresses(netns: str, dev: str) -> list[str]:
    name = os.path.basename(netns)
    links = ip_json("-n", name, "addr", "show")
    return [
        f"{a['local']}/{a['prefixlen']}"
        for link in links
        if link["ifname"] == dev
        for a in link.get("addr_info", [])
        if a["family"] == "inet"
    ]


def links(netns: str) -> list[str]:
    return [link["ifname"] for link in ip_json("-n", os.path.basename(netns), "link", "show")]


def routes(netns: str) -> list[dict[str, Any]]:
    return ip_json("-n", os.path.basename(netns), "route", "show")  # type: ignore[no-any-return]


def nat_rules() -> str:
    tool = shutil.which("iptables-save")
    if tool is None:
        pytest.skip("iptables-save not installed")
    return subprocess.run([tool, "-t", "nat"], check=True, capture_output=True, text=True).stdout


def make_list(
    tmp: Path,
    version: str,
    octet: int,
    *,
    portmap: bool = True,
    extra: list[dict[str, Any]] | None = None,
) -> NetworkConfigList:
    plugins: list[dict[str, Any]] = [
        {
            "type": "bridge",
            "bridge": f"cnit{octet}",
            "isGateway": True,
            "ipMasq": True,
            "ipam": {
                "type": "host-local",
                "dataDir": str(tmp / "ipam"),
                "ranges": [[{"subnet": f"10.{octet}.0.0/24"}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        }
    ]
    if portmap:
        plugins.append({"type": "portmap", "capabilities": {"portMappings": True}, "snat": True})
    plugins.extend(extra or [])
    raw = {"cniVersion": version, "name": f"ref{octet}", "plugins": plugins}
    return conf_list_from_bytes(json.dumps(raw, indent=2).encode() + b"\n")


def leases(tmp: Path, net: NetworkConfigList) -> list[str]:
    d = tmp / "ipam" / net.name
    if not d.exists():
        return []
    return sorted(p.name for p in d.iterdir() if p.name[0].isdigit())


@pytest.mark.parametrize("version", list(VERSIONS))
def test_bridge_hostlocal_portmap(
    version: str, reference_bin: Path, netns_factory: Any, tmp_path: Path
) -> None:
    octet = VERSIONS[version]
    netns = netns_factory()
    net = make_list(tmp_path, version, octet)
    cni = CNIConfig([str(reference_bin)], str(tmp_path / "cache"), timeout=60)
    rt = RuntimeConf("ctr" + str(octet), netns, "eth0", capability_args={"portMappings": PORTS})

    result = cni.add_network_list(net, rt)
    assert result is not None and result["cniVersion"] == version
    ip = f"10.{octet}.0.2"
    assert result["ips"][0]["address"] == f"{ip}/24"
    if version == "0.3.1":
        assert result["ips"][0]["version"] == "4"
    assert addresses(netns, "eth0") == [f"{ip}/24"]
    default = [r for r in routes(netns) if r["dst"] == "default"]
    assert default and default[0]["gateway"] == f"10.{octet}.0.1"
    assert leases(tmp_path, net) == [ip]
    rules = nat_rules()
    assert f"--to-destination {ip}:80" in rules
    cache = Path(cni.cache.file_path(net.name, rt.container_id, "eth0"))
    assert cache.exists()

    if version == "0.3.1":
        with pytest.raises(IncompatibleVersionError):
            cni.check_network_list(net, rt)
    else:
        # bridge + host-local CHECK against the cached result (the Debian portmap's CHECK
        # also looks for an ip6tables chain of an IPv4-only pod, so it is left out)
        cni.check_network_list(make_list(tmp_path, version, octet, portmap=False), rt)
        # CHECK notices a missing address
        subprocess.run(
            ["ip", "-n", os.path.basename(netns), "addr", "flush", "dev", "eth0"], check=True
        )
        with pytest.raises(PluginExecError) as exc:
            cni.check_network_list(make_list(tmp_path, version, octet, portmap=False), rt)
        assert exc.value.verb == "check" and 'type="bridge"' in str(exc.value)

    cni.del_network_list(net, rt)
    assert "eth0" not in links(netns)
    assert leases(tmp_path, net) == []
    assert f"--to-destination {ip}:80" not in nat_rules()
    assert not cache.exists()
    cni.del_network_list(net, rt)  # a repeated DEL succeeds


def failing_plugin(bindir: Path) -> None:
    bindir.mkdir()
    path = bindir / "failer"
    path.write_text(
        "#!/bin/sh\n"
        '[ "$CNI_COMMAND" = ADD ] || exit 0\n'
        'echo \'{"code": 117, "msg": "refusing on purpose"}\'\n'
        "exit 1\n"
    )
    path.chmod(0o755)


def test_failure_mid_chain_then_del_leaves_nothing(
    reference_bin: Path, netns_factory: Any, tmp_path: Path
) -> None:
    failing_plugin(tmp_path / "bin")
    netns = netns_factory()
    net = make_list(tmp_path, "1.0.0", 41, extra=[{"type": "failer"}])
    cni = CNIConfig([str(reference_bin), str(tmp_path / "bin")], str(tmp_path / "cache"))
    rt = RuntimeConf("ctrfail", netns, "eth0", capability_args={"portMappings": PORTS})
    with pytest.raises(PluginExecError) as exc:
        cni.add_network_list(net, rt)
    assert str(exc.value) == 'plugin type="failer" failed (add): refusing on purpose'
    assert exc.value.code == 117
    # the earlier plugins did their work, and nothing was cached
    assert addresses(netns, "eth0") == ["10.41.0.2/24"]
    assert cni.cached_attachments("ctrfail") == []
    # the caller's rollback: DEL the whole list, without a cache entry
    cni.del_network_list(net, rt)
    assert "eth0" not in links(netns)
    assert leases(tmp_path, net) == []
    assert "10.41.0.2:80" not in nat_rules()
    host_side = ip_json("link", "show", "master", "cnit41")
    assert host_side == []


def test_del_after_netns_is_gone(reference_bin: Path, netns_factory: Any, tmp_path: Path) -> None:
    netns = netns_factory()
    net = make_list(tmp_path, "1.0.0", 42)
    cni = CNIConfig([str(reference_bin)], str(tmp_path / "cache"))
    rt = RuntimeConf("ctrgone", netns, "eth0", capability_args={"portMappings": PORTS})
    cni.add_network_list(net, rt)
    assert leases(tmp_path, net) == ["10.42.0.2"]
    subprocess.run(["ip", "netns", "del", os.path.basename(netns)], check=True)
    cni.del_network_list(net, rt)
    assert leases(tmp_path, net) == []
    assert "10.42.0.2:80" not in nat_rules()
    assert cni.cached_attachments("ctrgone") == []
