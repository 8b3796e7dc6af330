"""ipvlan and vlan config decoding and ipvlan's choice of master (no kernel access: the
links themselves are tested in tests/netns, on a kernel that has them)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from cnitool_plugins.ipvlan import config as ipvlan_config
from cnitool_plugins.ipvlan.verbs import master_name
from cnitool_plugins.vlan import config as vlan_config

from cnitool import skel
from cnitool.spec.errors import CNIError


def cmd_for(conf: dict[str, Any], command: str = "ADD") -> skel.CmdArgs:
    return skel.CmdArgs(
        command=command,
        container_id="c1",
        netns="/run/netns/x",
        ifname="eth0",
        args="",
        path="/opt/cni/bin",
        netns_override=False,
        stdin_data=json.dumps(conf).encode(),
        env={},
        stderr=io.StringIO(),
    )


def ipvlan(**extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "iv", "type": "ipvlan", **extra}


def vlan(**extra: Any) -> dict[str, Any]:
    conf = {"cniVersion": "1.0.0", "name": "vl", "type": "vlan", "master": "eth0"}
    conf["ipam"] = {"type": "host-local"}
    return {**conf, **extra}


PREV = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "net0", "sandbox": "/run/netns/x"}],
    "ips": [{"address": "10.1.0.5/24", "interface": 0}],
}


def test_ipvlan_defaults_and_modes() -> None:
    conf = ipvlan_config.load(cmd_for(ipvlan()))
    assert conf.master == "" and conf.mode == "l2" and conf.mtu == 0
    assert not conf.link_in_container and conf.ipam_type == "" and conf.prev is None
    for mode, value in (("l2", 0), ("l3", 1), ("l3s", 2), ("", 0)):
        assert ipvlan_config.mode_value(mode) == value
    with pytest.raises(CNIError) as exc:
        ipvlan_config.load(cmd_for(ipvlan(mode="L2")))
    assert exc.value.msg == 'unknown ipvlan mode: "L2"'
    with pytest.raises(CNIError, match='"mtu" -1: must not be negative'):
        ipvlan_config.load(cmd_for(ipvlan(mtu=-1)))


def test_ipvlan_master_named_default_or_from_the_previous_result() -> None:
    named = ipvlan_config.load(cmd_for(ipvlan(master="eth1", prevResult=PREV)))
    assert master_name(named) == "eth1"
    assert master_name(ipvlan_config.load(cmd_for(ipvlan()))) == ""  # the default route's
    chained = ipvlan_config.load(cmd_for(ipvlan(prevResult=PREV)))
    assert chained.prev is not None and master_name(chained) == "net0"
    two = dict(PREV, interfaces=[{"name": "a"}, {"name": "b"}])
    for prev in (two, dict(PREV, interfaces=[{"mac": "02:00:00:00:00:01"}])):
        with pytest.raises(CNIError) as exc:
            master_name(ipvlan_config.load(cmd_for(ipvlan(prevResult=prev))))
        assert exc.value.msg == "chained master failure. PrevResult lacks a single named interface"


def test_ipvlan_del_judges_neither_mode_nor_master() -> None:
    conf = ipvlan_config.load_for_del(cmd_for(ipvlan(mode="weird"), "DEL"))
    assert conf.mode == "weird"


def test_vlan_fields_and_checks() -> None:
    conf = vlan_config.load(cmd_for(vlan(vlanId=4094, mtu=1400, linkInContainer=True)))
    assert (conf.master, conf.vlan_id, conf.mtu, conf.link_in_container) == (
        "eth0",
        4094,
        1400,
        True,
    )
    assert conf.ipam_type == "host-local"
    bad = [
        (vlan(master=""), '"master" field is required'),
        (vlan(vlanId=4095), "invalid VLAN ID 4095 (must be between 0 and 4094 inclusive)"),
        (vlan(vlanId=-1), "invalid VLAN ID -1"),
        (vlan(vlanId=True), '"vlanId" must be an integer'),
        (vlan(mtu=-5), "invalid MTU -5"),
        (vlan(ipam={}), '"ipam"'),
    ]
    for raw, msg in bad:
        with pytest.raises(CNIError) as exc:
            vlan_config.load(cmd_for(raw))
        assert msg in exc.value.msg and exc.value.code == 999, raw
    # DEL decodes the types only: a config ADD would refuse still releases what it holds
    assert vlan_config.load_for_del(cmd_for(vlan(master="", ipam={}), "DEL")).master == ""
