"""The netns/netlink/sysctl layer on its own: ConfigureIface with 1.1.0 route fields,
veth creation across namespaces, missing-netns handling, sysctl key mapping."""

from __future__ import annotations

import os
from typing import Any

import pytest
from cnitool_plugins._lib import ipam, netns, sysctl
from cnitool_plugins._lib.netlink import Netlink, NetlinkError
from plugin_helpers import addrs, in_ns, link

pytestmark = pytest.mark.root


def _make_pair(pod: str, mtu: int = 0) -> str:
    host_fd = netns.current_netns()
    try:
        with netns.NetNS(pod) as ns:

            def make() -> str:
                with Netlink() as nl:
                    peer = "vtest" + os.urandom(3).hex()
                    nl.create_veth("eth0", peer, host_fd, mtu=mtu)
                    return peer

            peer: str = ns.run(make)
    finally:
        os.close(host_fd)
    with Netlink() as nl:
        host = nl.link(peer)
        assert host is not None
        nl.set_up(host.index)
    return peer


def test_veth_peer_is_born_in_the_other_namespace(netns_factory: Any) -> None:
    pod = netns_factory()
    peer = _make_pair(pod, mtu=1300)
    cont = link(pod, "eth0")
    host = link(None, peer)
    assert cont["kind"] == "veth" and host["kind"] == "veth"
    assert cont["mtu"] == host["mtu"] == 1300
    assert cont["peer"] == host["index"] and host["peer"] == cont["index"]
    assert link(None, "eth0") is None or link(None, "eth0")["index"] != cont["index"]


def test_configure_iface_applies_route_fields(netns_factory: Any) -> None:
    pod = netns_factory()
    _make_pair(pod)
    result = {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "sandbox": pod}],
        "ips": [{"interface": 0, "address": "10.44.0.5/24", "gateway": "10.44.0.1"}],
        "routes": [
            {"dst": "0.0.0.0/0"},
            {"dst": "192.0.2.0/24", "gw": "10.44.0.9", "mtu": 1280, "advmss": 1200, "priority": 77},
            {"dst": "198.51.100.0/24", "table": 100},
        ],
    }
    with netns.NetNS(pod) as ns:

        def configure() -> None:
            with Netlink() as nl:
                ipam.configure_iface(nl, "eth0", result)

        ns.run(configure)
    assert "10.44.0.5/24" in addrs(pod, "eth0") and link(pod, "eth0")["up"]

    def dump(ipr: Any) -> list[dict[str, Any]]:
        out = []
        for m in ipr.get_routes(family=2, table=None):
            metrics = m.get("RTA_METRICS")
            out.append(
                {
                    "dst": f"{m.get('RTA_DST') or '0.0.0.0'}/{m['dst_len']}",
                    "gw": m.get("RTA_GATEWAY"),
                    "table": m.get("RTA_TABLE"),
                    "priority": m.get("RTA_PRIORITY"),
                    "scope": m["scope"],
                    "mtu": metrics.get("RTAX_MTU") if metrics else None,
                    "advmss": metrics.get("RTAX_ADVMSS") if metrics else None,
                }
            )
        return out

    routes = {r["dst"]: r for r in in_ns(pod, dump) if r["table"] in (100, 254)}
    assert routes["0.0.0.0/0"]["gw"] == "10.44.0.1"  # the family's first gateway
    extra = routes["192.0.2.0/24"]
    assert (extra["gw"], extra["mtu"], extra["advmss"], extra["priority"]) == (
        "10.44.0.9",
        1280,
        1200,
        77,
    )
    assert routes["198.51.100.0/24"]["table"] == 100


def test_second_path_is_appended(netns_factory: Any) -> None:
    pod = netns_factory()
    _make_pair(pod)

    def work() -> list[Any]:
        with Netlink() as nl:
            idx = nl.link("eth0").index  # type: ignore[union-attr]
            nl.add_addr(idx, "10.45.0.2/24")
            nl.set_up(idx)
            nl.add_route("192.0.2.0/24", oif=idx, gateway="10.45.0.1")
            nl.add_route("192.0.2.0/24", oif=idx, gateway="10.45.0.1")  # same: tolerated
            return [r for r in nl.routes() if r.dst == "192.0.2.0/24"]

    with netns.NetNS(pod) as ns:
        assert len(ns.run(work)) == 1


def test_missing_and_non_namespace_paths(tmp_path: Any) -> None:
    with pytest.raises(netns.NetNSNotFoundError) as missing:
        netns.open_netns(str(tmp_path / "nope"))
    assert missing.value.code == 8 and "nope" in missing.value.msg
    regular = tmp_path / "file"
    regular.write_text("")
    with pytest.raises(netns.NotANetNSError):
        netns.open_netns(str(regular))
    assert not (tmp_path / "nope").exists()  # never created


def test_worker_thread_switch_leaves_caller_alone(netns_factory: Any) -> None:
    pod = netns_factory()
    before = os.stat("/proc/thread-self/ns/net").st_ino
    with netns.NetNS(pod) as ns:
        inside = ns.run(lambda: os.stat("/proc/thread-self/ns/net").st_ino)
        with pytest.raises(ZeroDivisionError):
            ns.run(lambda: 1 / 0)
    assert inside == os.stat(pod).st_ino != before
    assert os.stat("/proc/thread-self/ns/net").st_ino == before


def test_netlink_errors_carry_errno() -> None:
    with Netlink() as nl:
        assert nl.link("does-not-exist") is None
        with pytest.raises(NetlinkError) as err:
            nl.delete_link(999999)
    assert err.value.errno == 19  # ENODEV


def test_sysctl_keys_keep_dotted_interface_names() -> None:
    assert sysctl.key_path("net.ipv4.ip_forward") == "/proc/sys/net/ipv4/ip_forward"
    assert (
        sysctl.key_path("net/ipv4/conf/eth0.100/arp_notify")
        == "/proc/sys/net/ipv4/conf/eth0.100/arp_notify"
    )
    sysctl.ensure("net.ipv4.ip_forward", "1")
    assert sysctl.get("net/ipv4/ip_forward") == "1"
