"""tuning plugin against real links: in-process (skel.run) and through launchers, chained
after our bridge or the Go reference bridge, side by side with the Go reference tuning."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plugin_helpers import VERSIONS, Call, Runner, cid, host_local, link, run_in, unique_net

pytestmark = pytest.mark.root

FIXED_MAC = "0a:58:0a:00:00:07"  # the container link's MAC before tuning (deterministic)


def _nl_link(name: str) -> Any:
    from cnitool_plugins._lib.netlink import Netlink

    with Netlink() as nl:
        return nl.link(name)


def nl_link(pod: str, name: str = "eth0") -> Any:
    return run_in(pod, _nl_link, name)


def set_link(pod: str, **attrs: Any) -> None:
    def work() -> None:
        from cnitool_plugins._lib.netlink import Netlink

        with Netlink() as nl:
            index = nl.link("eth0").index
            if "mac" in attrs:
                nl.set_mac(index, attrs["mac"])
            if "mtu" in attrs:
                nl.set_mtu(index, attrs["mtu"])

    run_in(pod, work)


def sysctl_in(pod: str, key: str) -> str:
    from cnitool_plugins._lib import sysctl

    return str(run_in(pod, sysctl.get, key))


@pytest.fixture
def bin_dir(tmp_path: Path, python: str) -> Path:
    from cnitool import launchers

    d = tmp_path / "bin"
    launchers.install(str(d), ["tuning", "bridge", "host-local"], python=python)
    return d


@pytest.fixture
def runner(bin_dir: Path, tmp_path: Path) -> Runner:
    return Runner(cni_path=f"{bin_dir}:/usr/lib/cni", data_dir=str(tmp_path / "ipam"))


def go_run(
    plugin: str,
    command: str,
    conf: dict[str, Any] | bytes,
    *,
    cid: str,
    netns: str,
    ifname: str = "eth0",
    args: str = "",
    path: str = "/usr/lib/cni",
) -> Call:
    """Exec a plugin binary (Go reference by default) the way a runtime does."""
    stdin = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    env = dict(os.environ)
    env.update(
        CNI_COMMAND=command,
        CNI_CONTAINERID=cid,
        CNI_NETNS=netns,
        CNI_IFNAME=ifname,
        CNI_ARGS=args,
        CNI_PATH="/usr/lib/cni",
    )
    p = subprocess.run(
        [os.path.join(path, plugin)], input=stdin, env=env, capture_output=True, timeout=60
    )
    return Call(p.stdout, p.returncode, p.stderr.decode())


class Pod:
    """A netns with an eth0 from a bridge ADD (ours in-process, or Go's), MAC pinned."""

    def __init__(
        self,
        runner: Runner,
        netns_factory: Any,
        version: str = "1.0.0",
        go_bridge: bool = False,
    ) -> None:
        self.runner = runner
        self.path = netns_factory()
        self.cid = cid()
        bridge, subnet, self.network = unique_net()
        self.bridge_conf = {
            "cniVersion": version,
            "name": self.network,
            "type": "bridge",
            "bridge": bridge,
            "ipam": host_local(subnet, runner.data_dir),
        }
        if go_bridge:
            add = go_run("bridge", "ADD", self.bridge_conf, cid=self.cid, netns=self.path)
        else:
            add = runner.run("bridge", "ADD", self.bridge_conf, cid=self.cid, netns=self.path)
        assert add.code == 0, add.out
        self.prev = add.json
        set_link(self.path, mac=FIXED_MAC, mtu=1500)

    def conf(self, data_dir: Path, **extra: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "cniVersion": self.bridge_conf["cniVersion"],
            "name": self.network,
            "type": "tuning",
            "dataDir": str(data_dir),
            "prevResult": self.prev,
        }
        conf.update(extra)
        return conf

    def ours(self, command: str, conf: dict[str, Any] | bytes, args: str = "") -> Call:
        return self.runner.run("tuning", command, conf, cid=self.cid, netns=self.path, args=args)

    def launched(self, command: str, conf: dict[str, Any] | bytes, args: str = "") -> Call:
        """Our plugin through its installed launcher (a new process, like a runtime)."""
        bin_dir = self.runner.cni_path.split(":")[0]
        return go_run(
            "tuning", command, conf, cid=self.cid, netns=self.path, args=args, path=bin_dir
        )

    def go(self, command: str, conf: dict[str, Any] | bytes, args: str = "") -> Call:
        return go_run("tuning", command, conf, cid=self.cid, netns=self.path, args=args)

    def backup(self, data_dir: Path) -> Path:
        return data_dir / f"{self.cid}_eth0.json"


ALL_ATTRS = {
    "mac": "c2:11:22:33:44:55",
    "mtu": 1400,
    "promisc": True,
    "allmulti": True,
    "sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1", "net.ipv4.conf.all.arp_ignore": "2"},
}


