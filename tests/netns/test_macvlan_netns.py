"""macvlan plugin, in-process, on masters the tests make in the throwaway node netns (a
veth end: an ethernet device a macvlan can sit on); compared with the Go reference."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from plugin_helpers import (
    VERSIONS,
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
    swap_with_go,
    sysctl_in,
    tcp_echo,
    unique_net,
)

pytestmark = pytest.mark.root

GO_VERSIONS = ("0.3.1", "0.4.0", "1.0.0")  # what the reference 1.1.1 binaries accept


# -- fixtures and helpers -----------------------------------------------------------------
def conf_for(
    version: str, name: str, master: str | None, ipam: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    conf: dict[str, Any] = {"cniVersion": version, "name": name, "type": "macvlan"}
    if master is not None:
        conf["master"] = master
    conf["ipam"] = ipam if ipam is not None else {}
    conf.update(extra)
    return conf


def go_run(
    command: str,
    conf: dict[str, Any],
    *,
    netns: str,
    cid: str,
    ifname: str = "eth0",
    args: str = "",
) -> tuple[int, Any]:
    """The reference macvlan (and Go IPAM plugins) for the same request."""
    return go_plugin("macvlan", command, conf, netns=netns, cid=cid, ifname=ifname, args=args)


# -- ADD / CHECK / DEL --------------------------------------------------------------------
@pytest.mark.parametrize("ipam_impl", ["ours", "go"])
@pytest.mark.parametrize("version", VERSIONS)
def test_add_check_del_every_version(
    runner: Runner, go_runner: Runner, netns_factory: Any, master: str, version: str, ipam_impl: str
) -> None:
    if ipam_impl == "go" and version not in GO_VERSIONS:
        pytest.skip(f"the reference host-local does not accept {version}")
    run = runner if ipam_impl == "ours" else go_runner
    _, subnet, name = unique_net()
    gw = str(ipaddress.ip_network(subnet).network_address + 1)
    pod, c = netns_factory(), cid()
    ipam = host_local(subnet, run.data_dir, routes=[{"dst": "0.0.0.0/0"}])
    conf = conf_for(version, name, master, ipam, mtu=1400)
    res, ip, d = add_in_pod(run, "macvlan", conf, pod, c, gw)
    assert ("version" in ip) == (version in ("0.3.1", "0.4.0"))
    assert "dns" not in res
    assert d["kind"] == "macvlan" and d["mode"] == "bridge" and d["up"]
    assert d["parent"] == index_of(None, master) and d["mtu"] == 1400
    assert sysctl_in(pod, "net/ipv4/conf/eth0/arp_notify") == "1"
    assert sysctl_in(pod, "net/ipv6/conf/eth0/ndisc_notify") == "1"

    if version != "0.3.1":
        chk = run.run("macvlan", "CHECK", dict(conf, prevResult=res), cid=c, netns=pod)
        assert chk.code == 0, chk.out
        other = netns_factory()
        wrong = run.run("macvlan", "CHECK", dict(conf, prevResult=res), cid=c, netns=other)
        assert wrong.code == 1 and f"configured netns: {other}" in wrong.json["msg"]
        vepa = run.run(
            "macvlan", "CHECK", dict(conf, prevResult=res, mode="vepa"), cid=c, netns=pod
        )
        assert vepa.code == 1
        assert (
            vepa.json["msg"] == "Container macvlan mode bridge does not match expected value: vepa"
        )

    for _ in range(2):
        dele = run.run("macvlan", "DEL", dict(conf, prevResult=res), cid=c, netns=pod)
        assert dele.code == 0, dele.out
    assert links(pod) == ["lo"]
    assert lease_files(run.data_dir, name) == []


@pytest.mark.parametrize("mode", ["bridge", "private", "vepa", "passthru"])
def test_layer2_modes(runner: Runner, netns_factory: Any, master: str, mode: str) -> None:
    pod, c = netns_factory(), cid()
    conf = conf_for("1.1.0", "l2", master, mode=mode)
    add = runner.run("macvlan", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    d = details(pod, "eth0")
    assert d is not None and d["mode"] == mode and d["up"] and d["parent"] == index_of(None, master)
    assert add.json == {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "mac": d["mac"], "sandbox": pod}],
    }
    assert addrs(pod, "eth0") == [a for a in addrs(pod, "eth0") if a.startswith("fe80:")]
    chk = runner.run("macvlan", "CHECK", dict(conf, prevResult=add.json), cid=c, netns=pod)
    assert chk.code == 0, chk.out
    assert runner.run("macvlan", "DEL", conf, cid=c, netns=pod).code == 0
    assert links(pod) == ["lo"]


# -- same request, reference plugin -------------------------------------------------------
@pytest.mark.parametrize("version", GO_VERSIONS)
@pytest.mark.parametrize("mode", ["bridge", "private", "vepa", None])
@pytest.mark.parametrize("layer3", [True, False])
def test_same_result_and_link_as_the_reference(
    runner: Runner,
    netns_factory: Any,
    make_master: Callable[..., str],
    version: str,
    mode: str | None,
    layer3: bool,
) -> None:
    _, subnet, name = unique_net()
    master = make_master()
    extra: dict[str, Any] = {"mtu": 1450, "dns": {"nameservers": ["10.1.2.3"]}}
    if mode is not None:
        extra["mode"] = mode
    ipam = host_local(subnet, runner.data_dir) if layer3 else {}
    conf = conf_for(version, name, master, ipam, **extra)
    # (arp_notify/ndisc_notify differ on purpose: 1.1.1 sends one gratuitous ARP instead,
    # the current reference sets the sysctls as this plugin does)
    keys = ("kind", "mode", "parent", "mtu", "up", "bcqueuelen")
    swap_with_go(runner, netns_factory, "macvlan", conf, keys)


# -- traffic ------------------------------------------------------------------------------
def test_bridge_mode_pods_talk_and_private_ones_do_not(
    runner: Runner, netns_factory: Any, make_master: Callable[..., str]
) -> None:
    for mode, reachable in (("bridge", True), ("private", False)):
        _, subnet, name = unique_net()
        master = make_master()
        conf = conf_for("1.0.0", name, master, host_local(subnet, runner.data_dir), mode=mode)
        a, b = netns_factory(), netns_factory()
        ra = runner.run("macvlan", "ADD", conf, cid=cid(), netns=a)
        rb = runner.run("macvlan", "ADD", conf, cid=cid(), netns=b)
        assert ra.code == 0 and rb.code == 0, (ra.out, rb.out)
        ip_b = rb.json["ips"][0]["address"].split("/")[0]
        if reachable:
            assert tcp_echo(b, ip_b, a, b"a to b on macvlan") == b"a to b on macvlan"
        else:
            with pytest.raises(OSError):
                tcp_echo(b, ip_b, a, b"blocked", timeout=2)


def test_dual_stack_traffic(runner: Runner, netns_factory: Any, master: str) -> None:
    tag, subnet, name = unique_net()
    v6 = str(ipaddress.ip_network(f"fd00:{tag[2:]}::/64"))
    ipam = host_local(subnet, runner.data_dir)
    ipam["ranges"] = [[{"subnet": subnet}], [{"subnet": v6}]]
    conf = conf_for("1.0.0", name, master, ipam)
    a, b, ca = netns_factory(), netns_factory(), cid()
    ra = runner.run("macvlan", "ADD", conf, cid=ca, netns=a)
    rb = runner.run("macvlan", "ADD", conf, cid=cid(), netns=b)
    assert ra.code == 0 and rb.code == 0, (ra.out, rb.out)
    assert [i["interface"] for i in ra.json["ips"]] == [0, 0]
    ip6_b = [i for i in rb.json["ips"] if ":" in i["address"]][0]["address"].split("/")[0]
    assert tcp_echo(b, ip6_b, a, b"v6 over macvlan") == b"v6 over macvlan"
    chk = runner.run("macvlan", "CHECK", dict(conf, prevResult=ra.json), cid=ca, netns=a)
    assert chk.code == 0, chk.out


# -- master selection ---------------------------------------------------------------------
def test_default_route_master_in_the_node(runner: Runner, netns_factory: Any, master: str) -> None:
    pod, c = netns_factory(), cid()
    conf = conf_for("1.0.0", "dflt", None)
    if not [r for r in routes(None) if r["dst"] == "0.0.0.0/0"]:
        none = runner.run("macvlan", "ADD", conf, cid=c, netns=pod)
        assert none.code == 1 and none.json == {
            "code": 999,
            "msg": "no default route interface found",
        }
        assert go_run("ADD", conf, netns=pod, cid=c) == (1, none.json)
    ip_cmd("route", "add", "default", "dev", master, "metric", "7")
    try:
        add = runner.run("macvlan", "ADD", conf, cid=c, netns=pod)
        assert add.code == 0, add.out
        d = details(pod, "eth0")
        assert d is not None and d["parent"] == index_of(None, master)
    finally:
        ip_cmd("route", "del", "default", "dev", master, "metric", "7")
    assert runner.run("macvlan", "DEL", conf, cid=c, netns=pod).code == 0


def test_link_in_container(
    runner: Runner, netns_factory: Any, make_master: Callable[..., str]
) -> None:
    pod, c = netns_factory(), cid()
    inner = make_master(pod, mtu=1400)
    conf = conf_for("1.1.0", "lic", inner, linkInContainer=True)
    before = node_links()
    add = runner.run("macvlan", "ADD", conf, cid=c, netns=pod, ifname="net1")
    assert add.code == 0, add.out
    d = details(pod, "net1")
    assert d is not None and d["parent"] == index_of(pod, inner) and d["mtu"] == 1400
    chk = runner.run(
        "macvlan", "CHECK", dict(conf, prevResult=add.json), cid=c, netns=pod, ifname="net1"
    )
    assert chk.code == 0, chk.out
    assert node_links() == before
    # too big for the container's master, and a master only the node has
    big = runner.run("macvlan", "ADD", dict(conf, mtu=1500), cid=c, netns=pod, ifname="net2")
    assert big.json["msg"] == "invalid MTU 1500, must be [0, master MTU(1400)]"
    assert runner.run("macvlan", "DEL", conf, cid=c, netns=pod, ifname="net1").code == 0

    # no master named: the container's default route decides
    ip_cmd("route", "add", "default", "dev", inner, ns=pod)
    dflt = dict(conf)
    del dflt["master"]
    add = runner.run("macvlan", "ADD", dflt, cid=c, netns=pod, ifname="net3")
    assert add.code == 0, add.out
    d = details(pod, "net3")
    assert d is not None and d["parent"] == index_of(pod, inner)
    assert runner.run("macvlan", "DEL", dflt, cid=c, netns=pod, ifname="net3").code == 0
    assert sorted(links(pod)) == sorted(["lo", inner, inner.replace("mvm", "mvp")])


# -- options ------------------------------------------------------------------------------
def test_mac_from_config_args_and_runtime_config(
    runner: Runner, netns_factory: Any, master: str
) -> None:
    conf = conf_for("1.0.0", "mac", master, mac="02:aa:00:00:00:01")
    cases = [
        ({}, "", "02:aa:00:00:00:01"),
        ({}, "IgnoreUnknown=1;MAC=02:AA:00:00:00:02", "02:aa:00:00:00:02"),
        (
            {"runtimeConfig": {"mac": "02:aa:00:00:00:03"}},
            "MAC=02:aa:00:00:00:02",
            "02:aa:00:00:00:03",
        ),
    ]
    for extra, args, want in cases:
        pod = netns_factory()
        add = runner.run("macvlan", "ADD", dict(conf, **extra), cid=cid(), netns=pod, args=args)
        assert add.code == 0, add.out
        assert add.json["interfaces"][0]["mac"] == want
        d = details(pod, "eth0")
        assert d is not None and d["mac"] == want


def test_bcqueuelen(runner: Runner, netns_factory: Any, master: str) -> None:
    pod = netns_factory()
    add = runner.run(
        "macvlan", "ADD", conf_for("1.1.0", "bcq", master, bcqueuelen=321), cid=cid(), netns=pod
    )
    assert add.code == 0, add.out
    d = details(pod, "eth0")
    assert d is not None and d["bcqueuelen"] == 321


def test_status(runner: Runner, master: str) -> None:
    _, subnet, name = unique_net()
    ipam = host_local(subnet, runner.data_dir)
    assert runner.run("macvlan", "STATUS", conf_for("1.1.0", name, master, ipam)).code == 0
    assert runner.run("macvlan", "STATUS", conf_for("1.1.0", name, "gone")).code == 0
    old = runner.run("macvlan", "STATUS", conf_for("1.0.0", name, master, ipam))
    assert old.code == 1 and old.json["code"] == 1


# -- bad input, failures, leaks -----------------------------------------------------------
# (the reference's own words for the first ones; ours for the JSON type errors)
SAME_WORDS = 4
BAD = [
    ({"mtu": 9000}, "invalid MTU 9000, must be [0, master MTU(1500)]"),
    ({"mtu": -1}, "invalid MTU -1, must be [0, master MTU(1500)]"),
    ({"mode": "weird"}, 'unknown macvlan mode: "weird"'),
    ({"mac": "zz"}, "invalid args zz for MAC addr: address zz: invalid MAC address"),
    ({"master": "nosuchlink0"}, 'failed to lookup master "nosuchlink0": Link not found'),
    ({"mtu": "1400"}, '"mtu" must be an integer'),
    ({"mode": 1}, '"mode" must be a string'),
    ({"master": 7}, '"master" must be a string'),
    ({"linkInContainer": "x"}, '"linkInContainer" must be a boolean'),
    ({"ipam": "host-local"}, "ipam"),
]


@pytest.mark.parametrize(("extra", "msg"), BAD)
def test_bad_input(
    runner: Runner, netns_factory: Any, master: str, extra: dict[str, Any], msg: str
) -> None:
    _, subnet, name = unique_net()
    conf = conf_for("1.0.0", name, master, host_local(subnet, runner.data_dir))
    conf.update(extra)
    pod, c = netns_factory(), cid()
    before = node_links()
    add = runner.run("macvlan", "ADD", conf, cid=c, netns=pod)
    assert add.code == 1 and add.json["code"] == 999 and msg in add.json["msg"], add.out
    assert "Traceback" not in add.stderr
    if "linkInContainer" not in extra:  # the reference 1.1.1 does not know that key
        code, err = go_run("ADD", conf, netns=pod, cid=c)
        assert code == 1 and err["code"] == add.json["code"]
        if BAD.index((extra, msg)) < SAME_WORDS:
            assert err["msg"] == add.json["msg"]
    assert links(pod) == ["lo"] and node_links() == before
    assert lease_files(runner.data_dir, name) == []


def test_missing_and_gone_netns(
    runner: Runner, netns_factory: Any, master: str, tmp_path: Path
) -> None:
    _, subnet, name = unique_net()
    conf = conf_for("1.0.0", name, master, host_local(subnet, runner.data_dir))
    add = runner.run("macvlan", "ADD", conf, cid=cid(), netns="/run/netns/nope")
    assert add.code == 1 and add.json["code"] == 999 and "/run/netns/nope" in add.json["msg"]
    assert go_run("ADD", conf, netns="/run/netns/nope", cid="x")[1]["code"] == 999
    assert lease_files(runner.data_dir, name) == []

    pod, c = netns_factory(), cid()
    assert runner.run("macvlan", "ADD", conf, cid=c, netns=pod).code == 0
    delete_netns(pod)
    for _ in range(2):
        dele = runner.run("macvlan", "DEL", conf, cid=c, netns=pod)
        assert dele.code == 0, dele.out
    assert lease_files(runner.data_dir, name) == []
    assert runner.run("macvlan", "DEL", conf, cid=c, netns="").code == 0
    not_ns = tmp_path / "not-a-netns"
    not_ns.write_text("")
    bad = runner.run("macvlan", "DEL", conf, cid=c, netns=str(not_ns))
    assert bad.code == 1 and str(not_ns) in bad.json["msg"]


def test_del_needs_no_master(
    runner: Runner, netns_factory: Any, make_master: Callable[..., str]
) -> None:
    """The master may be gone by DEL time (its macvlans went with it)."""
    _, subnet, name = unique_net()
    master = make_master()
    conf = conf_for("1.0.0", name, master, host_local(subnet, runner.data_dir))
    pod, c = netns_factory(), cid()
    assert runner.run("macvlan", "ADD", conf, cid=c, netns=pod).code == 0
    ip_cmd("link", "del", master)
    assert links(pod) == ["lo"]
    dele = runner.run("macvlan", "DEL", dict(conf, mode="weird"), cid=c, netns=pod)
    assert dele.code == 0, dele.out
    assert lease_files(runner.data_dir, name) == []


def test_existing_ifname_releases_lease_and_leaves_no_temp_link(
    runner: Runner, netns_factory: Any, master: str
) -> None:
    _, subnet, name = unique_net()
    pod = netns_factory()
    conf = conf_for("1.0.0", name, master, host_local(subnet, runner.data_dir))
    assert runner.run("macvlan", "ADD", conf, cid=cid(), netns=pod).code == 0
    again = runner.run("macvlan", "ADD", conf, cid=cid(), netns=pod)
    assert again.code == 1
    assert again.json["msg"] == 'failed to rename macvlan to "eth0": file exists'
    assert sorted(links(pod)) == ["eth0", "lo"]
    assert len(lease_files(runner.data_dir, name)) == 1


def test_configure_failure_releases_ipam_and_link(
    runner: Runner, netns_factory: Any, master: str
) -> None:
    _, subnet, name = unique_net()
    pod = netns_factory()
    ipam = host_local(
        subnet, runner.data_dir, routes=[{"dst": "192.0.2.0/24", "gw": "203.0.113.1"}]
    )
    add = runner.run("macvlan", "ADD", conf_for("1.0.0", name, master, ipam), cid=cid(), netns=pod)
    assert add.code == 1 and "203.0.113.1" in add.json["msg"], add.out
    assert lease_files(runner.data_dir, name) == [] and links(pod) == ["lo"]

    missing = runner.run(
        "macvlan",
        "ADD",
        conf_for("1.0.0", name, master, {"type": "no-such-ipam"}),
        cid=cid(),
        netns=pod,
    )
    assert missing.code == 1 and "no-such-ipam" in missing.json["msg"]
    assert links(pod) == ["lo"]


def test_check_finds_what_changed(runner: Runner, netns_factory: Any, master: str) -> None:
    _, subnet, name = unique_net()
    pod, c = netns_factory(), cid()
    conf = conf_for("1.0.0", name, master, host_local(subnet, runner.data_dir))
    res = runner.run("macvlan", "ADD", conf, cid=c, netns=pod).json

    def check(**over: Any) -> Any:
        req = dict(conf, prevResult=res)
        req.update(over)
        if req["prevResult"] is None:
            del req["prevResult"]
        return runner.run("macvlan", "CHECK", req, cid=c, netns=pod)

    assert check().code == 0
    assert check(prevResult=None).json["msg"] == "Required prevResult missing"
    other = "mvo" + secrets.token_hex(3)
    ip_cmd("link", "add", other, "type", "veth", "peer", "name", other + "p")
    try:
        wrong = check(master=other)
        assert wrong.code == 1 and f'not on master "{other}"' in wrong.json["msg"]
    finally:
        ip_cmd("link", "del", other)
    ip_cmd("addr", "flush", "dev", "eth0", ns=pod)
    gone = check()
    assert gone.code == 1 and gone.json["msg"].startswith("Failed to match addr")
    ip_cmd("link", "del", "eth0", ns=pod)
    assert check().json["msg"] == "Container Interface name in prevResult: eth0 not found"
    assert runner.run("macvlan", "DEL", conf, cid=c, netns=pod).code == 0


# -- the netlink codec's macvlan requests -------------------------------------------------
def test_netlink_macvlan_create_in_another_netns_and_rename(
    netns_factory: Any, master: str
) -> None:
    from cnitool_plugins._lib import netns
    from cnitool_plugins._lib.netlink import Netlink, NetlinkError

    pod = netns_factory()
    with netns.NetNS(pod) as ns, Netlink() as nl:
        parent = nl.link(master)
        assert parent is not None
        nl.create_macvlan(
            "vethtmp01",
            parent.index,
            2,
            netns_fd=ns.fd,
            mtu=1300,
            mac="02:bb:00:00:00:01",
            bcqueuelen=77,
        )
        assert nl.link("vethtmp01") is None  # born in the pod, not here

        def inside() -> Any:
            with Netlink() as pnl:
                link = pnl.link("vethtmp01")
                assert link is not None
                pnl.set_name(link.index, "renamed0")
                return pnl.link("renamed0"), pnl.link("vethtmp01")

        link, old = ns.run(inside)
    assert old is None and link.kind == "macvlan" and link.macvlan_mode == 2
    assert link.peer_index == parent.index and link.mtu == 1300
    assert link.mac == "02:bb:00:00:00:01"
    d = details(pod, "renamed0")
    assert d is not None and d["mode"] == "vepa" and d["bcqueuelen"] == 77
    with Netlink() as nl, pytest.raises(NetlinkError) as exc:
        nl.create_macvlan("vethtmp02", 999999, 4)
    assert exc.value.errno != 0


def test_passthru_refused_next_to_another_macvlan_like_the_reference(
    runner: Runner, netns_factory: Any, master: str
) -> None:
    a, b = netns_factory(), netns_factory()
    assert (
        runner.run("macvlan", "ADD", conf_for("1.0.0", "pt", master), cid=cid(), netns=a).code == 0
    )
    conf = conf_for("1.0.0", "pt", master, mode="passthru")
    ours = runner.run("macvlan", "ADD", conf, cid=cid(), netns=b)
    code, go = go_run("ADD", conf, netns=b, cid="c")
    assert ours.code == code == 1 and ours.json == go
    assert go["msg"].startswith("failed to create macvlan: ")
    assert links(b) == ["lo"]


def test_exec_launcher(tmp_path: Path, python: str, netns_factory: Any, master: str) -> None:
    """The installed ``macvlan`` executable, as a runtime calls it."""
    from cnitool import launchers

    bin_dir = tmp_path / "bin"
    launchers.install(str(bin_dir), ["macvlan", "host-local"], python=python)
    _, subnet, name = unique_net()
    conf = conf_for("1.1.0", name, master, host_local(subnet, str(tmp_path / "ipam")))
    pod, c = netns_factory(), cid()

    def call(command: str, req: dict[str, Any]) -> subprocess.CompletedProcess[bytes]:
        env = dict(os.environ)
        env.update(
            {
                "CNI_COMMAND": command,
                "CNI_CONTAINERID": c,
                "CNI_NETNS": pod,
                "CNI_IFNAME": "eth0",
                "CNI_PATH": str(bin_dir),
            }
        )
        return subprocess.run(
            [str(bin_dir / "macvlan")], input=json.dumps(req).encode(), env=env, capture_output=True
        )

    add = call("ADD", conf)
    assert add.returncode == 0, add.stdout + add.stderr
    res = json.loads(add.stdout)
    assert res["cniVersion"] == "1.1.0" and res["ips"][0]["interface"] == 0
    assert call("CHECK", dict(conf, prevResult=res)).returncode == 0
    assert call("DEL", conf).returncode == 0
    assert links(pod) == ["lo"] and lease_files(str(tmp_path / "ipam"), name) == []
    bad = call("ADD", dict(conf, mode="weird"))
    assert bad.returncode == 1 and json.loads(bad.stdout)["code"] == 999 and not bad.stderr


def test_a_killed_add_leaves_its_temporary_link_to_del_and_to_the_next_add(
    runner: Runner, netns_factory: Any, master: str
) -> None:
    """An ADD killed between making the link and renaming it leaves the link under the
    attachment's temporary name: the runtime's DEL removes it, and so does a new ADD."""
    from cnitool_plugins._lib.master import temp_name

    _, subnet, name = unique_net()
    conf = conf_for("1.0.0", name, master, host_local(subnet, runner.data_dir))
    pod, c = netns_factory(), cid()
    tmp = temp_name(c, "eth0")
    assert tmp.startswith("veth") and len(tmp) == 12 and tmp == temp_name(c, "eth0")
    assert temp_name(c, "net1") != tmp

    def leftover() -> None:  # what the killed ADD made, in the pod
        ip_cmd(
            "link", "add", tmp, "link", master, "netns", os.path.basename(pod), "type", "macvlan"
        )

    leftover()
    assert sorted(links(pod)) == ["lo", tmp]
    assert runner.run("macvlan", "DEL", conf, cid=c, netns=pod).code == 0
    assert links(pod) == ["lo"]
    leftover()
    add = runner.run("macvlan", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    assert sorted(links(pod)) == ["eth0", "lo"]
    # a link of another kind under that name is not ours: random names, as the reference
    assert runner.run("macvlan", "DEL", conf, cid=c, netns=pod).code == 0
    ip_cmd("link", "add", tmp, "type", "veth", "peer", "name", "tmppeer0", ns=pod)
    add = runner.run("macvlan", "ADD", conf, cid=c, netns=pod)
    assert add.code == 0, add.out
    assert runner.run("macvlan", "DEL", conf, cid=c, netns=pod).code == 0
    assert sorted(links(pod)) == sorted(["lo", tmp, "tmppeer0"])
    assert lease_files(runner.data_dir, name) == []
