"""Results of every spec era: parsing, normalisation, printing and the conversion matrix."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import pytest

from cnitool.spec import errors, jsonfmt
from cnitool.spec.results import convert, format_result, new_result, parse_result
from cnitool.spec.version import ALL

LEGACY = ("0.1.0", "0.2.0")
V04 = ("0.3.0", "0.3.1", "0.4.0")
V1 = ("1.0.0", "1.1.0")

# A dual-stack bridge-like result in the 1.1.0 shape, using every optional field.
FULL_V1: dict[str, Any] = {
    "cniVersion": "1.1.0",
    "interfaces": [
        {"name": "cni0", "mac": "5a:b8:0f:2c:11:01", "mtu": 1500},
        {"name": "veth404c9fa6", "mac": "7e:3a:51:0b:22:02"},
        {
            "name": "eth0",
            "mac": "c2:11:22:33:44:55",
            "mtu": 1450,
            "sandbox": "/var/run/netns/pod1",
            "socketPath": "/run/vhost/sock0",
            "pciID": "0000:00:1f.6",
        },
    ],
    "ips": [
        {"interface": 2, "address": "10.22.0.2/16", "gateway": "10.22.0.1"},
        {"interface": 2, "address": "2001:db8:22::2/64", "gateway": "2001:db8:22::1"},
        {"address": "10.22.0.3/16"},
    ],
    "routes": [
        {"dst": "0.0.0.0/0"},
        {
            "dst": "10.30.0.0/16",
            "gw": "10.22.0.254",
            "mtu": 1400,
            "advmss": 1360,
            "priority": 10,
            "table": 100,
            "scope": 0,
        },
        {"dst": "::/0", "gw": "2001:db8:22::1"},
    ],
    "dns": {
        "nameservers": ["10.22.0.1", "2001:db8:22::1"],
        "domain": "pods.example",
        "search": ["pods.example", "example"],
        "options": ["ndots:2"],
    },
}

DNS = FULL_V1["dns"]

# FULL_V1 in the 0.4.0 shape: interface extras dropped, IP version from the family,
# routes whole.
FULL_04: dict[str, Any] = {
    "cniVersion": "0.4.0",
    "interfaces": [
        {"name": "cni0", "mac": "5a:b8:0f:2c:11:01"},
        {"name": "veth404c9fa6", "mac": "7e:3a:51:0b:22:02"},
        {"name": "eth0", "mac": "c2:11:22:33:44:55", "sandbox": "/var/run/netns/pod1"},
    ],
    "ips": [
        {"version": "4", "interface": 2, "address": "10.22.0.2/16", "gateway": "10.22.0.1"},
        {
            "version": "6",
            "interface": 2,
            "address": "2001:db8:22::2/64",
            "gateway": "2001:db8:22::1",
        },
        {"version": "4", "address": "10.22.0.3/16"},
    ],
    "routes": FULL_V1["routes"],
    "dns": DNS,
}

# The 0.4.0 data back in the 1.x shape (1.1-only interface fields are gone for good).
V1_FROM_04: dict[str, Any] = {
    "cniVersion": "1.1.0",
    "interfaces": FULL_04["interfaces"],
    "ips": [{k: v for k, v in ip.items() if k != "version"} for ip in FULL_04["ips"]],
    "routes": FULL_V1["routes"],
    "dns": DNS,
}

# The 0.2.0 shape: first IP of each family, routes by the family of dst, dst/gw only.
FULL_02: dict[str, Any] = {
    "cniVersion": "0.2.0",
    "ip4": {
        "ip": "10.22.0.2/16",
        "gateway": "10.22.0.1",
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.30.0.0/16", "gw": "10.22.0.254"}],
    },
    "ip6": {
        "ip": "2001:db8:22::2/64",
        "gateway": "2001:db8:22::1",
        "routes": [{"dst": "::/0", "gw": "2001:db8:22::1"}],
    },
    "dns": DNS,
}

# 0.2.0 data brought up to 0.4.0: ips with version and no interface, routes flattened.
O4_FROM_02: dict[str, Any] = {
    "cniVersion": "0.4.0",
    "ips": [
        {"version": "4", "address": "10.22.0.2/16", "gateway": "10.22.0.1"},
        {"version": "6", "address": "2001:db8:22::2/64", "gateway": "2001:db8:22::1"},
    ],
    "routes": [
        {"dst": "0.0.0.0/0"},
        {"dst": "10.30.0.0/16", "gw": "10.22.0.254"},
        {"dst": "::/0", "gw": "2001:db8:22::1"},
    ],
    "dns": DNS,
}

V1_FROM_02: dict[str, Any] = {
    "cniVersion": "1.1.0",
    "ips": [{k: v for k, v in ip.items() if k != "version"} for ip in O4_FROM_02["ips"]],
    "routes": O4_FROM_02["routes"],
    "dns": DNS,
}


def labelled(result: dict[str, Any], version: str) -> dict[str, Any]:
    out = copy.deepcopy(result)
    out["cniVersion"] = version
    return out


def source_in(version: str) -> dict[str, Any]:
    """The test result as a plugin of that era would have produced it."""
    if version in V1:
        return labelled(FULL_V1, version)
    if version in V04:
        return labelled(FULL_04, version)
    return labelled(FULL_02, version)


def expected(src: str, dst: str) -> dict[str, Any]:
    if dst in LEGACY:
        return labelled(FULL_02, dst)
    if src in LEGACY:
        return labelled(O4_FROM_02 if dst in V04 else V1_FROM_02, dst)
    if dst in V04:
        return labelled(FULL_04, dst)
    return labelled(FULL_V1 if src in V1 else V1_FROM_04, dst)


PAIRS = [(s, d) for s in ALL for d in ALL]


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=[f"{s}->{d}" for s, d in PAIRS])
def test_conversion_matrix(src: str, dst: str) -> None:
    source = source_in(src)
    before = copy.deepcopy(source)
    got = convert(source, dst)
    assert got == expected(src, dst)
    # Key order matters at every level (the Go encoder's field order).
    assert jsonfmt.dumps_indent(got) == jsonfmt.dumps_indent(expected(src, dst))
    assert source == before, "conversion must not modify its input"
    # Whatever comes out is a valid result of the target version.
    assert new_result(got) == got


def test_from_1x_to_040_exact() -> None:
    got = convert(copy.deepcopy(FULL_V1), "0.4.0")
    assert got == FULL_04
    assert list(got["ips"][0]) == ["version", "interface", "address", "gateway"]
    assert got["routes"][1] == {
        "dst": "10.30.0.0/16",
        "gw": "10.22.0.254",
        "mtu": 1400,
        "advmss": 1360,
        "priority": 10,
        "table": 100,
        "scope": 0,
    }


def test_from_1x_to_020_goes_through_040() -> None:
    assert convert(copy.deepcopy(FULL_V1), "0.2.0") == FULL_02
    assert convert(copy.deepcopy(FULL_V1), "0.1.0") == labelled(FULL_02, "0.1.0")


def test_from_020_up_to_every_modern_version() -> None:
    assert convert(copy.deepcopy(FULL_02), "0.3.1") == labelled(O4_FROM_02, "0.3.1")
    assert convert(copy.deepcopy(FULL_02), "1.0.0") == labelled(V1_FROM_02, "1.0.0")


def test_ten_to_eleven_keeps_eleven_only_fields() -> None:
    ten = labelled(FULL_V1, "1.0.0")
    assert convert(ten, "1.1.0") == FULL_V1
    assert convert(copy.deepcopy(FULL_V1), "1.0.0") == ten


@pytest.mark.parametrize(
    "path",
    [
        ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", "0.4.0", "0.3.0"),
        ("0.4.0", "1.0.0", "0.4.0"),
        ("0.3.1", "1.1.0", "0.3.1"),
    ],
)
def test_round_trips_between_03_04_and_1x_are_lossless(path: tuple[str, ...]) -> None:
    start = labelled(FULL_04, path[0])
    result = start
    for version in path[1:]:
        result = convert(result, version)
    assert result == start


def test_round_trip_1x_through_04_is_lossless_for_04_data() -> None:
    start = labelled(V1_FROM_04, "1.0.0")
    assert convert(convert(start, "0.4.0"), "1.0.0") == start


def test_legacy_round_trip_through_modern_keeps_legacy_data() -> None:
    assert convert(convert(copy.deepcopy(FULL_02), "1.1.0"), "0.2.0") == FULL_02


def test_same_version_returns_the_object_unchanged() -> None:
    odd = {"cniVersion": "0.4.0", "ips": "not even a list", "extra": 1}
    assert convert(odd, "0.4.0") is odd


def test_empty_target_means_010() -> None:
    assert convert(copy.deepcopy(FULL_V1), "")["cniVersion"] == "0.1.0"


def test_result_without_version_is_taken_as_current_shape() -> None:
    result = {"ips": [{"interface": 0, "address": "10.1.0.2/24"}], "dns": {}}
    assert convert(result, "1.1.0") == {
        "cniVersion": "1.1.0",
        "ips": [{"interface": 0, "address": "10.1.0.2/24"}],
    }
    assert convert(result, "0.3.1") == {
        "cniVersion": "0.3.1",
        "ips": [{"version": "4", "interface": 0, "address": "10.1.0.2/24"}],
    }


@pytest.mark.parametrize("target", ["9.9.9", "1.0", "0.3", "latest"])
def test_unknown_target_version_is_named(target: str) -> None:
    with pytest.raises(errors.CNIError) as info:
        convert(copy.deepcopy(FULL_V1), target)
    assert target in str(info.value)
    assert info.value.code == errors.INCOMPATIBLE_VERSION


@pytest.mark.parametrize("target", LEGACY)
@pytest.mark.parametrize("source", V04 + V1)
def test_no_ip_cannot_go_down_to_legacy(source: str, target: str) -> None:
    result = {
        "cniVersion": source,
        "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/pod1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    with pytest.raises(errors.CNIError) as info:
        convert(result, target)
    assert info.value.msg == "cannot convert: no valid IP addresses"
    assert info.value.code == errors.INTERNAL


def test_routes_of_a_family_without_an_ip_are_dropped_in_legacy() -> None:
    result = {
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.0.0.2/24"}],
        "routes": [{"dst": "::/0"}, {"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
    }
    assert convert(result, "0.2.0") == {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.0.0.2/24", "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]},
    }


# --------------------------------------------------------------------- loopback quirk

LOOPBACK_0_3_1 = {
    "cniVersion": "0.3.1",
    "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": "/var/run/netns/pod1"}],
    "ips": [
        {"interface": 0, "address": "127.0.0.1/8"},
        {"interface": 0, "address": "::1/128"},
    ],
}


def test_loopback_style_result_labelled_031_stays_as_is() -> None:
    result = copy.deepcopy(LOOPBACK_0_3_1)
    assert convert(result, "0.3.1") is result
    text = format_result(result)
    assert '"version"' not in text
    assert '"interface": 0' in text
    assert new_result(copy.deepcopy(LOOPBACK_0_3_1)) == LOOPBACK_0_3_1


def test_ips_without_version_still_convert_down_by_address_family() -> None:
    assert convert(copy.deepcopy(LOOPBACK_0_3_1), "0.2.0") == {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "127.0.0.1/8"},
        "ip6": {"ip": "::1/128"},
    }


# --------------------------------------------------------------------- Appendix A bytes


def test_bridge_031_output_has_version_first() -> None:
    # What the bridge builds (1.x) and prints for a 0.3.1 config.
    built = {
        "cniVersion": "1.1.0",
        "interfaces": [
            {"name": "cni0", "mac": "b6:2e:4b:f0:3a:19"},
            {"name": "veth404c9fa6", "mac": "7a:f1:6c:03:d2:4e"},
            {"name": "eth0", "mac": "2a:5c:88:0e:91:b7", "sandbox": "/var/run/netns/cnictest"},
        ],
        "ips": [{"interface": 2, "address": "10.22.0.2/16", "gateway": "10.22.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {},
    }
    assert format_result(convert(built, "0.3.1")) == (
        "{\n"
        '    "cniVersion": "0.3.1",\n'
        '    "interfaces": [\n'
        "        {\n"
        '            "name": "cni0",\n'
        '            "mac": "b6:2e:4b:f0:3a:19"\n'
        "        },\n"
        "        {\n"
        '            "name": "veth404c9fa6",\n'
        '            "mac": "7a:f1:6c:03:d2:4e"\n'
        "        },\n"
        "        {\n"
        '            "name": "eth0",\n'
        '            "mac": "2a:5c:88:0e:91:b7",\n'
        '            "sandbox": "/var/run/netns/cnictest"\n'
        "        }\n"
        "    ],\n"
        '    "ips": [\n'
        "        {\n"
        '            "version": "4",\n'
        '            "interface": 2,\n'
        '            "address": "10.22.0.2/16",\n'
        '            "gateway": "10.22.0.1"\n'
        "        }\n"
        "    ],\n"
        '    "routes": [\n'
        "        {\n"
        '            "dst": "0.0.0.0/0"\n'
        "        }\n"
        "    ]\n"
        "}"
    )


def test_bridge_020_output_shape() -> None:
    built = {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "cni0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/x"}],
        "ips": [{"interface": 2, "address": "10.22.0.2/16", "gateway": "10.22.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    assert format_result(convert(built, "0.2.0")) == (
        "{\n"
        '    "cniVersion": "0.2.0",\n'
        '    "ip4": {\n'
        '        "ip": "10.22.0.2/16",\n'
        '        "gateway": "10.22.0.1",\n'
        '        "routes": [\n'
        "            {\n"
        '                "dst": "0.0.0.0/0"\n'
        "            }\n"
        "        ]\n"
        "    }\n"
        "}"
    )


HOST_LOCAL_100 = (
    "{\n"
    '    "cniVersion": "1.0.0",\n'
    '    "ips": [\n'
    "        {\n"
    '            "address": "203.0.113.2/24",\n'
    '            "gateway": "203.0.113.1"\n'
    "        },\n"
    "        {\n"
    '            "address": "2001:db8:1::2/64",\n'
    '            "gateway": "2001:db8:1::1"\n'
    "        }\n"
    "    ],\n"
    '    "dns": {}\n'
    "}"
)


def test_host_local_100_output_parses_and_prints_back() -> None:
    result = parse_result(HOST_LOCAL_100.encode())
    assert result == {
        "cniVersion": "1.0.0",
        "ips": [
            {"address": "203.0.113.2/24", "gateway": "203.0.113.1"},
            {"address": "2001:db8:1::2/64", "gateway": "2001:db8:1::1"},
        ],
    }
    # Same bytes as the reference, except the empty dns object, which is dropped.
    assert format_result(result) == HOST_LOCAL_100.replace(',\n    "dns": {}', "")
    # An IPAM result has no interface index, and none appears when converting.
    assert "interface" not in convert(result, "0.4.0")["ips"][0]


# --------------------------------------------------------------------- parsing


def test_parse_empty_and_null_give_none() -> None:
    assert parse_result(b"") is None
    assert parse_result(" \n") is None
    assert parse_result(b"null") is None


def test_missing_version_takes_the_request_version() -> None:
    data = b'{"ips": [{"address": "10.0.0.2/24"}]}'
    assert parse_result(data, "0.4.0") == {
        "cniVersion": "0.4.0",
        "ips": [{"address": "10.0.0.2/24"}],
    }
    assert new_result({"cniVersion": "", "ip4": {"ip": "10.0.0.2/24"}}) == {
        "cniVersion": "0.1.0",
        "ip4": {"ip": "10.0.0.2/24"},
    }
    assert new_result({"cniVersion": 4, "ips": []}, "1.0.0") == {"cniVersion": "1.0.0"}


def test_normalise_orders_keys_and_drops_empty_and_unknown_fields() -> None:
    raw = {
        "dns": {"options": [], "domain": "", "nameservers": None},
        "routes": [{"mtu": 0, "scope": 0, "table": None, "gw": "", "dst": "10.0.0.0/8", "x": 1}],
        "ips": [{"gateway": None, "address": "10.0.0.2/24", "interface": 0}],
        "interfaces": [{"sandbox": "", "mtu": 0, "name": "", "mac": "", "extra": "dropped"}],
        "cniVersion": "1.1.0",
        "somethingElse": True,
    }
    got = new_result(raw)
    assert got == {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": ""}],
        "ips": [{"interface": 0, "address": "10.0.0.2/24"}],
        "routes": [{"dst": "10.0.0.0/8", "scope": 0}],
    }
    assert list(got) == ["cniVersion", "interfaces", "ips", "routes"]
    assert list(got["ips"][0]) == ["interface", "address"]


def test_addresses_are_spelled_like_go() -> None:
    got = new_result(
        {
            "cniVersion": "1.0.0",
            "ips": [
                {"address": "2001:0DB8:0000::0002/64", "gateway": "2001:db8:0:0:0:0:0:1"},
                {"address": "::ffff:10.1.2.3/120"},
                {"address": "10.1.2.3/24"},
            ],
        }
    )
    assert got["ips"] == [
        {"address": "2001:db8::2/64", "gateway": "2001:db8::1"},
        {"address": "10.1.2.3/24"},
        {"address": "10.1.2.3/24"},
    ]
    # An IPv4-mapped address counts as IPv4, as in the reference.
    assert [ip["version"] for ip in convert(got, "0.4.0")["ips"]] == ["6", "4", "4"]


def test_040_fields_that_are_not_040_are_dropped_on_parse() -> None:
    got = new_result(
        {
            "cniVersion": "0.4.0",
            "interfaces": [{"name": "eth0", "mtu": 1500, "pciID": "x"}],
            "ips": [{"version": "4", "address": "10.0.0.2/24"}],
        }
    )
    assert got["interfaces"] == [{"name": "eth0"}]


def test_legacy_shape_parses_with_full_routes() -> None:
    got = new_result(
        {
            "ip6": {"ip": "2001:db8::5/64", "routes": [{"dst": "::/0", "mtu": 1280}]},
            "ip4": {"routes": [], "gateway": "10.0.0.1", "ip": "10.0.0.5/24"},
            "cniVersion": "0.2.0",
            "dns": {},
        }
    )
    assert got == {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.0.0.5/24", "gateway": "10.0.0.1"},
        "ip6": {"ip": "2001:db8::5/64", "routes": [{"dst": "::/0", "mtu": 1280}]},
    }
    assert list(got) == ["cniVersion", "ip4", "ip6"]
    # 0.1 <-> 0.2 is a plain copy, route extras included.
    assert convert(got, "0.1.0") == labelled(got, "0.1.0")


def test_format_uses_go_escaping_and_no_trailing_newline() -> None:
    text = format_result(
        {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "sandbox": "/run/a<b>&c"}]}
    )
    assert "/run/a\\u003cb\\u003e\\u0026c" in text
    assert not text.endswith("\n")
    assert text.startswith('{\n    "cniVersion": "1.1.0",\n    "interfaces"')


BAD = [
    ({"cniVersion": "1.0.0", "interfaces": {}}, "interfaces"),
    ({"cniVersion": "1.0.0", "interfaces": [{"name": 5}]}, "interfaces[0].name"),
    ({"cniVersion": "1.0.0", "interfaces": [{"name": "a", "mtu": "1500"}]}, "interfaces[0].mtu"),
    ({"cniVersion": "1.0.0", "interfaces": ["eth0"]}, "interfaces[0]"),
    ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.300/24"}]}, "ips[0].address"),
    ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.3"}]}, "ips[0].address"),
    ({"cniVersion": "1.0.0", "ips": [{"address": "fe80::1%eth0/64"}]}, "ips[0].address"),
    ({"cniVersion": "1.0.0", "ips": [{"gateway": "10.0.0.1"}]}, "ips[0].address"),
    (
        {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.3/24", "interface": "2"}]},
        "ips[0].interface",
    ),
    (
        {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.3/24", "interface": 2.0}]},
        "ips[0].interface",
    ),
    (
        {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.3/24", "gateway": "x"}]},
        "ips[0].gateway",
    ),
    ({"cniVersion": "0.4.0", "ips": [{"version": 4, "address": "10.0.0.3/24"}]}, "ips[0].version"),
    ({"cniVersion": "1.1.0", "routes": [{"gw": "10.0.0.1"}]}, "routes[0].dst"),
    ({"cniVersion": "1.1.0", "routes": [{"dst": "0.0.0.0/0", "mtu": True}]}, "routes[0].mtu"),
    ({"cniVersion": "1.1.0", "routes": [{"dst": "0.0.0.0/0", "gw": "::g"}]}, "routes[0].gw"),
    ({"cniVersion": "1.1.0", "dns": {"nameservers": "10.0.0.1"}}, "dns.nameservers"),
    ({"cniVersion": "1.1.0", "dns": {"search": ["a", 1]}}, "dns.search[1]"),
    ({"cniVersion": "1.1.0", "dns": []}, "dns"),
    ({"cniVersion": "0.2.0", "ip4": {"gateway": "10.0.0.1"}}, "ip4.ip"),
    ({"cniVersion": "0.2.0", "ip4": ["10.0.0.2/24"]}, "ip4"),
    ({"cniVersion": "0.1.0", "ip6": {"ip": "2001:db8::1/129"}}, "ip6.ip"),
    ({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/8", "routes": [{}]}}, "ip4.routes[0].dst"),
]


@pytest.mark.parametrize(("obj", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_shapes_are_decoding_errors_naming_the_field(obj: dict[str, Any], field: str) -> None:
    with pytest.raises(errors.DecodingError) as info:
        new_result(obj)
    assert info.value.code == 6
    assert f'"{field}"' in str(info.value)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "got array"),
        (b'"text"', "got string"),
        (b"\xff\xfe", "UTF-8"),
        (b'{"cniVersion": "9.9.9"}', '"9.9.9"'),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
        (b'{"cniVersion": "1.0.0", "routes": [{"dst": "0.0.0.0/0", "mtu": 1e999}]}', "1e999"),
    ],
)
def test_bad_output_is_code_6(data: bytes, words: str) -> None:
    with pytest.raises(errors.DecodingError) as info:
        parse_result(data)
    assert info.value.code == 6
    assert words in str(info.value)


def test_converting_a_malformed_result_is_a_decoding_error() -> None:
    with pytest.raises(errors.DecodingError, match=r"ips\[0\]\.address"):
        convert({"cniVersion": "1.1.0", "ips": [{"address": "nope"}]}, "0.4.0")


def test_module_import_stays_light() -> None:
    code = (
        "import sys, cnitool.spec.results; "
        "print(sorted(m for m in ('ipaddress', 'click', 'rich', 'pyroute2') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------- captured reference output
# Printed by the Debian 1.1.1 binaries: host-local (two range sets, routes 0.0.0.0/0 and
# ::/0 via 2001:db8:1::fe, no resolvConf) and loopback, per config version.
GO_HOST_LOCAL = {
    "0.2.0": """{
    "cniVersion": "0.2.0",
    "ip4": {
        "ip": "203.0.113.2/24",
        "gateway": "203.0.113.1",
        "routes": [
            {
                "dst": "0.0.0.0/0"
            }
        ]
    },
    "ip6": {
        "ip": "2001:db8:1::2/64",
        "gateway": "2001:db8:1::1",
        "routes": [
            {
                "dst": "::/0",
                "gw": "2001:db8:1::fe"
            }
        ]
    },
    "dns": {}
}""",
    "0.3.1": """{
    "cniVersion": "0.3.1",
    "ips": [
        {
            "version": "4",
            "address": "203.0.113.2/24",
            "gateway": "203.0.113.1"
        },
        {
            "version": "6",
            "address": "2001:db8:1::2/64",
            "gateway": "2001:db8:1::1"
        }
    ],
    "routes": [
        {
            "dst": "0.0.0.0/0"
        },
        {
            "dst": "::/0",
            "gw": "2001:db8:1::fe"
        }
    ],
    "dns": {}
}""",
    "0.4.0": """{
    "cniVersion": "0.4.0",
    "ips": [
        {
            "version": "4",
            "address": "203.0.113.2/24",
            "gateway": "203.0.113.1"
        },
        {
            "version": "6",
            "address": "2001:db8:1::2/64",
            "gateway": "2001:db8:1::1"
        }
    ],
    "routes": [
        {
            "dst": "0.0.0.0/0"
        },
        {
            "dst": "::/0",
            "gw": "2001:db8:1::fe"
        }
    ],
    "dns": {}
}""",
    "1.0.0": """{
    "cniVersion": "1.0.0",
    "ips": [
        {
            "address": "203.0.113.2/24",
            "gateway": "203.0.113.1"
        },
        {
            "address": "2001:db8:1::2/64",
            "gateway": "2001:db8:1::1"
        }
    ],
    "routes": [
        {
            "dst": "0.0.0.0/0"
        },
        {
            "dst": "::/0",
            "gw": "2001:db8:1::fe"
        }
    ],
    "dns": {}
}""",
}

GO_LOOPBACK = {
    "0.2.0": """{
    "cniVersion": "0.2.0",
    "interfaces": [
        {
            "name": "lo",
            "mac": "00:00:00:00:00:00",
            "sandbox": "/run/netns/t1"
        }
    ],
    "ips": [
        {
            "interface": 0,
            "address": "127.0.0.1/8"
        },
        {
            "interface": 0,
            "address": "::1/128"
        }
    ],
    "dns": {}
}""",
    "0.3.1": """{
    "cniVersion": "0.3.1",
    "interfaces": [
        {
            "name": "lo",
            "mac": "00:00:00:00:00:00",
            "sandbox": "/run/netns/t1"
        }
    ],
    "ips": [
        {
            "interface": 0,
            "address": "127.0.0.1/8"
        },
        {
            "interface": 0,
            "address": "::1/128"
        }
    ],
    "dns": {}
}""",
}


def without_empty_dns(text: str) -> str:
    return text.replace(',\n    "dns": {}', "")


@pytest.mark.parametrize("version", sorted(GO_HOST_LOCAL))
def test_reference_ipam_output_round_trips_byte_for_byte(version: str) -> None:
    result = parse_result(GO_HOST_LOCAL[version].encode(), version)
    assert result is not None
    assert format_result(result) == without_empty_dns(GO_HOST_LOCAL[version])


@pytest.mark.parametrize("version", sorted(GO_HOST_LOCAL))
def test_conversion_matches_the_reference_converters(version: str) -> None:
    # host-local builds a 1.x result and converts it to the request version.
    built = parse_result(GO_HOST_LOCAL["1.0.0"])
    assert built is not None
    got = format_result(convert(built, version))
    assert got == without_empty_dns(GO_HOST_LOCAL[version])


@pytest.mark.parametrize("version", sorted(GO_LOOPBACK))
def test_loopback_quirk_prints_like_the_reference(version: str) -> None:
    # The reference loopback labels its 1.x-shaped result with the request version and
    # prints it unconverted, even at 0.2.0.
    built = {
        "cniVersion": version,
        "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": "/run/netns/t1"}],
        "ips": [
            {"interface": 0, "address": "127.0.0.1/8"},
            {"interface": 0, "address": "::1/128"},
        ],
        "dns": {},
    }
    assert format_result(convert(built, version)) == without_empty_dns(GO_LOOPBACK[version])


def test_reading_the_loopback_020_output_keeps_only_legacy_fields() -> None:
    # libcni decodes it as a 0.2.0 result: the 1.x keys are not part of that shape.
    assert parse_result(GO_LOOPBACK["0.2.0"]) == {"cniVersion": "0.2.0"}
