"""bridge and ptp without root: config loading and the result the bridge builds from its
IPAM result (the kernel-facing steps are covered in tests/netns)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from cnitool_plugins._lib import shapes
from cnitool_plugins.bridge import config as bridge_config
from cnitool_plugins.bridge.verbs import _calc_gateways
from cnitool_plugins.ptp import config as ptp_config

from cnitool import skel
from cnitool.spec.errors import CNIError


def cmd_for(conf: dict[str, Any], shape: Any, args: str = "") -> skel.CmdArgs:
    return skel.CmdArgs(
        command="ADD",
        container_id="c1",
        netns="/run/netns/x",
        ifname="eth0",
        args=args,
        path="/opt/cni/bin",
        netns_override=False,
        stdin_data=json.dumps(conf).encode(),
        env={},
        stderr=io.StringIO(),
        shape=shape,
    )


def bridge(**extra: Any) -> bridge_config.BridgeConf:
    conf = {"cniVersion": "1.0.0", "name": "net", "type": "bridge", **extra}
    return bridge_config.load(cmd_for(conf, shapes.BRIDGE))


def test_bridge_defaults() -> None:
    conf = bridge(ipam={"type": "host-local"})
    assert (conf.bridge, conf.network, conf.ipam_type) == ("cni0", "net", "host-local")
    assert not (conf.is_gw or conf.is_default_gw or conf.ip_masq or conf.hairpin)
    assert (conf.mtu, conf.vlan, conf.vlan_trunk, conf.mac, conf.dns) == (0, 0, [], "", None)
    assert not conf.uses_vlan


def test_bridge_default_gateway_implies_gateway_and_mac_precedence() -> None:
    conf = bridge(
        isDefaultGateway=True,
        args={"cni": {"mac": "02:00:00:00:00:01"}},
        runtimeConfig={"mac": "02-00-00-00-00-02"},
    )
    assert conf.is_gw and conf.is_default_gw
    assert conf.mac == "02:00:00:00:00:02"


def test_bridge_vlan_trunk_ranges() -> None:
    conf = bridge(vlanTrunk=[{"id": 5}, {"minID": 10, "maxID": 12}])
    assert conf.vlan_trunk == [(5, 5), (10, 12)]
    assert conf.uses_vlan


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"hairpinMode": True, "promiscMode": True}, "hairpin mode and promiscuous mode"),
        ({"vlan": 4095}, "invalid VLAN ID 4095"),
        ({"mtu": -1}, 'invalid "mtu" -1'),
        ({"mtu": "1500"}, '"mtu" must be an integer'),
        ({"bridge": "a/b"}, 'invalid "bridge" name'),
        ({"vlanTrunk": [{"minID": 20, "maxID": 10}]}, "minID 20 is greater than maxID 10"),
        ({"vlanTrunk": [{"id": 0}]}, "incorrect trunk id parameter: 0"),
        (
            {"disableContainerInterface": True, "ipam": {"type": "host-local"}},
            "cannot use IPAM when disableContainerInterface",
        ),
        ({"ipMasqBackend": "pf"}, 'invalid "ipMasqBackend" "pf"'),
        ({"runtimeConfig": {"mac": "nope"}}, 'invalid MAC address "nope" in runtimeConfig.mac'),
    ],
)
def test_bridge_config_errors(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(CNIError, match=message):
        bridge(**extra)


def test_bridge_result_gateways_and_default_routes() -> None:
    conf = bridge(isDefaultGateway=True)
    result: dict[str, Any] = {
        "cniVersion": "1.1.0",
        "ips": [{"address": "10.1.0.5/24"}, {"address": "fd00::5/64", "gateway": "fd00::9"}],
    }
    gws = _calc_gateways(result, conf)
    assert gws == ["10.1.0.1/24", "fd00::9/64"]
    assert [ipc["interface"] for ipc in result["ips"]] == [2, 2]
    assert result["ips"][0]["gateway"] == "10.1.0.1"  # filled in: the subnet's first address
    assert result["routes"] == [
        {"dst": "0.0.0.0/0", "gw": "10.1.0.1"},
        {"dst": "::/0", "gw": "fd00::9"},
    ]


def test_bridge_result_keeps_an_ipam_default_route_and_plain_bridges_add_none() -> None:
    conf = bridge(isDefaultGateway=True)
    result: dict[str, Any] = {
        "ips": [{"address": "10.1.0.5/24"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.254"}],
    }
    _calc_gateways(result, conf)
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.0.254"}]
    plain: dict[str, Any] = {"ips": [{"address": "10.1.0.5/24"}]}
    assert _calc_gateways(plain, bridge()) == []
    assert "routes" not in plain and "gateway" not in plain["ips"][0]


def test_ptp_needs_ipam_and_reads_its_keys() -> None:
    base = {"cniVersion": "1.0.0", "name": "p", "type": "ptp"}
    with pytest.raises(CNIError, match='ptp needs an IPAM plugin: "ipam.type" is missing'):
        ptp_config.load(cmd_for(base, shapes.PTP))
    conf = ptp_config.load(
        cmd_for(
            {
                **base,
                "ipam": {"type": "host-local"},
                "ipMasq": True,
                "mtu": 1400,
                "dns": {"nameservers": ["10.0.0.1"]},
            },
            shapes.PTP,
        )
    )
    assert (conf.ip_masq, conf.mtu, conf.ipam_type) == (True, 1400, "host-local")
    assert conf.dns == {"nameservers": ["10.0.0.1"]}
    with pytest.raises(CNIError, match='invalid "mtu" -5'):
        ptp_config.load(cmd_for({**base, "ipam": {"type": "x"}, "mtu": -5}, shapes.PTP))
