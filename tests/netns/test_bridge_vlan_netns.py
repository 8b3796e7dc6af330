"""bridge plugin's VLAN options, in-process: ``vlan``, ``vlanTrunk``, ``preserveDefaultVlan``
and ``isGateway`` with ``vlan`` (the ``<bridge>.<vlan>`` gateway port). Needs a kernel whose
bridge filters VLANs: .ci/run runs these in a VM (.ci/kernel-vm.sh); elsewhere they skip,
saying so (test_bridge_netns.py checks the clear error such a kernel gets)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from typing import Any

import pytest
from plugin_helpers import (
    Runner,
    addrs,
    cid,
    go_plugin,
    host_local,
    lease_files,
    link,
    links,
    tcp_echo,
    unique_net,
)

pytestmark = [pytest.mark.root, pytest.mark.kernel("bridge_vlan_filtering")]

PVID_UNTAGGED = ["Egress Untagged", "PVID"]  # sorted


def conf_for(bridge: str, subnet: str, name: str, runner: Runner, **extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "cniVersion": "1.0.0",
        "name": name,
        "type": "bridge",
        "bridge": bridge,
        "ipam": host_local(subnet, runner.data_dir),
    }
    conf.update(extra)
    return conf


def port_vlans(dev: str) -> dict[int, list[str]]:
    """VLAN ID -> flags of bridge port ``dev`` in the node, as ``bridge vlan show`` says."""
    out = subprocess.run(
        ["bridge", "-j", "vlan", "show", "dev", dev], capture_output=True, text=True, check=True
    ).stdout
    shown = json.loads(out or "[]")
    vlans: dict[int, list[str]] = {}
    for entry in shown[0]["vlans"] if shown else []:
        for vid in range(entry["vlan"], entry.get("vlanEnd", entry["vlan"]) + 1):
            vlans[vid] = sorted(entry.get("flags", []))
    return vlans


def test_vlan_and_the_default_vlan(runner: Runner, netns_factory: Any) -> None:
    bridge, subnet, name = unique_net()
    pod, c = netns_factory(), cid()
    conf = conf_for(bridge, subnet, name, runner, vlan=100)
    add = runner.run("bridge", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    host = add.json["interfaces"][1]["name"]
    # the port's default VLAN (1) is gone; 100 is its PVID, untagged
    assert port_vlans(host) == {100: PVID_UNTAGGED}
    assert [i["name"] for i in add.json["interfaces"]] == [bridge, host, "eth0"]
    chk = runner.run("bridge", "CHECK", dict(conf, prevResult=add.json), cid=c, netns=pod)
    assert chk.code == 0, chk.out

    # preserveDefaultVlan keeps VLAN 1 (untagged, no longer the PVID), as the reference
    # 1.1.1 does without knowing the key
    keep = dict(conf, preserveDefaultVlan=True)
    pod2, c2 = netns_factory(), cid()
    add2 = runner.run("bridge", "ADD", keep, cid=c2, netns=pod2)
    assert add2.code == 0, add2.out
    ours = port_vlans(add2.json["interfaces"][1]["name"])
    assert ours == {1: ["Egress Untagged"], 100: PVID_UNTAGGED}
    pod3, c3 = netns_factory(), cid()
    code, go = go_plugin("bridge", "ADD", conf, netns=pod3, cid=c3)
    assert code == 0, go
    assert port_vlans(go["interfaces"][1]["name"]) == ours
    for pod_, c_ in ((pod, c), (pod2, c2)):
        assert runner.run("bridge", "DEL", conf, cid=c_, netns=pod_).code == 0
    assert go_plugin("bridge", "DEL", conf, netns=pod3, cid=c3)[0] == 0
    assert lease_files(runner.data_dir, name) == []


def test_vlan_trunk(runner: Runner, netns_factory: Any) -> None:
    bridge, subnet, name = unique_net()
    trunk = [{"id": 10}, {"minID": 20, "maxID": 22}]
    cases: list[tuple[dict[str, Any], dict[int, list[str]]]] = [
        # a trunk without vlan keeps VLAN 1 as its native VLAN
        ({"vlanTrunk": trunk}, {1: PVID_UNTAGGED, 10: [], 20: [], 21: [], 22: []}),
        ({"vlanTrunk": trunk, "vlan": 5}, {5: PVID_UNTAGGED, 10: [], 20: [], 21: [], 22: []}),
    ]
    for extra, want in cases:
        pod, c = netns_factory(), cid()
        conf = conf_for(bridge, subnet, name, runner, **extra)
        add = runner.run("bridge", "ADD", conf, cid=c, netns=pod)
        assert add.code == 0, add.out
        assert port_vlans(add.json["interfaces"][1]["name"]) == want, extra
        chk = runner.run("bridge", "CHECK", dict(conf, prevResult=add.json), cid=c, netns=pod)
        assert chk.code == 0, chk.out
        assert runner.run("bridge", "DEL", conf, cid=c, netns=pod).code == 0
    bad = conf_for(bridge, subnet, name, runner, vlanTrunk=[{"minID": 30, "maxID": 20}])
    refused = runner.run("bridge", "ADD", bad, cid=cid(), netns=netns_factory())
    assert refused.code == 1 and "minID 30 is greater than maxID 20" in refused.json["msg"]


def test_pods_on_a_vlan_talk_and_across_vlans_do_not(runner: Runner, netns_factory: Any) -> None:
    bridge, subnet, name = unique_net()
    a, b, c = netns_factory(), netns_factory(), netns_factory()
    v100 = conf_for(bridge, subnet, name, runner, vlan=100)
    v200 = conf_for(bridge, subnet, name, runner, vlan=200)
    ra = runner.run("bridge", "ADD", v100, cid=cid(), netns=a)
    rb = runner.run("bridge", "ADD", v100, cid=cid(), netns=b)
    rc = runner.run("bridge", "ADD", v200, cid=cid(), netns=c)
    assert ra.code == rb.code == rc.code == 0, (ra.out, rb.out, rc.out)
    ip_a = ra.json["ips"][0]["address"].split("/")[0]
    assert tcp_echo(a, ip_a, b, b"b to a in vlan 100") == b"b to a in vlan 100"
    with pytest.raises(OSError):
        tcp_echo(a, ip_a, c, b"c to a across vlans", timeout=2)


def test_is_gateway_with_vlan_uses_a_gateway_port(runner: Runner, netns_factory: Any) -> None:
    bridge, subnet, name = unique_net()
    net = ipaddress.ip_network(subnet)
    gw = f"{net.network_address + 1}/{net.prefixlen}"
    conf = conf_for(bridge, subnet, name, runner, vlan=100, isGateway=True)
    a, ca = netns_factory(), cid()
    add = runner.run("bridge", "ADD", conf, cid=ca, netns=a)
    assert add.code == 0, add.out
    port = f"{bridge}.100"
    gw_link = link(None, port)
    assert gw_link is not None and gw_link["kind"] == "veth" and gw_link["up"]
    assert add.json["interfaces"][3] == {"name": port, "mac": gw_link["mac"]}
    assert len(add.json["interfaces"]) == 4
    assert add.json["ips"][0]["interface"] == 2
    assert add.json["ips"][0]["gateway"] == gw.split("/")[0]
    # the address is on the gateway port, not on the bridge
    assert gw in addrs(None, port) and gw not in addrs(None, bridge)
    # its peer is a bridge port with VLAN 100 as PVID, untagged
    peer = [n for n in links(None) if (lk := link(None, n)) and lk["index"] == gw_link["peer"]]
    assert len(peer) == 1 and port_vlans(peer[0]) == {100: PVID_UNTAGGED}
    # the pod reaches its gateway (a server in this test's node netns) through VLAN 100
    assert tcp_echo(None, gw.split("/")[0], a, b"pod to gateway") == b"pod to gateway"
    chk = runner.run("bridge", "CHECK", dict(conf, prevResult=add.json), cid=ca, netns=a)
    assert chk.code == 0, chk.out

    # a second pod reuses the port; DEL keeps it, as it keeps the bridge
    b, cb = netns_factory(), cid()
    add_b = runner.run("bridge", "ADD", conf, cid=cb, netns=b)
    assert add_b.code == 0, add_b.out
    assert add_b.json["interfaces"][3] == add.json["interfaces"][3]
    assert [n for n in links(None) if n.startswith(f"{bridge}.")] == [port]
    for pod, c in ((a, ca), (b, cb)):
        assert runner.run("bridge", "DEL", conf, cid=c, netns=pod).code == 0
    assert link(None, port) is not None and lease_files(runner.data_dir, name) == []

    # the reference makes the same port for the same request
    bridge2, subnet2, name2 = unique_net()
    go_conf = conf_for(bridge2, subnet2, name2, runner, vlan=100, isGateway=True)
    g, cg = netns_factory(), cid()
    code, go = go_plugin("bridge", "ADD", go_conf, netns=g, cid=cg)
    assert code == 0, go
    assert [i["name"] for i in go["interfaces"]][::3] == [bridge2, f"{bridge2}.100"]
    go_port = link(None, f"{bridge2}.100")
    assert go_port is not None and go_port["kind"] == "veth"
    net2 = ipaddress.ip_network(subnet2)
    assert f"{net2.network_address + 1}/{net2.prefixlen}" in addrs(None, f"{bridge2}.100")
    # and each one's CHECK and DEL accept the other's attachment
    chk = runner.run("bridge", "CHECK", dict(go_conf, prevResult=go), cid=cg, netns=g)
    assert chk.code == 0, chk.out
    assert runner.run("bridge", "DEL", go_conf, cid=cg, netns=g).code == 0
    assert links(g) == ["lo"]
