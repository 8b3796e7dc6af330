"""bridge plugin, in-process, against real links in private namespaces."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from plugin_helpers import (
    VERSIONS,
    Call,
    Runner,
    addrs,
    cid,
    delete_netns,
    host_local,
    lease_files,
    link,
    links,
    nat_rules,
    routes,
    run_in,
    tcp_echo,
    unique_net,
)

pytestmark = pytest.mark.root


class Net:
    def __init__(self, runner: Runner) -> None:
        self.bridge, self.subnet, self.name = unique_net()
        self.runner = runner
        net = ipaddress.ip_network(self.subnet)
        self.gw = str(net.network_address + 1)
        self.prefix = net.prefixlen

    def conf(self, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "cniVersion": version,
            "name": self.name,
            "type": "bridge",
            "bridge": self.bridge,
            "ipam": host_local(self.subnet, self.runner.data_dir),
        }
        conf.update(extra)
        return conf

    def leases(self) -> list[str]:
        return lease_files(self.runner.data_dir, self.name)


@pytest.fixture
def net(runner: Runner) -> Net:
    return Net(runner)


def sysctl_in(path: str | None, key: str) -> str:
    from cnitool_plugins._lib import sysctl

    return sysctl.get(key) if path is None else run_in(path, sysctl.get, key)


@pytest.mark.parametrize("version", VERSIONS)
def test_add_check_del_every_version(
    runner: Runner, net: Net, netns_factory: Any, version: str
) -> None:
    pod, c = netns_factory(), cid()
    conf = net.conf(version, isGateway=True)
    add = runner.run("bridge", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    res = add.json
    assert res["cniVersion"] == version
    names = [i["name"] for i in res["interfaces"]]
    assert names[0] == net.bridge and names[1].startswith("veth") and len(names[1]) == 12
    assert names[2] == "eth0" and res["interfaces"][2]["sandbox"] == pod
    assert "sandbox" not in res["interfaces"][1]
    ip = res["ips"][0]
    assert ip["interface"] == 2 and ip["gateway"] == net.gw
    assert ip["address"] == str(ipaddress.ip_network(net.subnet).network_address + 2) + "/24"
    assert ("version" in ip) == (version in ("0.3.1", "0.4.0"))

    # kernel state matches the result
    br = link(None, net.bridge)
    host = link(None, names[1])
    cont = link(pod, "eth0")
    assert br and br["kind"] == "bridge" and br["up"]
    assert host and host["master"] == br["index"] and host["up"] and host["oper"] == "UP"
    assert cont and cont["kind"] == "veth" and cont["up"]
    assert cont["mac"] == res["interfaces"][2]["mac"] and host["mac"] == res["interfaces"][1]["mac"]
    assert br["mac"] == res["interfaces"][0]["mac"]
    assert ip["address"] in addrs(pod, "eth0")
    assert f"{net.gw}/24" in addrs(None, net.bridge)
    assert sysctl_in(None, "net.ipv4.ip_forward") == "1"
    assert sysctl_in(pod, "net.ipv4.conf.eth0.arp_notify") == "1"
    assert sysctl_in(None, f"net.ipv6.conf.{names[1]}.accept_ra") == "0"
    assert net.leases() == [ip["address"].split("/")[0]]

    if version != "0.3.1":
        conf_check = dict(conf, prevResult=res)
        chk = runner.run("bridge", "CHECK", conf_check, cid=c, netns=pod)
        assert chk.code == 0, chk.out

    conf_del = dict(conf, prevResult=res)
    for _ in range(2):  # DEL is idempotent
        dele = runner.run("bridge", "DEL", conf_del, cid=c, netns=pod)
        assert dele.code == 0, dele.out
        assert link(pod, "eth0") is None and link(None, names[1]) is None
        assert net.leases() == []
    assert link(None, net.bridge) is not None  # the bridge is never deleted


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_legacy_result_shape(runner: Runner, net: Net, netns_factory: Any, version: str) -> None:
    pod, c = netns_factory(), cid()
    add = runner.run("bridge", "ADD", net.conf(version, isGateway=True), cid=c, netns=pod)
    assert add.code == 0, add.out
    res = add.json
    assert set(res) >= {"cniVersion", "ip4"} and "interfaces" not in res
    assert res["ip4"]["gateway"] == net.gw
    assert runner.run("bridge", "DEL", net.conf(version), cid=c, netns=pod).code == 0
    assert net.leases() == []


def test_default_gateway_route_and_dns_override(
    runner: Runner, net: Net, netns_factory: Any
) -> None:
    pod, c = netns_factory(), cid()
    dns = {"nameservers": ["10.0.0.53"], "search": ["example.test"]}
    add = runner.run(
        "bridge", "ADD", net.conf("1.1.0", isDefaultGateway=True, dns=dns), cid=c, netns=pod
    )
    assert add.code == 0, add.out
    res = add.json
    assert res["routes"] == [{"dst": "0.0.0.0/0", "gw": net.gw}]
    assert res["dns"] == dns
    defaults = [r for r in routes(pod) if r["dst"] == "0.0.0.0/0"]
    assert defaults and defaults[0]["gw"] == net.gw
    assert f"{net.gw}/24" in addrs(None, net.bridge)  # isDefaultGateway implies isGateway


def test_mtu_applies_to_bridge_and_veth(runner: Runner, net: Net, netns_factory: Any) -> None:
    pod, c = netns_factory(), cid()
    add = runner.run("bridge", "ADD", net.conf(mtu=1400), cid=c, netns=pod)
    assert add.code == 0, add.out
    host = add.json["interfaces"][1]["name"]
    assert link(None, net.bridge)["mtu"] == 1400
    assert link(None, host)["mtu"] == 1400
    assert link(pod, "eth0")["mtu"] == 1400


def test_hairpin_mode_sets_bridge_port(runner: Runner, net: Net, netns_factory: Any) -> None:
    pod, c = netns_factory(), cid()
    add = runner.run("bridge", "ADD", net.conf(hairpinMode=True), cid=c, netns=pod)
    assert add.code == 0, add.out
    host = link(None, add.json["interfaces"][1]["name"])
    assert host["protinfo"]["IFLA_BRPORT_MODE"] == 1
    assert not link(None, net.bridge)["promisc"]


def test_promisc_mode_and_port_isolation(runner: Runner, net: Net, netns_factory: Any) -> None:
    pod, c = netns_factory(), cid()
    add = runner.run(
        "bridge", "ADD", net.conf(promiscMode=True, portIsolation=True), cid=c, netns=pod
    )
    assert add.code == 0, add.out
    assert link(None, net.bridge)["promisc"]
    host = link(None, add.json["interfaces"][1]["name"])
    assert host["protinfo"]["IFLA_BRPORT_ISOLATED"] == 1
    assert host["protinfo"]["IFLA_BRPORT_MODE"] == 0


def test_hairpin_and_promisc_are_exclusive(runner: Runner, net: Net, netns_factory: Any) -> None:
    pod, c = netns_factory(), cid()
    add = runner.run(
        "bridge", "ADD", net.conf(hairpinMode=True, promiscMode=True), cid=c, netns=pod
    )
    assert add.code == 1
    err = add.json
    assert err["code"] == 999 and "hairpin" in err["msg"] and "promiscuous" in err["msg"]
    assert links(pod) == ["lo"] and net.leases() == []
    assert link(None, net.bridge) is None


def _kernel_has_vlan_filtering() -> bool:
    name = "vfprobe0"
    proc = subprocess.run(
        ["ip", "link", "add", name, "type", "bridge", "vlan_filtering", "1"], capture_output=True
    )
    if proc.returncode != 0:
        return False
    out = subprocess.run(["ip", "-d", "link", "show", name], capture_output=True, text=True)
    subprocess.run(["ip", "link", "del", name], capture_output=True)
    return "vlan_filtering 1" in out.stdout


def test_vlan_refused_without_vlan_filtering(runner: Runner, net: Net, netns_factory: Any) -> None:
    """A kernel whose bridge cannot filter VLANs: a clear error, nothing left behind (where
    the kernel can, test_bridge_vlan_netns.py tests the VLAN options themselves)."""
    if _kernel_has_vlan_filtering():
        pytest.skip("this kernel's bridge filters VLANs: test_bridge_vlan_netns.py covers it")
    pod, c = netns_factory(), cid()
    for extra in ({"vlan": 100}, {"vlanTrunk": [{"id": 5}]}):
        add = runner.run("bridge", "ADD", net.conf(**extra), cid=c, netns=pod)
        assert add.code == 1
        assert "vlan_filtering" in add.json["msg"]
        assert links(pod) == ["lo"] and net.leases() == []


@pytest.mark.parametrize("bad", [-1, 4095])
def test_vlan_out_of_range(runner: Runner, net: Net, netns_factory: Any, bad: int) -> None:
    add = runner.run("bridge", "ADD", net.conf(vlan=bad), cid=cid(), netns=netns_factory())
    assert add.code == 1 and "invalid VLAN ID" in add.json["msg"]


def _nft_bridge_nat_rules() -> str:
    proc = subprocess.run(["nft", "list", "table", "bridge", "nat"], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else ""


def test_macspoofchk(runner: Runner, net: Net, netns_factory: Any) -> None:
    if subprocess.run(["nft", "list", "tables"], capture_output=True).returncode != 0:
        pytest.skip("nftables not usable here")
    pod, c = netns_factory(), cid()
    add = runner.run("bridge", "ADD", net.conf(macspoofchk=True), cid=c, netns=pod)
    assert add.code == 0, add.out
    host, mac = add.json["interfaces"][1]["name"], add.json["interfaces"][2]["mac"]
    table = _nft_bridge_nat_rules()
    chain = f"cni-br-iface-{c}-eth0"
    assert f'iifname "{host}" jump {chain}' in table
    assert f"ether saddr {mac} return" in table and f'"macspoofchk-{c}-eth0"' in table
    dele = runner.run("bridge", "DEL", net.conf(macspoofchk=True), cid=c, netns=pod)
    assert dele.code == 0, dele.out
    assert chain not in _nft_bridge_nat_rules()


def test_enabledad_sysctls(runner: Runner, net: Net, netns_factory: Any) -> None:
    pod_on, pod_off = netns_factory(), netns_factory()
    assert runner.run("bridge", "ADD", net.conf(enabledad=True), cid=cid(), netns=pod_on).code == 0
    assert runner.run("bridge", "ADD", net.conf(), cid=cid(), netns=pod_off).code == 0
    assert sysctl_in(pod_on, "net/ipv6/conf/eth0/accept_dad") == "1"
    assert sysctl_in(pod_on, "net/ipv6/conf/eth0/enhanced_dad") == "1"
    assert sysctl_in(pod_off, "net/ipv6/conf/eth0/accept_dad") == "0"


def test_layer2_only_and_disabled_container_interface(
    runner: Runner, net: Net, netns_factory: Any
) -> None:
    pod, pod2 = netns_factory(), netns_factory()
    add = runner.run("bridge", "ADD", net.conf("1.1.0", ipam={}), cid=cid(), netns=pod)
    assert add.code == 0, add.out
    assert "ips" not in add.json and len(add.json["interfaces"]) == 3
    assert link(pod, "eth0")["up"]
    conf = net.conf("1.1.0", ipam={}, disableContainerInterface=True)
    add2 = runner.run("bridge", "ADD", conf, cid=cid(), netns=pod2)
    assert add2.code == 0, add2.out
    assert not link(pod2, "eth0")["up"]
    bad = runner.run(
        "bridge", "ADD", net.conf(disableContainerInterface=True), cid=cid(), netns=netns_factory()
    )
    assert bad.code == 1 and "disableContainerInterface" in bad.json["msg"]


def test_mac_precedence(runner: Runner, net: Net, netns_factory: Any) -> None:
    env_mac, args_mac, rc_mac = "0a:00:00:00:00:01", "0a:00:00:00:00:02", "0a:00:00:00:00:03"
    cases = [
        ({}, f"IgnoreUnknown=1;MAC={env_mac}", env_mac),
        ({"args": {"cni": {"mac": args_mac}}}, f"IgnoreUnknown=1;MAC={env_mac}", args_mac),
        (
            {"args": {"cni": {"mac": args_mac}}, "runtimeConfig": {"mac": rc_mac}},
            f"IgnoreUnknown=1;MAC={env_mac};K8S_POD_NAME=x",
            rc_mac,
        ),
    ]
    for extra, cni_args, want in cases:
        pod = netns_factory()
        add = runner.run("bridge", "ADD", net.conf(**extra), cid=cid(), netns=pod, args=cni_args)
        assert add.code == 0, add.out
        assert add.json["interfaces"][2]["mac"] == want
        assert link(pod, "eth0")["mac"] == want


def test_unknown_cni_args_rejected(runner: Runner, net: Net, netns_factory: Any) -> None:
    pod = netns_factory()
    add = runner.run("bridge", "ADD", net.conf(), cid=cid(), netns=pod, args="K8S_POD_NAME=x")
    assert add.code == 1 and "unknown args" in add.json["msg"]
    assert links(pod) == ["lo"] and net.leases() == []


def test_force_address_and_failure_releases_ipam(
    runner: Runner, net: Net, netns_factory: Any
) -> None:
    # a bridge that already carries a different IPv4 address
    subprocess.run(["ip", "link", "add", net.bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", "192.0.2.1/24", "dev", net.bridge], check=True)
    pod, c = netns_factory(), cid()
    before = {n for n in links(None) if n.startswith("veth")}
    add = runner.run("bridge", "ADD", net.conf(isGateway=True), cid=c, netns=pod)
    assert add.code == 1
    assert "already has an IP address different from" in add.json["msg"]
    # the failure came after IPAM and veth creation: both were undone
    assert net.leases() == [] and links(pod) == ["lo"]
    # (veths of earlier tests' deleted pods may still be going away)
    assert {n for n in links(None) if n.startswith("veth")} <= before
    add = runner.run("bridge", "ADD", net.conf(isGateway=True, forceAddress=True), cid=c, netns=pod)
    assert add.code == 0, add.out
    have = addrs(None, net.bridge)
    assert f"{net.gw}/24" in have and "192.0.2.1/24" not in have


def test_existing_non_bridge_link_is_an_error(runner: Runner, net: Net, netns_factory: Any) -> None:
    subprocess.run(
        ["ip", "link", "add", net.bridge, "type", "veth", "peer", "name", net.bridge + "p"],
        check=True,
    )
    try:
        pod = netns_factory()
        add = runner.run("bridge", "ADD", net.conf(), cid=cid(), netns=pod)
        assert add.code == 1 and "is not a bridge" in add.json["msg"]
        assert links(pod) == ["lo"] and net.leases() == []
    finally:
        subprocess.run(["ip", "link", "del", net.bridge], check=True)


def test_container_ifname_already_exists(runner: Runner, net: Net, netns_factory: Any) -> None:
    pod = netns_factory()
    assert runner.run("bridge", "ADD", net.conf(), cid=cid(), netns=pod).code == 0
    again = runner.run("bridge", "ADD", net.conf(), cid=cid(), netns=pod)
    assert again.code == 1 and 'container veth name "eth0" already exists' in again.json["msg"]
    assert len(net.leases()) == 1  # only the first attachment holds an address
    assert link(pod, "eth0") is not None  # the existing interface was not touched


def test_dual_stack(runner: Runner, net: Net, netns_factory: Any) -> None:
    pod, c = netns_factory(), cid()
    v6 = f"fd00:{net.bridge[2:]}::/64"
    conf = net.conf("1.0.0", isDefaultGateway=True)
    conf["ipam"]["ranges"] = [[{"subnet": net.subnet}], [{"subnet": v6}]]
    add = runner.run("bridge", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    ips = add.json["ips"]
    assert len(ips) == 2 and all(i["interface"] == 2 for i in ips)
    v6addr = [i["address"] for i in ips if ":" in i["address"]][0]
    assert v6addr in addrs(pod, "eth0")
    assert {r["dst"] for r in add.json["routes"]} == {"0.0.0.0/0", "::/0"}
    assert [r for r in routes(pod, 10) if r["dst"] == "::/0"]
    assert sysctl_in(None, "net/ipv6/conf/all/forwarding") == "1"
    chk = runner.run("bridge", "CHECK", dict(conf, prevResult=add.json), cid=c, netns=pod)
    assert chk.code == 0, chk.out


def test_check_detects_drift(runner: Runner, net: Net, netns_factory: Any) -> None:
    pod, c = netns_factory(), cid()
    conf = net.conf("1.0.0", isGateway=True)
    add = runner.run("bridge", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0
    chk_conf = dict(conf, prevResult=add.json)
    name = pod.rsplit("/", 1)[1]
    subprocess.run(["ip", "-n", name, "addr", "flush", "dev", "eth0"], check=True)
    chk = runner.run("bridge", "CHECK", chk_conf, cid=c, netns=pod)
    assert chk.code == 1 and "Failed to match addr" in chk.json["msg"]
    missing = runner.run("bridge", "CHECK", conf, cid=c, netns=pod)
    assert missing.code == 1 and "prevResult" in missing.json["msg"]


def test_check_sandbox_and_bridge_port(runner: Runner, net: Net, netns_factory: Any) -> None:
    pod, c = netns_factory(), cid()
    conf = net.conf("1.0.0", isGateway=True)
    add = runner.run("bridge", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    chk_conf = dict(conf, prevResult=add.json)
    other = netns_factory()
    wrong = runner.run("bridge", "CHECK", chk_conf, cid=c, netns=other)
    assert wrong.code == 1 and f"configured netns: {other}" in wrong.json["msg"]
    host = add.json["interfaces"][1]["name"]
    subprocess.run(["ip", "link", "set", host, "nomaster"], check=True)
    off = runner.run("bridge", "CHECK", chk_conf, cid=c, netns=pod)
    assert off.code == 1
    assert off.json["msg"] == f"Interface {host} veth not on bridge {net.bridge}"


def test_missing_netns(runner: Runner, net: Net, netns_factory: Any) -> None:
    c = cid()
    add = runner.run("bridge", "ADD", net.conf(), cid=c, netns="/run/netns/does-not-exist")
    assert add.code == 1
    err = add.json
    assert err["code"] == 999 and "/run/netns/does-not-exist" in err["msg"]
    assert net.leases() == []
    not_ns = runner.run("bridge", "ADD", net.conf(), cid=c, netns="/etc/hostname")
    assert not_ns.code == 1 and not_ns.json["code"] == 999


def test_del_after_netns_gone_releases_ipam(runner: Runner, net: Net, netns_factory: Any) -> None:
    pod, c = netns_factory(), cid()
    assert runner.run("bridge", "ADD", net.conf(), cid=c, netns=pod).code == 0
    assert len(net.leases()) == 1
    delete_netns(pod)
    dele = runner.run("bridge", "DEL", net.conf(), cid=c, netns=pod)
    assert dele.code == 0, dele.out
    assert net.leases() == []
    # empty CNI_NETNS: only the IPAM release
    pod2, c2 = netns_factory(), cid()
    assert runner.run("bridge", "ADD", net.conf(), cid=c2, netns=pod2).code == 0
    assert runner.run("bridge", "DEL", net.conf(), cid=c2, netns="").code == 0
    assert net.leases() == []


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"isGateway": "yes"}, '"isGateway" must be a boolean'),
        ({"mtu": "1400"}, '"mtu" must be an integer'),
        ({"bridge": 7}, '"bridge" must be a string'),
        ({"bridge": "../x"}, 'invalid "bridge" name'),
        ({"ipam": "host-local"}, '"ipam" must be an object'),
    ],
)
def test_bad_config_types(
    runner: Runner, net: Net, netns_factory: Any, extra: dict[str, Any], needle: str
) -> None:
    pod = netns_factory()
    add = runner.run("bridge", "ADD", net.conf(**extra), cid=cid(), netns=pod)
    assert add.code == 1
    err = add.json
    assert err["code"] == 999 and needle in err["msg"], err
    assert links(pod) == ["lo"] and net.leases() == []


@pytest.mark.parametrize("ifname", ["../eth0", "a/b", "x" * 16, "."])
def test_bad_ifname(runner: Runner, net: Net, netns_factory: Any, ifname: str) -> None:
    pod = netns_factory()
    add = runner.run("bridge", "ADD", net.conf(), cid=cid(), netns=pod, ifname=ifname)
    assert add.code == 1 and add.json["code"] == 4
    assert links(pod) == ["lo"] and net.leases() == []


def test_status_forwards_to_ipam(runner: Runner, net: Net) -> None:
    ok = runner.run("bridge", "STATUS", net.conf("1.1.0"))
    assert ok.code == 0, ok.out
    conf = net.conf("1.1.0")
    conf["ipam"]["type"] = "no-such-ipam"
    bad = runner.run("bridge", "STATUS", conf)
    assert bad.code == 1 and "no-such-ipam" in bad.json["msg"]


def test_ip_masq(runner: Runner, net: Net, netns_factory: Any) -> None:
    from cnitool_plugins._lib import ipmasq  # noqa: F401 - skip cleanly if it is missing

    pod, c = netns_factory(), cid()
    conf = net.conf(isGateway=True, ipMasq=True)
    add = runner.run("bridge", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    saved = nat_rules()
    ip = add.json["ips"][0]["address"].split("/")[0]
    assert f"-A POSTROUTING -s {ip}/32" in saved and f'id: \\"{c}\\"' in saved
    assert runner.run("bridge", "DEL", dict(conf, prevResult=add.json), cid=c, netns=pod).code == 0
    saved = nat_rules()
    assert f"-s {ip}/32" not in saved and f'id: \\"{c}\\"' not in saved


def test_two_pods_talk_over_the_bridge(runner: Runner, net: Net, netns_factory: Any) -> None:
    a, b = netns_factory(), netns_factory()
    ra = runner.run("bridge", "ADD", net.conf(isGateway=True), cid=cid(), netns=a)
    rb = runner.run("bridge", "ADD", net.conf(isGateway=True), cid=cid(), netns=b)
    assert ra.code == 0 and rb.code == 0
    ip_b = rb.json["ips"][0]["address"].split("/")[0]
    assert tcp_echo(b, ip_b, a, b"pod a to pod b") == b"pod a to pod b"
    # and the pod reaches the node through the gateway address on the bridge
    assert tcp_echo(None, net.gw, a, b"to the node") == b"to the node"


def test_ip_masq_nftables_backend_refused(runner: Runner, net: Net, netns_factory: Any) -> None:
    pod = netns_factory()
    add = runner.run(
        "bridge", "ADD", net.conf(ipMasq=True, ipMasqBackend="nftables"), cid=cid(), netns=pod
    )
    assert add.code == 1 and add.json["code"] == 2 and "nftables" in add.json["msg"]
    assert links(pod) == ["lo"] and net.leases() == []


@pytest.mark.parametrize("spoofchk", [True, False])
def test_macspoofchk_drops_spoofed_frames(
    runner: Runner, net: Net, netns_factory: Any, spoofchk: bool
) -> None:
    if subprocess.run(["nft", "list", "tables"], capture_output=True).returncode != 0:
        pytest.skip("nftables not usable here")
    a, b = netns_factory(), netns_factory()
    ra = runner.run("bridge", "ADD", net.conf(macspoofchk=spoofchk), cid=cid(), netns=a)
    rb = runner.run("bridge", "ADD", net.conf(), cid=cid(), netns=b)
    assert ra.code == 0 and rb.code == 0, (ra.out, rb.out)
    ip_b = rb.json["ips"][0]["address"].split("/")[0]
    assert tcp_echo(b, ip_b, a, b"genuine mac") == b"genuine mac"
    # pod a changes its MAC (both neighbour caches forgotten): only the check stops it
    name_a, name_b = a.rsplit("/", 1)[1], b.rsplit("/", 1)[1]
    subprocess.run(
        ["ip", "-n", name_a, "link", "set", "eth0", "address", "0a:bb:cc:dd:ee:ff"], check=True
    )
    for name in (name_a, name_b):
        subprocess.run(["ip", "-n", name, "neigh", "flush", "all"], check=True)
    if spoofchk:
        with pytest.raises(OSError):
            tcp_echo(b, ip_b, a, b"spoofed", timeout=2)
    else:
        assert tcp_echo(b, ip_b, a, b"new mac, no check") == b"new mac, no check"


def test_port_isolation_separates_pods(runner: Runner, net: Net, netns_factory: Any) -> None:
    a, b = netns_factory(), netns_factory()
    conf = net.conf(isGateway=True, portIsolation=True)
    ra = runner.run("bridge", "ADD", conf, cid=cid(), netns=a)
    rb = runner.run("bridge", "ADD", conf, cid=cid(), netns=b)
    assert ra.code == 0 and rb.code == 0
    ip_b = rb.json["ips"][0]["address"].split("/")[0]
    # isolated ports cannot reach each other, but both still reach the node
    with pytest.raises(OSError):
        tcp_echo(b, ip_b, a, b"blocked", timeout=2)
    assert tcp_echo(None, net.gw, a, b"to node") == b"to node"


def test_parallel_adds_share_one_bridge(
    bin_dir: Any, runner: Runner, net: Net, netns_factory: Any
) -> None:
    """Several plugin processes at once: one bridge, distinct addresses, clean DELs."""
    from concurrent.futures import ThreadPoolExecutor

    pods = [netns_factory() for _ in range(6)]
    conf = json.dumps(net.conf(isGateway=True)).encode()

    def call(command: str, i: int) -> subprocess.CompletedProcess[bytes]:
        env = runner.env(command, cid=f"par-{i}", netns=pods[i])
        return subprocess.run(
            [str(bin_dir / "bridge")], input=conf, env=env, capture_output=True, timeout=60
        )

    with ThreadPoolExecutor(len(pods)) as ex:
        adds = list(ex.map(lambda i: call("ADD", i), range(len(pods))))
    assert all(p.returncode == 0 for p in adds), [p.stdout for p in adds]
    ips = {json.loads(p.stdout)["ips"][0]["address"] for p in adds}
    assert len(ips) == len(pods)
    assert [n for n in links(None) if n == net.bridge] == [net.bridge]
    with ThreadPoolExecutor(len(pods)) as ex:
        dels = list(ex.map(lambda i: call("DEL", i), range(len(pods))))
    assert all(p.returncode == 0 for p in dels), [p.stdout for p in dels]
    assert net.leases() == [] and all(links(p) == ["lo"] for p in pods)


@pytest.mark.parametrize("version", VERSIONS)
def test_options_matrix_every_version(
    runner: Runner, net: Net, netns_factory: Any, version: str
) -> None:
    """Many options at once, per spec version: result, kernel state, CHECK, DEL."""
    pod, c = netns_factory(), cid()
    mac = "0a:58:00:00:00:42"
    dns = {"nameservers": ["10.0.0.10"], "domain": "cluster.test"}
    conf = net.conf(
        version,
        isDefaultGateway=True,
        mtu=1450,
        hairpinMode=True,
        portIsolation=True,
        enabledad=True,
        dns=dns,
        capabilities={"mac": True},
        runtimeConfig={"mac": mac},
    )
    add = runner.run("bridge", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    res = add.json
    assert res["cniVersion"] == version
    assert res["interfaces"][2]["mac"] == mac and link(pod, "eth0")["mac"] == mac
    assert res["dns"] == dns
    assert res["routes"][0]["dst"] == "0.0.0.0/0" and res["routes"][0]["gw"] == net.gw
    host = link(None, res["interfaces"][1]["name"])
    assert host["mtu"] == 1450 and link(pod, "eth0")["mtu"] == 1450
    assert host["protinfo"]["IFLA_BRPORT_MODE"] == 1
    assert host["protinfo"]["IFLA_BRPORT_ISOLATED"] == 1
    assert sysctl_in(pod, "net/ipv6/conf/eth0/accept_dad") == "1"
    if version != "0.3.1":
        chk = runner.run("bridge", "CHECK", dict(conf, prevResult=res), cid=c, netns=pod)
        assert chk.code == 0, chk.out
    dele = runner.run("bridge", "DEL", dict(conf, prevResult=res), cid=c, netns=pod)
    assert dele.code == 0, dele.out
    assert links(pod) == ["lo"] and net.leases() == []


def test_procfs_netns_path(runner: Runner, net: Net, netns_factory: Any) -> None:
    """CNI_NETNS as /proc/<pid>/ns/net of a process living in the pod namespace."""
    pod = netns_factory()
    proc = subprocess.Popen(["ip", "netns", "exec", pod.rsplit("/", 1)[1], "sleep", "30"])
    try:
        path = f"/proc/{proc.pid}/ns/net"
        for _ in range(50):
            if os.path.exists(path) and os.stat(path).st_ino == os.stat(pod).st_ino:
                break
            time.sleep(0.05)
        c = cid()
        add = runner.run("bridge", "ADD", net.conf(), cid=c, netns=path)
        assert add.code == 0, add.out
        assert add.json["interfaces"][2]["sandbox"] == path
        assert add.json["ips"][0]["address"] in addrs(pod, "eth0")
        assert runner.run("bridge", "DEL", net.conf(), cid=c, netns=path).code == 0
        assert links(pod) == ["lo"]
    finally:
        proc.kill()
        proc.wait()


def test_ipv6_only_gateway(runner: Runner, net: Net, netns_factory: Any) -> None:
    pod, c = netns_factory(), cid()
    v6 = f"fd00:{net.bridge[2:]}:1::/64"
    conf = net.conf("1.1.0", isDefaultGateway=True)
    conf["ipam"]["ranges"] = [[{"subnet": v6}]]
    add = runner.run("bridge", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    ip = add.json["ips"][0]
    gw = str(ipaddress.ip_network(v6).network_address + 1)
    assert ip["gateway"] == gw and ip["interface"] == 2
    assert add.json["routes"] == [{"dst": "::/0", "gw": gw}]
    assert f"{gw}/64" in addrs(None, net.bridge)
    assert ip["address"] in addrs(pod, "eth0")
    assert sysctl_in(pod, "net/ipv6/conf/eth0/disable_ipv6") == "0"
    assert tcp_echo(None, gw, pod, b"v6 to node") == b"v6 to node"
    chk = runner.run("bridge", "CHECK", dict(conf, prevResult=add.json), cid=c, netns=pod)
    assert chk.code == 0, chk.out
    # a second, non-overlapping IPv6 subnet may share the bridge; an overlapping one may not
    other = dict(conf)
    other["ipam"] = dict(conf["ipam"], ranges=[[{"subnet": f"fd00:{net.bridge[2:]}:2::/64"}]])
    assert runner.run("bridge", "ADD", other, cid=cid(), netns=netns_factory()).code == 0
    clash = dict(conf)
    clash["ipam"] = dict(
        conf["ipam"], ranges=[[{"subnet": v6, "gateway": f"fd00:{net.bridge[2:]}:1::fe"}]]
    )
    bad = runner.run("bridge", "ADD", clash, cid=cid(), netns=netns_factory())
    assert bad.code == 1 and "already has an IP address different from" in bad.json["msg"]


def test_del_reports_every_error_and_keeps_cleaning(
    runner: Runner, net: Net, netns_factory: Any, tmp_path: Any
) -> None:
    """A failing step of DEL does not stop the others, and every failure is reported."""
    pod, c = netns_factory(), cid()
    assert runner.run("bridge", "ADD", net.conf(), cid=c, netns=pod).code == 0
    broken_ipam = net.conf(ipam={"type": "no-such-ipam"})
    # IPAM fails, the container veth is still removed
    dele = runner.run("bridge", "DEL", broken_ipam, cid=c, netns=pod)
    assert dele.code == 1 and "no-such-ipam" in dele.json["msg"]
    assert links(pod) == ["lo"]
    # two failures (a CNI_NETNS that is not a namespace, and the IPAM) are both named
    not_ns = tmp_path / "not-a-netns"
    not_ns.write_text("")
    dele = runner.run("bridge", "DEL", broken_ipam, cid=c, netns=str(not_ns))
    msg = dele.json["msg"]
    assert dele.code == 1 and "2 errors during DEL" in msg
    assert str(not_ns) in msg and "no-such-ipam" in msg
    # the real IPAM still releases the lease afterwards
    assert runner.run("bridge", "DEL", net.conf(), cid=c, netns=pod).code == 0
    assert net.leases() == []


def test_container_setup_failure_releases_ipam_and_links(
    runner: Runner, net: Net, netns_factory: Any
) -> None:
    """A route the container cannot take fails ADD after IPAM: lease and veth are undone."""
    pod, c = netns_factory(), cid()
    ipam = host_local(
        net.subnet, runner.data_dir, routes=[{"dst": "192.0.2.0/24", "gw": "203.0.113.1"}]
    )
    before = [n for n in links(None) if n.startswith("veth")]
    add = runner.run("bridge", "ADD", net.conf(ipam=ipam), cid=c, netns=pod)
    assert add.code == 1 and "failed to add route" in add.json["msg"], add.out
    assert "203.0.113.1" in add.json["msg"]
    assert net.leases() == [] and links(pod) == ["lo"]
    # (veths of earlier tests' deleted pods may still be going away)
    assert {n for n in links(None) if n.startswith("veth")} <= set(before)
    # the same container can be added once the config is fixed
    assert runner.run("bridge", "ADD", net.conf(), cid=c, netns=pod).code == 0
    assert len(net.leases()) == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_other_options_every_version(
    runner: Runner, net: Net, netns_factory: Any, version: str
) -> None:
    """The options the first matrix leaves out, per spec version; DEL twice is fine."""
    nft = subprocess.run(["nft", "list", "tables"], capture_output=True).returncode == 0
    # a bridge holding a stale gateway address that forceAddress replaces
    subprocess.run(["ip", "link", "add", net.bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", "192.0.2.1/24", "dev", net.bridge], check=True)
    pod, c = netns_factory(), cid()
    mac = "0a:58:00:00:00:43"
    conf = net.conf(version, isGateway=True, forceAddress=True, promiscMode=True, macspoofchk=nft)
    add = runner.run("bridge", "ADD", conf, cid=c, netns=pod, args=f"IgnoreUnknown=1;MAC={mac}")
    assert add.code == 0, add.out
    res = add.json
    assert res["cniVersion"] == version
    assert [i.get("sandbox") for i in res["interfaces"]] == [None, None, pod]
    ip = res["ips"][0]
    assert ip["interface"] == 2 and ip["gateway"] == net.gw
    assert ("version" in ip) == (version in ("0.3.1", "0.4.0"))
    assert "routes" not in res  # isGateway alone adds no default route
    assert res["interfaces"][2]["mac"] == mac == link(pod, "eth0")["mac"]
    br = link(None, net.bridge)
    assert br["promisc"] and br["mac"] == res["interfaces"][0]["mac"]
    v4 = [a for a in addrs(None, net.bridge) if ":" not in a]
    assert v4 == [f"{net.gw}/{net.prefix}"]  # 192.0.2.1/24 was replaced
    assert sysctl_in(pod, "net/ipv6/conf/eth0/accept_dad") == "0"
    assert sysctl_in(pod, "net/ipv4/conf/eth0/arp_notify") == "1"
    if nft:
        assert f"cni-br-iface-{c}-eth0" in _nft_bridge_nat_rules()
    if version != "0.3.1":
        chk = runner.run("bridge", "CHECK", dict(conf, prevResult=res), cid=c, netns=pod)
        assert chk.code == 0, chk.out
    for _ in range(2):
        dele = runner.run("bridge", "DEL", dict(conf, prevResult=res), cid=c, netns=pod)
        assert dele.code == 0, dele.out
    assert links(pod) == ["lo"] and net.leases() == []
    if nft:
        assert f"cni-br-iface-{c}-eth0" not in _nft_bridge_nat_rules()


@pytest.mark.parametrize("version", VERSIONS)
def test_layer2_only_every_version(
    runner: Runner, net: Net, netns_factory: Any, version: str
) -> None:
    pod, c = netns_factory(), cid()
    conf = net.conf(version, ipam={}, disableContainerInterface=True)
    add = runner.run("bridge", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    res = add.json
    assert res["cniVersion"] == version and "ips" not in res
    assert [i["name"] for i in res["interfaces"]][::2] == [net.bridge, "eth0"]
    assert not link(pod, "eth0")["up"] and link(None, res["interfaces"][1]["name"])["up"]
    if version != "0.3.1":
        chk = runner.run("bridge", "CHECK", dict(conf, prevResult=res), cid=c, netns=pod)
        assert chk.code == 0, chk.out
    for _ in range(2):
        assert runner.run("bridge", "DEL", conf, cid=c, netns=pod).code == 0
    assert links(pod) == ["lo"]


def test_unusable_ipam_result_is_released(
    runner: Runner, net: Net, netns_factory: Any, bin_dir: Any, tmp_path: Any
) -> None:
    """An IPAM ADD that succeeds without addresses fails the ADD and is DELeted again."""
    marker = tmp_path / "allocated"
    fake = bin_dir / "fake-ipam"
    fake.write_text(
        "#!/bin/sh\n"
        "cat >/dev/null\n"
        f'case "$CNI_COMMAND" in\n'
        f'  ADD) touch {marker}; echo \'{{"cniVersion": "1.0.0"}}\' ;;\n'
        f"  DEL) rm -f {marker} ;;\n"
        "esac\n"
    )
    fake.chmod(0o755)
    pod = netns_factory()
    add = runner.run("bridge", "ADD", net.conf(ipam={"type": "fake-ipam"}), cid=cid(), netns=pod)
    assert add.code == 1 and "missing IP config" in add.json["msg"], add.out
    assert not marker.exists()  # released
    assert links(pod) == ["lo"]


def test_status_passes_on_the_ipam_answer(runner: Runner, net: Net, bin_dir: Any) -> None:
    """STATUS is the IPAM plugin's STATUS: its code and message come through unchanged."""
    fake = bin_dir / "down-ipam"
    fake.write_text(
        "#!/bin/sh\ncat >/dev/null\n"
        'echo \'{"code": 50, "msg": "address pool not reachable"}\'\nexit 1\n'
    )
    fake.chmod(0o755)
    for plugin in ("bridge", "ptp"):
        conf = net.conf("1.1.0", type=plugin, ipam={"type": "down-ipam"})
        out = runner.run(plugin, "STATUS", conf)
        assert out.code == 1 and out.json["code"] == 50, (plugin, out.out)
        assert out.json["msg"] == "address pool not reachable"
    # layer 2 only: nothing to ask, ready
    assert runner.run("bridge", "STATUS", net.conf("1.1.0", ipam={})).code == 0


