"""The noop test plugin, driven in-process through skel.run."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cnitool_plugins.noop.__main__ import PLUGIN

from cnitool import skel

DEFAULT_VERSIONS = ["0.-42.0", "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]

PREV_040 = {
    "cniVersion": "0.4.0",
    "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
    "ips": [{"version": "4", "interface": 0, "address": "10.1.2.3/24", "gateway": "10.1.2.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {"domain": "example.test"},
}


def env_for(command: str, debug: Path | None = None, **extra: str) -> dict[str, str]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "ctr1",
        "CNI_NETNS": "/run/netns/ctr1",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": f"DEBUG={debug}" if debug else "",
        "CNI_PATH": "/opt/cni/bin",
    }
    env.update(extra)
    return env


def conf(version: str = "1.0.0", **extra: Any) -> bytes:
    obj: dict[str, Any] = {"cniVersion": version, "name": "noopnet", "type": "noop"}
    obj.update(extra)
    return json.dumps(obj).encode()


def write_debug(path: Path, **fields: Any) -> None:
    path.write_text(json.dumps(fields))


def run(env: dict[str, str], stdin: bytes) -> tuple[bytes, int, str]:
    err = io.StringIO()
    out, code = skel.run(PLUGIN, env, stdin, err)
    return out, code, err.getvalue()


def test_without_debug_file_prints_empty_object() -> None:
    out, code, err = run(env_for("ADD"), conf())
    assert (out, code) == (b"{}", 0)
    assert err == "CNI_ARGS or config empty, no debug behavior\n"


@pytest.mark.parametrize("command", ["ADD", "CHECK", "DEL"])
def test_records_the_call_with_go_field_names(tmp_path: Path, command: str) -> None:
    debug = tmp_path / "debug.json"
    write_debug(debug, ReportResult='{"cniVersion":"1.0.0"}', Unknown="dropped")
    os.chmod(debug, 0o600)
    stdin = conf("1.0.0")
    env = env_for(command, debug)
    out, code, _ = run(env, stdin)
    assert code == 0
    assert out == b'{"cniVersion":"1.0.0"}'
    raw = debug.read_text()
    rec = json.loads(raw)
    assert list(rec) == [
        "ReportResult",
        "ReportError",
        "ReportErrorCode",
        "ReportStderr",
        "ReportVersionSupport",
        "ExitWithCode",
        "Command",
        "CmdArgs",
    ]
    assert rec["Command"] == command
    assert rec["ReportVersionSupport"] is None
    assert rec["CmdArgs"] == {
        "ContainerID": "ctr1",
        "Netns": "/run/netns/ctr1",
        "IfName": "eth0",
        "Args": f"DEBUG={debug}",
        "Path": "/opt/cni/bin",
        "NetnsOverride": "",
        "StdinData": base64.b64encode(stdin).decode(),
    }
    assert "\n" not in raw and ": " not in raw  # compact, as Go's json.Marshal writes it
    assert stat.S_IMODE(debug.stat().st_mode) == 0o600


def test_debug_file_from_config_and_case_insensitive_keys(tmp_path: Path) -> None:
    debug = tmp_path / "d.json"
    debug.write_text('{"reportresult": "hello"}')
    out, code, _ = run(env_for("DEL"), conf(debugFile=str(debug)))
    assert (out, code) == (b"hello", 0)
    assert json.loads(debug.read_text())["Command"] == "DEL"


def test_gc_and_status_are_recorded(tmp_path: Path) -> None:
    debug = tmp_path / "d.json"
    for command in ("GC", "STATUS"):
        write_debug(debug)
        env = {"CNI_COMMAND": command, "CNI_PATH": "/p", "CNI_ARGS": f"DEBUG={debug}"}
        out, code, _ = run(env, conf("1.1.0"))
        assert (out, code) == (b"", 0)
        rec = json.loads(debug.read_text())
        assert rec["Command"] == command
        assert rec["CmdArgs"]["ContainerID"] == ""


def test_report_error_default_code_999(tmp_path: Path) -> None:
    debug = tmp_path / "d.json"
    write_debug(debug, ReportError="it broke", ReportResult="ignored")
    out, code, _ = run(env_for("ADD", debug), conf())
    assert code == 1
    assert json.loads(out) == {"code": 999, "msg": "it broke"}
    assert json.loads(debug.read_text())["Command"] == "ADD"  # recorded before failing


def test_report_error_code(tmp_path: Path) -> None:
    debug = tmp_path / "d.json"
    write_debug(debug, ReportError="not yet", ReportErrorCode=11)
    out, code, _ = run(env_for("DEL", debug), conf())
    assert code == 1
    assert json.loads(out) == {"code": 11, "msg": "not yet"}


def test_report_stderr(tmp_path: Path) -> None:
    debug = tmp_path / "d.json"
    write_debug(debug, ReportStderr="some log line\n", ReportResult="{}")
    out, code, err = run(env_for("ADD", debug), conf())
    assert (out, code, err) == (b"{}", 0, "some log line\n")


def test_exit_with_code_after_printing(tmp_path: Path) -> None:
    debug = tmp_path / "d.json"
    write_debug(debug, ReportResult="partial", ExitWithCode=7)
    assert run(env_for("ADD", debug), conf())[:2] == (b"partial", 7)


def test_empty_report_result_prints_nothing(tmp_path: Path) -> None:
    debug = tmp_path / "d.json"
    write_debug(debug)
    assert run(env_for("ADD", debug), conf())[:2] == (b"", 0)


def test_passthrough_converts_prev_result_to_config_version(tmp_path: Path) -> None:
    debug = tmp_path / "d.json"
    write_debug(debug, ReportResult="PASSTHROUGH")
    out, code, _ = run(env_for("ADD", debug), conf("0.4.0", prevResult=PREV_040))
    assert code == 0
    assert b"\n" not in out  # compact, like Go's json.Marshal
    assert json.loads(out) == PREV_040
    write_debug(debug, ReportResult="PASSTHROUGH")
    prev_1 = {k: v for k, v in PREV_040.items() if k != "ips"}
    prev_1["cniVersion"] = "1.0.0"
    prev_1["ips"] = [{"interface": 0, "address": "10.1.2.3/24", "gateway": "10.1.2.1"}]
    out, code, _ = run(env_for("CHECK", debug), conf("1.0.0", prevResult=prev_1))
    assert code == 0
    assert json.loads(out)["ips"] == prev_1["ips"]


def test_inject_dns(tmp_path: Path) -> None:
    debug = tmp_path / "d.json"
    write_debug(debug, ReportResult="INJECT-DNS")
    out, code, _ = run(env_for("ADD", debug), conf("0.4.0", prevResult=PREV_040))
    assert code == 0
    obj = json.loads(out)
    assert obj["cniVersion"] == "0.4.0"
    assert obj["dns"] == {"nameservers": ["1.2.3.4"], "domain": "example.test"}
    assert obj["ips"] == PREV_040["ips"]


def test_passthrough_without_prev_result_is_a_clean_error(tmp_path: Path) -> None:
    debug = tmp_path / "d.json"
    write_debug(debug, ReportResult="PASSTHROUGH")
    env = {"CNI_COMMAND": "STATUS", "CNI_PATH": "/p", "CNI_ARGS": f"DEBUG={debug}"}
    out, code, err = run(env, conf("1.1.0"))
    assert code == 1
    assert "prevResult" in json.loads(out)["msg"]
    assert "Traceback" not in err


def test_command_log_appends(tmp_path: Path) -> None:
    debug = tmp_path / "d.json"
    log = tmp_path / "log.json"
    log.write_text("")
    for command in ("ADD", "DEL"):
        write_debug(debug)
        out, code, _ = run(env_for(command, debug), conf(commandLog=str(log)))
        assert code == 0, out
    entries = json.loads(log.read_text())
    assert [e["Command"] for e in entries] == ["ADD", "DEL"]
    assert list(entries[0]) == ["Command", "CmdArgs"]
    assert entries[1]["CmdArgs"]["IfName"] == "eth0"


def test_command_log_must_exist(tmp_path: Path) -> None:
    debug = tmp_path / "d.json"
    write_debug(debug)
    out, code, _ = run(env_for("ADD", debug), conf(commandLog=str(tmp_path / "nope")))
    assert code == 1
    assert "nope" in json.loads(out)["msg"]


def test_missing_debug_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    out, code, _ = run(env_for("DEL", None, CNI_ARGS=f"DEBUG={missing}"), conf())
    assert code == 1
    assert str(missing) in json.loads(out)["msg"]


def test_invalid_cni_args_pair(tmp_path: Path) -> None:
    out, code, _ = run(env_for("ADD", None, CNI_ARGS="DEBUG=a=b"), conf())
    assert code == 1
    assert json.loads(out)["msg"] == "CNI_ARGS invalid key/value pair: [DEBUG a b]"


def test_version_default_list_with_bogus_entry() -> None:
    out, code, _ = run({"CNI_COMMAND": "VERSION"}, b"")
    assert code == 0
    assert json.loads(out) == {"cniVersion": "1.1.0", "supportedVersions": DEFAULT_VERSIONS}


def test_report_version_support(tmp_path: Path) -> None:
    debug = tmp_path / "d.json"
    write_debug(debug, ReportVersionSupport=["0.3.1", "0.4.0"])
    env = {"CNI_COMMAND": "VERSION", "CNI_ARGS": f"DEBUG={debug}"}
    out, code, _ = run(env, b'{"cniVersion":"0.4.0"}')
    assert code == 0
    assert json.loads(out)["supportedVersions"] == ["0.3.1", "0.4.0"]
    # the same list governs the ADD version check
    out, code, _ = run(env_for("ADD", debug), conf("1.0.0"))
    assert code == 1
    assert json.loads(out)["details"] == 'config is "1.0.0", plugin supports ["0.3.1" "0.4.0"]'


def test_about_text() -> None:
    out, code, err = run({}, b"")
    assert (out, code) == (b"", 0)
    assert err.splitlines() == [
        "CNI noop plugin v0.7.0",
        "CNI protocol versions supported: " + ", ".join(DEFAULT_VERSIONS),
    ]
