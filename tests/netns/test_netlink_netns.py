"""The netns/netlink/sysctl layer on its own: ConfigureIface with 1.1.0 route fields,
veth creation across namespaces, missing-netns handling, sysctl key mapping."""

from __future__ import annotations

import errno
import os
import struct
import threading
from typing import Any

import pytest
from cnitool_plugins._lib import iface, netns, sysctl
from cnitool_plugins._lib import netlink as nlmod
from cnitool_plugins._lib.netlink import AF_INET, Netlink, NetlinkError
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
                iface.configure_iface(nl, "eth0", result)

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
    assert missing.value.code == 999 and "nope" in missing.value.msg
    regular = tmp_path / "file"
    regular.write_text("")
    with pytest.raises(netns.NotANetNSError):
        netns.open_netns(str(regular))
    with pytest.raises(netns.NotANetNSError) as other_kind:  # a mount namespace
        netns.open_netns("/proc/self/ns/mnt")
    assert "not a network one" in other_kind.value.msg
    os.close(netns.open_netns("/proc/self/ns/net"))
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


def test_netns_fds_are_closed_on_every_path(netns_factory: Any, tmp_path: Any) -> None:
    pod = netns_factory()
    regular = tmp_path / "file"
    regular.write_text("")
    before = sorted(os.listdir("/proc/self/fd"))
    with netns.NetNS(pod) as ns:
        assert ns.run(lambda: 42) == 42
        with pytest.raises(ZeroDivisionError):
            ns.run(lambda: 1 / 0)
    for bad in (str(regular), "/proc/self/ns/mnt"):
        with pytest.raises(netns.NotANetNSError):
            netns.NetNS(bad)
    with open(regular) as fh, pytest.raises(OSError) as err:  # setns into a plain file
        netns.run_in_netns(fh.fileno(), lambda: None)
    assert err.value.errno == errno.EINVAL
    assert sorted(os.listdir("/proc/self/fd")) == before


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
    # a refinement the kernel lacks is skipped; one it has is applied
    assert sysctl.ensure_optional("net/ipv6/conf/no-such-link/accept_ra", "0") is False
    assert sysctl.ensure_optional("net/ipv4/conf/lo/arp_notify", "1") is True
    assert sysctl.get("net/ipv4/conf/lo/arp_notify") == "1"


# -- robustness of the codec: multi-part dumps, errors, retries, large replies ------------
def test_multi_part_dumps_match_pyroute2(netns_factory: Any) -> None:
    """Dumps far larger than one datagram come back whole and agree with pyroute2."""
    pod = netns_factory()

    def build() -> tuple[list[str], list[str], list[str]]:
        here = netns.current_netns()
        try:
            with Netlink() as nl:
                for i in range(150):
                    nl.create_veth(f"va{i}", f"vb{i}", here)
                idx = nl.link("va0").index  # type: ignore[union-attr]
                nl.set_up(idx)
                for i in range(300):
                    nl.add_addr(idx, f"10.{60 + i // 250}.{i % 250}.1/24")
                for i in range(400):
                    nl.add_route(f"172.16.{i // 4}.{(i % 4) * 64}/26", oif=idx, gateway="10.60.0.9")
                return (
                    [link.name for link in nl.links()],
                    [a.cidr for a in nl.addrs(idx, AF_INET)],
                    [r.dst for r in nl.routes(oif=idx)],
                )
        finally:
            os.close(here)

    with netns.NetNS(pod) as ns:
        names, cidrs, dsts = ns.run(build)

    def theirs(ipr: Any) -> tuple[list[str], list[str], list[str]]:
        idx = ipr.link_lookup(ifname="va0")[0]
        return (
            [m.get("IFLA_IFNAME") for m in ipr.get_links()],
            [f"{m.get('IFA_LOCAL')}/{m['prefixlen']}" for m in ipr.get_addr(index=idx, family=2)],
            [
                f"{m.get('RTA_DST')}/{m['dst_len']}"
                for m in ipr.get_routes(family=2, table=254)
                if m.get("RTA_OIF") == idx
            ],
        )

    want_names, want_cidrs, want_dsts = in_ns(pod, theirs)
    assert len(names) == 301 and sorted(names) == sorted(want_names)
    assert len(cidrs) == 300 and sorted(cidrs) == sorted(want_cidrs)
    assert len(dsts) == 400 + 300 and sorted(dsts) == sorted(want_dsts)  # + the connected /24s