# -- netlink additions ----------------------------------------------------------------
def test_netlink_sets_mtu_allmulti_txqlen(netns_factory: Any) -> None:
    pod = netns_factory()
    subprocess.run(
        ["ip", "-n", os.path.basename(pod), "link", "add", "v0", "type", "veth", "peer", "v1"],
        check=True,
    )

    def work() -> tuple[Any, Any, str]:
        from cnitool_plugins._lib.netlink import Netlink

        with Netlink() as nl:
            idx = nl.link("v0").index
            before = nl.link("v0")
            nl.set_mtu(idx, 1280)
            nl.set_allmulti(idx, True)
            nl.set_txqlen(idx, 321)
            after = nl.link("v0")
        shown = subprocess.run(
            ["ip", "-d", "link", "show", "v0"], capture_output=True, text=True, check=True
        ).stdout
        return before, after, shown

    before, after, shown = run_in(pod, work)
    assert (before.mtu, before.allmulti) == (1500, False)
    assert (after.mtu, after.allmulti, after.txqlen) == (1280, True, 321)
    assert "mtu 1280" in shown and "ALLMULTI" in shown and "qlen 321" in shown

    def off() -> Any:
        from cnitool_plugins._lib.netlink import Netlink

        with Netlink() as nl:
            nl.set_allmulti(nl.link("v0").index, False)
            return nl.link("v0")

    assert run_in(pod, off).allmulti is False


# -- ADD / CHECK / DEL ----------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_add_check_del_every_version(
    runner: Runner, netns_factory: Any, tmp_path: Path, version: str
) -> None:
    pod = Pod(runner, netns_factory, version)
    data = tmp_path / "tuning"
    conf = pod.conf(data, **ALL_ATTRS, txQLen=77)
    add = pod.ours("ADD", conf)
    assert add.code == 0, add.out
    res = add.json
    assert res["cniVersion"] == version
    eth0 = [i for i in res["interfaces"] if i["name"] == "eth0"]
    assert eth0 and eth0[0]["mac"] == "c2:11:22:33:44:55"
    # everything but the MAC is the bridge's result, converted to the same version
    expect = json.loads(json.dumps(pod.prev))
    for i in expect["interfaces"]:
        if i["name"] == "eth0":
            i["mac"] = "c2:11:22:33:44:55"
    assert res == expect

    lk = nl_link(pod.path)
    assert (lk.mac, lk.mtu, lk.allmulti, lk.txqlen) == ("c2:11:22:33:44:55", 1400, True, 77)
    assert lk.flags & 0x100  # IFF_PROMISC
    assert sysctl_in(pod.path, "net.ipv4.conf.eth0.arp_filter") == "1"
    assert sysctl_in(pod.path, "net.ipv4.conf.all.arp_ignore") == "2"
    backup = pod.backup(data)
    assert backup.read_bytes() == (
        b'{\n "mac": "0a:58:0a:00:00:07",\n "promisc": false,\n "mtu": 1500,\n'
        b' "allmulti": false,\n "txQLen": 1000\n}'
    )
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o600

    if version not in ("0.1.0", "0.2.0", "0.3.0", "0.3.1"):
        chk = pod.ours("CHECK", dict(conf, prevResult=res))
        assert chk.code == 0, chk.out

    for _ in range(2):  # DEL restores once, then finds nothing to do
        dele = pod.ours("DEL", dict(conf, prevResult=res))
        assert dele.code == 0, dele.out
        lk = nl_link(pod.path)
        assert (lk.mac, lk.mtu, lk.allmulti, lk.txqlen) == (FIXED_MAC, 1500, False, 1000)
        assert not lk.flags & 0x100
        assert not backup.exists()
    # sysctls are not reverted
    assert sysctl_in(pod.path, "net.ipv4.conf.eth0.arp_filter") == "1"


def test_sysctl_only_writes_no_backup(runner: Runner, netns_factory: Any, tmp_path: Path) -> None:
    pod = Pod(runner, netns_factory)
    data = tmp_path / "tuning"
    add = pod.ours("ADD", pod.conf(data, sysctl={"net.ipv4.conf.IFNAME.arp_notify": "1"}))
    assert add.code == 0, add.out
    assert add.json == pod.prev
    assert sysctl_in(pod.path, "net.ipv4.conf.eth0.arp_notify") == "1"
    assert not data.exists()


