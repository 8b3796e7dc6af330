"""tuning configuration: decoding, precedence, sysctl paths, allow-list, backup bytes; and
the verbs' early refusals through skel.run (no root: they fail before any netns is used)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from cnitool_plugins.tuning import config
from cnitool_plugins.tuning.__main__ import PLUGIN

from cnitool import skel
from cnitool.spec.errors import CNIError

PREV = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "mac": "0a:58:0a:00:00:07", "sandbox": "/run/netns/p"}],
    "ips": [{"interface": 0, "address": "10.0.0.2/24", "gateway": "10.0.0.1"}],
}


def load(conf: dict[str, Any], env_args: str = "") -> config.TuningConf:
    return config.load(config.decode(json.dumps(conf).encode()), env_args)


def test_defaults() -> None:
    c = load({"cniVersion": "1.0.0", "name": "n", "type": "tuning"})
    assert c.data_dir == "/run/cni/tuning"
    assert (c.sysctl, c.mac, c.mtu, c.promisc, c.allmulti, c.txqlen) == (
        {},
        "",
        0,
        False,
        None,
        None,
    )
    assert not c.changes_link


def test_every_attribute_from_config() -> None:
    c = load(
        {
            "dataDir": "/tmp/t",
            "sysctl": {"net.core.somaxconn": "500"},
            "mac": "C2:11:22:33:44:55",
            "mtu": 1400,
            "promisc": True,
            "allmulti": False,
            "txQLen": 0,
        }
    )
    assert c.data_dir == "/tmp/t" and c.sysctl == {"net.core.somaxconn": "500"}
    assert (c.mac, c.mtu, c.promisc, c.allmulti, c.txqlen) == (
        "C2:11:22:33:44:55",
        1400,
        True,
        False,
        0,
    )
    assert c.changes_link


@pytest.mark.parametrize(
    ("env_args", "rc", "args_mac", "want"),
    [
        ("MAC=c2:00:00:00:00:02", None, None, "c2:00:00:00:00:02"),
        ("MAC=c2:00:00:00:00:02", "c2:00:00:00:00:03", None, "c2:00:00:00:00:03"),
        ("MAC=c2:00:00:00:00:02", "c2:00:00:00:00:03", "c2:00:00:00:00:04", "c2:00:00:00:00:04"),
        ("", "", None, "c2:00:00:00:00:01"),  # an empty runtimeConfig.mac changes nothing
        ("MAC=", None, None, "c2:00:00:00:00:01"),
        ("", None, "", ""),  # an explicit args.cni.mac "" clears it (as the reference)
    ],
)
def test_mac_precedence(env_args: str, rc: str | None, args_mac: str | None, want: str) -> None:
    conf: dict[str, Any] = {"mac": "c2:00:00:00:00:01"}
    if rc is not None:
        conf["runtimeConfig"] = {"mac": rc}
    if args_mac is not None:
        conf["args"] = {"cni": {"mac": args_mac}}
    assert load(conf, env_args).mac == want


def test_args_cni_overrides_and_merges() -> None:
    c = load(
        {
            "sysctl": {"net.a": "1", "net.b": "2"},
            "mtu": 1400,
            "promisc": True,
            "args": {
                "cni": {
                    "sysctl": {"net.b": "3", "net.c": "4"},
                    "mtu": 1300,
                    "promisc": False,
                    "allmulti": True,
                    "txQLen": 5,
                }
            },
        }
    )
    assert c.sysctl == {"net.a": "1", "net.b": "3", "net.c": "4"}
    assert (c.mtu, c.promisc, c.allmulti, c.txqlen) == (1300, False, True, 5)


def test_cni_args_strictness() -> None:
    with pytest.raises(CNIError, match=r'ARGS: unknown args \["FOO=1"\]'):
        load({}, "FOO=1")
    assert load({}, "IgnoreUnknown=1;FOO=1;MAC=c2:00:00:00:00:09").mac == "c2:00:00:00:00:09"


def test_duplicate_sysctl_keys() -> None:
    dup = b'{"sysctl": {"net.a": "1", "net.a": "2"}}'
    with pytest.raises(CNIError, match='duplicated sysctl keys are not allowed: "net.a"'):
        config.decode(dup)
    again = b'{"sysctl": {"net.a": "1"}, "sysctl": {"net.a": "2"}}'
    with pytest.raises(CNIError, match="duplicated"):
        config.decode(again)
    # the same key in different maps, or repeated elsewhere, is not a sysctl duplicate
    ok = b'{"sysctl": {"net.a": "1"}, "args": {"cni": {"sysctl": {"net.a": "2"}}}, "x": {"k": 1, "k": 2}}'
    assert config.decode(ok)["sysctl"] == {"net.a": "1"}


@pytest.mark.parametrize(
    ("conf", "msg"),
    [
        ({"mtu": "1400"}, '"mtu" must be an integer'),
        ({"mtu": True}, '"mtu" must be an integer'),
        ({"mtu": -5}, "must not be negative"),
        ({"txQLen": -1}, '"txQLen" -1'),
        ({"promisc": 1}, '"promisc" must be a boolean'),
        ({"allmulti": "true"}, '"allmulti" must be a boolean'),
        ({"mac": 5}, '"mac" must be a string'),
        ({"mac": "not-a-mac"}, "invalid args not-a-mac for MAC addr"),
        ({"dataDir": 1}, '"dataDir" must be a string'),
        ({"sysctl": ["net.a"]}, '"sysctl" must be an object of strings'),
        ({"sysctl": {"net.a": 1}}, '"sysctl" value of "net.a" must be a string'),
        ({"runtimeConfig": {"mac": 1}}, '"runtimeConfig.mac" must be a string'),
        ({"args": {"cni": []}}, '"args.cni" must be an object'),
        ({"args": {"cni": {"mtu": 1.5}}}, '"args.cni.mtu" must be an integer'),
    ],
)
def test_wrong_types(conf: dict[str, Any], msg: str) -> None:
    with pytest.raises(CNIError) as info:
        load(conf)
    assert msg in str(info.value) and info.value.code == 999


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("c2:11:22:33:44:55", "c2:11:22:33:44:55"),
        ("C2-11-22-33-44-55", "c2:11:22:33:44:55"),
        ("c211.2233.4455", "c2:11:22:33:44:55"),
        ("00:00:00:00:fe:80:00:00", "00:00:00:00:fe:80:00:00"),
    ],
)
def test_parse_mac_spellings(text: str, want: str) -> None:
    assert config.parse_mac(text) == want


@pytest.mark.parametrize("bad", ["", "c2:11:22:33:44", "c2:11-22:33:44:55", "g2:11:22:33:44:55"])
def test_parse_mac_rejects(bad: str) -> None:
    with pytest.raises(CNIError, match="invalid args"):
        config.parse_mac(bad)


@pytest.mark.parametrize(
    ("key", "ifname", "path"),
    [
        ("net.ipv4.conf.IFNAME.arp_filter", "eth0", "/proc/sys/net/ipv4/conf/eth0/arp_filter"),
        # dots are replaced first, so a dotted interface name survives the substitution
        (
            "net.ipv4.conf.IFNAME.arp_filter",
            "eth0.100",
            "/proc/sys/net/ipv4/conf/eth0.100/arp_filter",
        ),
        ("net/ipv4/conf/IFNAME/IFNAME", "e1", "/proc/sys/net/ipv4/conf/e1/IFNAME"),
        ("net/../kernel/hostname", "eth0", "/proc/sys/net/kernel/hostname"),
    ],
)
def test_sysctl_path(key: str, ifname: str, path: str) -> None:
    assert config.sysctl_path(key, ifname) == path


@pytest.mark.parametrize(
    ("key", "ifname", "msg"),
    [
        ("kernel.hostname", "eth0", 'invalid net sysctl key: "kernel.hostname"'),
        ("net", "eth0", 'invalid net sysctl key: "net"'),
        ("/etc/passwd", "eth0", "invalid net sysctl key"),
        ("net/IFNAME/kernel", "..", 'invalid net sysctl key: "net/IFNAME/kernel"'),
        (
            "net.ipv4.conf.IFNAME.x",
            "a/b",
            r"Interface name \(a/b\) contains an invalid character /",
        ),
    ],
)
def test_sysctl_path_refused(key: str, ifname: str, msg: str) -> None:
    with pytest.raises(CNIError, match=msg):
        config.sysctl_path(key, ifname)


def test_allowlist(tmp_path: Path) -> None:
    path = tmp_path / "allowlist.conf"
    config.check_allowlist({"kernel.anything": "1"}, str(path))  # absent: all allowed
    path.write_text("^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]+$\n\n   net.core  \n")
    config.check_allowlist({"net.ipv4.conf.IFNAME.arp_filter": "1"}, str(path))
    config.check_allowlist({"x.net.core.y": "1"}, str(path))  # unanchored, like Go's regexp
    with pytest.raises(CNIError) as info:
        config.check_allowlist({"net.ipv4.conf.all.arp_filter": "1"}, str(path))
    assert info.value.msg == (
        "Sysctl net.ipv4.conf.all.arp_filter is not allowed. Only the following sysctls are "
        "allowed: [^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]+$ net.core]"
    )
    path.write_text("net(\n")
    with pytest.raises(CNIError, match="invalid pattern"):
        config.check_allowlist({"net.a": "1"}, str(path))


def test_allowlist_path_is_not_taken_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config._ALLOWLIST_PATH == "/etc/cni/tuning/allowlist.conf"
    monkeypatch.setenv("TUNING_ALLOWLIST", "/nonexistent")
    import importlib

    assert importlib.reload(config)._ALLOWLIST_PATH == "/etc/cni/tuning/allowlist.conf"


class FakeLink:
    def __init__(self, **kw: Any) -> None:
        self.mac, self.mtu, self.flags = "0a:58:0a:00:00:07", 1500, 0x1003
        self.allmulti, self.txqlen = False, 1000
        self.__dict__.update(kw)


def test_backup_bytes_match_the_reference_layout() -> None:
    from cnitool_plugins.tuning.verbs import backup_bytes

    c = load({"mac": "c2:11:22:33:44:55", "mtu": 1400})
    assert backup_bytes(c, FakeLink()) == b'{\n "mac": "0a:58:0a:00:00:07",\n "mtu": 1500\n}'
    c = load({"promisc": True, "allmulti": True, "txQLen": 9})
    assert backup_bytes(c, FakeLink(flags=0x1103)) == (
        b'{\n "promisc": true,\n "allmulti": false,\n "txQLen": 1000\n}'
    )


# -- early refusals through skel --------------------------------------------------------
def run(command: str, conf: dict[str, Any] | bytes, ifname: str = "eth0") -> tuple[Any, int]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/nonexistent/netns",
        "CNI_IFNAME": ifname,
        "CNI_PATH": "/usr/lib/cni",
    }
    stdin = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    out, code = skel.run(PLUGIN, env, stdin, io.StringIO())
    return (json.loads(out) if out else None), code


BASE = {"cniVersion": "1.0.0", "name": "n", "type": "tuning"}


def test_add_needs_prev_result() -> None:
    out, code = run("ADD", dict(BASE, mtu=1400))
    assert code == 1 and out == {"code": 999, "msg": "Required prevResult missing"}


def test_add_checks_before_touching_the_netns(tmp_path: Path) -> None:
    out, _ = run("ADD", dict(BASE, prevResult=PREV, sysctl={"kernel.x": "1"}))
    assert out["msg"] == 'invalid net sysctl key: "kernel.x"'
    out, _ = run("ADD", dict(BASE, prevResult={"cniVersion": "1.0.0", "ips": 5}))
    assert out["code"] == 6  # an unreadable prevResult
    out, _ = run("ADD", dict(BASE, prevResult=PREV, dataDir=str(tmp_path)))
    assert "/nonexistent/netns" in out["msg"]  # only now: the netns is missing


def test_del_without_backup_or_netns_succeeds(tmp_path: Path) -> None:
    out, code = run("DEL", dict(BASE, dataDir=str(tmp_path), mtu=1400))
    assert (out, code) == (None, 0)
    backup = tmp_path / "c1_eth0.json"
    backup.write_text('{\n "mtu": 1500\n}')
    out, code = run("DEL", dict(BASE, dataDir=str(tmp_path)))
    assert (out, code) == (None, 0)
    assert not backup.exists()  # the netns is gone: nothing to restore it to


def test_del_reports_config_errors() -> None:
    out, code = run("DEL", dict(BASE, mtu="x"))
    assert code == 1 and '"mtu" must be an integer' in out["msg"]


def test_check_gated_below_040() -> None:
    out, code = run("CHECK", dict(BASE, cniVersion="0.3.1", prevResult=PREV))
    assert code == 1 and out["code"] == 1


def test_version_and_about() -> None:
    out, code = run("VERSION", BASE)
    assert code == 0 and "1.1.0" in out["supportedVersions"] and "0.1.0" in out["supportedVersions"]
    assert PLUGIN.about.startswith("CNI tuning plugin")


def test_malformed_stdin() -> None:
    out, code = run("ADD", b'{"cniVersion": "1.0.0", "name": "n", "type": "tuning", "mtu": }')
    assert code == 1 and out["code"] in (6, 999)


def test_entry_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, cnitool_plugins.tuning.__main__; "
        "print(sorted(m for m in sys.modules if m.startswith(("
        "'pyroute2', 'cnitool_plugins._lib.net', 'cnitool_plugins.tuning.c', 'cnitool_plugins.tuning.p'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
