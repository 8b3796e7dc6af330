"""vlan plugin, in-process, on masters the tests make in the throwaway node netns (the ends
of a veth pair, so two pods on one VLAN talk through it); compared with the Go reference.
Needs a kernel with 802.1q: .ci/run runs these in a VM (.ci/kernel-vm.sh); elsewhere they
skip, saying so."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from plugin_helpers import (
    Runner,
    add_in_pod,
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
    swap_with_go,
    tcp_echo,
    unique_net,
)

pytestmark = [pytest.mark.root, pytest.mark.kernel("vlan")]

GO_VERSIONS = ("0.3.1", "0.4.0", "1.0.0")  # what the reference 1.1.1 binaries accept


def conf_for(
    version: str, name: str, master: str | None, vlan: int, **extra: Any
) -> dict[str, Any]:
    conf: dict[str, Any] = {"cniVersion": version, "name": name, "type": "vlan", "vlanId": vlan}
    if master is not None:
        conf["master"] = master
    conf.update(extra)
    return conf


def go_run(command: str, conf: dict[str, Any], **kw: Any) -> tuple[int, Any]:
    return go_plugin("vlan", command, conf, **kw)


@pytest.mark.parametrize("version", ["0.3.1", "1.1.0"])  # 0.4.0, 1.0.0: against the reference
def test_add_check_del_every_version(
    runner: Runner, netns_factory: Any, master: str, version: str
) -> None:
    _, subnet, name = unique_net()
    gw = str(ipaddress.ip_network(subnet).network_address + 1)
    pod, c = netns_factory(), cid()
    ipam = host_local(subnet, runner.data_dir, routes=[{"dst": "0.0.0.0/0"}])
    conf = conf_for(version, name, master, 100, mtu=1400, ipam=ipam)
    res, _, d = add_in_pod(runner, "vlan", conf, pod, c, gw)
    assert "dns" not in res
    assert d["kind"] == "vlan" and d["vlan_id"] == 100 and d["up"]
    assert d["parent"] == index_of(None, master) and d["mtu"] == 1400

    if version != "0.3.1":
        chk = runner.run("vlan", "CHECK", dict(conf, prevResult=res), cid=c, netns=pod)
        assert chk.code == 0, chk.out
        wrong = runner.run(
            "vlan", "CHECK", dict(conf, prevResult=res, vlanId=101), cid=c, netns=pod
        )
        assert wrong.json["msg"] == "Container vlan eth0 has VLAN ID 100, expected 101"
        mtu = runner.run("vlan", "CHECK", dict(conf, prevResult=res, mtu=1300), cid=c, netns=pod)
        assert mtu.json["msg"] == "Container vlan eth0 has MTU 1400, expected 1300"
    for _ in range(2):
        dele = runner.run("vlan", "DEL", conf, cid=c, netns=pod)
        assert dele.code == 0, dele.out
    assert links(pod) == ["lo"] and lease_files(runner.data_dir, name) == []


def test_pods_on_one_vlan_talk_and_on_another_do_not(
    runner: Runner, netns_factory: Any, master: str
) -> None:
    """Pod a on VLAN 100 of one veth end, pod b on VLAN 100 of the other: tagged frames
    cross the veth; pod c on VLAN 200 of the same end as b is cut off from a."""
    _, subnet, name = unique_net()
    peer = master.replace("mvm", "mvp")
    ipam = host_local(subnet, runner.data_dir)
    a, b, c = netns_factory(), netns_factory(), netns_factory()
    ra = runner.run(
        "vlan", "ADD", conf_for("1.0.0", name, master, 100, ipam=ipam), cid=cid(), netns=a
    )
    rb = runner.run(
        "vlan", "ADD", conf_for("1.0.0", name, peer, 100, ipam=ipam), cid=cid(), netns=b
    )
    rc = runner.run(
        "vlan", "ADD", conf_for("1.0.0", name, peer, 200, ipam=ipam), cid=cid(), netns=c
    )
    assert ra.code == rb.code == rc.code == 0, (ra.out, rb.out, rc.out)
    ip_a = ra.json["ips"][0]["address"].split("/")[0]
    assert tcp_echo(a, ip_a, b, b"b to a on vlan 100") == b"b to a on vlan 100"
    with pytest.raises(OSError):
        tcp_echo(a, ip_a, c, b"c to a across vlans", timeout=2)


@pytest.mark.parametrize("version", GO_VERSIONS)
def test_same_result_and_link_as_the_reference(
    runner: Runner, netns_factory: Any, make_master: Callable[..., str], version: str
) -> None:
    _, subnet, name = unique_net()
    conf = conf_for(
        version,
        name,
        make_master(),
        42,
        mtu=1450,
        ipam=host_local(subnet, runner.data_dir),
        dns={"nameservers": ["10.1.2.3"]},
    )
    # one VLAN ID per master: the Go attachment sits on another master
    go_conf = dict(conf, master=make_master())
    swap_with_go(runner, netns_factory, "vlan", conf, ("kind", "vlan_id", "mtu", "up"), go_conf)


def test_link_in_container(
    runner: Runner, netns_factory: Any, make_master: Callable[..., str]
) -> None:
    _, subnet, name = unique_net()
    pod, c = netns_factory(), cid()
    inner = make_master(pod, mtu=1400)
    conf = conf_for(
        "1.1.0", name, inner, 7, linkInContainer=True, ipam=host_local(subnet, runner.data_dir)
    )
    before = node_links()
    add = runner.run("vlan", "ADD", conf, cid=c, netns=pod, ifname="net1")
    assert add.code == 0, add.out
    d = details(pod, "net1")
    assert d is not None and d["parent"] == index_of(pod, inner) and d["mtu"] == 1400
    assert d["vlan_id"] == 7
    chk = runner.run(
        "vlan", "CHECK", dict(conf, prevResult=add.json), cid=c, netns=pod, ifname="net1"
    )
    assert chk.code == 0, chk.out
    assert node_links() == before
    big = runner.run("vlan", "ADD", dict(conf, mtu=1500), cid=c, netns=pod, ifname="net2")
    assert big.json["msg"] == "invalid MTU 1500, must be [0, master MTU(1400)]"
    assert runner.run("vlan", "DEL", conf, cid=c, netns=pod, ifname="net1").code == 0
    assert sorted(links(pod)) == sorted(["lo", inner, inner.replace("mvm", "mvp")])
    assert lease_files(runner.data_dir, name) == []


def test_bad_input_and_failed_add_leave_nothing(
    runner: Runner, netns_factory: Any, master: str
) -> None:
    _, subnet, name = unique_net()
    base = conf_for("1.0.0", name, master, 30, ipam=host_local(subnet, runner.data_dir))
    pod, c = netns_factory(), cid()
    before = node_links()
    missing_master = dict(base)
    del missing_master["master"]
    bad_route = host_local(
        subnet, runner.data_dir, routes=[{"dst": "192.0.2.0/24", "gw": "203.0.113.1"}]
    )
    cases: list[tuple[dict[str, Any], str, bool]] = [
        # (request, message, the reference says the same)
        (
            missing_master,
            '"master" field is required. It specifies the host interface name to create the '
            "VLAN for.",
            True,
        ),
        (dict(base, vlanId=4095), "invalid VLAN ID 4095", False),
        (dict(base, mtu=9000), "invalid MTU 9000, must be [0, master MTU(1500)]", True),
        (dict(base, master="nosuchlink0"), 'failed to lookup master "nosuchlink0"', False),
        (dict(base, vlanId="30"), '"vlanId" must be an integer', False),
        (dict(base, ipam={}), '"ipam"', False),
        (dict(base, ipam={"type": "no-such-ipam"}), "no-such-ipam", False),
        (dict(base, ipam=bad_route), "203.0.113.1", False),
    ]
    for conf, msg, same in cases:
        add = runner.run("vlan", "ADD", conf, cid=c, netns=pod)
        assert add.code == 1 and msg in add.json["msg"], add.out
        assert "Traceback" not in add.stderr
        if same:
            code, err = go_run("ADD", conf, netns=pod, cid=c)
            assert code == 1 and err == add.json
        assert links(pod) == ["lo"] and node_links() == before, conf
        assert lease_files(runner.data_dir, name) == [], conf

    # one VLAN ID per master: the kernel refuses a second, and nothing is left behind
    assert runner.run("vlan", "ADD", base, cid=c, netns=pod).code == 0
    other = netns_factory()
    dup = runner.run("vlan", "ADD", base, cid=cid(), netns=other)
    code, err = go_run("ADD", base, netns=other, cid=cid())
    assert dup.json == {"code": 999, "msg": "failed to create vlan: file exists"}
    assert code == 1 and err["msg"] == dup.json["msg"]
    assert links(other) == ["lo"] and len(lease_files(runner.data_dir, name)) == 1


def test_del_tolerates_gone_master_and_netns(
    runner: Runner, netns_factory: Any, make_master: Callable[..., str]
) -> None:
    _, subnet, name = unique_net()
    master = make_master()
    conf = conf_for("1.0.0", name, master, 5, ipam=host_local(subnet, runner.data_dir))
    pod, c = netns_factory(), cid()
    assert runner.run("vlan", "ADD", conf, cid=c, netns=pod).code == 0
    ip_cmd("link", "del", master)  # its VLAN links go with it
    assert links(pod) == ["lo"]
    assert runner.run("vlan", "DEL", conf, cid=c, netns=pod).code == 0
    assert lease_files(runner.data_dir, name) == []

    other, c2 = netns_factory(), cid()
    conf = dict(conf, master=make_master())
    assert runner.run("vlan", "ADD", conf, cid=c2, netns=other).code == 0
    delete_netns(other)
    for _ in range(2):
        dele = runner.run("vlan", "DEL", conf, cid=c2, netns=other)
        assert dele.code == 0, dele.out
    assert lease_files(runner.data_dir, name) == []
