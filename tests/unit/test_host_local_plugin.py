"""host-local through skel.run: allocation, leases on disk, DEL/CHECK/GC/STATUS, errors."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cnitool_plugins.host_local.__main__ import PLUGIN

from cnitool import skel


class HL:
    """Drive the plugin in-process against a temporary dataDir."""

    def __init__(self, tmp: Path, net: str = "hlnet") -> None:
        self.data = tmp / "data"
        self.net = net
        self.dir = self.data / net

    def conf(
        self, ipam: dict[str, Any] | None = None, version: str = "1.0.0", **top: Any
    ) -> dict[str, Any]:
        ipam = dict(ipam if ipam is not None else {"ranges": [[{"subnet": "10.1.2.0/24"}]]})
        ipam.setdefault("type", "host-local")
        ipam.setdefault("dataDir", str(self.data))
        conf = {"cniVersion": version, "name": self.net, "ipam": ipam}
        conf.update(top)
        return conf

    def call(
        self,
        cmd: str,
        conf: dict[str, Any],
        cid: str = "ctr1",
        ifname: str = "eth0",
        args: str = "",
    ) -> tuple[Any, int]:
        env = {
            "CNI_COMMAND": cmd,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": "/var/run/netns/x",
            "CNI_IFNAME": ifname,
            "CNI_PATH": "/opt/cni/bin",
            "CNI_ARGS": args,
            "CNI_NETNS_OVERRIDE": "1",
        }
        out, rc = skel.run(PLUGIN, env, json.dumps(conf).encode(), io.StringIO())
        return (json.loads(out) if out.strip() else None), rc

    def add(
        self, conf: dict[str, Any], cid: str = "ctr1", ifname: str = "eth0", args: str = ""
    ) -> Any:
        out, rc = self.call("ADD", conf, cid, ifname, args)
        assert rc == 0, out
        return out

    def fail(
        self,
        cmd: str,
        conf: dict[str, Any],
        cid: str = "ctr1",
        ifname: str = "eth0",
        args: str = "",
    ) -> dict[str, Any]:
        out, rc = self.call(cmd, conf, cid, ifname, args)
        assert rc == 1, out
        return out  # type: ignore[no-any-return]

    def ok(self, cmd: str, conf: dict[str, Any], cid: str = "ctr1", ifname: str = "eth0") -> None:
        out, rc = self.call(cmd, conf, cid, ifname)
        assert (out, rc) == (None, 0)

    def leases(self) -> dict[str, bytes]:
        return {
            p.name: p.read_bytes()
            for p in self.dir.iterdir()
            if p.is_file() and p.name != "lock" and not p.name.startswith(("last_", "."))
        }


@pytest.fixture
def hl(tmp_path: Path) -> HL:
    return HL(tmp_path)


def addrs(result: dict[str, Any]) -> list[str]:
    return [ip["address"] for ip in result["ips"]]


# --- ADD result and files ---------------------------------------------------------------


def test_dual_stack_add_matches_reference_output_and_files(hl: HL) -> None:
    conf = hl.conf({"ranges": [[{"subnet": "203.0.113.0/24"}], [{"subnet": "2001:db8:1::/64"}]]})
    res = hl.add(conf, cid="example")
    assert res == {
        "cniVersion": "1.0.0",
        "ips": [
            {"address": "203.0.113.2/24", "gateway": "203.0.113.1"},
            {"address": "2001:db8:1::2/64", "gateway": "2001:db8:1::1"},
        ],
    }
    assert hl.leases() == {"203.0.113.2": b"example\r\neth0", "2001:db8:1::2": b"example\r\neth0"}
    assert (hl.dir / "last_reserved_ip.0").read_bytes() == b"203.0.113.2"
    assert (hl.dir / "last_reserved_ip.1").read_bytes() == b"2001:db8:1::2"
    lock = hl.dir / "lock"
    assert lock.stat().st_size == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(lock.stat().st_mode) == 0o750 & ~umask
    assert stat.S_IMODE((hl.dir / "203.0.113.2").stat().st_mode) == 0o644 & ~umask


def test_duplicate_allocation_error_text(hl: HL) -> None:
    conf = hl.conf({"ranges": [[{"subnet": "203.0.113.0/24"}], [{"subnet": "2001:db8:1::/64"}]]})
    hl.add(conf, cid="example")
    err = hl.fail("ADD", conf, cid="example")
    assert err == {
        "code": 999,
        "msg": "failed to allocate for range 0: 203.0.113.2 has been allocated to example, "
        "duplicate allocation is not allowed",
    }
    # same container, other interface: allowed
    assert addrs(hl.add(conf, cid="example", ifname="eth1")) == [
        "203.0.113.3/24",
        "2001:db8:1::3/64",
    ]


def test_legacy_id_only_lease_counts_as_duplicate(hl: HL) -> None:
    conf = hl.conf()
    hl.dir.mkdir(parents=True)
    (hl.dir / "10.1.2.9").write_bytes(b"ctr1")
    err = hl.fail("ADD", conf)
    assert "10.1.2.9 has been allocated to ctr1" in err["msg"]


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_results_per_version(hl: HL, version: str) -> None:
    res = hl.add(hl.conf(version=version))
    assert res["cniVersion"] == version
    assert res["ips"][0]["address"] == "10.1.2.2/24"
    if version in ("0.3.1", "0.4.0"):
        assert res["ips"][0]["version"] == "4"
    else:
        assert "version" not in res["ips"][0]


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_legacy_result_versions(hl: HL, version: str) -> None:
    ipam = {
        "ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "fd00::/64"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    res = hl.add(hl.conf(ipam, version=version))
    assert res["ip4"]["ip"] == "10.1.2.2/24"
    assert res["ip4"]["gateway"] == "10.1.2.1"
    assert res["ip6"]["ip"] == "fd00::2/64"


def test_more_than_one_set_per_family_needs_030(hl: HL) -> None:
    ipam = {"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.3.0/24"}]]}
    err = hl.fail("ADD", hl.conf(ipam, version="0.2.0"))
    assert err["msg"] == "CNI version 0.2.0 does not support more than 1 address per family"
    assert addrs(hl.add(hl.conf(ipam, version="0.3.0"))) == ["10.1.2.2/24", "10.1.3.2/24"]


def test_routes_and_resolv_conf(hl: HL, tmp_path: Path) -> None:
    rc = tmp_path / "resolv.conf"
    rc.write_text(
        "# comment\n; other comment\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n"
        "domain example.com\nsearch a.example b.example\nsearch c.example\noptions ndots:2 edns0\n"
        "nameserver\n"
    )
    ipam = {
        "ranges": [[{"subnet": "10.1.2.0/24"}]],
        "resolvConf": str(rc),
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.1.2.254"}],
    }
    res = hl.add(hl.conf(ipam, version="1.1.0"))
    assert res["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.1.2.254"}]
    assert res["dns"] == {
        "nameservers": ["192.0.2.53", "2001:db8::53"],
        "domain": "example.com",
        "search": ["a.example", "b.example", "c.example"],
        "options": ["ndots:2", "edns0"],
    }


def test_missing_resolv_conf_is_an_error(hl: HL, tmp_path: Path) -> None:
    ipam = {"ranges": [[{"subnet": "10.1.2.0/24"}]], "resolvConf": str(tmp_path / "nope")}
    err = hl.fail("ADD", hl.conf(ipam))
    assert err["code"] == 999 and str(tmp_path / "nope") in err["msg"]  # as the reference
    assert not hl.dir.exists() or hl.leases() == {}


# --- the walk ---------------------------------------------------------------------------


def test_round_robin_wraparound_gateway_skip_and_exhaustion(hl: HL) -> None:
    ipam = {"ranges": [[{"subnet": "10.1.2.0/29", "gateway": "10.1.2.3"}]]}
    conf = hl.conf(ipam)
    got = [addrs(hl.add(conf, cid=f"c{i}"))[0] for i in range(5)]
    # .1 and .2 free, .3 gateway, .7 broadcast excluded by default
    assert got == ["10.1.2.1/29", "10.1.2.2/29", "10.1.2.4/29", "10.1.2.5/29", "10.1.2.6/29"]
    err = hl.fail("ADD", conf, cid="c9")
    assert err["msg"] == (
        "failed to allocate for range 0: no IP addresses available in range set: 10.1.2.1-10.1.2.6"
    )
    # release .2: the next ADD continues after last_reserved (.6), wraps and finds .2
    hl.ok("DEL", conf, cid="c1")
    assert addrs(hl.add(conf, cid="c10")) == ["10.1.2.2/29"]
    assert (hl.dir / "last_reserved_ip.0").read_bytes() == b"10.1.2.2"


def test_round_robin_does_not_reuse_just_released(hl: HL) -> None:
    conf = hl.conf()
    assert addrs(hl.add(conf, cid="a")) == ["10.1.2.2/24"]
    hl.ok("DEL", conf, cid="a")
    assert addrs(hl.add(conf, cid="b")) == ["10.1.2.3/24"]


def test_last_reserved_outside_set_restarts_at_range_start(hl: HL) -> None:
    conf = hl.conf()
    hl.dir.mkdir(parents=True)
    (hl.dir / "last_reserved_ip.0").write_bytes(b"192.168.7.7")
    assert addrs(hl.add(conf)) == ["10.1.2.2/24"]


def test_multiple_ranges_in_one_set(hl: HL) -> None:
    ipam = {
        "ranges": [
            [
                {"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.10", "rangeEnd": "10.1.2.11"},
                {
                    "subnet": "10.1.3.0/24",
                    "rangeStart": "10.1.3.20",
                    "rangeEnd": "10.1.3.20",
                    "gateway": "10.1.3.254",
                },
            ]
        ]
    }
    conf = hl.conf(ipam)
    got = [hl.add(conf, cid=f"c{i}")["ips"][0] for i in range(3)]
    assert got == [
        {"address": "10.1.2.10/24", "gateway": "10.1.2.1"},
        {"address": "10.1.2.11/24", "gateway": "10.1.2.1"},
        {"address": "10.1.3.20/24", "gateway": "10.1.3.254"},
    ]
    err = hl.fail("ADD", conf, cid="c4")
    assert err["msg"].endswith("range set: 10.1.2.10-10.1.2.11,10.1.3.20-10.1.3.20")


def test_ipv6_default_range_end_is_all_ones(hl: HL) -> None:
    ipam = {"ranges": [[{"subnet": "fd00::/126"}]]}
    conf = hl.conf(ipam)
    got = [addrs(hl.add(conf, cid=f"c{i}"))[0] for i in range(2)]
    assert got == ["fd00::2/126", "fd00::3/126"]
    assert (
        "no IP addresses available in range set: fd00::1-fd00::3"
        in hl.fail("ADD", conf, cid="x")["msg"]
    )


def test_failure_in_later_set_releases_earlier_sets(hl: HL) -> None:
    ipam = {
        "ranges": [
            [{"subnet": "10.1.2.0/24"}],
            [{"subnet": "10.9.0.0/30", "rangeStart": "10.9.0.2", "rangeEnd": "10.9.0.2"}],
        ]
    }
    conf = hl.conf(ipam)
    hl.add(conf, cid="first")
    before = hl.leases()
    err = hl.fail("ADD", conf, cid="second")
    assert err["msg"].startswith("failed to allocate for range 1: no IP addresses available")
    assert hl.leases() == before


# --- requested addresses ----------------------------------------------------------------


def test_requested_ip_via_cni_args(hl: HL) -> None:
    conf = hl.conf()
    assert addrs(hl.add(conf, args="IP=10.1.2.50")) == ["10.1.2.50/24"]
    err = hl.fail("ADD", conf, cid="other", args="IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.1.2.50")
    assert err["msg"] == (
        "failed to allocate for range 0: requested IP address 10.1.2.50 is not available "
        "in range set 10.1.2.1-10.1.2.254"
    )
    err = hl.fail("ADD", conf, cid="other", args="ip=10.1.2.51")
    assert err["msg"] == 'ARGS: unknown args ["ip=10.1.2.51"]'
    err = hl.fail("ADD", conf, cid="other", args="IP=10.1.2.x")
    assert "invalid IP address" in err["msg"]


def test_requested_gateway_and_out_of_range(hl: HL) -> None:
    conf = hl.conf()
    err = hl.fail("ADD", conf, args="IP=10.1.2.1")
    assert err["msg"] == "failed to allocate for range 0: requested ip 10.1.2.1 is subnet's gateway"
    err = hl.fail("ADD", conf, args="IP=10.1.9.9")
    assert err["msg"] == "failed to allocate all requested IPs: 10.1.9.9"
    assert hl.leases() == {}


def test_requested_ips_accumulate_from_all_sources(hl: HL) -> None:
    ipam = {
        "ranges": [
            [{"subnet": "10.1.2.0/24"}],
            [{"subnet": "fd00::/64"}],
            [{"subnet": "10.7.0.0/16"}],
        ]
    }
    conf = hl.conf(
        ipam, args={"cni": {"ips": ["fd00::77/64"]}}, runtimeConfig={"ips": ["10.7.3.3/16"]}
    )
    res = hl.add(conf, args="IP=10.1.2.40")
    assert addrs(res) == ["10.1.2.40/24", "fd00::77/64", "10.7.3.3/16"]


def test_two_requests_for_one_set_fail_and_release(hl: HL) -> None:
    conf = hl.conf(runtimeConfig={"ips": ["10.1.2.5", "10.1.2.6"]})
    err = hl.fail("ADD", conf)
    assert err["msg"] == "failed to allocate all requested IPs: 10.1.2.6"
    assert hl.leases() == {}


def test_runtime_ip_ranges_are_prepended(hl: HL) -> None:
    conf = hl.conf(runtimeConfig={"ipRanges": [[{"subnet": "192.168.5.0/24"}]]})
    res = hl.add(conf)
    assert addrs(res) == ["192.168.5.2/24", "10.1.2.2/24"]
    assert (hl.dir / "last_reserved_ip.0").read_bytes() == b"192.168.5.2"
    assert (hl.dir / "last_reserved_ip.1").read_bytes() == b"10.1.2.2"


def test_legacy_top_level_range_is_first_set(hl: HL) -> None:
    ipam = {
        "subnet": "10.5.0.0/16",
        "rangeStart": "10.5.1.1",
        "rangeEnd": "10.5.1.9",
        "gateway": "10.5.0.1",
        "ranges": [[{"subnet": "fd00::/64"}]],
    }
    res = hl.add(hl.conf(ipam))
    assert res["ips"] == [
        {"address": "10.5.1.1/16", "gateway": "10.5.0.1"},
        {"address": "fd00::2/64", "gateway": "fd00::1"},
    ]


# --- validation errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ipam", "msg"),
    [
        (
            {"ranges": [[{"subnet": "10.1.2.1/24"}]]},
            "invalid range set 0: Network has host bits set. For a subnet mask of length 24 the network address is 10.1.2.0",
        ),
        (
            {"ranges": [[{"subnet": "10.1.2.0/31"}]]},
            "invalid range set 0: Network 10.1.2.0/31 too small to allocate from",
        ),
        (
            {"ranges": [[{"subnet": "fd00::/127"}]]},
            "invalid range set 0: Network fd00::/127 too small to allocate from",
        ),
        (
            {"ranges": [[{"subnet": "10.1.2.0/24", "rangeStart": "10.1.3.1"}]]},
            "invalid range set 0: RangeStart 10.1.3.1 not in network 10.1.2.0/24",
        ),
        (
            {
                "ranges": [
                    [{"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.9", "rangeEnd": "10.1.2.8"}]
                ]
            },
            "invalid range set 0: RangeEnd 10.1.2.8 not in network 10.1.2.0/24",
        ),
        (
            {"ranges": [[{"subnet": "10.1.2.0/24"}, {"subnet": "fd00::/64"}]]},
            "invalid range set 0: mixed address families",
        ),
        (
            {"ranges": [[{"subnet": "10.1.2.0/24"}, {"subnet": "10.1.2.0/25"}]]},
            "invalid range set 0: subnets 10.1.2.1-10.1.2.254 and 10.1.2.1-10.1.2.126 overlap",
        ),
        (
            {"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.0.0/16"}]]},
            "range set 0 overlaps with 1",
        ),
        ({"ranges": [[]]}, "invalid range set 0: empty range set"),
        ({"ranges": []}, "no IP ranges specified"),
        ({}, "no IP ranges specified"),
        (
            {"ranges": [[{"subnet": "banana"}]]},
            "invalid range set 0: ipam.ranges[0] range 0: subnet: invalid CIDR address: banana",
        ),
        (
            {"ranges": [[{"rangeStart": "10.0.0.1"}]]},
            'invalid range set 0: ipam.ranges[0] range 0: missing "subnet"',
        ),
        ({"ranges": "10.0.0.0/8"}, 'ipam.ranges: expected a list of range sets, got "10.0.0.0/8"'),
        (
            {"ranges": [[{"subnet": "10.1.2.0/24"}]], "routes": [{"dst": "x"}]},
            "ipam.routes[0].dst: invalid CIDR address: x",
        ),
    ],
)
def test_validation_errors(hl: HL, ipam: dict[str, Any], msg: str) -> None:
    err = hl.fail("ADD", hl.conf(ipam))
    assert err["msg"] == msg
    assert err["code"] == 999  # the reference's code for every config error


def test_missing_ipam_key(hl: HL) -> None:
    out, rc = hl.call("ADD", {"cniVersion": "1.0.0", "name": "n"})
    assert rc == 1 and out == {"code": 999, "msg": "IPAM config missing 'ipam' key"}


def test_bad_requested_ips_in_config(hl: HL) -> None:
    err = hl.fail("ADD", hl.conf(runtimeConfig={"ips": ["nope"]}))
    assert err == {"code": 999, "msg": 'runtimeConfig.ips: invalid IP address: "nope"'}


def test_broadcast_never_allocated_but_can_be_configured_explicitly(hl: HL) -> None:
    conf = hl.conf({"ranges": [[{"subnet": "10.1.2.0/30"}]]})
    assert addrs(hl.add(conf, cid="a")) == ["10.1.2.2/30"]
    assert "no IP addresses available" in hl.fail("ADD", conf, cid="b")["msg"]


# --- DEL / CHECK ------------------------------------------------------------------------


def test_del_twice_and_missing_leases_ok(hl: HL) -> None:
    conf = hl.conf({"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "fd00::/64"}]]})
    hl.add(conf)
    hl.ok("DEL", conf)
    assert hl.leases() == {}
    hl.ok("DEL", conf)
    assert sorted(p.name for p in hl.dir.iterdir() if not p.name.startswith(".")) == [
        "last_reserved_ip.0",
        "last_reserved_ip.1",
        "lock",
    ]
    hl.ok("DEL", conf, cid="never-added")


def test_del_only_releases_own_interface(hl: HL) -> None:
    conf = hl.conf()
    hl.add(conf, ifname="eth0")
    hl.add(conf, ifname="eth1")
    hl.ok("DEL", conf, ifname="eth0")
    assert hl.leases() == {"10.1.2.3": b"ctr1\r\neth1"}


def test_del_legacy_id_only_content(hl: HL) -> None:
    conf = hl.conf()
    hl.dir.mkdir(parents=True)
    (hl.dir / "10.1.2.9").write_bytes(b"ctr1\n")
    (hl.dir / "10.1.2.10").write_bytes(b"other\r\neth0")
    hl.ok("CHECK", conf)
    hl.ok("DEL", conf)
    assert hl.leases() == {"10.1.2.10": b"other\r\neth0"}


def test_check(hl: HL) -> None:
    conf = hl.conf()
    err = hl.fail("CHECK", conf)
    assert err["msg"] == "host-local: Failed to find address added by container ctr1"
    hl.add(conf)
    hl.ok("CHECK", conf)
    assert hl.fail("CHECK", conf, ifname="eth1")["code"] == 999


def test_check_needs_040(hl: HL) -> None:
    err = hl.fail("CHECK", hl.conf(version="0.3.1"))
    assert err["msg"] == "config version does not allow CHECK"


# --- hints ------------------------------------------------------------------------------


def hint_path(hl: HL, cid: str = "ctr1", ifname: str = "eth0") -> Path:
    return hl.dir / ".pycni" / f"{cid}:{ifname}"


def test_hint_written_and_removed(hl: HL) -> None:
    conf = hl.conf({"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "fd00::/64"}]]})
    hl.add(conf)
    text = hint_path(hl).read_text()
    assert text.splitlines()[1:] == ["10.1.2.2", "fd00::2"]
    assert "ctr1" not in text  # can never look like a lease to the Go plugin's scan
    hl.ok("DEL", conf)
    assert not hint_path(hl).exists()


def test_del_and_check_use_the_hint_without_scanning(
    hl: HL, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnitool_plugins.host_local import store as store_mod

    conf = hl.conf()
    for i in range(20):
        hl.add(conf, cid=f"c{i}")
    opened: list[str] = []
    real_scan = store_mod.Store.scan

    def counting_scan(self: store_mod.Store) -> Any:
        opened.append("scan")
        return real_scan(self)

    monkeypatch.setattr(store_mod.Store, "scan", counting_scan)
    hl.ok("CHECK", conf, cid="c7")
    hl.ok("DEL", conf, cid="c7")
    assert opened == []
    assert "10.1.2.9" not in hl.leases()


def test_missing_hint_falls_back_to_scan(hl: HL) -> None:
    conf = hl.conf()
    hl.add(conf)
    hint_path(hl).unlink()
    hl.ok("CHECK", conf)
    hl.ok("DEL", conf)
    assert hl.leases() == {}


def test_wrong_hint_is_not_trusted(hl: HL) -> None:
    conf = hl.conf()
    hl.add(conf, cid="a")  # 10.1.2.2
    hl.add(conf, cid="b")  # 10.1.2.3
    # a hint for b that points at a's lease: DEL of b must not release a's address
    hint_path(hl, "b").write_text("#pycni host-local attachment hint v1\n10.1.2.2\n")
    hl.ok("CHECK", conf, cid="b")  # found by the fallback scan
    hl.ok("DEL", conf, cid="b")
    assert hl.leases() == {"10.1.2.2": b"a\r\neth0"}
    # a hint listing a lease that is gone (released by another plugin)
    (hl.dir / "10.1.2.2").unlink()
    err = hl.fail("CHECK", conf, cid="a")
    assert "Failed to find address" in err["msg"]
    hl.ok("DEL", conf, cid="a")


def test_hint_garbage_is_ignored(hl: HL) -> None:
    conf = hl.conf()
    hl.add(conf)
    hint_path(hl).write_bytes(b"\xff\xfe not a hint")
    hl.ok("DEL", conf)
    assert hl.leases() == {}


def test_lease_made_elsewhere_for_same_attachment_is_released(hl: HL) -> None:
    conf = hl.conf()
    hl.add(conf)
    (hl.dir / "10.1.2.77").write_bytes(b"ctr1\r\neth0")  # e.g. written by the Go plugin
    hint_path(hl).unlink()
    hl.ok("DEL", conf)
    assert hl.leases() == {}


# --- GC and STATUS ----------------------------------------------------------------------


def test_gc_releases_only_invalid_attachments(hl: HL) -> None:
    conf = hl.conf(
        {"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "fd00::/64"}]]}, version="1.1.0"
    )
    hl.add(conf, cid="keep")
    hl.add(conf, cid="drop")
    hl.add(conf, cid="keep", ifname="eth1")
    (hl.dir / "10.1.2.99").write_bytes(b"keep")  # legacy id-only: valid by id
    (hl.dir / "10.1.2.98").write_bytes(b"gone")
    gc = dict(conf)
    gc["cni.dev/valid-attachments"] = [{"containerID": "keep", "ifname": "eth0"}]
    out, rc = hl.call("GC", gc, cid="", ifname="")
    assert (out, rc) == (None, 0)
    assert hl.leases() == {
        "10.1.2.2": b"keep\r\neth0",
        "fd00::2": b"keep\r\neth0",
        "10.1.2.99": b"keep",
    }
    assert {"lock", "last_reserved_ip.0", "last_reserved_ip.1"} <= {
        p.name for p in hl.dir.iterdir()
    }
    assert not hint_path(hl, "drop").exists()
    assert hint_path(hl, "keep").exists()


def test_gc_without_list_releases_nothing(hl: HL) -> None:
    """libcni sends no list when its caller gave none: success, and every lease stays."""
    conf = hl.conf(version="1.1.0")
    hl.add(conf)
    before = hl.leases()
    out, rc = hl.call("GC", conf, cid="", ifname="")
    assert (out, rc) == (None, 0)
    assert hl.leases() == before != {}


def test_gc_with_a_malformed_list_is_refused(hl: HL) -> None:
    conf = hl.conf(version="1.1.0")
    hl.add(conf)
    out, rc = hl.call("GC", {**conf, "cni.dev/valid-attachments": "all"}, cid="", ifname="")
    assert rc == 1 and out["code"] == 7
    assert hl.leases() != {}


def test_gc_needs_110(hl: HL) -> None:
    out, rc = hl.call("GC", hl.conf(version="1.0.0"), cid="", ifname="")
    assert rc == 1 and out["msg"] == "config version does not allow GC"


def test_status(hl: HL, tmp_path: Path) -> None:
    hl.ok("STATUS", hl.conf(version="1.1.0"), cid="", ifname="")
    blocker = tmp_path / "file"
    blocker.write_text("")
    conf = hl.conf(version="1.1.0")
    conf["ipam"]["dataDir"] = str(blocker)
    out, rc = hl.call("STATUS", conf, cid="", ifname="")
    assert rc == 1 and out["code"] == 50 and str(blocker) in out["msg"]


def test_version_lists_every_spec_version(hl: HL) -> None:
    out, rc = skel.run(PLUGIN, {"CNI_COMMAND": "VERSION"}, b"", io.StringIO())
    assert rc == 0
    assert json.loads(out)["supportedVersions"] == [
        "0.1.0",
        "0.2.0",
        "0.3.0",
        "0.3.1",
        "0.4.0",
        "1.0.0",
        "1.1.0",
    ]


def test_add_path_stays_light(tmp_path: Path) -> None:
    """Every call is a new process: ADD must not load netlink, firewall or CLI modules."""
    import subprocess
    import sys

    code = f"""
