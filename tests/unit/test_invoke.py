"""The exec protocol: finding plugins, their environment, running them, reading errors."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from cnitool.invoke import (
    PluginExecError,
    PluginNotFoundError,
    PluginTimeoutError,
    build_env,
    delegate_add,
    delegate_del,
    exec_plugin,
    exec_with_result,
    find_in_path,
    get_version_info,
    plugin_error,
)
from cnitool.invoke.exec import PluginOutputError
from cnitool.spec.errors import CNIError, DecodingError
from cnitool.spec.jsonfmt import MAX_JSON_BYTES


def script(directory: Path, name: str, body: str) -> str:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


# ------------------------------------------------------------------------ find_in_path


def test_find_first_regular_file_wins(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "bridge").mkdir()  # a directory of that name is skipped
    (b / "bridge").write_text("not executable, still found")
    (tmp_path / "c").mkdir()
    script(tmp_path / "c", "bridge", "exit 0\n")
    assert find_in_path("bridge", [str(a), str(b), str(tmp_path / "c")]) == str(b / "bridge")


@pytest.mark.parametrize(
    ("name", "paths", "message"),
    [
        ("", ["/x"], "no plugin name provided"),
        ("../bin/ls", ["/usr/lib/cni"], "invalid plugin name: ../bin/ls"),
        ("a/b", ["/usr/lib/cni"], "invalid plugin name: a/b"),
        ("bridge", [], "no paths provided"),
    ],
)
def test_find_errors(name: str, paths: list[str], message: str) -> None:
    with pytest.raises(PluginNotFoundError) as exc:
        find_in_path(name, paths)
    assert str(exc.value) == message


def test_find_not_found_lists_path(tmp_path: Path) -> None:
    with pytest.raises(PluginNotFoundError) as exc:
        find_in_path("bridge", [str(tmp_path), "/nonexistent"])
    assert str(exc.value) == f'failed to find plugin "bridge" in path [{tmp_path} /nonexistent]'


def test_find_dotdot_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(PluginNotFoundError, match="failed to find plugin"):
        find_in_path("..", [str(tmp_path / "sub")])


# ------------------------------------------------------------------------ build_env


def test_build_env_sets_all_six_and_cni_values_win() -> None:
    base = {"PATH": "/bin", "CNI_COMMAND": "STALE", "CNI_ARGS": "X=1", "NETCONFPATH": "/e"}
    env = build_env("ADD", "ctr", "/run/netns/x", "eth0", "", "/opt/cni/bin:/b", base=base)
    assert env == {
        "PATH": "/bin",
        "NETCONFPATH": "/e",
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "ctr",
        "CNI_NETNS": "/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "",
        "CNI_PATH": "/opt/cni/bin:/b",
    }
    assert base["CNI_COMMAND"] == "STALE"  # the caller's mapping is not modified


def test_build_env_defaults_to_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCNI_PROBE", "yes")
    env = build_env("DEL")
    assert env["PYCNI_PROBE"] == "yes"
    assert env["CNI_NETNS"] == "" and env["CNI_COMMAND"] == "DEL"


# ------------------------------------------------------------------------ exec_plugin


def test_exec_passes_stdin_env_and_copies_stderr(tmp_path: Path) -> None:
    plugin = script(
        tmp_path,
        "p",
        'echo "cmd=$CNI_COMMAND if=$CNI_IFNAME" >&2\ncat\n',
    )
    sink = io.BytesIO()
    out = exec_plugin(plugin, b'{"x":1}', build_env("ADD", ifname="eth9"), stderr=sink)
    assert out == b'{"x":1}'
    assert sink.getvalue() == b"cmd=ADD if=eth9\n"


def test_exec_large_stdin_and_output_under_the_limit(tmp_path: Path) -> None:
    """Writing stdin and reading stdout interleave: neither pipe's buffer limits them."""
    plugin = script(tmp_path, "p", "cat\n")
    data = b"x" * (MAX_JSON_BYTES - 10)
    assert exec_plugin(plugin, data, build_env("ADD"), stderr=io.BytesIO()) == data


def test_exec_output_over_the_limit_kills_the_plugin(tmp_path: Path) -> None:
    """A plugin writing without end is stopped at MAX_JSON_BYTES, not held whole."""
    plugin = script(tmp_path, "p", "exec yes\n")
    with pytest.raises(PluginOutputError) as exc:
        exec_plugin(plugin, b"{}", build_env("ADD"))
    assert exc.value.msg == (
        f'plugin "{plugin}": plugin wrote more than {MAX_JSON_BYTES} bytes to stdout'
    )


def test_exec_stderr_is_kept_up_to_the_limit(tmp_path: Path) -> None:
    plugin = script(tmp_path, "p", "head -c 3000000 /dev/zero >&2\necho '{}'\n")
    sink = io.BytesIO()
    assert exec_plugin(plugin, b"", build_env("ADD"), stderr=sink) == b"{}\n"
    assert len(sink.getvalue()) == MAX_JSON_BYTES


