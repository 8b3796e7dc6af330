"""The plugins' config-key readers (``_lib/netconf``): JSON types, MACs with Go's
``net.ParseMAC`` rules, and the two MAC precedences of the reference plugins."""

from __future__ import annotations

import pytest
from cnitool_plugins._lib import netconf

from cnitool.spec.errors import CNIError, InvalidConfigError


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("00:00:5e:00:53:01", "00:00:5e:00:53:01"),
        ("00-00-5E-00-53-01", "00:00:5e:00:53:01"),
        ("0000.5e00.5301", "00:00:5e:00:53:01"),
        ("02:00:5e:10:00:00:00:01", "02:00:5e:10:00:00:00:01"),  # EUI-64
        ("00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", None),  # 20 bytes
    ],
)
def test_parse_mac_takes_what_go_parsemac_takes(text: str, want: str | None) -> None:
    assert netconf.parse_mac(text) == (want or text.lower())


@pytest.mark.parametrize(
    "text", ["", "00:00:5e:00:53", "00:00:5e:00:53:01:02", "00:00-5e:00:53:01", "0:0:0:0:0:0", "zz"]
)
def test_parse_mac_refuses_with_go_wording(text: str) -> None:
    with pytest.raises(CNIError, match=f"address {text}: invalid MAC address"):
        netconf.parse_mac(text)


def test_ethernet_mac_needs_six_bytes() -> None:
    assert netconf.ethernet_mac("0000.5e00.5301", "mac") == "00:00:5e:00:53:01"
    with pytest.raises(CNIError, match='invalid MAC address "02:00:5e:10:00:00:00:01" in mac'):
        netconf.ethernet_mac("02:00:5e:10:00:00:00:01", "mac")


def test_the_two_mac_precedences() -> None:
    conf = {
        "mac": "02:00:00:00:00:01",
        "args": {"cni": {"mac": "02:00:00:00:00:02"}},
        "runtimeConfig": {"mac": "02:00:00:00:00:03"},
    }
    env = "MAC=02:00:00:00:00:04"
    # bridge: CNI_ARGS < args.cni.mac < runtimeConfig.mac, no top-level key
    assert netconf.mac_from_args(conf, env) == "02:00:00:00:00:03"
    assert netconf.mac_from_args({"mac": "02:00:00:00:00:01"}, "") == ""
    assert netconf.mac_from_args({"args": conf["args"]}, env) == "02:00:00:00:00:02"
    assert netconf.mac_from_args({}, env) == "02:00:00:00:00:04"
    # macvlan: mac < CNI_ARGS < runtimeConfig.mac, no args.cni
    assert netconf.mac_from_config(conf, env) == "02:00:00:00:00:03"
    assert netconf.mac_from_config({"mac": "02:00:00:00:00:01"}, env) == "02:00:00:00:00:04"
    assert netconf.mac_from_config({"mac": "02:00:00:00:00:01"}, "") == "02:00:00:00:00:01"


def test_typed_checks_json_types_and_names_the_key() -> None:
    assert netconf.typed({"mtu": 1400}, "mtu", int, 0) == 1400
    assert netconf.typed({"mtu": None}, "mtu", int, 0) == 0
    with pytest.raises(CNIError, match='"mtu" must be an integer, got true') as err:
        netconf.typed({"mtu": True}, "mtu", int, 0)
    assert err.value.code == 999
    with pytest.raises(InvalidConfigError, match='"runtimeConfig.mac" must be a string'):
        netconf.typed({"mac": 1}, "mac", str, "", "runtimeConfig.", error=InvalidConfigError)