def test_kernel_error_text_is_kept() -> None:
    with Netlink() as nl, pytest.raises(NetlinkError) as err:
        nl.add_route("198.51.100.0/24", oif=1, gateway="192.0.2.1")
    assert err.value.errno == errno.ENETUNREACH
    assert "Nexthop has invalid gateway" in str(err.value)  # the extended ACK


class FakeSocket:
    """Stands in for the netlink socket: records requests, replays scripted datagrams.

    ``script`` items are callables ``(seq) -> bytes | Exception`` producing each datagram
    from the sequence number of the latest request.
    """

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.sent: list[bytes] = []
        self.pending: bytes | None = None

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def _next(self) -> bytes:
        if self.pending is None:
            item = self.script.pop(0)(self.seq)
            if isinstance(item, Exception):
                raise item
            self.pending = item
        return self.pending

    @property
    def seq(self) -> int:
        return int(struct.unpack_from("=I", self.sent[-1], 8)[0])

    def recv_into(self, buf: bytearray, n: int, flags: int) -> int:
        data = self._next()
        buf[: min(n, len(data))] = data[:n]
        return len(data)  # MSG_TRUNC: the whole size

    def recv(self, n: int) -> bytes:
        data = self._next()
        assert n >= len(data), "the codec must read a datagram whole"
        self.pending = None
        return data

    def close(self) -> None:
        pass


def _msg(mtype: int, seq: int, body: bytes, flags: int = 0) -> bytes:
    raw = struct.pack("=IHHII", 16 + len(body), mtype, flags, seq, 0) + body
    return raw + b"\0" * (-len(raw) % 4)


def _link_msg(seq: int, index: int, name: str, flags: int = nlmod.NLM_F_MULTI) -> bytes:
    body = struct.pack("=BxHiII", 0, 0, index, 0, 0) + nlmod.nla_str(nlmod.IFLA_IFNAME, name)
    return _msg(nlmod.RTM_NEWLINK, seq, body, flags)


def _done(seq: int, err: int = 0) -> bytes:
    return _msg(nlmod.NLMSG_DONE, seq, struct.pack("=i", err), nlmod.NLM_F_MULTI)


def _fake(script: list[Any]) -> tuple[Netlink, FakeSocket]:
    nl = Netlink()
    nl._sock.close()
    fake = FakeSocket(script)
    nl._sock = fake  # type: ignore[assignment]
    return nl, fake


def test_dump_across_datagrams_skips_stale_replies() -> None:
    nl, fake = _fake(
        [
            # a leftover of an earlier request first, then the dump in two datagrams
            lambda s: _link_msg(s - 1, 9, "stale") + _link_msg(s, 1, "lo"),
            lambda s: _link_msg(s, 2, "big" * 5) + _done(s - 1) + _link_msg(s, 3, "eth0"),
            lambda s: _done(s),
        ]
    )
    assert [(link.index, link.name) for link in nl.links()] == [
        (1, "lo"),
        (2, "big" * 5),
        (3, "eth0"),
    ]
    assert fake.script == []


def test_large_datagram_is_read_whole() -> None:
    many = 6000  # ~170 KiB in one datagram, more than any fixed buffer here
    nl, _ = _fake([lambda s: b"".join(_link_msg(s, i, f"l{i}") for i in range(many)) + _done(s)])
    assert len(nl.links()) == many


def test_failed_dump_reports_the_error_from_done() -> None:
    nl, _ = _fake([lambda s: _link_msg(s, 1, "lo") + _done(s, -errno.EMSGSIZE)])
    with pytest.raises(NetlinkError) as err:
        nl.links()
    assert err.value.errno == errno.EMSGSIZE and "list links" in str(err.value)


