"""ptp plugin, in-process, against real links in private namespaces."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from plugin_helpers import (
    VERSIONS,
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
    tcp_echo,
    unique_net,
)

pytestmark = pytest.mark.root


def conf_for(runner: Runner, version: str, subnet: str, name: str, **extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "cniVersion": version,
        "name": name,
        "type": "ptp",
        "ipam": host_local(subnet, runner.data_dir),
    }
    conf.update(extra)
    return conf


@pytest.mark.parametrize("version", VERSIONS)
def test_add_check_del_every_version(runner: Runner, netns_factory: Any, version: str) -> None:
    _, subnet, name = unique_net()
    gw = str(ipaddress.ip_network(subnet).network_address + 1)
    pod, c = netns_factory(), cid()
    conf = conf_for(runner, version, subnet, name, mtu=1400)
    add = runner.run("ptp", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    res = add.json
    assert res["cniVersion"] == version
    host_name = res["interfaces"][0]["name"]
    assert host_name.startswith("veth") and "sandbox" not in res["interfaces"][0]
    assert res["interfaces"][1] == {"name": "eth0", "mac": link(pod, "eth0")["mac"], "sandbox": pod}
    ip = res["ips"][0]
    assert ip["interface"] == 1 and ip["gateway"] == gw
    assert ("version" in ip) == (version in ("0.3.1", "0.4.0"))
    addr = ip["address"].split("/")[0]

    # container: address, /32 link route to the gateway, subnet via the gateway
    assert ip["address"] in addrs(pod, "eth0")
    r = {x["dst"]: x for x in routes(pod)}
    assert r[f"{gw}/32"]["scope"] == 253 and r[f"{gw}/32"]["src"] == addr
    subnet_routes = [x for x in routes(pod) if x["dst"] == subnet]
    assert len(subnet_routes) == 1  # the kernel's on-link subnet route was replaced
    assert subnet_routes[0]["gw"] == gw and subnet_routes[0]["src"] == addr
    assert link(pod, "eth0")["mtu"] == 1400
    # node: gateway address on the host veth and a host route to the pod
    host = link(None, host_name)
    assert host["up"] and host["mtu"] == 1400
    assert f"{gw}/32" in addrs(None, host_name)
    node_routes = {x["dst"]: x for x in routes(None)}
    assert node_routes[f"{addr}/32"]["oif"] == host["index"]
    with open("/proc/sys/net/ipv4/ip_forward") as fh:
        assert fh.read().strip() == "1"

    if version != "0.3.1":
        chk = runner.run("ptp", "CHECK", dict(conf, prevResult=res), cid=c, netns=pod)
        assert chk.code == 0, chk.out
        other = netns_factory()
        wrong = runner.run("ptp", "CHECK", dict(conf, prevResult=res), cid=c, netns=other)
        assert wrong.code == 1 and f"configured netns: {other}" in wrong.json["msg"]

    # the pod reaches the node through its gateway, over the point-to-point link
    assert tcp_echo(None, gw, pod, b"ptp") == b"ptp"

    for _ in range(2):
        dele = runner.run("ptp", "DEL", dict(conf, prevResult=res), cid=c, netns=pod)
        assert dele.code == 0, dele.out
    assert links(pod) == ["lo"] and link(None, host_name) is None
    assert lease_files(runner.data_dir, name) == []


def test_two_ptp_pods_share_a_gateway(runner: Runner, netns_factory: Any) -> None:
    _, subnet, name = unique_net()
    a, b = netns_factory(), netns_factory()
    ra = runner.run("ptp", "ADD", conf_for(runner, "1.0.0", subnet, name), cid=cid(), netns=a)
    rb = runner.run("ptp", "ADD", conf_for(runner, "1.0.0", subnet, name), cid=cid(), netns=b)
    assert ra.code == 0 and rb.code == 0, (ra.out, rb.out)
    ip_b = rb.json["ips"][0]["address"].split("/")[0]
    # routed through the node (forwarding on), not bridged
    assert tcp_echo(b, ip_b, a, b"a to b via node") == b"a to b via node"


def test_missing_ipam_and_bad_types(runner: Runner, netns_factory: Any) -> None:
    pod = netns_factory()
    no_ipam = runner.run(
        "ptp", "ADD", {"cniVersion": "1.0.0", "name": "p", "type": "ptp"}, cid=cid(), netns=pod
    )
    assert no_ipam.code == 1 and "ipam" in no_ipam.json["msg"]
    _, subnet, name = unique_net()
    bad = runner.run(
        "ptp", "ADD", conf_for(runner, "1.0.0", subnet, name, ipMasq="true"), cid=cid(), netns=pod
    )
    assert bad.code == 1 and '"ipMasq" must be a boolean' in bad.json["msg"]
    assert links(pod) == ["lo"] and lease_files(runner.data_dir, name) == []


def test_missing_netns_and_gone_netns(runner: Runner, netns_factory: Any) -> None:
    _, subnet, name = unique_net()
    conf = conf_for(runner, "1.0.0", subnet, name)
    add = runner.run("ptp", "ADD", conf, cid=cid(), netns="/run/netns/nope")
    assert add.code == 1 and add.json["code"] == 999
    assert lease_files(runner.data_dir, name) == []
    pod, c = netns_factory(), cid()
    assert runner.run("ptp", "ADD", conf, cid=c, netns=pod).code == 0
    delete_netns(pod)
    dele = runner.run("ptp", "DEL", conf, cid=c, netns=pod)
    assert dele.code == 0, dele.out
    assert lease_files(runner.data_dir, name) == []


def test_existing_ifname_releases_lease(runner: Runner, netns_factory: Any) -> None:
    _, subnet, name = unique_net()
    pod = netns_factory()
    conf = conf_for(runner, "1.0.0", subnet, name)
    assert runner.run("ptp", "ADD", conf, cid=cid(), netns=pod).code == 0
    again = runner.run("ptp", "ADD", conf, cid=cid(), netns=pod)
    assert again.code == 1 and "already exists" in again.json["msg"]
    assert len(lease_files(runner.data_dir, name)) == 1


def test_status(runner: Runner) -> None:
    _, subnet, name = unique_net()
    assert runner.run("ptp", "STATUS", conf_for(runner, "1.1.0", subnet, name)).code == 0
    old = runner.run("ptp", "STATUS", conf_for(runner, "1.0.0", subnet, name))
    assert old.code == 1 and old.json["code"] == 1


def test_ip_masq(runner: Runner, netns_factory: Any) -> None:
    _, subnet, name = unique_net()
    pod, c = netns_factory(), cid()
    conf = conf_for(runner, "1.0.0", subnet, name, ipMasq=True)
    add = runner.run("ptp", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    ip = add.json["ips"][0]["address"].split("/")[0]

    saved = nat_rules()
    assert f"-A POSTROUTING -s {ip}/32" in saved and f'id: \\"{c}\\"' in saved
    assert runner.run("ptp", "DEL", conf, cid=c, netns=pod).code == 0
    saved = nat_rules()
    assert f"-s {ip}/32" not in saved and f'id: \\"{c}\\"' not in saved


def test_dual_stack(runner: Runner, netns_factory: Any) -> None:
    tag, subnet, name = unique_net()
    v6 = str(ipaddress.ip_network(f"fd00:{tag[2:]}::/64"))  # canonical: "0abc" -> "abc"
    conf = conf_for(runner, "1.0.0", subnet, name)
    conf["ipam"]["ranges"] = [[{"subnet": subnet}], [{"subnet": v6}]]
    pod, c = netns_factory(), cid()
    add = runner.run("ptp", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    ips = add.json["ips"]
    v6ip = [i for i in ips if ":" in i["address"]][0]
    addr6 = v6ip["address"].split("/")[0]
    gw6 = v6ip["gateway"]
    assert v6ip["address"] in addrs(pod, "eth0")
    r6 = routes(pod, 10)
    assert [r for r in r6 if r["dst"] == f"{gw6}/128"]
    via = [r for r in r6 if r["dst"] == v6]
    assert len(via) == 1 and via[0]["gw"] == gw6
    host = add.json["interfaces"][0]["name"]
    assert f"{gw6}/128" in addrs(None, host)
    assert [r for r in routes(None, 10) if r["dst"] == f"{addr6}/128"]
    chk = runner.run("ptp", "CHECK", dict(conf, prevResult=add.json), cid=c, netns=pod)
    assert chk.code == 0, chk.out
    assert tcp_echo(None, gw6, pod, b"v6 over ptp") == b"v6 over ptp"
    assert runner.run("ptp", "DEL", conf, cid=c, netns=pod).code == 0
    assert lease_files(runner.data_dir, name) == []


def test_del_reports_every_error_and_keeps_cleaning(
    runner: Runner, netns_factory: Any, tmp_path: Any
) -> None:
    _, subnet, name = unique_net()
    pod, c = netns_factory(), cid()
    conf = conf_for(runner, "1.0.0", subnet, name)
    assert runner.run("ptp", "ADD", conf, cid=c, netns=pod).code == 0
    broken = conf_for(runner, "1.0.0", subnet, name, ipam={"type": "no-such-ipam"})
    dele = runner.run("ptp", "DEL", broken, cid=c, netns=pod)
    assert dele.code == 1 and "no-such-ipam" in dele.json["msg"]
    assert links(pod) == ["lo"]  # the veth went although IPAM failed first
    not_ns = tmp_path / "not-a-netns"
    not_ns.write_text("")
    dele = runner.run("ptp", "DEL", broken, cid=c, netns=str(not_ns))
    msg = dele.json["msg"]
    assert dele.code == 1 and "2 errors during DEL" in msg
    assert "no-such-ipam" in msg and str(not_ns) in msg
    assert runner.run("ptp", "DEL", conf, cid=c, netns=pod).code == 0
    assert lease_files(runner.data_dir, name) == []


def test_container_setup_failure_releases_ipam_and_links(
    runner: Runner, netns_factory: Any
) -> None:
    _, subnet, name = unique_net()
    pod, c = netns_factory(), cid()
    ipam = host_local(
        subnet, runner.data_dir, routes=[{"dst": "192.0.2.0/24", "gw": "203.0.113.1"}]
    )
    before = [n for n in links(None) if n.startswith("veth")]
    add = runner.run(
        "ptp", "ADD", conf_for(runner, "1.0.0", subnet, name, ipam=ipam), cid=c, netns=pod
    )
    assert add.code == 1 and "203.0.113.1" in add.json["msg"], add.out
    assert lease_files(runner.data_dir, name) == [] and links(pod) == ["lo"]
    # (veths of earlier tests' deleted pods may still be going away)
    assert {n for n in links(None) if n.startswith("veth")} <= set(before)


def test_ip_masq_removed_when_the_netns_went_first(runner: Runner, netns_factory: Any) -> None:
    """DEL after the netns is gone still removes the masquerade rules (from prevResult)."""
    _, subnet, name = unique_net()
    pod, c = netns_factory(), cid()
    conf = conf_for(runner, "1.0.0", subnet, name, ipMasq=True)
    add = runner.run("ptp", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    ip = add.json["ips"][0]["address"].split("/")[0]

    assert f"-A POSTROUTING -s {ip}/32" in nat_rules()
    delete_netns(pod)
    for _ in range(2):  # and a repeated DEL is fine
        dele = runner.run("ptp", "DEL", dict(conf, prevResult=add.json), cid=c, netns=pod)
        assert dele.code == 0, dele.out
    assert f"-s {ip}/32" not in nat_rules() and f'id: \\"{c}\\"' not in nat_rules()
    assert lease_files(runner.data_dir, name) == []
