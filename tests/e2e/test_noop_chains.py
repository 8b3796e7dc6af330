"""CNIConfig driving real plugin processes: chains of the noop test plugin (installed as
a launcher), plus tiny shell plugins that hang or crash."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from cnitool import launchers
from cnitool.invoke import PluginExecError
from cnitool.libcni.api import CNIConfig, PluginErrors
from cnitool.libcni.config import NetworkConfigList, conf_list_from_bytes
from cnitool.libcni.runtime import RuntimeConf

pytestmark = pytest.mark.root

FIRST_RESULT = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "mac": "c2:11:22:33:44:55", "sandbox": "/run/netns/pod"}],
    "ips": [{"interface": 0, "address": "10.7.0.5/24", "gateway": "10.7.0.1"}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.7.0.1"}],
    "dns": {"nameservers": ["10.7.0.1"]},
}
PORTS = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]


@pytest.fixture(scope="module")
def noop_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bindir = tmp_path_factory.mktemp("bin")
    actions = launchers.install(str(bindir), ["noop"])
    assert [a.action for a in actions if a.name == "noop"] == ["installed"]
    return bindir


class Chain:
    """A list of noop plugins, each with its own debug file, sharing one command log."""

    def __init__(
        self,
        tmp: Path,
        version: str,
        reports: list[dict[str, Any]],
        caps: list[dict[str, bool] | None] | None = None,
    ) -> None:
        self.log = tmp / "commands.json"
        self.log.write_text("[]")
        plugins = []
        self.debug: list[Path] = []
        for i, report in enumerate(reports):
            dbg = tmp / f"debug{i}.json"
            dbg.write_text(json.dumps(report))
            self.debug.append(dbg)
            obj: dict[str, Any] = {
                "type": "noop",
                "debugFile": str(dbg),
                "commandLog": str(self.log),
                "index": i,
            }
            if caps and caps[i] is not None:
                obj["capabilities"] = caps[i]
            plugins.append(obj)
        raw = {"cniVersion": version, "name": "noopnet", "plugins": plugins}
        self.net: NetworkConfigList = conf_list_from_bytes(json.dumps(raw).encode())

    def calls(self) -> list[tuple[str, int, dict[str, Any]]]:
        """(command, plugin index, stdin config) of every recorded call, in order."""
        out = []
        for entry in json.loads(self.log.read_text()):
            conf = json.loads(base64.b64decode(entry["CmdArgs"]["StdinData"]))
            out.append((entry["Command"], conf["index"], conf))
        return out

    def entries(self) -> list[dict[str, Any]]:
        return json.loads(self.log.read_text())  # type: ignore[no-any-return]


def runtime(**kw: Any) -> RuntimeConf:
    base: dict[str, Any] = {"container_id": "pod1", "netns": "/run/netns/pod", "ifname": "eth0"}
    base.update(kw)
    return RuntimeConf(**base)


def cni_for(bindir: Path, tmp: Path, **kw: Any) -> CNIConfig:
    return CNIConfig([str(bindir)], str(tmp / "cache"), **kw)


def test_add_check_del_chain_at_100(noop_bin: Path, tmp_path: Path) -> None:
    chain = Chain(
        tmp_path,
        "1.0.0",
        [{"ReportResult": json.dumps(FIRST_RESULT)}, {"ReportResult": "PASSTHROUGH"}],
        caps=[None, {"portMappings": True, "bandwidth": True}],
    )
    stderr = io.BytesIO()
    cni = cni_for(noop_bin, tmp_path, stderr=stderr)
    rt = runtime(args=[("IgnoreUnknown", "1")], capability_args={"portMappings": PORTS, "mac": "x"})
    result = cni.add_network_list(chain.net, rt)
    assert result == FIRST_RESULT

    cache = Path(cni.cache.file_path("noopnet", "pod1", "eth0"))
    cached = json.loads(cache.read_text())
    assert cached["kind"] == "cniCacheV1" and cached["netns"] == "/run/netns/pod"
    assert cached["capabilityArgs"] == {"mac": "x", "portMappings": PORTS}
    assert base64.b64decode(cached["config"]) == chain.net.raw_bytes

    cni.check_network_list(chain.net, rt)
    cni.del_network_list(chain.net, rt)
    calls = chain.calls()
    assert [(c, i) for c, i, _ in calls] == [
        ("ADD", 0),
        ("ADD", 1),
        ("CHECK", 0),
        ("CHECK", 1),
        ("DEL", 1),
        ("DEL", 0),
    ]
    assert "prevResult" not in calls[0][2]
    assert calls[1][2]["prevResult"] == FIRST_RESULT
    for _, _, conf in calls[2:]:
        assert conf["prevResult"] == FIRST_RESULT
        assert conf["name"] == "noopnet" and conf["cniVersion"] == "1.0.0"
    # capability injection: only what plugin 1 declares and the runtime provides
    assert "runtimeConfig" not in calls[0][2]
    assert calls[1][2]["runtimeConfig"] == {"portMappings": PORTS}
    assert calls[1][2]["capabilities"] == {"bandwidth": True, "portMappings": True}
    args = chain.entries()[0]["CmdArgs"]
    assert (args["ContainerID"], args["Netns"], args["IfName"], args["Args"], args["Path"]) == (
        "pod1",
        "/run/netns/pod",
        "eth0",
        "IgnoreUnknown=1",
        str(noop_bin),
    )
    assert not cache.exists()
    # a second DEL (nothing cached any more) still succeeds and sends no prevResult
    chain.debug[1].write_text("{}")
    cni.del_network_list(chain.net, rt)
    assert all("prevResult" not in conf for c, _, conf in chain.calls()[6:])


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_versions(noop_bin: Path, tmp_path: Path, version: str) -> None:
    chain = Chain(
        tmp_path,
        version,
        [{"ReportResult": json.dumps(FIRST_RESULT)}, {"ReportResult": "PASSTHROUGH"}],
    )
    cni = cni_for(noop_bin, tmp_path)
    rt = runtime()
    result = cni.add_network_list(chain.net, rt)
    assert result is not None
    # the second plugin converted the 1.0.0 result to the list version
    assert result["cniVersion"] == version
    if version in ("0.3.1", "0.4.0"):
        assert result["ips"][0]["version"] == "4"
    if version == "0.3.1":
        with pytest.raises(Exception, match='configuration version "0.3.1" does not support'):
            cni.check_network_list(chain.net, rt)
    else:
        cni.check_network_list(chain.net, rt)
    chain.debug[1].write_text("{}")  # PASSTHROUGH needs a prevResult, which 0.3.1 DEL lacks
    cni.del_network_list(chain.net, rt)
    dels = [conf for c, _, conf in chain.calls() if c == "DEL"]
    assert len(dels) == 2
    for conf in dels:
        if version == "0.3.1":
            assert "prevResult" not in conf
        else:
            assert conf["prevResult"]["cniVersion"] == version
            assert conf["prevResult"]["ips"][0]["address"] == "10.7.0.5/24"


def test_status_and_gc_at_110(noop_bin: Path, tmp_path: Path) -> None:
    chain = Chain(tmp_path, "1.1.0", [{}, {"ReportResult": json.dumps(FIRST_RESULT)}])
    cni = cni_for(noop_bin, tmp_path)
    for cid in ("pod1", "pod2"):
        cni.add_network_list(chain.net, runtime(container_id=cid, args=[("K", cid)]))
    cni.get_status_network_list(chain.net)
    cni.gc_network_list(chain.net, [("pod1", "eth0")])
    calls = chain.calls()[4:]
    assert [(c, i) for c, i, _ in calls] == [
        ("STATUS", 0),
        ("STATUS", 1),
        ("DEL", 1),
        ("DEL", 0),
        ("GC", 0),
        ("GC", 1),
    ]
    assert set(calls[0][2]) == {"type", "debugFile", "commandLog", "index", "name", "cniVersion"}
    assert calls[2][2]["prevResult"]["ips"][0]["address"] == "10.7.0.5/24"
    assert calls[4][2]["cni.dev/valid-attachments"] == [{"containerID": "pod1", "ifname": "eth0"}]
    entries = chain.entries()[4:]
    assert entries[2]["CmdArgs"]["ContainerID"] == "pod2"
    assert entries[2]["CmdArgs"]["Args"] == "K=pod2"
    assert (entries[4]["CmdArgs"]["ContainerID"], entries[4]["CmdArgs"]["IfName"]) == ("", "")
    assert [a.container_id for a in cni.cached_attachments()] == ["pod1"]


def test_status_error_keeps_code(noop_bin: Path, tmp_path: Path) -> None:
    chain = Chain(tmp_path, "1.1.0", [{"ReportError": "not ready", "ReportErrorCode": 50}, {}])
    with pytest.raises(PluginExecError) as exc:
        cni_for(noop_bin, tmp_path).get_status_network_list(chain.net)
    assert exc.value.code == 50
    assert str(exc.value) == 'plugin type="noop" failed (status): not ready'
    assert [c for c, _, _ in chain.calls()] == ["STATUS"]


def test_plugin_error_stops_add(noop_bin: Path, tmp_path: Path) -> None:
    chain = Chain(
        tmp_path,
        "1.0.0",
        [
            {"ReportResult": json.dumps(FIRST_RESULT)},
            {"ReportError": "no luck", "ReportErrorCode": 117},
            {},
        ],
    )
    cni = cni_for(noop_bin, tmp_path)
    with pytest.raises(PluginExecError) as exc:
        cni.add_network_list(chain.net, runtime())
    assert (exc.value.code, exc.value.verb) == (117, "add")
    assert str(exc.value) == 'plugin type="noop" failed (add): no luck'
    assert [(c, i) for c, i, _ in chain.calls()] == [("ADD", 0), ("ADD", 1)]
    assert cni.cached_attachments() == []
    # rollback by the caller: DEL without a cache entry reaches every plugin
    chain.debug[1].write_text("{}")
    cni.del_network_list(chain.net, runtime())
    assert [(c, i) for c, i, _ in chain.calls()[2:]] == [("DEL", 2), ("DEL", 1), ("DEL", 0)]


def test_plugin_exit_code_and_stderr(noop_bin: Path, tmp_path: Path) -> None:
    chain = Chain(tmp_path, "1.0.0", [{"ReportStderr": "went wrong\n", "ExitWithCode": 3}])
    with pytest.raises(PluginExecError) as exc:
        cni_for(noop_bin, tmp_path).add_network_list(chain.net, runtime())
    assert str(exc.value) == (
        'plugin type="noop" failed (add): netplugin failed: "went wrong\\n": exit status 3'
    )


def test_stderr_of_successful_plugin_is_copied(noop_bin: Path, tmp_path: Path) -> None:
    chain = Chain(
        tmp_path, "1.0.0", [{"ReportResult": json.dumps(FIRST_RESULT), "ReportStderr": "hello\n"}]
    )
    sink = io.BytesIO()
    cni_for(noop_bin, tmp_path, stderr=sink).add_network_list(chain.net, runtime())
    assert sink.getvalue() == b"hello\n"


def test_version_info_and_validate(noop_bin: Path, tmp_path: Path) -> None:
    cni = cni_for(noop_bin, tmp_path)
    info = cni.get_version_info("noop")
    assert info.supported_versions[0] == "0.-42.0" and "1.1.0" in info.supported_versions
    chain = Chain(tmp_path, "1.0.0", [{}, {}], caps=[{"portMappings": True}, {"mac": True}])
    assert cni.validate_network_list(chain.net) == ["mac", "portMappings"]
    bad = Chain(tmp_path, "9.9.9", [{}])
    with pytest.raises(PluginExecError, match='does not support config version "9.9.9"'):
        cni.validate_network_list(bad.net)


def shell_plugin(bindir: Path, name: str, body: str) -> None:
    path = bindir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def one_plugin_list(ptype: str) -> NetworkConfigList:
    return conf_list_from_bytes(
        json.dumps({"cniVersion": "1.0.0", "name": "shnet", "plugins": [{"type": ptype}]}).encode()
    )


def test_hanging_plugin_times_out(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shell_plugin(bindir, "hang", "sleep 60 &\nsleep 60\n")
    cni = CNIConfig([str(bindir)], str(tmp_path / "cache"), timeout=1)
    start = time.monotonic()
    with pytest.raises(PluginExecError) as exc:
        cni.add_network_list(one_plugin_list("hang"), runtime())
    assert time.monotonic() - start < 10
    assert str(exc.value).startswith(
        f'plugin type="hang" failed (add): plugin "{bindir}/hang" timed out after 1s'
    )


def test_crashing_plugins(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shell_plugin(bindir, "suicide", "echo 'about to die' >&2\nkill -KILL $$\n")
    shell_plugin(bindir, "garbage", "echo 'Traceback: <garbage>'\nexit 2\n")
    cni = CNIConfig([str(bindir)], str(tmp_path / "cache"))
    with pytest.raises(PluginExecError) as exc:
        cni.add_network_list(one_plugin_list("suicide"), runtime())
    assert "was killed by signal SIGKILL" in str(exc.value)
    assert "about to die" in str(exc.value)
    with pytest.raises(PluginExecError) as exc:
        cni.del_network_list(one_plugin_list("garbage"), runtime())
    assert str(exc.value).startswith(
        'plugin type="garbage" failed (delete): netplugin failed but error parsing its '
        'diagnostic message "Traceback: <garbage>\\n"'
    )


def test_gc_reports_all_failures(noop_bin: Path, tmp_path: Path) -> None:
    chain = Chain(tmp_path, "1.1.0", [{"ReportResult": json.dumps(FIRST_RESULT)}])
    cni = cni_for(noop_bin, tmp_path)
    cni.add_network_list(chain.net, runtime())
    chain.debug[0].write_text(json.dumps({"ReportError": "cannot"}))
    with pytest.raises(PluginErrors) as exc:
        cni.gc_network_list(chain.net, None)
    assert len(exc.value.errors) == 2
    assert "failed to delete stale attachment pod1 eth0" in str(exc.value)
    assert 'plugin type="noop" failed (gc): cannot' in str(exc.value)