def test_interrupted_dump_is_read_again() -> None:
    intr = nlmod.NLM_F_MULTI | nlmod.NLM_F_DUMP_INTR
    nl, fake = _fake(
        [
            lambda s: _link_msg(s, 1, "lo", intr) + _done(s),
            lambda s: _link_msg(s, 1, "lo") + _link_msg(s, 2, "eth0") + _done(s),
        ]
    )
    assert [link.name for link in nl.links()] == ["lo", "eth0"]
    assert len(fake.sent) == 2
    # a dump that never settles: a few more tries, then the last answer (as ip(8) does)
    nl, fake = _fake([lambda s: _link_msg(s, 1, "lo", intr) + _done(s)] * 4)
    assert [link.name for link in nl.links()] == ["lo"]
    assert len(fake.sent) == 4 and fake.script == []


def test_lost_replies_enobufs() -> None:
    overrun = OSError(errno.ENOBUFS, os.strerror(errno.ENOBUFS))
    # a read-only dump is simply asked again
    nl, fake = _fake([lambda s: overrun, lambda s: _link_msg(s, 1, "lo") + _done(s)])
    assert [link.name for link in nl.links()] == ["lo"]
    assert len(fake.sent) == 2
    # a change is never repeated blindly: its outcome is unknown, so it is an error
    nl, fake = _fake([lambda s: overrun])
    with pytest.raises(NetlinkError) as err:
        nl.set_up(5)
    assert err.value.errno == errno.ENOBUFS and "replies were lost" in str(err.value)
    assert len(fake.sent) == 1


def test_error_replies_with_and_without_extended_ack() -> None:
    def error(seq: int, code: int, text: str = "", capped: bool = True) -> bytes:
        payload = b"" if capped else b"\0" * 8  # uncapped: the request is echoed whole
        req = struct.pack("=IHHII", 16 + len(payload), nlmod.RTM_NEWLINK, 5, seq, 0) + payload
        body = struct.pack("=i", -code) + req
        flags = nlmod.NLM_F_CAPPED if capped else 0
        if text:
            body += nlmod.nla_str(nlmod.NLMSGERR_ATTR_MSG, text)
            flags |= nlmod.NLM_F_ACK_TLVS
        return _msg(nlmod.NLMSG_ERROR, seq, body, flags)

    nl, _ = _fake(
        [
            lambda s: error(s, errno.EINVAL, "Invalid VLAN id"),
            lambda s: error(s, errno.EEXIST, "name taken", capped=False),
            lambda s: error(s, errno.EBUSY),
            lambda s: error(s, 0),  # the ACK
        ]
    )
    for code, text in ((errno.EINVAL, "Invalid VLAN id"), (errno.EEXIST, "name taken")):
        with pytest.raises(NetlinkError) as err:
            nl.set_up(3)
        assert err.value.errno == code and text in str(err.value)
    with pytest.raises(NetlinkError) as err:
        nl.set_up(3)
    assert str(err.value) == f"set link #3 up: {os.strerror(errno.EBUSY)}"
    nl.set_up(3)  # a zero error is the ACK


def test_sequence_numbers_increase_and_wrap() -> None:
    nl, fake = _fake([lambda s: _msg(nlmod.NLMSG_ERROR, s, struct.pack("=i", 0))] * 3)
    nl._seq = 0xFFFFFFFE
    for _ in range(3):
        nl.set_up(1)
    seqs = [struct.unpack_from("=I", m, 8)[0] for m in fake.sent]
    assert seqs == [0xFFFFFFFF, 1, 2]


