"""ipvlan plugin, in-process, on masters the tests make in the throwaway node netns (a veth
end); compared with the Go reference. Needs a kernel with ipvlan: .ci/run runs these in a
VM (.ci/kernel-vm.sh); elsewhere they skip, saying so."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from plugin_helpers import (
    Runner,
    add_in_pod,
    addrs,
    cid,
    delete_netns,
    details,
    go_plugin,
    host_local,
    index_of,
    ip_cmd,
    lease_files,
    links,
    node_links,
    routes,
    shape,
    swap_with_go,
    sysctl_in,
    tcp_echo,
    unique_net,
)

pytestmark = [pytest.mark.root, pytest.mark.kernel("ipvlan")]

GO_VERSIONS = ("0.3.1", "0.4.0", "1.0.0")  # what the reference 1.1.1 binaries accept


def conf_for(
    version: str, name: str, master: str | None, ipam: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    conf: dict[str, Any] = {"cniVersion": version, "name": name, "type": "ipvlan"}
    if master is not None:
        conf["master"] = master
    if ipam is not None:
        conf["ipam"] = ipam
    conf.update(extra)
    return conf


def go_run(command: str, conf: dict[str, Any], **kw: Any) -> tuple[int, Any]:
    return go_plugin("ipvlan", command, conf, **kw)


# -- ADD / CHECK / DEL --------------------------------------------------------------------
@pytest.mark.parametrize("version", ["0.3.1", "1.1.0"])  # 0.4.0, 1.0.0: against the reference
def test_add_check_del_every_version(
    runner: Runner, netns_factory: Any, master: str, version: str
) -> None:
    _, subnet, name = unique_net()
    gw = str(ipaddress.ip_network(subnet).network_address + 1)
    pod, c = netns_factory(), cid()
    ipam = host_local(subnet, runner.data_dir, routes=[{"dst": "0.0.0.0/0"}])
    conf = conf_for(version, name, master, ipam, mtu=1400, dns={"nameservers": ["10.1.1.1"]})
    res, _, d = add_in_pod(runner, "ipvlan", conf, pod, c, gw)
    assert res["dns"] == {"nameservers": ["10.1.1.1"]}
    assert d["kind"] == "ipvlan" and d["mode"] == "l2" and d["up"]
    assert d["parent"] == index_of(None, master) and d["mtu"] == 1400
    assert sysctl_in(pod, "net/ipv4/conf/eth0/arp_notify") == "1"

    if version != "0.3.1":
        chk = runner.run("ipvlan", "CHECK", dict(conf, prevResult=res), cid=c, netns=pod)
        assert chk.code == 0, chk.out
        l3 = runner.run("ipvlan", "CHECK", dict(conf, prevResult=res, mode="l3"), cid=c, netns=pod)
        assert l3.json["msg"] == "Container IPVlan mode l2 does not match expected value: l3"
    for _ in range(2):
        dele = runner.run("ipvlan", "DEL", conf, cid=c, netns=pod)
        assert dele.code == 0, dele.out
    assert links(pod) == ["lo"] and lease_files(runner.data_dir, name) == []


def test_modes_and_traffic_between_pods(
    runner: Runner, netns_factory: Any, make_master: Callable[..., str]
) -> None:
    """Every mode makes its link; two pods on one master reach each other in each."""
    for mode in ("l2", "l3", "l3s"):
        _, subnet, name = unique_net()
        conf = conf_for("1.1.0", name, make_master(), host_local(subnet, runner.data_dir))
        conf["mode"] = mode
        a, b, ca = netns_factory(), netns_factory(), cid()
        ra = runner.run("ipvlan", "ADD", conf, cid=ca, netns=a)
        rb = runner.run("ipvlan", "ADD", conf, cid=cid(), netns=b)
        assert ra.code == 0 and rb.code == 0, (ra.out, rb.out)
        d = details(a, "eth0")
        assert d is not None and d["mode"] == mode and d["kind"] == "ipvlan"
        ip_b = rb.json["ips"][0]["address"].split("/")[0]
        payload = f"a to b, ipvlan {mode}".encode()
        assert tcp_echo(b, ip_b, a, payload) == payload
        chk = runner.run("ipvlan", "CHECK", dict(conf, prevResult=ra.json), cid=ca, netns=a)
        assert chk.code == 0, chk.out


# -- same request, reference plugin -------------------------------------------------------
@pytest.mark.parametrize("version", GO_VERSIONS)
def test_same_result_and_link_as_the_reference(
    runner: Runner, netns_factory: Any, make_master: Callable[..., str], version: str
) -> None:
    # one mode per version keeps the VM run short: the default (l2), l3, l3s
    for mode in ({"0.3.1": None, "0.4.0": "l3", "1.0.0": "l3s"}[version],):
        _, subnet, name = unique_net()
        extra: dict[str, Any] = {"mtu": 1450, "dns": {"nameservers": ["10.1.2.3"]}}
        if mode is not None:
            extra["mode"] = mode
        conf = conf_for(version, name, make_master(), host_local(subnet, runner.data_dir), **extra)
        keys = ("kind", "mode", "parent", "mtu", "up", "mac")
        swap_with_go(runner, netns_factory, "ipvlan", conf, keys)


# -- chained, without ipam ----------------------------------------------------------------
def test_chained_without_ipam_takes_master_and_addresses_from_prev_result(
    runner: Runner, netns_factory: Any, master: str
) -> None:
    _, subnet, name = unique_net()
    net = ipaddress.ip_network(subnet)

    def prev(host: int) -> dict[str, Any]:
        return {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": master}],
            "ips": [{"address": f"{net.network_address + host}/24", "interface": 0}],
            "routes": [{"dst": "192.0.2.0/24", "gw": str(net.network_address + 1)}],
            "dns": {"nameservers": ["10.9.9.9"]},
        }

    conf = conf_for("1.0.0", name, None)
    ours_ns, go_ns, c1, c2 = netns_factory(), netns_factory(), cid(), cid()
    ours = runner.run("ipvlan", "ADD", dict(conf, prevResult=prev(5)), cid=c1, netns=ours_ns)
    assert ours.code == 0, ours.out
    d = details(ours_ns, "eth0")
    assert d is not None and d["parent"] == index_of(None, master)
    assert ours.json["interfaces"] == [{"name": "eth0", "mac": d["mac"], "sandbox": ours_ns}]
    assert ours.json["ips"] == [{"address": f"{net.network_address + 5}/24", "interface": 0}]
    assert f"{net.network_address + 5}/24" in addrs(ours_ns, "eth0")
    assert [r for r in routes(ours_ns) if r["dst"] == "192.0.2.0/24"]
    code, go = go_run("ADD", dict(conf, prevResult=prev(6)), netns=go_ns, cid=c2)
    assert code == 0, go
    assert shape(ours.json) == shape(go)
    # CHECK, with the master named (the reference's CHECK cannot find an unnamed one)
    named = dict(conf, master=master)
    chk = runner.run("ipvlan", "CHECK", dict(named, prevResult=go), cid=c2, netns=go_ns)
    assert chk.code == 0, chk.out
    code, err = go_run("CHECK", dict(named, prevResult=ours.json), netns=ours_ns, cid=c1)
    assert code == 0, err
    assert runner.run("ipvlan", "DEL", conf, cid=c2, netns=go_ns).code == 0
    assert go_run("DEL", named, netns=ours_ns, cid=c1)[0] == 0
    assert links(ours_ns) == ["lo"] and links(go_ns) == ["lo"]

    # a previous result with two interfaces names no master
    two = prev(7)
    two["interfaces"].append({"name": "other"})
    bad = runner.run("ipvlan", "ADD", dict(conf, prevResult=two), cid=c1, netns=ours_ns)
    assert bad.json == {
        "code": 999,
        "msg": "chained master failure. PrevResult lacks a single named interface",
    }
    # no ipam and nothing to take from: refused before anything is made
    empty = dict(conf, master=master)
    none = runner.run("ipvlan", "ADD", empty, cid=c1, netns=ours_ns)
    assert none.code == 1 and '"ipam"' in none.json["msg"]
    assert links(ours_ns) == ["lo"]


# -- master selection ---------------------------------------------------------------------
def test_default_route_master_in_the_node_and_in_the_container(
    runner: Runner, netns_factory: Any, make_master: Callable[..., str]
) -> None:
    _, subnet, name = unique_net()
    node_master = make_master()
    pod, c = netns_factory(), cid()
    conf = conf_for("1.0.0", name, None, host_local(subnet, runner.data_dir))
    ip_cmd("route", "add", "default", "dev", node_master, "metric", "7")
    try:
        add = runner.run("ipvlan", "ADD", conf, cid=c, netns=pod)
        assert add.code == 0, add.out
        d = details(pod, "eth0")
        assert d is not None and d["parent"] == index_of(None, node_master)
    finally:
        ip_cmd("route", "del", "default", "dev", node_master, "metric", "7")
    assert runner.run("ipvlan", "DEL", conf, cid=c, netns=pod).code == 0

    # linkInContainer: the master, named or the default route's, is the container's
    inner = make_master(pod, mtu=1400)
    lic = conf_for("1.1.0", name, inner, host_local(subnet, runner.data_dir), linkInContainer=True)
    before = node_links()
    add = runner.run("ipvlan", "ADD", lic, cid=c, netns=pod, ifname="net1")
    assert add.code == 0, add.out
    d = details(pod, "net1")
    assert d is not None and d["parent"] == index_of(pod, inner) and d["mtu"] == 1400
    chk = runner.run(
        "ipvlan", "CHECK", dict(lic, prevResult=add.json), cid=c, netns=pod, ifname="net1"
    )
    assert chk.code == 0, chk.out
    assert node_links() == before
    assert runner.run("ipvlan", "DEL", lic, cid=c, netns=pod, ifname="net1").code == 0
    ip_cmd("route", "add", "default", "dev", inner, ns=pod)
    dflt = dict(lic)
    del dflt["master"]
    add = runner.run("ipvlan", "ADD", dflt, cid=c, netns=pod, ifname="net2")
    assert add.code == 0, add.out
    d = details(pod, "net2")
    assert d is not None and d["parent"] == index_of(pod, inner)
    assert runner.run("ipvlan", "DEL", dflt, cid=c, netns=pod, ifname="net2").code == 0
    assert sorted(links(pod)) == sorted(["lo", inner, inner.replace("mvm", "mvp")])
    assert lease_files(runner.data_dir, name) == []


# -- bad input, failures, leaks -----------------------------------------------------------
def test_bad_input_and_failed_add_leave_nothing(
    runner: Runner, netns_factory: Any, master: str
) -> None:
    _, subnet, name = unique_net()
    base = conf_for("1.0.0", name, master, host_local(subnet, runner.data_dir))
    pod, c = netns_factory(), cid()
    before = node_links()
    cases: list[tuple[dict[str, Any], str, bool]] = [
        # (change, message, the reference says the same)
        ({"mode": "l4"}, 'unknown ipvlan mode: "l4"', True),
        ({"master": "nosuchlink0"}, 'failed to lookup master "nosuchlink0": Link not found', True),
        ({"mtu": "1400"}, '"mtu" must be an integer', False),
        ({"ipam": {"type": "no-such-ipam"}}, "no-such-ipam", False),
        (
            {
                "ipam": host_local(
                    subnet, runner.data_dir, routes=[{"dst": "192.0.2.0/24", "gw": "203.0.113.1"}]
                )
            },
            "203.0.113.1",
            False,
        ),
    ]
    for change, msg, same in cases:
        conf = dict(base, **change)
        add = runner.run("ipvlan", "ADD", conf, cid=c, netns=pod)
        assert add.code == 1 and msg in add.json["msg"], add.out
        assert "Traceback" not in add.stderr
        if same:
            code, err = go_run("ADD", conf, netns=pod, cid=c)
            assert code == 1 and err == add.json
        assert links(pod) == ["lo"] and node_links() == before, change
        assert lease_files(runner.data_dir, name) == [], change

    # the name taken in the pod: the temporary link goes, the address is released
    assert runner.run("ipvlan", "ADD", base, cid=c, netns=pod).code == 0
    again = runner.run("ipvlan", "ADD", base, cid=cid(), netns=pod)
    assert again.json["msg"] == 'failed to rename ipvlan to "eth0": file exists'
    assert sorted(links(pod)) == ["eth0", "lo"] and len(lease_files(runner.data_dir, name)) == 1


def test_del_tolerates_gone_master_and_netns(
    runner: Runner, netns_factory: Any, make_master: Callable[..., str]
) -> None:
    _, subnet, name = unique_net()
    master = make_master()
    conf = conf_for("1.0.0", name, master, host_local(subnet, runner.data_dir))
    pod, c = netns_factory(), cid()
    assert runner.run("ipvlan", "ADD", conf, cid=c, netns=pod).code == 0
    ip_cmd("link", "del", master)  # its ipvlans go with it
    assert links(pod) == ["lo"]
    assert runner.run("ipvlan", "DEL", conf, cid=c, netns=pod).code == 0
    assert lease_files(runner.data_dir, name) == []

    other, c2 = netns_factory(), cid()
    conf = dict(conf, master=make_master())
    assert runner.run("ipvlan", "ADD", conf, cid=c2, netns=other).code == 0
    delete_netns(other)
    for _ in range(2):
        dele = runner.run("ipvlan", "DEL", conf, cid=c2, netns=other)
        assert dele.code == 0, dele.out
    assert lease_files(runner.data_dir, name) == []