def test_check_reports_drift(runner: Runner, netns_factory: Any, tmp_path: Path) -> None:
    pod = Pod(runner, netns_factory)
    conf = pod.conf(tmp_path / "t", mtu=1400, sysctl={"net.ipv4.conf.IFNAME.arp_filter": "1"})
    assert pod.ours("ADD", conf).code == 0
    assert pod.ours("CHECK", conf).code == 0
    set_link(pod.path, mtu=1300)
    chk = pod.ours("CHECK", conf)
    assert chk.code == 1 and chk.json["code"] == 999
    assert "MTU of eth0 is 1400, current value is 1300" in chk.json["msg"]
    set_link(pod.path, mtu=1400)
    run_in(pod.path, lambda: Path("/proc/sys/net/ipv4/conf/eth0/arp_filter").write_text("0"))
    chk = pod.ours("CHECK", conf)
    assert "arp_filter is 1, current value is 0" in chk.json["msg"]
    # promisc is checked both ways: off when not asked for
    chk = pod.ours("CHECK", pod.conf(tmp_path / "t"))
    assert chk.code == 0, chk.out
    run_in(pod.path, lambda: subprocess.run(["ip", "link", "set", "eth0", "promisc", "on"]))
    chk = pod.ours("CHECK", pod.conf(tmp_path / "t"))
    assert "configured promisc is false, current value is 1" in chk.json["msg"]


def test_precedence_args_cni_wins(runner: Runner, netns_factory: Any, tmp_path: Path) -> None:
    pod = Pod(runner, netns_factory)
    conf = pod.conf(
        tmp_path / "t",
        mac="c2:00:00:00:00:01",
        mtu=1400,
        runtimeConfig={"mac": "c2:00:00:00:00:03"},
        args={"cni": {"mac": "c2:00:00:00:00:04", "mtu": 1380}},
    )
    add = pod.ours("ADD", conf, args="IgnoreUnknown=1;MAC=c2:00:00:00:00:02")
    assert add.code == 0, add.out
    lk = nl_link(pod.path)
    assert (lk.mac, lk.mtu) == ("c2:00:00:00:00:04", 1380)
    del conf["args"]
    add = pod.ours("ADD", conf, args="MAC=c2:00:00:00:00:02")
    assert nl_link(pod.path).mac == "c2:00:00:00:00:03"
    del conf["runtimeConfig"]
    add = pod.ours("ADD", conf, args="MAC=c2:00:00:00:00:02")
    assert nl_link(pod.path).mac == "c2:00:00:00:00:02"
    add = pod.ours("ADD", conf)
    assert add.code == 0 and nl_link(pod.path).mac == "c2:00:00:00:00:01"


# -- errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "msg"),
    [
        ({"sysctl": {"kernel.hostname": "x"}}, 'invalid net sysctl key: "kernel.hostname"'),
        ({"sysctl": {"net/../kernel/hostname": "x"}}, "(/proc/sys/net/kernel/hostname)"),
        ({"sysctl": {"net.ipv4.conf.IFNAME.nope": "1"}}, "No such file or directory"),
        ({"sysctl": {"net.ipv4.ip_forward": 1}}, '"net.ipv4.ip_forward" must be a string'),
        ({"mtu": "1400"}, '"mtu" must be an integer'),
        ({"promisc": "yes"}, '"promisc" must be a boolean'),
        ({"mac": "zz:11"}, "invalid args zz:11 for MAC addr"),
        ({"mtu": -1}, "must not be negative"),
        ({"args": {"cni": {"allmulti": 1}}}, '"args.cni.allmulti" must be a boolean'),
    ],
)
def test_bad_config_is_refused(
    runner: Runner, netns_factory: Any, tmp_path: Path, extra: dict[str, Any], msg: str
) -> None:
    pod = Pod(runner, netns_factory)
    add = pod.ours("ADD", pod.conf(tmp_path / "t", **extra))
    assert add.code == 1 and add.json["code"] == 999, add.out
    assert msg in add.json["msg"]
    assert not (tmp_path / "t").exists()
    assert nl_link(pod.path).mac == FIXED_MAC  # nothing was changed


