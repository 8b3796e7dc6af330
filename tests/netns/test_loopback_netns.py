"""loopback plugin, in-process."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from plugin_helpers import VERSIONS, Runner, cid, link

pytestmark = pytest.mark.root


def conf(version: str, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"cniVersion": version, "name": "lo-net", "type": "loopback"}
    c.update(extra)
    return c


@pytest.mark.parametrize("version", VERSIONS)
def test_add_check_del(runner: Runner, netns_factory: Any, version: str) -> None:
    pod, c = netns_factory(), cid()
    subprocess.run(["ip", "-n", pod.rsplit("/", 1)[1], "link", "set", "lo", "down"], check=True)
    add = runner.run("loopback", "ADD", conf(version), cid=c, netns=pod, ifname="eth7")
    assert add.code == 0, add.out
    res = add.json
    assert res["cniVersion"] == version
    assert res["interfaces"] == [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": pod}]
    # the reference labels a 1.x result with the config version without converting it,
    # so no "version" key in ips even at 0.3.1/0.4.0
    assert res["ips"] == [
        {"interface": 0, "address": "127.0.0.1/8"},
        {"interface": 0, "address": "::1/128"},
    ]
    assert link(pod, "lo")["up"]
    if version != "0.3.1":
        assert (
            runner.run(
                "loopback", "CHECK", dict(conf(version), prevResult=res), cid=c, netns=pod
            ).code
            == 0
        )
    assert runner.run("loopback", "DEL", conf(version), cid=c, netns=pod).code == 0
    assert not link(pod, "lo")["up"]
    chk = runner.run("loopback", "CHECK", dict(conf("1.0.0"), prevResult=res), cid=c, netns=pod)
    assert chk.code == 1 and chk.json["msg"] == "loopback interface is down"


def test_prev_result_passes_through(runner: Runner, netns_factory: Any) -> None:
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": "/x"}],
        "ips": [{"interface": 0, "address": "10.1.2.3/24", "gateway": "10.1.2.1"}],
    }
    add = runner.run(
        "loopback", "ADD", conf("1.0.0", prevResult=prev), cid=cid(), netns=netns_factory()
    )
    assert add.code == 0, add.out
    assert add.json == prev


def test_legacy_version_result(runner: Runner, netns_factory: Any) -> None:
    add = runner.run("loopback", "ADD", conf("0.2.0"), cid=cid(), netns=netns_factory())
    assert add.code == 0, add.out
    assert add.json["ip4"]["ip"] == "127.0.0.1/8"


def test_del_tolerates_missing_or_empty_netns(runner: Runner) -> None:
    assert (
        runner.run("loopback", "DEL", conf("1.0.0"), cid=cid(), netns="/run/netns/gone").code == 0
    )
    assert runner.run("loopback", "DEL", conf("1.0.0"), cid=cid(), netns="").code == 0


def test_add_missing_netns_is_an_error(runner: Runner) -> None:
    add = runner.run("loopback", "ADD", conf("1.0.0"), cid=cid(), netns="/run/netns/gone")
    assert add.code == 1 and add.json["code"] == 999 and "/run/netns/gone" in add.json["msg"]


def test_non_loopback_address_on_lo_is_rejected(runner: Runner, netns_factory: Any) -> None:
    pod = netns_factory()
    subprocess.run(
        ["ip", "-n", pod.rsplit("/", 1)[1], "addr", "add", "192.0.2.9/32", "dev", "lo"], check=True
    )
    add = runner.run("loopback", "ADD", conf("1.0.0"), cid=cid(), netns=pod)
    assert add.code == 1 and "non-loopback address" in add.json["msg"]
