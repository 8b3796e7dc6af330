"""The result cache, checked against a file written by the Go libcni 1.1.2."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from cnitool.libcni.cache import CacheCorruptError, ResultCache
from cnitool.libcni.config import conf_list_from_bytes, load_conf_list
from cnitool.libcni.runtime import RuntimeConf
from cnitool.spec.errors import CNIError

# The conflist the Go program loaded (reference Appendix A elides the middle of its base64;
# these bytes reproduce its visible beginning and end).
GO_CONFLIST = (
    b'{"cniVersion":"1.0.0","name":"hlnet","plugins":[{"type":"host-local",'
    b'"dataDir":"/tmp/hl","ranges":[[{"subnet":"10.99.0.0/24"}]]}]}\n'
)
GO_LINE_TEMPLATE = (
    '{"kind":"cniCacheV1","containerId":"ctr1","config":"CONFIG","ifName":"eth0",'
    '"networkName":"hlnet","cniArgs":[["IgnoreUnknown","1"],["K8S_POD_NAME","p"]],'
    '"capabilityArgs":{"portMappings":[]},"result":{"cniVersion":"1.0.0","dns":{},'
    '"ips":[{"address":"10.99.0.2/24","gateway":"10.99.0.1"}]}}'
)
GO_LINE = GO_LINE_TEMPLATE.replace("CONFIG", base64.b64encode(GO_CONFLIST).decode()).encode()
# what host-local printed (plugin order, not sorted)
PLUGIN_RESULT = {
    "cniVersion": "1.0.0",
    "ips": [{"gateway": "10.99.0.1", "address": "10.99.0.2/24"}],
    "dns": {},
}


def go_rt(**kw: Any) -> RuntimeConf:
    base: dict[str, Any] = {
        "container_id": "ctr1",
        "netns": "",
        "ifname": "eth0",
        "args": [("IgnoreUnknown", "1"), ("K8S_POD_NAME", "p")],
        "capability_args": {"portMappings": []},
    }
    base.update(kw)
    return RuntimeConf(**base)


def test_reconstructed_config_matches_the_visible_base64() -> None:
    encoded = base64.b64encode(GO_CONFLIST).decode()
    assert encoded.startswith("eyJjbmlWZXJzaW9uIjoiMS4wLjAi")
    assert encoded.endswith("fQo=")


def test_go_written_file_loads(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "hlnet-ctr1-eth0").write_bytes(GO_LINE)
    entry = ResultCache(str(tmp_path)).load("hlnet", "ctr1", "eth0")
    assert entry is not None and not entry.legacy
    assert (entry.container_id, entry.network, entry.ifname) == ("ctr1", "hlnet", "eth0")
    assert entry.config == GO_CONFLIST
    assert entry.netns == ""
    assert entry.cni_args == [("IgnoreUnknown", "1"), ("K8S_POD_NAME", "p")]
    assert entry.capability_args == {"portMappings": []}
    assert entry.result is not None
    assert entry.result["ips"] == [{"address": "10.99.0.2/24", "gateway": "10.99.0.1"}]
    assert entry.path == str(results / "hlnet-ctr1-eth0")


def test_save_reproduces_the_go_file_byte_for_byte(tmp_path: Path) -> None:
    (tmp_path / "net.d").mkdir()
    (tmp_path / "net.d" / "hl.conflist").write_bytes(GO_CONFLIST)
    net = load_conf_list(str(tmp_path / "net.d"), "hlnet")
    cache = ResultCache(str(tmp_path / "cache"))
    cache.save(net, go_rt(), PLUGIN_RESULT)
    written = (tmp_path / "cache" / "results" / "hlnet-ctr1-eth0").read_bytes()
    assert written == GO_LINE
    assert list(json.loads(written)) == [
        "kind",
        "containerId",
        "config",
        "ifName",
        "networkName",
        "cniArgs",
        "capabilityArgs",
        "result",
    ]


def test_netns_written_after_network_name_and_empty_fields_omitted(tmp_path: Path) -> None:
    net = conf_list_from_bytes(GO_CONFLIST)
    cache = ResultCache(str(tmp_path))
    rt = RuntimeConf("ctr1", "/run/netns/pod1", "eth0")
    cache.save(net, rt, {})
    obj = json.loads((tmp_path / "results" / "hlnet-ctr1-eth0").read_bytes())
    assert list(obj) == ["kind", "containerId", "config", "ifName", "networkName", "netns"]
    assert obj["netns"] == "/run/netns/pod1"


def test_round_trip_sorts_nested_keys_and_respells_numbers(tmp_path: Path) -> None:
    net = conf_list_from_bytes(GO_CONFLIST)
    cache = ResultCache(str(tmp_path))
    caps = {"bandwidth": {"ingressRate": 1.0e6, "egressBurst": 5}, "aliases": ["<a&b>"]}
    result = {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "mac": "aa", "sandbox": "/x"}]}
    cache.save(net, go_rt(netns="/run/netns/p", capability_args=caps), result)
    raw = (tmp_path / "results" / "hlnet-ctr1-eth0").read_text()
    assert (
        '"capabilityArgs":{"aliases":["\\u003ca\\u0026b\\u003e"],"bandwidth":{"egressBurst":5,"ingressRate":1000000}}'
        in raw
    )
    assert '"interfaces":[{"mac":"aa","name":"eth0","sandbox":"/x"}]' in raw
    entry = cache.load("hlnet", "ctr1", "eth0")
    assert entry is not None
    assert entry.netns == "/run/netns/p"
    assert entry.result == result
    assert entry.capability_args["aliases"] == ["<a&b>"]


def test_permissions_and_no_leftover_temp_files(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache = ResultCache(str(cache_dir))
    net = conf_list_from_bytes(GO_CONFLIST)
    cache.save(net, go_rt(), PLUGIN_RESULT)
    cache.save(net, go_rt(), PLUGIN_RESULT)  # overwrite goes through the same path
    results = cache_dir / "results"
    assert stat.S_IMODE(os.stat(cache_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(results).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(results / "hlnet-ctr1-eth0").st_mode) == 0o600
    assert os.listdir(results) == ["hlnet-ctr1-eth0"]


def test_missing_file_is_none_and_delete_is_idempotent(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    assert cache.load("hlnet", "ctr1", "eth0") is None
    cache.delete("hlnet", "ctr1", "eth0")
    cache.save(conf_list_from_bytes(GO_CONFLIST), go_rt(), PLUGIN_RESULT)
    cache.delete("hlnet", "ctr1", "eth0")
    cache.delete("hlnet", "ctr1", "eth0")
    assert cache.load("hlnet", "ctr1", "eth0") is None


def test_delete_on_a_read_only_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """unlink says EROFS on a read-only mount even for a missing name: nothing cached is
    no error there, while a cached entry that cannot go still is one."""
    import errno

    def read_only(path: str) -> None:
        raise OSError(errno.EROFS, "Read-only file system", path)

    cache = ResultCache(str(tmp_path))
    monkeypatch.setattr(os, "unlink", read_only)
    cache.delete("hlnet", "ctr1", "eth0")
    monkeypatch.undo()
    cache.save(conf_list_from_bytes(GO_CONFLIST), go_rt(), PLUGIN_RESULT)
    monkeypatch.setattr(os, "unlink", read_only)
    with pytest.raises(CNIError, match="failed to remove cache file .*Read-only file system"):
        cache.delete("hlnet", "ctr1", "eth0")


def test_a_cache_dir_that_is_a_file_holds_no_entries(tmp_path: Path) -> None:
    (tmp_path / "results").write_text("not a directory")
    cache = ResultCache(str(tmp_path))
    assert cache.load("hlnet", "ctr1", "eth0") is None
    cache.delete("hlnet", "ctr1", "eth0")  # nothing can be there: not an error
    with pytest.raises(CNIError, match="cache directory"):
        cache.save(conf_list_from_bytes(GO_CONFLIST), go_rt(), PLUGIN_RESULT)


def test_legacy_file_is_a_bare_result(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    legacy = {"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.0.0.2/24"}]}
    (tmp_path / "results" / "net-c1-eth0").write_text(json.dumps(legacy))
    entry = ResultCache(str(tmp_path)).load("net", "c1", "eth0")
    assert entry is not None and entry.legacy
    assert entry.result == legacy
    assert (entry.network, entry.container_id, entry.ifname) == ("net", "c1", "eth0")
    assert entry.config == b"" and entry.cni_args == []


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n",
        b'{"kind":"cniCacheV1","containerId":"c1"',
        b"[1,2]",
        b'{"kind":"cniCacheV1","config":"%%%"}',
        b'{"kind":"cniCacheV1","cniArgs":[["a"]]}',
        b'{"kind":"cniCacheV1","result":[]}',
    ],
)
def test_corrupt_file_raises_a_cni_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "results").mkdir()
    path = tmp_path / "results" / "net-c1-eth0"
    path.write_bytes(content)
    with pytest.raises(CacheCorruptError) as info:
        ResultCache(str(tmp_path)).load("net", "c1", "eth0")
    assert isinstance(info.value, CNIError)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("network", "cid", "ifname"),
    [
        ("../x", "c1", "eth0"),
        ("net", "../../etc", "eth0"),
        ("net", "c1", "../x"),
        ("net", "", "eth0"),
    ],
)
def test_names_are_validated_before_any_path_is_built(
    tmp_path: Path, network: str, cid: str, ifname: str
) -> None:
    cache = ResultCache(str(tmp_path / "cache"))
    with pytest.raises(CNIError):
        cache.file_path(network, cid, ifname)
    with pytest.raises(CNIError):
        cache.load(network, cid, ifname)
    with pytest.raises(CNIError):
        cache.delete(network, cid, ifname)
    with pytest.raises(CNIError):
        save_as(cache, network, cid, ifname)
    assert not (tmp_path / "cache").exists()


def save_as(cache: ResultCache, network: str, cid: str, ifname: str) -> None:
    data = json.dumps({"cniVersion": "1.0.0", "name": network, "plugins": [{"type": "b"}]})
    cache.save(conf_list_from_bytes(data.encode()), RuntimeConf(cid, "/run/netns/x", ifname), {})


def test_attachments_listing_and_filtering(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    assert cache.attachments() == []
    save_as(cache, "b-net", "ctr1", "eth0")
    save_as(cache, "a-net", "ctr1", "eth1")
    save_as(cache, "a-net", "ctr2", "eth0")
    save_as(cache, "x-ctr1-y", "ctr9", "eth0")  # container id text inside a network name
    results = tmp_path / "results"
    (results / "legacy-ctr1-eth0").write_text('{"cniVersion":"0.3.1"}')
    (results / "broken-ctr1-eth0").write_text("{")
    (results / "noname-ctr1-eth0").write_text(
        '{"kind":"cniCacheV1","containerId":"ctr1","ifName":"eth0"}'
    )
    every = cache.attachments()
    assert [(a.network, a.container_id, a.ifname) for a in every] == [
        ("a-net", "ctr1", "eth1"),
        ("a-net", "ctr2", "eth0"),
        ("b-net", "ctr1", "eth0"),
        ("x-ctr1-y", "ctr9", "eth0"),
    ]
    assert all(a.netns == "/run/netns/x" and a.config for a in every)
    only = cache.attachments("ctr1")
    assert [(a.network, a.ifname) for a in only] == [("a-net", "eth1"), ("b-net", "eth0")]
    assert cache.attachments("ctr3") == []
