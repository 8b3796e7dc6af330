"""CNIConfig list operations against a fake executor: exact request bytes, env, order,
prevResult chaining and the cache, without running any process."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from cnitool.invoke import PluginExecError, VersionInfo
from cnitool.libcni.api import CNIConfig, PluginErrors
from cnitool.libcni.config import NetworkConfigList, conf_list_from_bytes
from cnitool.libcni.runtime import RuntimeConf
from cnitool.spec.errors import CNIError

Reply = Callable[[str, dict[str, Any], Mapping[str, str]], bytes]


class FakeExecutor:
    """Records every call; answers with ``replies[type]`` (bytes or a callable)."""

    def __init__(self, replies: dict[str, bytes | Reply | CNIError] | None = None) -> None:
        self.replies = replies or {}
        self.calls: list[tuple[str, str, bytes, dict[str, str]]] = []
        self.versions: dict[str, tuple[str, ...]] = {}

    def find(self, plugin_type: str, paths: Sequence[str]) -> str:
        if plugin_type == "missing":
            raise CNIError(f'failed to find plugin "missing" in path [{" ".join(paths)}]')
        return f"/fake/{plugin_type}"

    def exec(self, plugin_path: str, stdin: bytes, env: Mapping[str, str]) -> bytes:
        ptype = plugin_path.rsplit("/", 1)[1]
        self.calls.append((ptype, env["CNI_COMMAND"], stdin, dict(env)))
        reply = self.replies.get(ptype, b"")
        if isinstance(reply, CNIError):
            raise reply
        if callable(reply):
            return reply(env["CNI_COMMAND"], json.loads(stdin), env)
        return reply if env["CNI_COMMAND"] == "ADD" else b""

    def version_info(self, plugin_path: str, env: Mapping[str, str]) -> VersionInfo:
        ptype = plugin_path.rsplit("/", 1)[1]
        return VersionInfo("1.1.0", self.versions.get(ptype, ("0.4.0", "1.0.0", "1.1.0")))

    def commands(self) -> list[tuple[str, str]]:
        return [(c[0], c[1]) for c in self.calls]

    def stdin(self, index: int) -> dict[str, Any]:
        return json.loads(self.calls[index][2])  # type: ignore[no-any-return]


def netlist(
    version: str = "1.0.0", plugins: list[dict[str, Any]] | None = None, **extra: Any
) -> NetworkConfigList:
    obj: dict[str, Any] = {"cniVersion": version, "name": "net1"}
    obj.update(extra)
    obj["plugins"] = plugins or [
        {
            "type": "bridge",
            "bridge": "cni0",
            "ipam": {"type": "host-local", "subnet": "10.1.0.0/16"},
        },
        {
            "type": "portmap",
            "capabilities": {"portMappings": True, "ipRanges": False},
            "snat": True,
        },
    ]
    return conf_list_from_bytes(json.dumps(obj).encode() + b"\n")


RESULT_1 = (
    b'{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],'
    b'"ips":[{"interface":0,"address":"10.1.0.2/16","gateway":"10.1.0.1"}],'
    b'"routes":[{"dst":"0.0.0.0/0"}]}'
)

PORTS = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]


def rt(**kw: Any) -> RuntimeConf:
    base: dict[str, Any] = {"container_id": "ctr1", "netns": "/run/netns/x", "ifname": "eth0"}
    base.update(kw)
    return RuntimeConf(**base)


def make(tmp_path: Path, fake: FakeExecutor, **kw: Any) -> CNIConfig:
    return CNIConfig(
        ["/opt/cni/bin", "/usr/lib/cni"],
        str(tmp_path / "cache"),
        env={"PATH": "/bin", "CNI_IFNAME": "stale"},
        executor=fake,
        **kw,
    )


# --------------------------------------------------------------------------- requests


def test_add_request_bytes_and_env(tmp_path: Path) -> None:
    fake = FakeExecutor(
        {"bridge": RESULT_1, "portmap": lambda c, conf, e: json.dumps(conf["prevResult"]).encode()}
    )
    cni = make(tmp_path, fake)
    runtime = rt(
        args=[("IgnoreUnknown", "1"), ("K8S_POD_NAME", "p")],
        capability_args={"portMappings": PORTS, "ipRanges": [[{"subnet": "10.9.0.0/24"}]]},
    )
    result = cni.add_network_list(netlist(), runtime)

    assert fake.commands() == [("bridge", "ADD"), ("portmap", "ADD")]
    assert fake.calls[0][2] == (
        b'{"bridge":"cni0","cniVersion":"1.0.0","ipam":{"subnet":"10.1.0.0/16","type":"host-local"},'
        b'"name":"net1","type":"bridge"}'
    )
    # portmap: capabilities kept, only the declared-true capability injected, and the
    # whole object (prevResult included) sorted because runtimeConfig was injected
    assert fake.calls[1][2] == (
        b'{"capabilities":{"ipRanges":false,"portMappings":true},"cniVersion":"1.0.0","name":"net1",'
        b'"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],'
        b'"ips":[{"address":"10.1.0.2/16","gateway":"10.1.0.1","interface":0}],'
        b'"routes":[{"dst":"0.0.0.0/0"}]},'
        b'"runtimeConfig":{"portMappings":[{"containerPort":80,"hostPort":8080,"protocol":"tcp"}]},'
        b'"snat":true,"type":"portmap"}'
    )
    env = fake.calls[0][3]
    assert env == {
        "PATH": "/bin",
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "ctr1",
        "CNI_NETNS": "/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=p",
        "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
    }
    assert result is not None and result["ips"][0]["address"] == "10.1.0.2/16"


def test_prev_result_keeps_result_order_without_runtime_config(tmp_path: Path) -> None:
    plugins = [{"type": "bridge"}, {"type": "tuning", "mtu": 1.50e3, "z": {"b": 1, "a": 2.5}}]
    fake = FakeExecutor({"bridge": RESULT_1, "tuning": RESULT_1})
    make(tmp_path, fake).add_network_list(netlist(plugins=plugins), rt())
    assert fake.calls[1][2] == (
        b'{"cniVersion":"1.0.0","mtu":1500,"name":"net1",'
        b'"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],'
        b'"ips":[{"interface":0,"address":"10.1.0.2/16","gateway":"10.1.0.1"}],'
        b'"routes":[{"dst":"0.0.0.0/0"}]},'
        b'"type":"tuning","z":{"a":2.5,"b":1}}'
    )


def test_static_runtime_config_survives_empty_intersection(tmp_path: Path) -> None:
    plugins = [
        {"type": "a", "capabilities": {"mac": True}, "runtimeConfig": {"mac": "static"}},
        {"type": "b", "capabilities": {"mac": True}, "runtimeConfig": {"other": 1}},
    ]
    fake = FakeExecutor()
    cni = make(tmp_path, fake)
    cni.add_network_list(netlist(plugins=plugins), rt())
    assert fake.stdin(0)["runtimeConfig"] == {"mac": "static"}
    fake.calls.clear()
    cni.add_network_list(netlist(plugins=plugins), rt(capability_args={"mac": "c2:11:22:33:44:55"}))
    # a runtime value replaces the whole static runtimeConfig
    assert fake.stdin(0)["runtimeConfig"] == {"mac": "c2:11:22:33:44:55"}
    assert fake.stdin(1)["runtimeConfig"] == {"mac": "c2:11:22:33:44:55"}


def test_first_add_has_no_prev_result_key(tmp_path: Path) -> None:
    fake = FakeExecutor({"bridge": RESULT_1})
    make(tmp_path, fake).add_network_list(netlist(), rt())
    assert "prevResult" not in fake.stdin(0) and "runtimeConfig" not in fake.stdin(0)


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("kw", "code", "text"),
    [
        ({"container_id": ""}, 3, "missing containerID"),
        ({"container_id": "-bad"}, 4, "invalid characters in containerID"),
        ({"ifname": "a/b"}, 4, "interface name contains"),
        ({"ifname": "x" * 16}, 4, "interface name is too long"),
    ],
)
def test_bad_names_fail_before_any_exec(
    tmp_path: Path, kw: dict[str, Any], code: int, text: str
) -> None:
    fake = FakeExecutor({"bridge": RESULT_1})
    cni = make(tmp_path, fake)
    for op in (cni.add_network_list, cni.del_network_list, cni.check_network_list):
        with pytest.raises(CNIError) as exc:
            op(netlist(), rt(**kw))
        assert exc.value.code == code and text in str(exc.value)
    assert fake.calls == []


def test_bad_network_name(tmp_path: Path) -> None:
    fake = FakeExecutor()
    net = netlist()
    net.name = "bad name"
    with pytest.raises(CNIError) as exc:
        make(tmp_path, fake).add_network_list(net, rt())
    assert exc.value.code == 7 and fake.calls == []


# --------------------------------------------------------------------------- ADD / errors


def test_add_stops_at_first_error_and_wraps_it(tmp_path: Path) -> None:
    plugins = [{"type": "bridge", "name": "inner"}, {"type": "portmap"}]
    fake = FakeExecutor({"bridge": CNIError("no more addresses", "range 0", code=11)})
    cni = make(tmp_path, fake)
    with pytest.raises(PluginExecError) as exc:
        cni.add_network_list(netlist(plugins=plugins), rt())
    err = exc.value
    assert str(err) == 'plugin type="bridge" name="inner" failed (add): no more addresses; range 0'
    assert (err.code, err.plugin, err.verb) == (11, "bridge", "add")
    assert fake.commands() == [("bridge", "ADD")]
    assert cni.cached_attachments() == []  # nothing cached after a failed ADD


def test_add_unknown_plugin(tmp_path: Path) -> None:
    fake = FakeExecutor()
    with pytest.raises(PluginExecError) as exc:
        make(tmp_path, fake).add_network_list(netlist(plugins=[{"type": "missing"}]), rt())
    assert str(exc.value) == (
        'plugin type="missing" failed (add): failed to find plugin "missing" in path '
        "[/opt/cni/bin /usr/lib/cni]"
    )


def test_add_bad_result_is_a_plugin_error(tmp_path: Path) -> None:
    fake = FakeExecutor({"bridge": b'{"cniVersion":"1.0.0","ips":"nope"}'})
    with pytest.raises(PluginExecError) as exc:
        make(tmp_path, fake).add_network_list(netlist(plugins=[{"type": "bridge"}]), rt())
    assert exc.value.code == 6 and exc.value.verb == "add"


# --------------------------------------------------------------------------- CHECK / DEL


def test_check_and_del_get_cached_result_converted(tmp_path: Path) -> None:
    fake = FakeExecutor({"bridge": RESULT_1, "portmap": RESULT_1})
    cni = make(tmp_path, fake)
    net = netlist("0.4.0")
    cni.add_network_list(net, rt(capability_args={"portMappings": PORTS}))
    cache_file = Path(cni.cache.file_path("net1", "ctr1", "eth0"))
    assert cache_file.exists()
    fake.calls.clear()
    cni.check_network_list(net, rt(capability_args={"portMappings": PORTS}))
    cni.del_network_list(net, rt(capability_args={"portMappings": PORTS}))
    assert fake.commands() == [
        ("bridge", "CHECK"),
        ("portmap", "CHECK"),
        ("portmap", "DEL"),
        ("bridge", "DEL"),
    ]
    for i in range(4):
        prev = fake.stdin(i)["prevResult"]
        assert prev["cniVersion"] == "0.4.0"
        assert prev["ips"][0]["version"] == "4"  # converted from the cached 1.0.0 result
    assert fake.stdin(2)["runtimeConfig"] == {"portMappings": PORTS}
    assert not cache_file.exists()


def test_check_refused_below_040(tmp_path: Path) -> None:
    fake = FakeExecutor()
    with pytest.raises(CNIError) as exc:
        make(tmp_path, fake).check_network_list(netlist("0.3.1"), rt())
    assert str(exc.value) == 'configuration version "0.3.1" does not support the CHECK command'
    assert fake.calls == []


def test_check_disabled_is_a_no_op(tmp_path: Path) -> None:
    fake = FakeExecutor()
    make(tmp_path, fake).check_network_list(netlist(disableCheck=True), rt())
    assert fake.calls == []


def test_check_without_cache_omits_prev_result(tmp_path: Path) -> None:
    fake = FakeExecutor()
    make(tmp_path, fake).check_network_list(netlist(), rt())
    assert "prevResult" not in fake.stdin(0)


def test_del_below_040_sends_no_prev_result(tmp_path: Path) -> None:
    fake = FakeExecutor({"bridge": RESULT_1, "portmap": RESULT_1})
    cni = make(tmp_path, fake)
    net = netlist("0.3.1")
    cni.add_network_list(net, rt())
    fake.calls.clear()
    cni.del_network_list(net, rt())
    assert [("prevResult" in fake.stdin(i)) for i in range(2)] == [False, False]
    assert cni.cached_attachments() == []


def test_del_failure_keeps_cache_and_reports(tmp_path: Path) -> None:
    fake = FakeExecutor({"bridge": RESULT_1})
    cni = make(tmp_path, fake)
    net = netlist()
    cni.add_network_list(net, rt())
    fake.replies["bridge"] = CNIError("link busy")
    with pytest.raises(PluginExecError) as exc:
        cni.del_network_list(net, rt())
    assert str(exc.value) == 'plugin type="bridge" failed (delete): link busy'
    assert [c for c in fake.commands() if c[1] == "DEL"] == [("portmap", "DEL"), ("bridge", "DEL")]
    assert len(cni.cached_attachments("ctr1")) == 1  # kept so DEL can be retried


def test_rollback_dels_every_plugin_past_failures_and_lists_them(tmp_path: Path) -> None:
    fake = FakeExecutor({"bridge": CNIError("link busy", code=11), "portmap": CNIError("no")})
    cni = make(tmp_path, fake)
    errors = cni.rollback_add(netlist(), rt())
    # portmap failed first, and bridge was still asked: nothing is left for lack of trying
    assert fake.commands() == [("portmap", "DEL"), ("bridge", "DEL")]
    assert [str(e) for e in errors] == [
        'plugin type="portmap" failed (delete): no',
        'plugin type="bridge" failed (delete): link busy',
    ]
    assert errors.code() == 999
    fake.replies = {"bridge": RESULT_1}
    cni.add_network_list(netlist(), rt())  # a cached attachment, as after a failed cache write
    assert len(cni.rollback_add(netlist(), rt())) == 0
    assert cni.cached_attachments("ctr1") == []  # every DEL succeeded: the entry is gone


def test_del_tolerates_corrupt_cache(tmp_path: Path) -> None:
    fake = FakeExecutor()
    stderr = io.BytesIO()
    cni = make(tmp_path, fake, stderr=stderr)
    path = Path(cni.cache.file_path("net1", "ctr1", "eth0"))
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    cni.del_network_list(netlist(), rt())
    assert fake.commands() == [("portmap", "DEL"), ("bridge", "DEL")]
    assert "prevResult" not in fake.stdin(0)
    assert b"warning: ignoring unreadable cached result" in stderr.getvalue()
    assert not path.exists()


def test_del_without_cache_works(tmp_path: Path) -> None:
    fake = FakeExecutor()
    make(tmp_path, fake).del_network_list(netlist(), rt())
    assert fake.commands() == [("portmap", "DEL"), ("bridge", "DEL")]


# --------------------------------------------------------------------------- STATUS


def test_status_below_110_is_skipped(tmp_path: Path) -> None:
    fake = FakeExecutor()
    make(tmp_path, fake).get_status_network_list(netlist("1.0.0"))
    assert fake.calls == []


def test_status_stops_at_first_error_keeping_code(tmp_path: Path) -> None:
    plugins = [{"type": "a", "capabilities": {"x": True}}, {"type": "b"}, {"type": "c"}]
    fake = FakeExecutor({"b": CNIError("not ready", code=50)})
    with pytest.raises(PluginExecError) as exc:
        make(tmp_path, fake).get_status_network_list(netlist("1.1.0", plugins=plugins))
    assert exc.value.code == 50 and exc.value.verb == "status"
    assert fake.commands() == [("a", "STATUS"), ("b", "STATUS")]
    assert (
        fake.calls[0][2]
        == b'{"capabilities":{"x":true},"cniVersion":"1.1.0","name":"net1","type":"a"}'
    )
    env = fake.calls[0][3]
    assert (env["CNI_CONTAINERID"], env["CNI_NETNS"], env["CNI_IFNAME"], env["CNI_ARGS"]) == (
        "",
    ) * 4


# --------------------------------------------------------------------------- GC


def seed_attachments(cni: CNIConfig, fake: FakeExecutor, net: NetworkConfigList) -> None:
    other = netlist(net.cni_version)
    other.name = "other"
    for cid in ("a", "b"):
        cni.add_network_list(
            net, rt(container_id=cid, netns=f"/run/netns/{cid}", args=[("K", cid)])
        )
    cni.add_network_list(other, rt(container_id="c"))
    fake.calls.clear()


def test_gc_deletes_stale_attachments_and_sends_gc(tmp_path: Path) -> None:
    fake = FakeExecutor({"bridge": RESULT_1, "portmap": RESULT_1})
    cni = make(tmp_path, fake)
    net = netlist("1.1.0")
    seed_attachments(cni, fake, net)
    cni.gc_network_list(net, [("a", "eth0")])
    assert fake.commands() == [
        ("portmap", "DEL"),
        ("bridge", "DEL"),
        ("bridge", "GC"),
        ("portmap", "GC"),
    ]
    env = fake.calls[0][3]
    assert (env["CNI_CONTAINERID"], env["CNI_NETNS"], env["CNI_ARGS"]) == (
        "b",
        "/run/netns/b",
        "K=b",
    )
    gc = fake.stdin(2)
    assert gc["cni.dev/valid-attachments"] == [{"containerID": "a", "ifname": "eth0"}]
    assert gc["cni.dev/attachments"] == gc["cni.dev/valid-attachments"]
    assert "prevResult" not in gc and "runtimeConfig" not in gc
    assert sorted((a.network, a.container_id) for a in cni.cached_attachments()) == [
        ("net1", "a"),
        ("other", "c"),
    ]


def test_gc_without_valid_list_deletes_all_and_omits_key(tmp_path: Path) -> None:
    fake = FakeExecutor({"bridge": RESULT_1, "portmap": RESULT_1})
    cni = make(tmp_path, fake)
    net = netlist("1.1.0")
    seed_attachments(cni, fake, net)
    cni.gc_network_list(net, None)
    assert [c for c in fake.commands() if c[1] == "DEL"] == [
        ("portmap", "DEL"),
        ("bridge", "DEL"),
    ] * 2
    assert "cni.dev/valid-attachments" not in fake.stdin(4)
    assert [a.network for a in cni.cached_attachments()] == ["other"]


def test_gc_below_110_only_deletes(tmp_path: Path) -> None:
    fake = FakeExecutor({"bridge": RESULT_1})
    cni = make(tmp_path, fake)
    net = netlist("1.0.0")
    seed_attachments(cni, fake, net)
    cni.gc_network_list(net, None)
    assert {c[1] for c in fake.commands()} == {"DEL"}


def test_gc_disabled(tmp_path: Path) -> None:
    fake = FakeExecutor({"bridge": RESULT_1})
    cni = make(tmp_path, fake)
    net = netlist("1.1.0", disableGC=True)
    seed_attachments(cni, fake, net)
    cni.gc_network_list(net, None)
    assert fake.calls == []


def test_gc_with_unreadable_cache_warns_and_still_sends_gc(tmp_path: Path) -> None:
    fake = FakeExecutor()
    err = io.BytesIO()
    cni = make(tmp_path, fake, stderr=err)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "results").write_text("not a directory")
    cni.gc_network_list(netlist("1.1.0"), None)
    assert fake.commands() == [("bridge", "GC"), ("portmap", "GC")]
    warning = err.getvalue().decode()
    assert warning.startswith("warning: not deleting stale attachments: ")
    assert "failed to list cache directory" in warning


def test_gc_continues_and_reports_every_error(tmp_path: Path) -> None:
    fake = FakeExecutor({"bridge": RESULT_1})
    cni = make(tmp_path, fake)
    net = netlist("1.1.0")
    seed_attachments(cni, fake, net)
    fake.replies["portmap"] = CNIError("portmap broken")
    with pytest.raises(PluginErrors) as exc:
        cni.gc_network_list(net, None)
    text = str(exc.value)
    assert "failed to delete stale attachment a eth0" in text
    assert "failed to delete stale attachment b eth0" in text
    assert 'plugin type="portmap" failed (gc): portmap broken' in text
    assert len(exc.value.errors) == 3
    assert ("bridge", "GC") in fake.commands()  # later plugins still ran


# --------------------------------------------------------------------------- versions


def test_validate_returns_enabled_capabilities(tmp_path: Path) -> None:
    plugins = [
        {"type": "a", "capabilities": {"portMappings": True, "mac": False}},
        {"type": "b", "capabilities": {"bandwidth": True, "portMappings": True}},
    ]
    fake = FakeExecutor()
    assert make(tmp_path, fake).validate_network_list(netlist(plugins=plugins)) == [
        "bandwidth",
        "portMappings",
    ]


def test_validate_lists_every_unsupported_plugin(tmp_path: Path) -> None:
    fake = FakeExecutor()
    fake.versions = {"a": ("0.3.1",), "b": ("0.4.0",)}
    plugins = [{"type": "a"}, {"type": "b"}, {"type": "c"}]
    with pytest.raises(PluginErrors) as exc:
        make(tmp_path, fake).validate_network_list(netlist("1.0.0", plugins=plugins))
    text = str(exc.value)
    assert 'plugin a does not support config version "1.0.0"' in text
    assert 'plugin b does not support config version "1.0.0"' in text
    assert "plugin c" not in text
    assert exc.value.code == 1


def test_validate_empty_version_means_010(tmp_path: Path) -> None:
    fake = FakeExecutor()
    fake.versions = {"a": ("0.1.0",)}
    net = netlist(plugins=[{"type": "a"}])
    net.cni_version = ""
    assert make(tmp_path, fake).validate_network_list(net) == []


def test_add_reports_cache_write_failure(tmp_path: Path) -> None:
    fake = FakeExecutor({"bridge": RESULT_1})
    (tmp_path / "cache").write_text("a file where the cache dir should be")
    with pytest.raises(CNIError, match='failed to set network "net1" cached result'):
        make(tmp_path, fake).add_network_list(netlist(plugins=[{"type": "bridge"}]), rt())


def test_add_refuses_a_version_del_could_not_compare(tmp_path: Path) -> None:
    """Found by fuzzing: an ADD under an unparseable cniVersion made an attachment that
    no DEL through the same list could remove. ADD now refuses it before any plugin runs,
    and DEL goes on without the cached result."""
    fake = FakeExecutor({"bridge": RESULT_1})
    cni = make(tmp_path, fake)
    with pytest.raises(CNIError, match='invalid cniVersion "X1"') as err:
        cni.add_network_list(netlist("X1"), rt())
    assert err.value.code == 7 and fake.calls == []
    cni.add_network_list(netlist(), rt())  # cached under 1.0.0
    cni.del_network_list(netlist("X1"), rt())  # the list was edited since: DEL still runs
    assert [c[:2] for c in fake.commands()[-2:]] == [("portmap", "DEL"), ("bridge", "DEL")]
    assert cni.cached_attachments("ctr1") == []