def test_exec_stderr_to_text_stream(tmp_path: Path) -> None:
    plugin = script(tmp_path, "p", "echo hello >&2\n")
    sink = io.StringIO()
    exec_plugin(plugin, b"", build_env("ADD"), stderr=sink)
    assert sink.getvalue() == "hello\n"


def test_exec_runs_in_own_process_group(tmp_path: Path) -> None:
    plugin = script(tmp_path, "p", "cut -d' ' -f5 /proc/$$/stat; echo $$\n")
    pgid, pid = exec_plugin(plugin, b"", build_env("ADD")).split()
    assert pgid == pid
    assert int(pgid) != os.getpgrp()


def test_exec_error_json_is_the_error(tmp_path: Path) -> None:
    plugin = script(
        tmp_path,
        "p",
        'echo "noise" >&2\necho \'{"code": 7, "msg": "bad config", "details": "key x"}\'\nexit 1\n',
    )
    sink = io.BytesIO()
    with pytest.raises(CNIError) as exc:
        exec_plugin(plugin, b"", build_env("ADD"), stderr=sink)
    assert (exc.value.code, exc.value.msg, exc.value.details) == (7, "bad config", "key x")
    assert str(exc.value) == "bad config; key x"
    assert sink.getvalue() == b""  # stderr of a failed plugin is not copied


def test_exec_empty_stdout_uses_stderr_and_status(tmp_path: Path) -> None:
    plugin = script(tmp_path, "p", 'echo "boom" >&2\nexit 2\n')
    with pytest.raises(CNIError) as exc:
        exec_plugin(plugin, b"", build_env("ADD"))
    assert str(exc.value) == 'netplugin failed: "boom\\n": exit status 2'


def test_exec_no_output_at_all(tmp_path: Path) -> None:
    plugin = script(tmp_path, "p", "exit 3\n")
    with pytest.raises(CNIError) as exc:
        exec_plugin(plugin, b"", build_env("ADD"))
    assert str(exc.value) == "netplugin failed with no error message: exit status 3"


def test_exec_garbage_stdout(tmp_path: Path) -> None:
    plugin = script(tmp_path, "p", "echo 'this is not json'\nexit 2\n")
    with pytest.raises(CNIError) as exc:
        exec_plugin(plugin, b"", build_env("ADD"))
    assert str(exc.value).startswith(
        'netplugin failed but error parsing its diagnostic message "this is not json\\n": '
    )


def test_failed_plugin_with_deeply_nested_stdout_is_a_parse_error() -> None:
    err = plugin_error("/bin/p", 1, b"[" * 100000, b"")
    assert err.msg.startswith("netplugin failed but error parsing its diagnostic message ")
    assert err.msg.endswith(": JSON nested too deeply")


def test_exec_killed_by_signal_names_it(tmp_path: Path) -> None:
    plugin = script(tmp_path, "p", "echo dying >&2\nkill -SEGV $$\n")
    with pytest.raises(CNIError) as exc:
        exec_plugin(plugin, b"", build_env("ADD"))
    assert exc.value.msg == f'plugin "{plugin}" was killed by signal SIGSEGV'
    assert exc.value.details == "dying"


def test_exec_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    plugin = script(tmp_path, "p", f"sleep 30 &\necho $! > {pidfile}\nsleep 30\n")
    start = time.monotonic()
    with pytest.raises(PluginTimeoutError) as exc:
        exec_plugin(plugin, b"", build_env("ADD"), timeout=0.5)
    assert time.monotonic() - start < 5
    assert exc.value.msg == f'plugin "{plugin}" timed out after 0.5s'
    child = int(pidfile.read_text())
    # the background child was in the same group: it is dead (gone or a zombie)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{child}/stat").read_text().split()[2]
        except FileNotFoundError:
            break
        if state == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"background child {child} of the timed-out plugin still runs")


def test_exec_not_executable(tmp_path: Path) -> None:
    path = tmp_path / "p"
    path.write_text("#!/bin/sh\n")
    path.chmod(stat.S_IRUSR)
    if os.geteuid() == 0:
        path.chmod(0o644)  # root may read anything, but not exec without any x bit
    with pytest.raises(CNIError, match=r'failed to execute plugin ".*/p": Permission denied'):
        exec_plugin(str(path), b"", build_env("ADD"))


def test_exec_with_result_fills_missing_version(tmp_path: Path) -> None:
    plugin = script(tmp_path, "p", 'echo \'{"ips": [{"address": "10.1.0.2/24"}]}\'\n')
    result = exec_with_result(plugin, b"{}", build_env("ADD"), version="1.0.0")
    assert result == {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]}
    null_plugin = script(tmp_path, "q", "echo null\n")
    assert exec_with_result(null_plugin, b"{}", build_env("ADD"), version="1.0.0") is None


# ------------------------------------------------------------------------ VERSION


def version_plugin(tmp_path: Path, answer: str, code: int = 0) -> str:
    record = tmp_path / "record"
    return script(
        tmp_path,
        "v",
        f"cat > {record}.stdin\nenv > {record}.env\necho '{answer}'\nexit {code}\n",
    )


