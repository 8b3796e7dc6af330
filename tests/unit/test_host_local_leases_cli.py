"""``cnitool leases``: leases with their range set and whether a cached attachment owns them."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from cnitool_plugins.host_local.__main__ import PLUGIN

from cnitool import skel
from cnitool.cli.leases import collect, command
from cnitool.libcni.cache import ResultCache
from cnitool.libcni.config import conf_list_from_bytes
from cnitool.libcni.runtime import RuntimeConf


def setup(tmp: Path) -> tuple[Path, Path, Path]:
    data, cache, confdir = tmp / "data", tmp / "cache", tmp / "net.d"
    confdir.mkdir()
    conflist = {
        "cniVersion": "1.0.0",
        "name": "leasenet",
        "plugins": [
            {
                "type": "bridge",
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(data),
                    "ranges": [[{"subnet": "10.60.0.0/24"}], [{"subnet": "fd60::/64"}]],
                },
            }
        ],
    }
    raw = json.dumps(conflist).encode() + b"\n"
    (confdir / "10-leasenet.conflist").write_bytes(raw)
    net = conf_list_from_bytes(raw)
    request = dict(conflist["plugins"][0])  # type: ignore[index]
    request.update(cniVersion="1.0.0", name="leasenet")
    results: dict[str, Any] = {}
    for cid in ("live", "gone"):
        env = {
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": "/x",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": "/x",
            "CNI_NETNS_OVERRIDE": "1",
        }
        out, rc = skel.run(PLUGIN, env, json.dumps(request).encode(), io.StringIO())
        assert rc == 0, out
        results[cid] = json.loads(out)
    # only "live" is still in the result cache
    ResultCache(str(cache)).save(net, RuntimeConf("live", "/x", "eth0"), results["live"])
    (data / "leasenet" / "10.60.0.200").write_bytes(b"legacy")
    return data, cache, confdir


def test_collect_marks_stale_leases_and_range_sets(tmp_path: Path) -> None:
    data, cache, confdir = setup(tmp_path)
    recs = collect(str(data), str(cache), str(confdir))
    table = {(r["ip"], r["containerID"], r["ifname"], r["rangeSet"], r["stale"]) for r in recs}
    assert table == {
        ("10.60.0.2", "live", "eth0", 0, False),
        ("fd60::2", "live", "eth0", 1, False),
        ("10.60.0.3", "gone", "eth0", 0, True),
        ("fd60::3", "gone", "eth0", 1, True),
        ("10.60.0.200", "legacy", "", 0, True),
    }
    assert [r["ip"] for r in recs][:3] == ["10.60.0.2", "10.60.0.3", "10.60.0.200"]


def test_range_sets_from_cache_when_no_config(tmp_path: Path) -> None:
    data, cache, confdir = setup(tmp_path)
    (confdir / "10-leasenet.conflist").unlink()
    recs = collect(str(data), str(cache), str(confdir))
    assert {r["ip"]: r["rangeSet"] for r in recs}["fd60::3"] == 1
    # a conf dir libcni cannot load from (a broken file first) falls back the same way
    (confdir / "00-broken.conflist").write_text("{")
    recs = collect(str(data), str(cache), str(confdir))
    assert {r["ip"]: r["rangeSet"] for r in recs}["fd60::3"] == 1


def test_unusable_ipam_config_leaves_the_range_set_unknown(tmp_path: Path) -> None:
    data, cache, confdir = setup(tmp_path)
    conf = confdir / "10-leasenet.conflist"
    conf.write_text(conf.read_text().replace('"10.60.0.0/24"', '"not-a-subnet"'))
    (cache / "results").rename(tmp_path / "no-cache")
    recs = collect(str(data), str(cache), str(confdir))
    assert {r["rangeSet"] for r in recs} == {None}
    assert len(recs) == 5


def test_cli_json_and_table(tmp_path: Path) -> None:
    data, cache, confdir = setup(tmp_path)
    runner = CliRunner()
    args = ["--data-dir", str(data), "--cache-dir", str(cache), "--cni-conf-dir", str(confdir)]
    res = runner.invoke(command, ["leasenet", *args])  # not a terminal: JSON
    assert res.exit_code == 0, res.output
    recs = json.loads(res.output)
    assert sum(r["stale"] for r in recs) == 3
    res = runner.invoke(command, [*args, "-o", "table"])
    assert res.exit_code == 0, res.output
    assert "STALE" in res.output and "fd60::3" in res.output
    res = runner.invoke(command, ["other", *args, "-o", "json"])
    assert res.exit_code == 0 and json.loads(res.output) == []
    # a path-like name is refused, never looked up outside the data dir
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "10.9.9.9").write_text("x\r\neth0")
    res = runner.invoke(command, ["../outside", *args, "-o", "json"])
    assert res.exit_code != 0 and "invalid characters" in res.output
    assert "10.9.9.9" not in res.output


def test_a_network_keeping_its_leases_elsewhere_is_found(tmp_path: Path) -> None:
    data, cache, confdir = setup(tmp_path)
    default = tmp_path / "default-data"  # --data-dir: the network is not under it
    default.mkdir()
    records = collect(str(default), str(cache), str(confdir))
    assert {r["network"] for r in records} == {"leasenet"}
    assert {r["dataDir"] for r in records} == {str(data)}
    assert sorted(r["ip"] for r in records if r["rangeSet"] == 0)[:1] == ["10.60.0.2"]
    assert collect(str(default), str(cache), str(confdir), "leasenet") == records


def test_flannel_range_sets_come_from_its_subnet_env(tmp_path: Path) -> None:
    confdir, data = tmp_path / "net.d", tmp_path / "data"
    confdir.mkdir()
    subnet = tmp_path / "subnet.env"
    subnet.write_text(
        "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\n"
        "FLANNEL_IPV6_NETWORK=fd10::/48\nFLANNEL_IPV6_SUBNET=fd10:0:17::1/64\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    )
    conflist = {
        "cniVersion": "0.3.1",
        "name": "cbr0",
        "plugins": [{"type": "flannel", "subnetFile": str(subnet)}],
    }
    (confdir / "10-flannel.conflist").write_text(json.dumps(conflist))
    leases = data / "cbr0"
    leases.mkdir(parents=True)
    (leases / "10.1.17.5").write_text("c1\r\neth0")
    (leases / "fd10:0:17::5").write_text("c1\r\neth0")
    (leases / "10.9.9.9").write_text("c2\r\neth0")
    records = {r["ip"]: r["rangeSet"] for r in collect(str(data), str(tmp_path), str(confdir))}
    assert records == {"10.1.17.5": 0, "fd10:0:17::5": 1, "10.9.9.9": None}