def test_ip_masq_removed_when_the_netns_went_first(
    runner: Runner, net: Net, netns_factory: Any
) -> None:
    pod, c = netns_factory(), cid()
    conf = net.conf(isGateway=True, ipMasq=True)
    add = runner.run("bridge", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    ip = add.json["ips"][0]["address"].split("/")[0]

    assert f"-A POSTROUTING -s {ip}/32" in nat_rules()
    delete_netns(pod)
    for _ in range(2):
        dele = runner.run("bridge", "DEL", dict(conf, prevResult=add.json), cid=c, netns=pod)
        assert dele.code == 0, dele.out
    assert f"-s {ip}/32" not in nat_rules() and f'id: \\"{c}\\"' not in nat_rules()
    assert net.leases() == []


@pytest.mark.parametrize("plugin", ["bridge", "ptp"])
def test_ip_masq_removed_by_a_del_without_netns_or_prev_result(
    runner: Runner, net: Net, netns_factory: Any, plugin: str
) -> None:
    """After a reboot a runtime may DEL with no netns and no prevResult: the masquerade
    chain is still found by its name (network + container ID) and removed."""
    pod, c = netns_factory(), cid()
    conf = net.conf(type=plugin, isGateway=True, ipMasq=True)
    if plugin == "ptp":
        conf.pop("isGateway")
    add = runner.run(plugin, "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    assert f'id: \\"{c}\\"' in nat_rules()
    delete_netns(pod)
    for _ in range(2):
        dele = runner.run(plugin, "DEL", conf, cid=c, netns="")
        assert dele.code == 0, dele.out
    assert f'id: \\"{c}\\"' not in nat_rules()
    assert net.leases() == []


@pytest.mark.parametrize("plugin", ["bridge", "ptp"])
def test_exhausted_range_and_taken_ip_leave_nothing(
    runner: Runner, net: Net, netns_factory: Any, plugin: str
) -> None:
    """IPAM refusing (no address left, requested one taken): the veth made before is gone."""
    ipam = host_local("10.251.0.0/30", runner.data_dir)  # one usable address: .2
    first = netns_factory()
    conf = net.conf(type=plugin, ipam=ipam)
    assert runner.run(plugin, "ADD", conf, cid=cid(), netns=first).code == 0
    before = [n for n in links(None) if n.startswith("veth")]
    for args, needle in (
        ("", "no IP addresses available"),
        ("IgnoreUnknown=1;IP=10.251.0.2", "not available"),
    ):
        pod = netns_factory()
        add = runner.run(plugin, "ADD", conf, cid=cid(), netns=pod, args=args)
        assert add.code == 1 and needle in add.json["msg"], add.out
        assert add.json["code"] == 999  # as the reference reports it
        assert links(pod) == ["lo"]
        assert {n for n in links(None) if n.startswith("veth")} <= set(before)
    assert len(lease_files(runner.data_dir, net.name)) == 1


def _masq_rules(ip: str, chain_of: str) -> list[str]:
    """The nat rules of one container (its address, its chain), in iptables-save's text."""
    return [r for r in nat_rules().splitlines() if f"{ip}/" in r or chain_of in r]


@pytest.mark.parametrize("length", [200, 1100, 5000])
@pytest.mark.parametrize("plugin", ["bridge", "ptp"])
def test_ip_masq_long_container_id_like_go(
    runner: Runner, net: Net, netns_factory: Any, plugin: str, length: int
) -> None:
    """iptables keeps 255 bytes of a comment: ours writes what Go's rules hold, for any ID
    length Go accepts, and each side's DEL removes the other's rules."""
    from cnitool_plugins._lib.firewall.names import format_chain_name

    go = Path("/usr/lib/cni") / plugin
    if not go.is_file():
        pytest.skip(f"reference {plugin} not installed")
    conf = net.conf(type=plugin, ipMasq=True)
    c = "c" * length
    chain = format_chain_name(net.name, c)

    def add(ours: bool, pod: str) -> tuple[dict[str, Any], list[str]]:
        if ours:
            call = runner.run(plugin, "ADD", conf, cid=c, netns=pod)
        else:
            call = exec_plugin(go, runner, "ADD", conf, cid=c, netns=pod)
        assert call.code == 0, call.out
        ip = call.json["ips"][0]["address"].split("/")[0]
        return call.json, [r.replace(ip, "IP") for r in _masq_rules(ip, chain)]

    def delete(ours: bool, pod: str, result: dict[str, Any]) -> None:
        del_conf = dict(conf, prevResult=result)
        if ours:
            call = runner.run(plugin, "DEL", del_conf, cid=c, netns=pod)
        else:
            call = exec_plugin(go, runner, "DEL", del_conf, cid=c, netns=pod)
        assert call.code == 0, call.out
        assert chain not in nat_rules() and f'id: \\"{"c" * 100}' not in nat_rules()
        assert net.leases() == []

    pod = netns_factory()
    go_result, go_rules = add(False, pod)
    assert len(go_rules) == 4  # the chain, its two rules, the POSTROUTING jump
    delete(True, pod, go_result)
    pod = netns_factory()
    our_result, our_rules = add(True, pod)
    assert our_rules == go_rules
    delete(False, pod, our_result)


def exec_plugin(path: Path, runner: Runner, command: str, conf: Any, **kw: str) -> Call:
    """Exec a plugin binary the way a runtime does (the Go reference one, here)."""
    env = runner.env(command, **kw)
    proc = subprocess.run(
        [str(path)], input=json.dumps(conf).encode(), env=env, capture_output=True, timeout=60
    )
    return Call(proc.stdout, proc.returncode, proc.stderr.decode())


@pytest.mark.parametrize("ifname", ["eth%d", "e%s", "x%"])
@pytest.mark.parametrize("plugin", ["bridge", "ptp"])
def test_kernel_name_template_is_refused_and_leaves_nothing(
    runner: Runner, net: Net, netns_factory: Any, plugin: str, ifname: str
) -> None:
    """The kernel would name the container's veth eth0 for eth%d; the reference plugins
    then fail and leave the veth pair. ADD refuses such a name first; DEL accepts it."""
    pod, c = netns_factory(), cid()
    host_links = links(None)
    conf = net.conf(type=plugin)
    add = runner.run(plugin, "ADD", conf, cid=c, netns=pod, ifname=ifname)
    assert add.code == 1 and add.json == {
        "code": 4,
        "msg": "interface name contains %, which the kernel takes for a name template",
        "details": ifname,
    }
    assert links(pod) == ["lo"] and links(None) == host_links and net.leases() == []
    assert runner.run(plugin, "DEL", conf, cid=c, netns=pod, ifname=ifname).code == 0