def test_version_info_and_probe_env(tmp_path: Path) -> None:
    plugin = version_plugin(
        tmp_path, '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}'
    )
    info = get_version_info(plugin, env={"PATH": "/usr/bin:/bin"})
    assert info.cni_version == "1.0.0"
    assert info.supported_versions == ("0.3.1", "0.4.0", "1.0.0")
    assert (tmp_path / "record.stdin").read_bytes() == b'{"cniVersion":"1.1.0"}'
    env = dict(line.split("=", 1) for line in (tmp_path / "record.env").read_text().splitlines())
    assert env["CNI_COMMAND"] == "VERSION"
    assert (env["CNI_NETNS"], env["CNI_IFNAME"], env["CNI_PATH"]) == ("dummy",) * 3
    assert env["CNI_CONTAINERID"] == ""


def test_version_of_plugin_without_version_command(tmp_path: Path) -> None:
    plugin = version_plugin(tmp_path, '{"code": 4, "msg": "unknown CNI_COMMAND: VERSION"}', 1)
    assert get_version_info(plugin).supported_versions == ("0.1.0",)


def test_version_020_without_list(tmp_path: Path) -> None:
    plugin = version_plugin(tmp_path, '{"cniVersion":"0.2.0"}')
    assert get_version_info(plugin).supported_versions == ("0.1.0", "0.2.0")


def test_version_missing_list_is_an_error(tmp_path: Path) -> None:
    plugin = version_plugin(tmp_path, '{"cniVersion":"0.3.0"}')
    with pytest.raises(DecodingError, match="missing field supportedVersions"):
        get_version_info(plugin)


def test_version_other_error_propagates(tmp_path: Path) -> None:
    plugin = version_plugin(tmp_path, '{"code": 4, "msg": "unknown CNI_COMMAND: VERSIONX"}', 1)
    with pytest.raises(CNIError, match="VERSIONX"):
        get_version_info(plugin)


# ------------------------------------------------------------------------ delegation


def test_delegate_add_uses_cni_path_and_overrides_command(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script(
        bindir,
        "ipam",
        f"env > {tmp_path}/env\ncat > {tmp_path}/stdin\n"
        'echo \'{"ips": [{"address": "10.5.0.3/16", "gateway": "10.5.0.1"}]}\'\n',
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "CNI_COMMAND": "ADD",
        "CNI_PATH": f"/nonexistent:{bindir}",
        "CNI_CONTAINERID": "c1",
        "CNI_IFNAME": "eth0",
        "CNI_NETNS": "/run/netns/x",
        "CNI_ARGS": "IgnoreUnknown=1",
        "EXTRA": "kept",
    }
    conf = b'{"cniVersion":"0.4.0","name":"n","ipam":{"type":"ipam"}}'
    result = delegate_add("ipam", conf, env)
    assert result["cniVersion"] == "0.4.0"
    assert result["ips"][0]["address"] == "10.5.0.3/16"
    seen = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines())
    assert seen["EXTRA"] == "kept" and seen["CNI_ARGS"] == "IgnoreUnknown=1"
    assert (tmp_path / "stdin").read_bytes() == conf

    env["CNI_COMMAND"] = "ADD"
    delegate_del("ipam", conf, env)
    seen = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines())
    assert seen["CNI_COMMAND"] == "DEL"
    assert env["CNI_COMMAND"] == "ADD"  # the plugin's own env is left alone


def test_delegate_error_keeps_code(tmp_path: Path) -> None:
    script(tmp_path, "ipam", 'echo \'{"code": 11, "msg": "busy"}\'\nexit 1\n')
    with pytest.raises(CNIError) as exc:
        delegate_add("ipam", b'{"cniVersion":"1.0.0"}', {"CNI_PATH": str(tmp_path)})
    assert exc.value.code == 11 and exc.value.msg == "busy"


def test_delegate_without_cni_path() -> None:
    with pytest.raises(PluginNotFoundError, match="no paths provided"):
        delegate_add("host-local", b"{}", {"CNI_COMMAND": "ADD"})


# ------------------------------------------------------------------------ PluginExecError


def test_plugin_exec_error_text_and_json() -> None:
    err = PluginExecError.wrap(
        CNIError("no IP", "range full", code=11), plugin="bridge", verb="add", name="x"
    )
    assert str(err) == 'plugin type="bridge" name="x" failed (add): no IP; range full'
    assert err.code == 11 and err.plugin == "bridge" and err.verb == "add"
    assert json.loads(err.to_json()) == {"code": 11, "msg": "no IP", "details": "range full"}
    plain = PluginExecError.wrap(CNIError("gone"), plugin="portmap", verb="delete")
    assert str(plain) == 'plugin type="portmap" failed (delete): gone'


def test_exec_timeout_with_escaped_child_holding_stdout(tmp_path: Path) -> None:
    pidfile = tmp_path / "escaped.pid"
    plugin = script(tmp_path, "p", f"setsid sleep 30 &\necho $! > {pidfile}\nsleep 30\n")
    start = time.monotonic()
    try:
        with pytest.raises(PluginTimeoutError):
            exec_plugin(plugin, b"", build_env("ADD"), timeout=0.3)
        # the escaped child keeps the pipes open; we give up on them instead of hanging
        assert time.monotonic() - start < 15
    finally:
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
