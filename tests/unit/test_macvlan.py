"""macvlan config decoding (no kernel access: the master is resolved by the verbs)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from cnitool_plugins.macvlan import config
from cnitool_plugins.macvlan.__main__ import PLUGIN

from cnitool import skel
from cnitool.spec.errors import CNIError
from cnitool.spec.version import ALL


def cmd_for(conf: dict[str, Any], args: str = "", command: str = "ADD") -> skel.CmdArgs:
    return skel.CmdArgs(
        command=command,
        container_id="c1",
        netns="/run/netns/x",
        ifname="eth0",
        args=args,
        path="/opt/cni/bin",
        netns_override=False,
        stdin_data=json.dumps(conf).encode(),
        env={},
        stderr=io.StringIO(),
    )


def base(**extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "mv", "type": "macvlan"}
    conf.update(extra)
    return conf


def test_defaults() -> None:
    conf = config.load(cmd_for(base()))
    assert conf.master == "" and conf.mode == "bridge" and conf.mtu == 0
    assert conf.mac == "" and conf.bcqueuelen is None and not conf.link_in_container
    assert conf.ipam_type == "" and conf.dns is None


def test_every_field() -> None:
    conf = config.load(
        cmd_for(
            base(
                master="eth1",
                mode="vepa",
                mtu=1400,
                mac="C2:11:22:33:44:55",
                bcqueuelen=100,
                linkInContainer=True,
                ipam={"type": "host-local"},
                dns={"nameservers": ["10.0.0.53"]},
            )
        )
    )
    assert (conf.master, conf.mode, conf.mtu, conf.bcqueuelen) == ("eth1", "vepa", 1400, 100)
    assert conf.mac == "c2:11:22:33:44:55" and conf.link_in_container
    assert conf.ipam_type == "host-local" and conf.dns == {"nameservers": ["10.0.0.53"]}


@pytest.mark.parametrize(
    ("mode", "value"), [("", 4), ("bridge", 4), ("private", 1), ("vepa", 2), ("passthru", 8)]
)
def test_modes_map_to_kernel_values(mode: str, value: int) -> None:
    assert config.mode_value(mode) == value
    assert config.mode_name(value) == (mode or "bridge")


def test_unknown_mode_is_the_reference_error() -> None:
    with pytest.raises(CNIError) as exc:
        config.load(cmd_for(base(mode="source")))
    assert exc.value.msg == 'unknown macvlan mode: "source"' and exc.value.code == 999


def test_mac_precedence() -> None:
    conf = base(mac="02:00:00:00:00:01")
    assert config.load(cmd_for(conf)).mac == "02:00:00:00:00:01"
    args = "IgnoreUnknown=1;K8S_POD_NAME=p;MAC=02:00:00:00:00:02"
    assert config.load(cmd_for(conf, args)).mac == "02:00:00:00:00:02"
    conf["runtimeConfig"] = {"mac": "02:00:00:00:00:03"}
    assert config.load(cmd_for(conf, args)).mac == "02:00:00:00:00:03"


def test_bad_mac_is_the_reference_error() -> None:
    with pytest.raises(CNIError) as exc:
        config.load(cmd_for(base(mac="zz")))
    assert exc.value.msg == "invalid args zz for MAC addr: address zz: invalid MAC address"
    with pytest.raises(CNIError, match="invalid args 02:00 for MAC addr"):
        config.load(cmd_for(base(), "MAC=02:00"))


def test_unknown_cni_args_are_refused_unless_ignored() -> None:
    with pytest.raises(CNIError, match="unknown args"):
        config.load(cmd_for(base(), "FOO=bar"))
    assert config.load(cmd_for(base(), "IgnoreUnknown=true;FOO=bar")).mac == ""


@pytest.mark.parametrize(
    ("key", "value", "want"),
    [
        ("master", 5, '"master" must be a string'),
        ("mode", 1, '"mode" must be a string'),
        ("mtu", "1400", '"mtu" must be an integer'),
        ("mtu", True, '"mtu" must be an integer'),
        ("mac", 1, '"mac" must be a string'),
        ("bcqueuelen", "x", '"bcqueuelen" must be an integer'),
        ("bcqueuelen", -1, 'invalid "bcqueuelen" -1'),
        ("bcqueuelen", 1 << 32, 'invalid "bcqueuelen"'),
        ("linkInContainer", "x", '"linkInContainer" must be a boolean'),
        ("runtimeConfig", {"mac": 5}, '"mac" must be a string'),
        ("ipam", {"type": 3}, '"type" must be a string'),
    ],
)
def test_wrong_types(key: str, value: Any, want: str) -> None:
    with pytest.raises(CNIError) as exc:
        config.load(cmd_for(base(**{key: value})))
    assert want in exc.value.msg and exc.value.code == 999


def test_del_decodes_types_but_not_mode_or_mac() -> None:
    conf = config.load_for_del(cmd_for(base(mode="nope", mac="zz", ipam={"type": "x"}), "MAC=q"))
    assert conf.ipam_type == "x"
    with pytest.raises(CNIError, match='"mtu" must be an integer'):
        config.load_for_del(cmd_for(base(mtu="1")))


def test_status_without_ipam_is_a_no_op() -> None:
    env = {"CNI_COMMAND": "STATUS", "CNI_PATH": "/nonexistent"}
    out, code = skel.run(PLUGIN, env, json.dumps(base(cniVersion="1.1.0")).encode())
    assert (out, code) == (b"", 0)


def test_version_lists_every_spec_version() -> None:
    out, code = skel.run(PLUGIN, {"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "1.1.0"}')
    assert code == 0 and tuple(json.loads(out)["supportedVersions"]) == tuple(ALL)


def test_version_and_status_load_no_netlink_code() -> None:
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from cnitool import skel\n"
        "from cnitool_plugins.macvlan.__main__ import PLUGIN\n"
        "conf = json.dumps({'cniVersion': '1.1.0', 'name': 'n', 'type': 'macvlan'}).encode()\n"
        "for verb in ('VERSION', 'STATUS'):\n"
        "    out, rc = skel.run(PLUGIN, {'CNI_COMMAND': verb, 'CNI_PATH': '/x'}, conf)\n"
        "    assert rc == 0, out\n"
        "heavy = [m for m in sys.modules if m.endswith(('.netlink', '.netns', '.verbs'))]\n"
        "print(json.dumps(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