def test_duplicate_sysctl_keys_refused(runner: Runner, netns_factory: Any, tmp_path: Path) -> None:
    """As the current reference does; Debian's Go 1.1.1 predates the check (takes the last)."""
    pod = Pod(runner, netns_factory)
    body = json.dumps(pod.conf(tmp_path / "t"))[:-1]
    stdin = (
        body + ', "sysctl": {"net.ipv4.conf.all.arp_ignore": "1", '
        '"net.ipv4.conf.all.arp_ignore": "2"}}'
    ).encode()
    ours = pod.ours("ADD", stdin)
    assert ours.code == 1
    assert ours.json["msg"] == (
        'duplicated sysctl keys are not allowed: "net.ipv4.conf.all.arp_ignore"'
    )
    assert sysctl_in(pod.path, "net.ipv4.conf.all.arp_ignore") == "0"
    launched = go_run(
        "tuning", "ADD", stdin, cid=pod.cid, netns=pod.path, path=runner.cni_path.split(":")[0]
    )
    assert launched.json == ours.json


def test_missing_prev_result_like_go(runner: Runner, netns_factory: Any, tmp_path: Path) -> None:
    pod = Pod(runner, netns_factory)
    conf = pod.conf(tmp_path / "t", mtu=1400, sysctl={"kernel.x": "1"})
    del conf["prevResult"]
    ours, go = pod.ours("ADD", conf), pod.go("ADD", conf)
    assert ours.json == go.json == {"code": 999, "msg": "Required prevResult missing"}
    nested = tmp_path / "a" / "b"
    conf = pod.conf(nested, mtu=1400)
    assert pod.ours("ADD", conf).code == 0
    # missing parents too are made 0600, as Go's MkdirAll(dataDir, 0600) does
    assert [stat.S_IMODE(d.stat().st_mode) for d in (tmp_path / "a", nested)] == [0o600] * 2


def test_traversal_stays_under_net_like_go(
    runner: Runner, netns_factory: Any, tmp_path: Path
) -> None:
    """Every dot becomes a slash, so ``..`` cannot climb out; keys outside net are refused."""
    pod = Pod(runner, netns_factory)
    hostname = run_in(pod.path, lambda: Path("/proc/sys/kernel/hostname").read_text())
    conf = pod.conf(tmp_path / "t", sysctl={"net/../kernel/hostname": "evil"})
    ours, go = pod.ours("ADD", conf), pod.go("ADD", conf)
    assert ours.code == go.code == 1
    assert "/proc/sys/net/kernel/hostname" in ours.json["msg"]
    assert "/proc/sys/net/kernel/hostname" in go.json["msg"]
    conf = pod.conf(tmp_path / "t", sysctl={"kernel.hostname": "evil"})
    ours, go = pod.ours("ADD", conf), pod.go("ADD", conf)
    assert ours.json == go.json == {"code": 999, "msg": 'invalid net sysctl key: "kernel.hostname"'}
    assert run_in(pod.path, lambda: Path("/proc/sys/kernel/hostname").read_text()) == hostname


@pytest.fixture
def allowlist() -> Iterator[Path]:
    """The real allow-list path (/etc/cni is a private tmpfs in the test run)."""
    path = Path("/etc/cni/tuning/allowlist.conf")
    path.parent.mkdir(parents=True, exist_ok=True)
    yield path
    path.unlink(missing_ok=True)


def test_allowlist(
    runner: Runner, netns_factory: Any, tmp_path: Path, bin_dir: Path, allowlist: Path
) -> None:
    allowlist.write_text("^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]+$\n\n  ^net\\.core\\.somaxconn$ \n")
    pod = Pod(runner, netns_factory)
    bad = pod.conf(tmp_path / "t", sysctl={"net.ipv4.conf.all.arp_ignore": "1"})
    good = pod.conf(tmp_path / "t", sysctl={"net.ipv4.conf.IFNAME.arp_filter": "1"})
    refused = pod.ours("ADD", bad)
    assert refused.code == 1
    assert refused.json["msg"] == (
        "Sysctl net.ipv4.conf.all.arp_ignore is not allowed. Only the following sysctls are"
        " allowed: [^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]+$ ^net\\.core\\.somaxconn$]"
    )
    # the launcher reads the same file (Debian's Go 1.1.1 predates the allow-list)
    launched = go_run("tuning", "ADD", bad, cid=pod.cid, netns=pod.path, path=str(bin_dir))
    assert launched.json == refused.json
    assert pod.ours("ADD", good).code == 0
    assert sysctl_in(pod.path, "net.ipv4.conf.all.arp_ignore") == "0"


