"""Keys matched to fields as Go's encoding/json matches them: exact first, then
case-insensitively. containerd's CRI sends Go-cased capability args, and every Go tool
accepts Go-cased keys anywhere its input is decoded into a struct."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from cnitool_plugins._lib import shapes
from cnitool_plugins.bridge import config as bridge_config
from cnitool_plugins.host_local import config as host_local_config
from cnitool_plugins.ipvlan import config as ipvlan_config
from cnitool_plugins.macvlan import config as macvlan_config
from cnitool_plugins.portmap.config import parse_config
from cnitool_plugins.ptp import config as ptp_config
from cnitool_plugins.tuning import config as tuning_config
from cnitool_plugins.vlan import config as vlan_config

from cnitool import skel
from cnitool.invoke.exec import config_version, decode_version_info
from cnitool.libcni import cache, config
from cnitool.spec import keys, results
from cnitool.spec.errors import CNIError


def test_fold_is_go_folding() -> None:
    assert keys.fold("HostPort") == "hostport"
    assert keys.fold("\u212aey") == "key"  # Kelvin sign folds to k
    assert keys.fold("\u017fnat") == "snat"  # long s folds to s
    # no other non-ASCII letter reaches an ASCII field name
    shape = keys.Shape({"address": None, "isGateway": None})
    assert shape.field("ADDRESS") == "address"
    assert shape.field("addreß") is None
    assert shape.field("\u0130sGateway") is None  # dotted capital I is not I


def test_decode_spells_known_fields_and_keeps_the_rest() -> None:
    shape = keys.Shape(
        {
            "mtu": None,
            "capabilities": None,
            "runtimeConfig": keys.Shape(
                {"portMappings": keys.ListOf(keys.Shape({"hostPort": None, "hostIP": None}))}
            ),
        }
    )
    got = keys.decode(
        {
            "MTU": 1400,
            "Unknown": {"Inner": 1},
            "Capabilities": {"PortMappings": True},
            "RUNTIMECONFIG": {"PortMappings": [{"HostPort": 80, "HostIP": "", "Other": 1}]},
        },
        shape,
    )
    assert got == {
        "mtu": 1400,
        "Unknown": {"Inner": 1},  # not a field: kept as written
        "capabilities": {"PortMappings": True},  # a map's keys stay exact
        "runtimeConfig": {"portMappings": [{"hostPort": 80, "hostIP": "", "Other": 1}]},
    }
    # values of another JSON type than the shape expects are left for the type checks
    assert keys.decode({"runtimeConfig": "x"}, shape) == {"runtimeConfig": "x"}
    assert keys.decode({"runtimeConfig": {"portMappings": 5}}, shape) == {
        "runtimeConfig": {"portMappings": 5}
    }


def test_the_last_matching_key_wins_and_null_does_not_undo() -> None:
    shape = keys.Shape({"mtu": None})
    assert keys.decode({"mtu": 1, "MTU": 2}, shape) == {"mtu": 2}
    assert keys.decode({"MTU": 2, "mtu": 1}, shape) == {"mtu": 1}
    assert keys.decode({"Mtu": 3, "mtu": None}, shape) == {"mtu": 3}
    assert keys.get({"MTU": 2, "mtu": 1}, "mtu") == 1
    assert keys.get({"Mtu": 3, "mtu": None}, "mtu") == 3
    assert keys.get({"other": 3}, "mtu", 0) == 0


def test_shapes_refuse_fields_that_fold_alike_and_extend_replaces() -> None:
    with pytest.raises(ValueError):
        keys.Shape({"mtu": None, "MTU": None})
    base = keys.Shape({"ipam": keys.Shape({"type": None})})
    ext = base.extend({"IPAM": None})
    assert ext.fields == {"IPAM": None}


# -- the runtime side: results, errors, VERSION answers, cache files, config files -----


def test_results_errors_and_version_answers_in_go_case() -> None:
    got = results.parse_result(
        b'{"CNIVersion":"1.0.0","Interfaces":[{"Name":"eth0","Sandbox":"/x"}],'
        b'"IPs":[{"Address":"10.0.0.2/24","Gateway":"10.0.0.1","Interface":0}],'
        b'"Routes":[{"Dst":"0.0.0.0/0","GW":"10.0.0.1"}],"DNS":{"Nameservers":["1.1.1.1"]}}'
    )
    assert got == {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": "/x"}],
        "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
        "dns": {"nameservers": ["1.1.1.1"]},
    }
    err = CNIError.from_dict({"Code": 7, "Msg": "bad", "Details": "more"})
    assert (err.code, err.msg, err.details) == (7, "bad", "more")
    info = decode_version_info(b'{"CNIVersion":"1.0.0","SupportedVersions":["1.0.0"]}')
    assert info.supported_versions == ("1.0.0",)
    assert config_version(b'{"CNIVERSION":"0.4.0"}') == "0.4.0"


def test_cache_file_in_go_case() -> None:
    data = json.dumps(
        {
            "Kind": "cniCacheV1",
            "ContainerID": "c1",
            "Config": base64.b64encode(b"{}").decode(),
            "IfName": "eth0",
            "NetworkName": "n",
            "CNIArgs": [["K", "V"]],
            "CapabilityArgs": {"portMappings": []},
            "Result": {"CNIVersion": "1.0.0", "IPs": [{"Address": "10.0.0.2/24"}]},
        }
    ).encode()
    entry = cache.decode_entry(data, "/cache/n-c1-eth0")
    assert (entry.container_id, entry.network, entry.ifname) == ("c1", "n", "eth0")
    assert entry.config == b"{}" and entry.cni_args == [("K", "V")]
    assert entry.result == {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]}


def test_config_files_in_go_case(tmp_path: Any) -> None:
    net = config.conf_list_from_bytes(
        b'{"cniVersion":"1.0.0","name":"n","plugins":'
        b'[{"Type":"portmap","Capabilities":{"portMappings":true}}]}'
    )
    assert net.plugins[0].type == "portmap"
    assert net.plugins[0].capabilities == {"portMappings": True}
    # the plugin gets its object as written (it matches the keys itself)
    assert net.plugins[0].raw == {"Type": "portmap", "Capabilities": {"portMappings": True}}
    (tmp_path / "10-one.conf").write_text('{"CNIVersion":"0.4.0","Name":"single","Type":"bridge"}')
    single = config.load_conf_list(str(tmp_path), "single")
    assert (single.name, single.cni_version, single.plugins[0].type) == (
        "single",
        "0.4.0",
        "bridge",
    )


def test_skel_reads_name_and_version_in_go_case() -> None:
    seen: list[dict[str, Any]] = []

    def add(cmd: skel.CmdArgs) -> dict[str, Any]:
        seen.append(cmd.config())
        return {"cniVersion": "1.0.0"}

    plugin = skel.Plugin(name="p", versions=("1.0.0",), about="", add=add)
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c",
        "CNI_NETNS": "/nonexistent",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/x",
    }
    out, code = skel.run(plugin, env, b'{"CNIVersion":"1.0.0","Name":"n","Type":"p"}')
    assert code == 0, out
    assert seen == [{"cniVersion": "1.0.0", "name": "n", "type": "p"}]


# -- every plugin reads a Go-cased config as it reads the config as documented ---------


def go_case(obj: Any, maps: frozenset[str]) -> Any:
    """Every key with its first letter upper-cased, except under the Go maps in ``maps``."""
    if isinstance(obj, list):
        return [go_case(item, maps) for item in obj]
    if not isinstance(obj, dict):
        return obj
    return {
        key[:1].upper() + key[1:]: (value if key in maps else go_case(value, maps))
        for key, value in obj.items()
    }


def cmd_for(conf: dict[str, Any], shape: keys.Shape, args: str = "") -> skel.CmdArgs:
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


def view(obj: Any) -> Any:
    """A loaded config as plain data, whatever record style its classes use."""
    if isinstance(obj, dict):
        return {k: view(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [view(v) for v in obj]
    if hasattr(obj, "_asdict"):
        return view(obj._asdict())
    if hasattr(obj, "__dict__"):
        return view(vars(obj))
    slots = [s for c in type(obj).__mro__ for s in getattr(c, "__slots__", ())]
    if slots:
        return {s: view(getattr(obj, s)) for s in slots if hasattr(obj, s)}
    return obj


PREV = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:09", "sandbox": "/run/netns/x"}],
    "ips": [{"interface": 0, "address": "10.22.0.2/16", "gateway": "10.22.0.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {"nameservers": ["10.22.0.1"]},
}
DNS = {"nameservers": ["10.0.0.1"], "domain": "d", "search": ["s"], "options": ["o"]}
COMMON = {"cniVersion": "1.0.0", "name": "net", "capabilities": {"mac": True}}

BRIDGE = {
    **COMMON,
    "type": "bridge",
    "bridge": "br9",
    "isGateway": True,
    "isDefaultGateway": True,
    "forceAddress": True,
    "ipMasq": True,
    "ipMasqBackend": "iptables",
    "iptablesBackend": "nft",
    "mtu": 1400,
    "hairpinMode": True,
    "vlanTrunk": [{"id": 5}, {"minID": 10, "maxID": 20}],
    "preserveDefaultVlan": True,
    "macspoofchk": True,
    "enabledad": True,
    "portIsolation": True,
    "ipam": {"type": "host-local"},
    "dns": DNS,
    "args": {"cni": {"mac": "02:00:00:00:00:01"}},
    "runtimeConfig": {"mac": "02:00:00:00:00:02"},
}
PTP = {
    **COMMON,
    "type": "ptp",
    "ipMasq": True,
    "ipMasqBackend": "iptables",
    "mtu": 1400,
    "ipam": {"type": "host-local"},
    "dns": DNS,
}
MACVLAN = {
    **COMMON,
    "type": "macvlan",
    "master": "eth9",
    "mode": "vepa",
    "mtu": 1400,
    "mac": "02:00:00:00:00:03",
    "bcqueuelen": 100,
    "linkInContainer": True,
    "ipam": {"type": "host-local"},
    "runtimeConfig": {"mac": "02:00:00:00:00:04"},
}
IPVLAN = {
    **COMMON,
    "type": "ipvlan",
    "master": "eth9",
    "mode": "l3s",
    "mtu": 1400,
    "linkInContainer": True,
    "ipam": {"type": "host-local"},
}
VLAN = {
    **COMMON,
    "type": "vlan",
    "master": "eth9",
    "vlanId": 42,
    "mtu": 1400,
    "linkInContainer": True,
    "ipam": {"type": "host-local"},
}
PORTMAP = {
    **COMMON,
    "type": "portmap",
    "snat": False,
    "masqAll": True,
    "markMasqBit": 12,
    "conditionsV4": ["-s", "10.0.0.0/8"],
    "conditionsV6": ["!", "-s", "fd00::/8"],
    "backend": "iptables",
    "prevResult": PREV,
    "runtimeConfig": {
        "portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}
        ]
    },
}
TUNING = {
    **COMMON,
    "type": "tuning",
    "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"},
    "mac": "02:00:00:00:00:05",
    "mtu": 1400,
    "promisc": True,
    "allmulti": True,
    "txQLen": 500,
    "dataDir": "/run/cni/t",
    "prevResult": PREV,
    "runtimeConfig": {"mac": "02:00:00:00:00:06"},
    "args": {"cni": {"mtu": 1300, "sysctl": {"net.core.somaxconn": "512"}}},
}
HOST_LOCAL = {
    **COMMON,
    "type": "bridge",
    "ipam": {
        "type": "host-local",
        "ranges": [
            [{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10", "rangeEnd": "10.1.0.20"}],
            [{"subnet": "fd00::/64", "gateway": "fd00::1"}],
        ],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
        "dataDir": "/run/hl",
    },
    "args": {"cni": {"ips": ["10.1.0.15"]}},
    "runtimeConfig": {
        "ips": ["10.1.0.16/24"],
        "ipRanges": [[{"subnet": "10.2.0.0/24", "rangeStart": "10.2.0.5"}]],
    },
}
MAPS = frozenset({"capabilities", "sysctl"})

LOADERS = {
    "bridge": (BRIDGE, shapes.BRIDGE, lambda c: bridge_config.load(c)),
    "ptp": (PTP, shapes.PTP, lambda c: ptp_config.load(c)),
    "macvlan": (MACVLAN, shapes.MACVLAN, lambda c: macvlan_config.load(c)),
    "ipvlan": (IPVLAN, shapes.IPVLAN, lambda c: ipvlan_config.load(c)),
    "vlan": (VLAN, shapes.VLAN, lambda c: vlan_config.load(c)),
    "portmap": (PORTMAP, shapes.PORTMAP, lambda c: parse_config(c.config(), "c1", "eth0", "ADD")),
    "tuning": (TUNING, shapes.TUNING, lambda c: tuning_config.load(c.config(), c.args)),
    "host-local": (HOST_LOCAL, shapes.HOST_LOCAL, lambda c: host_local_config.load(c.config(), "")),
}


@pytest.mark.parametrize("plugin", sorted(LOADERS))
def test_every_plugin_loads_a_go_cased_config_alike(plugin: str) -> None:
    conf, shape, load = LOADERS[plugin]
    plain = load(cmd_for(conf, shape))
    cased = load(cmd_for(go_case(conf, MAPS), shape))
    assert view(cased) == view(plain)
    # and the Go-cased request reads as the documented one, key for key
    assert cmd_for(go_case(conf, MAPS), shape).config() == conf


def test_flannel_keeps_its_go_maps_exact() -> None:
    conf = {
        **COMMON,
        "type": "flannel",
        "subnetFile": "/run/flannel/x.env",
        "dataDir": "/run/fl",
        "delegate": {"HairpinMode": True, "type": "bridge"},
        "ipam": {"Routes": []},
        "runtimeConfig": {"PortMappings": []},
    }
    cased = go_case(conf, MAPS | {"delegate", "ipam", "runtimeConfig"})
    assert cmd_for(cased, shapes.FLANNEL).config() == conf


def test_a_shape_for_every_plugin_entry() -> None:
    import importlib

    names = ("bridge", "ptp", "macvlan", "ipvlan", "vlan", "host_local", "portmap", "tuning")
    for name in (*names, "flannel"):
        main = importlib.import_module(f"cnitool_plugins.{name}.__main__")
        assert main.PLUGIN.shape is getattr(shapes, name.upper()), name