def test_routes_with_several_paths_list_each_path(netns_factory: Any) -> None:
    """Equal-cost paths (as appended by add_route) come back one Route per path."""
    pod = netns_factory()
    _make_pair(pod)
    result = {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "sandbox": pod}],
        "ips": [
            {"interface": 0, "address": "10.46.0.2/24", "gateway": "10.46.0.1"},
            {"interface": 0, "address": "fd46::2/64", "gateway": "fd46::1"},
        ],
        "routes": [
            {"dst": "192.0.2.0/24", "gw": "10.46.0.8"},
            {"dst": "192.0.2.0/24", "gw": "10.46.0.9"},
            {"dst": "2001:db8::/64", "gw": "fd46::8"},
            {"dst": "2001:db8::/64", "gw": "fd46::9"},
        ],
    }

    def work() -> tuple[set[Any], set[Any]]:
        with Netlink() as nl:
            iface.configure_iface(nl, "eth0", result)
            idx = nl.link("eth0").index  # type: ignore[union-attr]
            iface.validate_iface(nl, "eth0", "", result)  # CHECK finds both paths
            v4 = {(r.dst, r.gateway) for r in nl.routes(oif=idx) if r.dst == "192.0.2.0/24"}
            v6 = {
                (r.dst, r.gateway)
                for r in nl.routes(nlmod.AF_INET6, oif=idx)
                if r.dst == "2001:db8::/64"
            }
            return v4, v6

    with netns.NetNS(pod) as ns:
        v4, v6 = ns.run(work)
    assert v4 == {("192.0.2.0/24", "10.46.0.8"), ("192.0.2.0/24", "10.46.0.9")}
    assert v6 == {("2001:db8::/64", "fd46::8"), ("2001:db8::/64", "fd46::9")}

    def theirs(ipr: Any) -> list[Any]:
        out = []
        for m in ipr.get_routes(family=2, table=254):
            if m.get("RTA_DST") == "192.0.2.0":
                paths = m.get("RTA_MULTIPATH") or []
                out += [p.get("RTA_GATEWAY") for p in paths] or [m.get("RTA_GATEWAY")]
        return sorted(out)

    assert in_ns(pod, theirs) == ["10.46.0.8", "10.46.0.9"]


# -- the calling thread's switch (a warm worker's run_in_netns) ---------------------------
class Stranded(BaseException):
    """What the test's ``stranded`` raises in place of ending the process."""


def _stranded(exc: BaseException) -> Any:
    raise Stranded(exc)


def _set_up_missing_link() -> None:
    with Netlink() as nl:
        nl.set_up(999999)


def _here() -> tuple[int, int]:
    return os.stat("/proc/thread-self/ns/net").st_ino, threading.get_ident()


def test_calling_thread_switch_runs_in_the_namespace_and_comes_back(
    netns_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = netns_factory()
    monkeypatch.setattr(netns, "_STRANDED", None)
    netns.switch_calling_thread(_stranded)
    home, me = _here()
    threads = threading.active_count()
    with netns.NetNS(pod) as ns:
        ino, ident = ns.run(_here)
        with pytest.raises(NetlinkError):  # an error inside comes out, the thread goes home
            ns.run(_set_up_missing_link)
    assert ino == os.stat(pod).st_ino != home
    assert ident == me and threading.active_count() == threads
    assert _here() == (home, me)
    fds = len(os.listdir("/proc/self/fd"))
    with netns.NetNS(pod) as ns:
        ns.run(_here)
    assert len(os.listdir("/proc/self/fd")) == fds


def test_calling_thread_that_cannot_go_back_is_stranded(
    netns_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = netns_factory()
    monkeypatch.setattr(netns, "_STRANDED", None)
    netns.switch_calling_thread(_stranded)
    real = netns.setns
    home_fd = netns.current_netns()
    calls: list[int] = []

    def failing_return(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.EPERM, "setns: Operation not permitted")
        real(fd)

    monkeypatch.setattr(netns, "setns", failing_return)
    try:
        with netns.NetNS(pod) as ns, pytest.raises(Stranded) as info:
            ns.run(_here)
        assert isinstance(info.value.args[0], OSError) and len(calls) == 2
    finally:
        real(home_fd)  # the test itself goes back
        os.close(home_fd)