# -- DEL tolerance --------------------------------------------------------------------
def test_del_tolerates_missing_netns_and_backup(
    runner: Runner, netns_factory: Any, tmp_path: Path
) -> None:
    pod = Pod(runner, netns_factory)
    data = tmp_path / "t"
    conf = pod.conf(data, mtu=1400)
    assert pod.ours("DEL", conf).code == 0  # never added: no backup
    assert pod.ours("ADD", conf).code == 0
    assert pod.backup(data).exists()
    subprocess.run(["ip", "netns", "del", os.path.basename(pod.path)], check=True)
    for _ in range(2):
        dele = pod.ours("DEL", conf)
        assert dele.code == 0, dele.out
    assert not pod.backup(data).exists()  # nothing left to restore it to


# -- side by side with the Go reference ------------------------------------------------
@pytest.mark.parametrize(("go_bridge", "via"), [(False, "ours"), (True, "launched")])
def test_same_result_and_backup_as_go(
    runner: Runner, netns_factory: Any, tmp_path: Path, go_bridge: bool, via: str
) -> None:
    a = Pod(runner, netns_factory, go_bridge=go_bridge)
    b = Pod(runner, netns_factory, go_bridge=go_bridge)
    attrs = {k: v for k, v in ALL_ATTRS.items()}
    conf_a = a.conf(tmp_path / "go", **attrs)
    conf_b = b.conf(tmp_path / "ours", **attrs)
    conf_b["prevResult"] = conf_a["prevResult"]  # the same input gives the same output
    go, ours = a.go("ADD", conf_a), getattr(b, via)("ADD", conf_b)
    assert go.code == ours.code == 0, (go.out, ours.out)
    # byte for byte, but for the empty "dns": {} that libcni 1.1 no longer prints
    assert ours.out == go.out.replace(b',\n    "dns": {}\n}', b"\n}")
    assert a.backup(tmp_path / "go").read_bytes() == b.backup(tmp_path / "ours").read_bytes()
    for d in ("go", "ours"):
        assert stat.S_IMODE((tmp_path / d).stat().st_mode) == 0o600
    la, lb = nl_link(a.path), nl_link(b.path)
    assert (la.mac, la.mtu, la.flags, la.allmulti) == (lb.mac, lb.mtu, lb.flags, lb.allmulti)
    for p in (a, b):
        assert sysctl_in(p.path, "net.ipv4.conf.eth0.arp_filter") == "1"
    # each CHECKs the other's work
    assert a.ours("CHECK", conf_a).code == 0
    chk = b.go("CHECK", dict(conf_b, sysctl={"net.ipv4.conf.all.arp_ignore": "2"}))
    assert chk.code == 0, chk.out


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
def test_cross_restore(runner: Runner, netns_factory: Any, tmp_path: Path, version: str) -> None:
    """Go's DEL restores what ours changed, and ours restores what Go changed."""
    for adder, deleter in (("ours", "go"), ("go", "launched")):
        pod = Pod(runner, netns_factory, version)
        data = tmp_path / adder
        conf = pod.conf(data, mac="c2:11:22:33:44:66", mtu=1420, promisc=True, allmulti=True)
        add = getattr(pod, adder)("ADD", conf)
        assert add.code == 0, add.out
        lk = nl_link(pod.path)
        assert (lk.mac, lk.mtu, lk.allmulti) == ("c2:11:22:33:44:66", 1420, True)
        dele = getattr(pod, deleter)("DEL", dict(conf, prevResult=add.json))
        assert dele.code == 0, dele.out
        lk = nl_link(pod.path)
        assert (lk.mac, lk.mtu, lk.allmulti) == (FIXED_MAC, 1500, False)
        assert not lk.flags & 0x100
        assert not pod.backup(data).exists()


def test_errors_match_go_codes(runner: Runner, netns_factory: Any, tmp_path: Path) -> None:
    pod = Pod(runner, netns_factory)
    for extra in ({"mtu": "x"}, {"sysctl": {"kernel.hostname": "x"}}, {"sysctl": []}):
        conf = pod.conf(tmp_path / "t", **extra)
        ours, go = pod.ours("ADD", conf), pod.go("ADD", conf)
        assert ours.code == go.code == 1 and ours.json["code"] == go.json["code"] == 999, extra