import io, json, sys
from cnitool import skel
from cnitool_plugins.host_local.__main__ import PLUGIN
conf = {{"cniVersion": "1.0.0", "name": "n", "ipam": {{"type": "host-local",
        "dataDir": {str(tmp_path)!r}, "ranges": [[{{"subnet": "10.3.0.0/24"}}]]}}}}
env = {{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0",
       "CNI_PATH": "/x", "CNI_NETNS_OVERRIDE": "1"}}
out, rc = skel.run(PLUGIN, env, json.dumps(conf).encode(), io.StringIO())
assert rc == 0, out
heavy = sorted(m for m in sys.modules
               if m.split(".")[0] in ("pyroute2", "iptc", "click", "rich", "asyncio", "dataclasses"))
print(json.dumps(heavy))
"""
    p = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=False
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == []


def test_add_drops_hints_no_lease_backs(hl: HL) -> None:
    """A hint whose leases another implementation released is removed by the next ADD."""
    conf = hl.conf()
    hl.add(conf, cid="gone")
    hl.add(conf, cid="kept")
    for ip, content in hl.leases().items():  # released behind our back (no hint update)
        if content.startswith(b"gone"):
            (hl.dir / ip).unlink()
    assert hint_path(hl, "gone").exists()
    hl.add(conf, cid="new")
    assert not hint_path(hl, "gone").exists()
    assert hint_path(hl, "kept").exists() and hint_path(hl, "new").exists()


def test_hint_of_an_ifname_with_tmp_in_it_is_pruned_too(hl: HL) -> None:
    """``eth0.tmp1`` is a valid interface name: its hint is no temporary file to skip."""
    conf = hl.conf()
    hl.add(conf, cid="gone", ifname="eth0.tmp1")
    for ip in hl.leases():  # released behind our back (no hint update)
        (hl.dir / ip).unlink()
    assert hint_path(hl, "gone", "eth0.tmp1").exists()
    hl.add(conf, cid="new")
    assert not hint_path(hl, "gone", "eth0.tmp1").exists()
    assert sorted(p.name for p in (hl.dir / ".pycni").iterdir()) == ["new:eth0"]


def test_add_failing_to_record_the_last_address_keeps_no_lease(hl: HL) -> None:
    conf = hl.conf()
    hl.dir.mkdir(parents=True)
    (hl.dir / "last_reserved_ip.0").mkdir()  # cannot be written
    err, rc = hl.call("ADD", conf)
    assert rc == 1 and "last_reserved_ip.0" in err["msg"], err
    assert hl.leases() == {}


def test_lease_written_in_place_where_links_do_not_exist(
    hl: HL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system without hard links (vfat, some FUSE): O_EXCL create, write, fsync."""
    import errno

    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    conf = hl.conf()
    assert addrs(hl.add(conf, cid="a")) == ["10.1.2.2/24"]
    assert addrs(hl.add(conf, cid="b")) == ["10.1.2.3/24"]
    assert hl.leases() == {"10.1.2.2": b"a\r\neth0", "10.1.2.3": b"b\r\neth0"}
    assert (hl.dir / "last_reserved_ip.0").read_bytes() == b"10.1.2.3"
    assert not (hl.dir / ".pycni" / "tmp").exists()
    hl.ok("DEL", conf, cid="a")
    assert list(hl.leases()) == ["10.1.2.3"]