# -- a whole conflist through libcni and launchers ----------------------------------------
@pytest.mark.parametrize("bridge_from", ["ours", "go"])
def test_conflist_bridge_then_tuning(
    bin_dir: Path, netns_factory: Any, tmp_path: Path, bridge_from: str
) -> None:
    from cnitool.libcni.api import CNIConfig
    from cnitool.libcni.config import conf_list_from_bytes
    from cnitool.libcni.runtime import RuntimeConf

    if bridge_from == "go":
        (bin_dir / "bridge").unlink()
    bridge, subnet, name = unique_net()
    data = tmp_path / "tuning"
    raw = {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {"type": "bridge", "bridge": bridge, "ipam": host_local(subnet, str(tmp_path / "hl"))},
            {
                "type": "tuning",
                "dataDir": str(data),
                "mtu": 1450,
                "sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1"},
                "capabilities": {"mac": True},
            },
        ],
    }
    net = conf_list_from_bytes(json.dumps(raw).encode())
    cni = CNIConfig([str(bin_dir), "/usr/lib/cni"], str(tmp_path / "cache"))
    pod = netns_factory()
    rt = RuntimeConf(
        container_id="ctr-conflist",
        netns=pod,
        ifname="eth0",
        capability_args={"mac": "c2:11:22:33:44:77"},
    )
    res = cni.add_network_list(net, rt)
    eth0 = [i for i in res["interfaces"] if i["name"] == "eth0"][0]
    assert eth0["mac"] == "c2:11:22:33:44:77"
    lk = link(pod, "eth0")
    assert lk and lk["mac"] == "c2:11:22:33:44:77" and lk["mtu"] == 1450
    assert sysctl_in(pod, "net.ipv4.conf.eth0.arp_filter") == "1"
    backup = json.loads((data / "ctr-conflist_eth0.json").read_text())
    assert list(backup) == ["mac", "mtu"] and backup["mtu"] == 1500
    cni.check_network_list(net, rt)
    cni.del_network_list(net, rt)
    assert link(pod, "eth0") is None
    assert not (data / "ctr-conflist_eth0.json").exists()
    cni.del_network_list(net, rt)  # again: nothing left, still fine


def test_launcher_version_and_del_idempotent(
    runner: Runner, netns_factory: Any, tmp_path: Path
) -> None:
    pod = Pod(runner, netns_factory)
    ver = pod.launched("VERSION", pod.conf(tmp_path / "t"))
    assert ver.code == 0 and "1.1.0" in ver.json["supportedVersions"]
    conf = pod.conf(tmp_path / "t", mtu=1410, txQLen=10)
    add = pod.launched("ADD", conf)
    assert add.code == 0, add.out + add.stderr.encode()
    assert (nl_link(pod.path).mtu, nl_link(pod.path).txqlen) == (1410, 10)
    for _ in range(3):
        dele = pod.launched("DEL", conf)
        assert (dele.code, dele.out) == (0, b"")
        assert (nl_link(pod.path).mtu, nl_link(pod.path).txqlen) == (1500, 1000)


def test_full_disk_leaves_no_empty_backup(
    runner: Runner, netns_factory: Any, tmp_path: Path
) -> None:
    """The backup is written whole or not at all; without it nothing is changed."""
    pod = Pod(runner, netns_factory)
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        data = disk / "tuning"
        data.mkdir()
        with open(disk / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 4096)
        add = pod.ours("ADD", pod.conf(data, mtu=1400))
        left = sorted(p.name for p in data.iterdir())
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    assert add.code == 1
    assert add.json["msg"] == (
        f'failed to save backup "{pod.backup(data)}": No space left on device'
    )
    assert left == []
    assert nl_link(pod.path).mtu == 1500


def test_failed_add_puts_back_what_it_changed_and_leaves_no_backup(
    runner: Runner, netns_factory: Any, tmp_path: Path
) -> None:
    """The MAC is set, then the MTU is refused: the MAC goes back and the backup goes
    (the Go plugin leaves both, for the runtime's DEL)."""
    pod = Pod(runner, netns_factory)
    data = tmp_path / "tuning"
    add = pod.ours("ADD", pod.conf(data, mac="c2:11:22:33:44:55", mtu=100000))
    assert add.code == 1
    assert add.json["msg"].startswith('failed to tune "eth0": ')
    lk = nl_link(pod.path)
    assert (lk.mac, lk.mtu) == (FIXED_MAC, 1500)
    assert sorted(p.name for p in data.iterdir()) == []
    go = pod.go("ADD", pod.conf(tmp_path / "go", mac="c2:11:22:33:44:55", mtu=100000))
    assert go.code == 1 and pod.backup(tmp_path / "go").exists()  # what the reference leaves
