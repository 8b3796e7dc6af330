"""The cnitool command line without root: argument and environment parsing, the
container ID, error lines and exit codes, and the exact bytes of the JSON output.

Plugins here are tiny shell scripts in a temp bin dir that log each call and print a
canned answer, so the tests see exactly what cnitool sends and how it reacts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnitool.cli import errors
from cnitool.cli import settings as common
from cnitool.cli.main import COMMANDS, cli

RESULT_100 = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "mac": "0a:58:0a:16:00:02", "sandbox": "/x"}],
    "ips": [{"interface": 0, "address": "10.22.0.2/16", "gateway": "10.22.0.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {"nameservers": ["10.22.0.1"]},
}

# what Go's cnitool prints for RESULT_100: 4-space indent, no trailing newline
EXPECTED_JSON = """{
    "cniVersion": "1.0.0",
    "interfaces": [
        {
            "name": "eth0",
            "mac": "0a:58:0a:16:00:02",
            "sandbox": "/x"
        }
    ],
    "ips": [
        {
            "interface": 0,
            "address": "10.22.0.2/16",
            "gateway": "10.22.0.1"
        }
    ],
    "routes": [
        {
            "dst": "0.0.0.0/0"
        }
    ],
    "dns": {
        "nameservers": [
            "10.22.0.1"
        ]
    }
}"""


def make_plugin(bin_dir: Path, name: str, log: Path, *, add: str = "", fail_on: str = "") -> None:
    """A shell plugin: logs `VERB cid ifname netns args`, prints `add` on ADD (else
    echoes prevResult), fails with code 7 on the verbs listed in fail_on."""
    add_out = add or '{"cniVersion": "1.0.0"}'
    script = f"""#!/bin/sh
echo "$CNI_COMMAND {name} $CNI_CONTAINERID $CNI_IFNAME $CNI_NETNS $CNI_ARGS" >> {log}
cat > {log}.{name}.stdin
case " {fail_on} " in
  *" $CNI_COMMAND "*) printf '{{"code": 7, "msg": "%s refuses %s", "details": "on purpose"}}' {name} "$CNI_COMMAND"; exit 1;;
esac
case "$CNI_COMMAND" in
  ADD) cat <<'EOF'
{add_out}
EOF
  ;;
  VERSION) echo '{{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}}';;
esac
exit 0
"""
    path = bin_dir / name
    path.write_text(script)
    path.chmod(0o755)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, Path]:
    dirs = {k: tmp_path / k for k in ("bin", "conf", "cache")}
    for d in dirs.values():
        d.mkdir()
    dirs["log"] = tmp_path / "calls.log"
    dirs["netns"] = tmp_path / "ns"
    dirs["netns"].write_text("")  # an existing path; plugins here never enter it
    return dirs


def write_conflist(
    conf: Path, name: str, plugins: list[dict[str, object]], version: str = "1.0.0"
) -> None:
    (conf / f"10-{name}.conflist").write_text(
        json.dumps({"cniVersion": version, "name": name, "plugins": plugins}) + "\n"
    )


def run(env: dict[str, Path], *args: str, environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    base = {"NETCONFPATH": str(env["conf"]), "CNI_PATH": str(env["bin"])}
    base.update(environ or {})
    runner = CliRunner()
    return runner.invoke(
        cli, [*args, "--cache-dir", str(env["cache"])], env=base, catch_exceptions=False
    )


def calls(env: dict[str, Path]) -> list[list[str]]:
    if not env["log"].exists():
        return []
    return [line.split() for line in env["log"].read_text().splitlines()]


def cache_files(env: dict[str, Path]) -> list[str]:
    return [str(p) for p in env["cache"].rglob("*") if p.is_file()]


# ---------------------------------------------------------------------------- pure helpers


def test_container_id_matches_go_cnitool() -> None:
    assert common.container_id_for("/var/run/netns/cnitest") == "cnitool-20c433bb2b1d6ede56d6"


def test_container_id_uses_the_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert common.container_id_for("ns") == common.container_id_for(str(tmp_path / "ns"))


@pytest.mark.parametrize(
    "value,pairs",
    [
        ("", []),
        ("IP=10.0.0.5", [("IP", "10.0.0.5")]),
        ("IgnoreUnknown=1;K8S_POD_NAME=web", [("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web")]),
    ],
)
def test_cni_args_pairs(value: str, pairs: list[tuple[str, str]]) -> None:
    assert common.parse_cni_args(value) == pairs


@pytest.mark.parametrize(
    "value,bad",
    [
        ("a", "a"),
        ("a=", "a="),
        ("=b", "=b"),
        ("a=b=c", "a=b=c"),
        ("a=b;", ""),
        ("a=b;;c=d", ""),
    ],
)
def test_cni_args_bad_pairs(value: str, bad: str) -> None:
    with pytest.raises(common.CNIError) as info:
        common.parse_cni_args(value)
    assert str(info.value) == f'invalid CNI_ARGS pair "{bad}"'
    assert info.value.code == 4


def test_cap_args_json_and_file(tmp_path: Path) -> None:
    assert common.parse_cap_args('{"portMappings": []}') == {"portMappings": []}
    f = tmp_path / "caps.json"
    f.write_text('{"mac": "c2:11:22:33:44:55"}')
    assert common.parse_cap_args(f"@{f}") == {"mac": "c2:11:22:33:44:55"}
    with pytest.raises(common.CNIError, match="must be a JSON object"):
        common.parse_cap_args("[1]")
    with pytest.raises(common.CNIError, match="not valid JSON"):
        common.parse_cap_args("{nope")
    with pytest.raises(common.CNIError, match="cannot read"):
        common.parse_cap_args(f"@{tmp_path}/missing.json")


def test_bin_dirs_flag_env_and_fallback() -> None:
    assert common.split_bin_dirs(("/a:/b", "/c"), "/env") == ["/a", "/b", "/c"]
    assert common.split_bin_dirs((), "/x:/y") == ["/x", "/y"]
    assert common.split_bin_dirs((), None) == ["/opt/cni/bin"]
    assert common.split_bin_dirs((), "") == ["/opt/cni/bin"]


def test_netns_argument_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert common.resolve_netns("blue") == "/var/run/netns/blue"
    assert common.resolve_netns("/proc/1/ns/net") == "/proc/1/ns/net"
    monkeypatch.chdir(tmp_path)
    assert common.resolve_netns("./ns") == str(tmp_path / "ns")
    for bad in ("..", ".", ""):
        with pytest.raises(common.CNIError):
            common.resolve_netns(bad)


def test_error_line_names_plugin_verb_code_and_message() -> None:
    from cnitool.invoke import PluginExecError

    err = PluginExecError("bad", "very", code=7, plugin="bridge", verb="add")
    assert errors.describe_error(err, "add") == (
        "bridge add failed [code 7 invalid network config]: bad; very"
    )
    assert errors.describe_error(common.CNIError("x", code=150), "del") == (
        "del failed [code 150 plugin-specific]: x"
    )


# ---------------------------------------------------------------------------- the CLI


def test_add_prints_go_bytes_and_caches(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"], add=json.dumps(RESULT_100))
    write_conflist(env["conf"], "net1", [{"type": "fake"}])
    res = run(env, "add", "net1", str(env["netns"]), "--output", "json")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == EXPECTED_JSON
    cid = common.container_id_for(str(env["netns"]))
    assert calls(env) == [["ADD", "fake", cid, "eth0", str(env["netns"])]]
    cached = env["cache"] / "results" / f"net1-{cid}-eth0"
    assert json.loads(cached.read_text())["kind"] == "cniCacheV1"

    res = run(env, "del", "net1", str(env["netns"]), "--output", "json")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""
    assert calls(env)[-1][0] == "DEL"
    assert not cached.exists()


def test_env_vars_reach_the_plugins(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"])
    write_conflist(env["conf"], "net1", [{"type": "fake", "capabilities": {"mac": True}}])
    res = run(
        env,
        "add",
        "net1",
        str(env["netns"]),
        environ={
            "CNI_IFNAME": "net7",
            "CNI_ARGS": "IgnoreUnknown=1;FOO=bar",
            "CAP_ARGS": '{"mac": "c2:11:22:33:44:55"}',
        },
    )
    assert res.exit_code == 0, res.stderr
    call = calls(env)[0]
    assert call[3:] == ["net7", str(env["netns"]), "IgnoreUnknown=1;FOO=bar"]
    stdin = json.loads((Path(f"{env['log']}.fake.stdin")).read_text())
    assert stdin["runtimeConfig"] == {"mac": "c2:11:22:33:44:55"}


def test_flags_override_env(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"])
    write_conflist(env["conf"], "net1", [{"type": "fake"}])
    res = run(
        env,
        "add",
        "net1",
        str(env["netns"]),
        "--ifname",
        "eth9",
        "--container-id",
        "my-ctr",
        "--args",
        "A=1",
        environ={"CNI_IFNAME": "net7"},
    )
    assert res.exit_code == 0, res.stderr
    assert calls(env)[0][2:] == ["my-ctr", "eth9", str(env["netns"]), "A=1"]


def test_bad_cni_args_is_one_line_exit_1(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"])
    write_conflist(env["conf"], "net1", [{"type": "fake"}])
    res = run(env, "add", "net1", str(env["netns"]), environ={"CNI_ARGS": "IP=1.2.3.4;oops"})
    assert res.exit_code == 1
    assert res.stderr == (
        'cnitool: add failed [code 4 invalid environment]: invalid CNI_ARGS pair "oops"\n'
    )
    assert res.stdout == ""
    assert calls(env) == [] and cache_files(env) == []


@pytest.mark.parametrize(
    "flag,value,fragment",
    [
        ("--container-id", "../evil", "invalid characters in containerID"),
        ("--ifname", "../x", "interface name contains / or :"),
        ("--ifname", "a-name-longer-than-15", "interface name is too long"),
    ],
)
def test_bad_names_rejected_before_any_plugin(
    env: dict[str, Path], flag: str, value: str, fragment: str
) -> None:
    make_plugin(env["bin"], "fake", env["log"])
    write_conflist(env["conf"], "net1", [{"type": "fake"}])
    res = run(env, "add", "net1", str(env["netns"]), flag, value)
    assert res.exit_code == 1
    assert res.stderr.startswith("cnitool: add failed [code 4 invalid environment]: ")
    assert fragment in res.stderr
    assert len(res.stderr.splitlines()) == 1
    assert calls(env) == [] and cache_files(env) == []


def test_plugin_type_with_path_is_refused(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"])
    write_conflist(env["conf"], "net1", [{"type": "../bin/fake"}])
    res = run(env, "add", "net1", str(env["netns"]))
    assert res.exit_code == 1
    assert "invalid plugin" in res.stderr and "../bin/fake" in res.stderr
    assert len(res.stderr.splitlines()) == 1
    assert calls(env) == [] and cache_files(env) == []


def test_unknown_plugin_fails_before_running_any(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"])
    write_conflist(env["conf"], "net1", [{"type": "fake"}, {"type": "nosuch"}])
    res = run(env, "add", "net1", str(env["netns"]))
    assert res.exit_code == 1
    assert res.stderr.startswith("cnitool: nosuch add failed [code 999 internal error]: ")
    assert 'failed to find plugin "nosuch"' in res.stderr
    assert calls(env) == [] and cache_files(env) == []


def test_unknown_network_and_malformed_conflist(env: dict[str, Path]) -> None:
    res = run(env, "add", "nope", str(env["netns"]))
    assert res.exit_code == 1
    assert res.stderr.startswith("cnitool: add failed [code 7 invalid network config]: ")
    (env["conf"] / "00-bad.conflist").write_text('{"name": "bad", "plugins": [')
    res = run(env, "add", "bad", str(env["netns"]))
    assert res.exit_code == 1
    assert "00-bad.conflist" in res.stderr and "Traceback" not in res.stderr
    assert cache_files(env) == []


def test_failed_add_rolls_back_the_whole_chain(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "first", env["log"])
    make_plugin(env["bin"], "second", env["log"], fail_on="ADD")
    write_conflist(env["conf"], "net1", [{"type": "first"}, {"type": "second"}])
    res = run(env, "add", "net1", str(env["netns"]))
    assert res.exit_code == 1
    assert res.stderr == (
        "cnitool: second add failed [code 7 invalid network config]: second refuses ADD; on purpose\n"
    )
    assert [c[:2] for c in calls(env)] == [
        ["ADD", "first"],
        ["ADD", "second"],
        ["DEL", "second"],
        ["DEL", "first"],
    ]
    assert cache_files(env) == []


def test_add_rolls_back_when_the_result_cannot_be_cached(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "first", env["log"], add=json.dumps(RESULT_100))
    write_conflist(env["conf"], "net1", [{"type": "first"}])
    not_a_dir = env["cache"] / "file"
    not_a_dir.write_text("")
    res = CliRunner().invoke(
        cli,
        ["add", "net1", str(env["netns"]), "--cache-dir", str(not_a_dir), "-o", "json"],
        env={"NETCONFPATH": str(env["conf"]), "CNI_PATH": str(env["bin"])},
    )
    assert res.exit_code == 1
    assert res.stdout == ""
    assert res.stderr.startswith("cnitool: add failed [code 5 I/O failure]: ")
    assert "cached result" in res.stderr and "rollback" not in res.stderr
    assert [c[:2] for c in calls(env)] == [["ADD", "first"], ["DEL", "first"]]


def test_second_add_of_one_attachment_is_refused(env: dict[str, Path]) -> None:
    """A second ADD before DEL is forbidden; run anyway and failing, its rollback would
    tear down the attachment that works."""
    make_plugin(env["bin"], "first", env["log"], add=json.dumps(RESULT_100))
    write_conflist(env["conf"], "net1", [{"type": "first"}])
    assert run(env, "add", "net1", str(env["netns"])).exit_code == 0
    before = [(p, Path(p).read_bytes()) for p in cache_files(env)]
    res = run(env, "add", "net1", str(env["netns"]))
    assert res.exit_code == 1
    assert res.stderr.startswith("cnitool: add failed [code 4 invalid environment]: ")
    assert 'network "net1" is already attached' in res.stderr
    assert [c[0] for c in calls(env)] == ["ADD"]  # no plugin ran the second time
    assert [(p, Path(p).read_bytes()) for p in cache_files(env)] == before
    # another interface of the same container is a different attachment
    assert run(env, "add", "net1", str(env["netns"]), "--ifname", "eth1").exit_code == 0
    assert run(env, "del", "net1", str(env["netns"])).exit_code == 0
    assert run(env, "add", "net1", str(env["netns"])).exit_code == 0


def test_add_refuses_an_ifname_another_network_holds(env: dict[str, Path]) -> None:
    """Adding net2 as eth0 where net1 already is eth0 would fail in the plugin, and its
    rollback DEL would remove net1's eth0: refuse before any plugin runs."""
    make_plugin(env["bin"], "first", env["log"], add=json.dumps(RESULT_100))
    write_conflist(env["conf"], "net1", [{"type": "first"}])
    write_conflist(env["conf"], "net2", [{"type": "first"}])
    assert run(env, "add", "net1", str(env["netns"])).exit_code == 0
    res = run(env, "add", "net2", str(env["netns"]))
    assert res.exit_code == 1
    assert "interface eth0 of container cnitool-" in res.stderr
    assert 'already belongs to network "net1"' in res.stderr
    assert [c[0] for c in calls(env)] == ["ADD"]  # nothing ran, nothing rolled back
    assert run(env, "add", "net2", str(env["netns"]), "--ifname", "eth1").exit_code == 0


def test_no_rollback_leaves_it(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "first", env["log"])
    make_plugin(env["bin"], "second", env["log"], fail_on="ADD")
    write_conflist(env["conf"], "net1", [{"type": "first"}, {"type": "second"}])
    res = run(env, "add", "net1", str(env["netns"]), "--no-rollback")
    assert res.exit_code == 1
    assert [c[:2] for c in calls(env)] == [["ADD", "first"], ["ADD", "second"]]


def test_failed_rollback_reports_both_errors(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "first", env["log"], fail_on="ADD DEL")
    write_conflist(env["conf"], "net1", [{"type": "first"}])
    res = run(env, "add", "net1", str(env["netns"]))
    assert res.exit_code == 1
    lines = res.stderr.splitlines()
    assert lines == [
        "cnitool: first add failed [code 7 invalid network config]: first refuses ADD; on purpose",
        "cnitool: rollback first delete failed [code 7 invalid network config]: "
        "first refuses DEL; on purpose",
    ]


def test_check_needs_an_existing_netns(env: dict[str, Path], tmp_path: Path) -> None:
    make_plugin(env["bin"], "fake", env["log"])
    write_conflist(env["conf"], "net1", [{"type": "fake"}])
    res = run(env, "check", "net1", str(tmp_path / "gone"))
    assert res.exit_code == 1
    assert "does not exist" in res.stderr and "[code 8 invalid netns]" in res.stderr
    assert calls(env) == []


def test_del_runs_with_a_missing_netns(env: dict[str, Path], tmp_path: Path) -> None:
    make_plugin(env["bin"], "fake", env["log"])
    write_conflist(env["conf"], "net1", [{"type": "fake"}])
    res = run(env, "del", "net1", str(tmp_path / "gone"))
    assert res.exit_code == 0, res.stderr
    assert calls(env)[0][:2] == ["DEL", "fake"]


def test_add_with_missing_plain_path_is_an_error(env: dict[str, Path], tmp_path: Path) -> None:
    make_plugin(env["bin"], "fake", env["log"])
    write_conflist(env["conf"], "net1", [{"type": "fake"}])
    res = run(env, "add", "net1", str(tmp_path / "gone"))
    assert res.exit_code == 1
    assert "does not exist" in res.stderr
    assert calls(env) == [] and cache_files(env) == []


def test_gc_keeps_valid_attachments(env: dict[str, Path], tmp_path: Path) -> None:
    make_plugin(env["bin"], "fake", env["log"])
    write_conflist(env["conf"], "net1", [{"type": "fake"}], version="1.1.0")
    for cid in ("keep", "drop"):
        assert run(env, "add", "net1", str(env["netns"]), "--container-id", cid).exit_code == 0
    res = run(env, "gc", "net1", "--valid", "keep:eth0")
    assert res.exit_code == 0, res.stderr
    dels = [c for c in calls(env) if c[0] == "DEL"]
    assert [c[2] for c in dels] == ["drop"]
    assert [c[0] for c in calls(env)][-1] == "GC"
    left = sorted(p.name for p in (env["cache"] / "results").iterdir())
    assert left == ["net1-keep-eth0"]


def test_gc_rejects_malformed_valid(env: dict[str, Path]) -> None:
    write_conflist(env["conf"], "net1", [{"type": "fake"}])
    res = run(env, "gc", "net1", "--valid", "no-colon")
    assert res.exit_code == 1
    assert "expected CONTAINERID:IFNAME" in res.stderr


def test_usage_errors_exit_2(env: dict[str, Path]) -> None:
    assert run(env, "add", "net1").exit_code == 2
    assert run(env, "frobnicate").exit_code == 2


def test_networks_lists_files_and_problems(env: dict[str, Path]) -> None:
    write_conflist(env["conf"], "net1", [{"type": "bridge"}, {"type": "portmap"}])
    (env["conf"] / "20-net1.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "net1", "plugins": [{"type": "ptp"}]})
    )
    (env["conf"] / "30-broken.conflist").write_text("{")
    res = CliRunner().invoke(cli, ["networks", "--cni-conf-dir", str(env["conf"]), "-o", "json"])
    assert res.exit_code == 1  # the broken file is a problem
    rows = json.loads(res.stdout)
    assert [(os.path.basename(r["file"]), r["name"], r["plugins"], r["active"]) for r in rows] == [
        ("10-net1.conflist", "net1", ["bridge", "portmap"], True),
        ("20-net1.conflist", "net1", ["ptp"], False),
        ("30-broken.conflist", "", [], False),
    ]
    assert rows[1]["problems"] == ["shadowed by 10-net1.conflist"]
    assert rows[2]["problems"]
    # a shadowed copy alone is reported but is no failure
    (env["conf"] / "30-broken.conflist").unlink()
    res = CliRunner().invoke(cli, ["networks", "--cni-conf-dir", str(env["conf"]), "-o", "json"])
    assert res.exit_code == 0
    assert json.loads(res.stdout)[1]["problems"] == ["shadowed by 10-net1.conflist"]


def test_networks_flags_bad_versions_and_files_behind_a_broken_one(env: dict[str, Path]) -> None:
    (env["conf"] / "10-broken.conflist").write_text("{")
    (env["conf"] / "20-odd.conflist").write_text(
        json.dumps({"cniVersion": "abc", "name": "odd", "plugins": [{"type": "ptp"}]})
    )
    res = CliRunner().invoke(cli, ["networks", "--cni-conf-dir", str(env["conf"]), "-o", "json"])
    assert res.exit_code == 1
    odd = json.loads(res.stdout)[1]
    assert odd["name"] == "odd" and odd["active"] is False
    assert odd["problems"] == [
        "unreachable: 10-broken.conflist fails to load first",
        'cniVersion "abc" is not a CNI spec version',
    ]


def test_version_rejects_a_non_positive_timeout(env: dict[str, Path]) -> None:
    res = CliRunner().invoke(cli, ["version", "--cni-bin-dir", str(env["bin"]), "--timeout", "-1"])
    assert res.exit_code == 2
    assert "--timeout" in res.stderr


def test_version_asks_every_plugin(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"])
    res = CliRunner().invoke(cli, ["version", "--cni-bin-dir", str(env["bin"]), "-o", "json"])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["plugins"] == [
        {
            "plugin": "fake",
            "path": str(env["bin"] / "fake"),
            "cniVersion": "1.0.0",
            "supportedVersions": ["0.3.1", "0.4.0", "1.0.0"],
        }
    ]


def test_cache_list(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"], add=json.dumps(RESULT_100))
    write_conflist(env["conf"], "net1", [{"type": "fake"}])
    assert run(env, "add", "net1", str(env["netns"]), "--args", "A=b").exit_code == 0
    res = CliRunner().invoke(cli, ["cache", "list", "--cache-dir", str(env["cache"]), "-o", "json"])
    assert res.exit_code == 0, res.stderr
    rows = json.loads(res.stdout)
    assert len(rows) == 1
    assert rows[0]["network"] == "net1" and rows[0]["ifName"] == "eth0"
    assert rows[0]["addresses"] == ["10.22.0.2/16"]
    assert rows[0]["cniArgs"] == [["A", "b"]]


def test_every_command_module_exposes_a_click_command() -> None:
    import importlib

    import click

    for name, (module, _help) in COMMANDS.items():
        mod = importlib.import_module(module)
        assert isinstance(mod.command, click.Command), name
        assert mod.command.name == name


def test_json_path_never_imports_rich(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"], add=json.dumps(RESULT_100))
    write_conflist(env["conf"], "net1", [{"type": "fake"}])
    code = (
        "import sys\n"
        "from cnitool.cli.main import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "mods = [m for m in ('rich', 'pyroute2', 'iptc') if m in sys.modules]\n"
        "sys.stderr.write('IMPORTED=' + ','.join(mods))\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "add",
            "net1",
            str(env["netns"]),
            "--output",
            "json",
            "--cache-dir",
            str(env["cache"]),
        ],
        env={**os.environ, "NETCONFPATH": str(env["conf"]), "CNI_PATH": str(env["bin"])},
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout == EXPECTED_JSON
    assert proc.stderr.endswith("IMPORTED=")


def test_traceback_only_with_debug(env: dict[str, Path]) -> None:
    (env["conf"] / "00-bad.conflist").write_text("{")
    quiet = run(env, "del", "bad", str(env["netns"]))
    assert quiet.exit_code == 1 and "Traceback" not in quiet.stderr
    loud = run(env, "del", "bad", str(env["netns"]), "--debug")
    assert loud.exit_code == 1
    assert "Traceback (most recent call last)" in loud.stderr
    assert loud.stderr.rstrip().splitlines()[-1].startswith("cnitool: del failed [code 7")


def test_netns_names_are_validated() -> None:
    from cnitool import netns

    for bad in ("", ".", "..", "a/b", "../x"):
        with pytest.raises(common.CNIError, match="invalid netns name"):
            netns.path_of(bad)
    assert netns.path_of("blue") == "/var/run/netns/blue"


def test_status_runs_from_1_1_0_and_ignores_netns(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"])
    write_conflist(env["conf"], "new", [{"type": "fake"}], version="1.1.0")
    res = run(env, "status", "new")
    assert res.exit_code == 0, res.stderr
    assert [c[:2] for c in calls(env)] == [["STATUS", "fake"]]
    write_conflist(env["conf"], "old", [{"type": "fake"}], version="1.0.0")
    assert run(env, "status", "old", "/ignored").exit_code == 0
    assert len(calls(env)) == 1  # skipped below 1.1.0


def test_status_failure_is_reported(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"], fail_on="STATUS")
    write_conflist(env["conf"], "new", [{"type": "fake"}], version="1.1.0")
    res = run(env, "status", "new")
    assert res.exit_code == 1
    assert res.stderr.startswith("cnitool: ") and "fake refuses STATUS" in res.stderr


def test_dry_run_shows_requests_and_runs_nothing(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"])
    write_conflist(
        env["conf"],
        "net1",
        [{"type": "fake", "capabilities": {"portMappings": True}}, {"type": "missing"}],
    )
    res = run(
        env,
        "add",
        "net1",
        str(env["netns"]),
        "--dry-run",
        "-o",
        "json",
        "--cap-args",
        '{"portMappings": [{"hostPort": 8080}]}',
    )
    assert res.exit_code == 0, res.stderr
    steps = json.loads(res.stdout)
    assert [s["plugin"] for s in steps] == ["fake", "missing"]
    assert steps[0]["path"] == str(env["bin"] / "fake")
    assert steps[0]["env"]["CNI_COMMAND"] == "ADD"
    assert json.loads(steps[0]["stdin"]) == {
        "capabilities": {"portMappings": True},
        "cniVersion": "1.0.0",
        "name": "net1",
        "runtimeConfig": {"portMappings": [{"hostPort": 8080}]},
        "type": "fake",
    }
    assert steps[1]["path"] is None and "failed to find plugin" in steps[1]["error"]
    assert calls(env) == [] and cache_files(env) == []
    res = run(env, "del", "net1", str(env["netns"]), "--dry-run", "-o", "json")
    assert [s["plugin"] for s in json.loads(res.stdout)] == ["missing", "fake"]
    assert calls(env) == []


def test_group_help_imports_no_command_module() -> None:
    code = (
        "import sys\n"
        "from cnitool.cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('cnitool.cli.')\n"
        "                and m not in ('cnitool.cli.main',))\n"
        "sys.stderr.write(repr(loaded))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "add" in proc.stdout and "netns" in proc.stdout
    assert proc.stderr == "[]"


def test_cache_show_and_rm(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"], add=json.dumps(RESULT_100))
    write_conflist(env["conf"], "net1", [{"type": "fake"}])
    assert run(env, "add", "net1", str(env["netns"])).exit_code == 0
    cache = ["--cache-dir", str(env["cache"])]
    res = CliRunner().invoke(cli, ["cache", "show", "net1", str(env["netns"]), *cache])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout) == RESULT_100
    res = CliRunner().invoke(cli, ["cache", "rm", "net1", str(env["netns"]), *cache])
    assert res.exit_code == 0 and "removed" in res.stderr
    assert cache_files(env) == []
    res = CliRunner().invoke(cli, ["cache", "show", "net1", str(env["netns"]), *cache])
    assert res.exit_code == 1
    assert res.stderr.startswith("cnitool: cache show failed [code 3 unknown container]: ")
    res = CliRunner().invoke(cli, ["cache", "rm", "net1", "x", "--container-id", "../e", *cache])
    assert res.exit_code == 1 and "invalid characters in containerID" in res.stderr


def test_table_output_renders_the_result(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"], add=json.dumps(RESULT_100))
    write_conflist(env["conf"], "net1", [{"type": "fake"}])
    res = run(env, "add", "net1", str(env["netns"]), "-o", "table")
    assert res.exit_code == 0, res.stderr
    for text in (
        "Interfaces",
        "0a:58:0a:16:00:02",
        "Addresses",
        "10.22.0.2/16",
        "10.22.0.1",
        "Routes",
        "0.0.0.0/0",
        "DNS",
        "nameservers",
    ):
        assert text in res.stdout, text
    assert not res.stdout.lstrip().startswith("{")


def test_networks_validate_asks_each_plugin_once(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"])  # supports 0.3.1, 0.4.0, 1.0.0
    write_conflist(env["conf"], "good", [{"type": "fake", "capabilities": {"portMappings": True}}])
    write_conflist(env["conf"], "newer", [{"type": "fake"}], version="1.1.0")
    write_conflist(env["conf"], "lost", [{"type": "fake"}, {"type": "nope"}])
    args = ["networks", "--cni-conf-dir", str(env["conf"]), "-o", "json"]
    plain_run = CliRunner().invoke(cli, args, env={"CNI_PATH": str(env["bin"])})
    assert plain_run.exit_code == 0, plain_run.stderr
    assert calls(env) == []  # without --validate no plugin runs
    assert all("capabilities" not in row for row in json.loads(plain_run.stdout))

    res = CliRunner().invoke(cli, [*args, "--validate"], env={"CNI_PATH": str(env["bin"])})
    assert res.exit_code == 1, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["good"]["problems"] == []
    assert rows["good"]["capabilities"] == ["portMappings"]
    assert len(rows["newer"]["problems"]) == 1
    assert 'does not support config version "1.1.0"' in rows["newer"]["problems"][0]
    assert len(rows["lost"]["problems"]) == 1
    assert 'failed to find plugin "nope"' in rows["lost"]["problems"][0]
    assert [c[0] for c in calls(env)] == ["VERSION"]  # one answer reused for all networks


def test_networks_validate_passes_with_supported_versions(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"])
    write_conflist(env["conf"], "net1", [{"type": "fake"}], version="0.4.0")
    res = CliRunner().invoke(
        cli,
        ["networks", "--validate", "--cni-conf-dir", str(env["conf"])]
        + ["--cni-bin-dir", str(env["bin"]), "-o", "json"],
    )
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)[0]["problems"] == []


def test_tables_show_brackets_literally(env: dict[str, Path]) -> None:
    """Messages such as 'in path [/dir]' and plugin-supplied strings are text, not markup."""
    write_conflist(env["conf"], "net1", [{"type": "nope"}])
    res = CliRunner().invoke(
        cli,
        ["networks", "--validate", "--cni-conf-dir", str(env["conf"]), "-o", "table"]
        + ["--cni-bin-dir", str(env["bin"])],
        catch_exceptions=False,
    )
    assert res.exit_code == 1

    def squeezed(text: str) -> str:  # rich wraps long cells
        return "".join(text.replace("│", "").split())

    assert f"inpath[{env['bin']}]" in squeezed(res.stdout)

    dry = run(env, "add", "net1", str(env["netns"]), "--dry-run", "-o", "table")
    assert dry.exit_code == 0, dry.stderr
    assert f"inpath[{env['bin']}]" in squeezed(dry.stdout)

    odd = dict(RESULT_100, interfaces=[{"name": "[/eth0]", "mac": "[bold]x"}])
    make_plugin(env["bin"], "fake", env["log"], add=json.dumps(odd))
    write_conflist(env["conf"], "net1", [{"type": "fake"}])
    res = run(env, "add", "net1", str(env["netns"]), "-o", "table")
    assert res.exit_code == 0, res.stderr
    assert "[/eth0]" in res.stdout and "[bold]x" in res.stdout


def test_dry_run_notes_an_unreadable_cached_result(env: dict[str, Path]) -> None:
    make_plugin(env["bin"], "fake", env["log"], add=json.dumps(RESULT_100))
    write_conflist(env["conf"], "net1", [{"type": "fake"}])
    assert run(env, "add", "net1", str(env["netns"])).exit_code == 0
    (cached,) = (env["cache"] / "results").iterdir()
    cached.write_text("{not json")
    for verb, outcome in (("check", "CHECK would fail"), ("del", "DEL runs without prevResult")):
        res = run(env, verb, "net1", str(env["netns"]), "--dry-run", "-o", "json")
        assert res.exit_code == 0, res.stderr
        (step,) = json.loads(res.stdout)
        assert "prevResult" not in json.loads(step["stdin"])
        assert step["note"].startswith(f"the cached result cannot be read ({outcome}): ")
    assert [c[0] for c in calls(env)] == ["ADD"]


def test_plugins_remove_in_a_dir_without_launchers_says_so(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["plugins", "remove", "--bin-dir", str(tmp_path), "-o", "table"])
    assert res.exit_code == 0
    assert res.stdout == "" and res.stderr == f"no plugins to remove in {tmp_path}\n"


def test_cache_list_survives_a_result_of_the_wrong_shape(env: dict[str, Path]) -> None:
    from cnitool.cli.cache import result_addresses

    odd = {"cniVersion": "1.0.0", "ips": ["oops", {"address": "10.0.0.2/24"}], "ip4": 7}
    assert result_addresses(odd) == ["10.0.0.2/24"]
    assert result_addresses({"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.2/16"}}) == [
        "10.1.0.2/16"
    ]
    (env["cache"] / "results").mkdir()
    (env["cache"] / "results" / "n-x-eth0").write_text(
        json.dumps(
            {"kind": "cniCacheV1", "containerId": "x", "config": "e30=", "ifName": "eth0"}
            | {"networkName": "n", "result": odd}
        )
    )
    res = CliRunner().invoke(
        cli,
        ["cache", "list", "--cache-dir", str(env["cache"]), "-o", "json"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)[0]["addresses"] == ["10.0.0.2/24"]


def test_plain_cnitool_prints_its_help_and_succeeds() -> None:
    res = CliRunner().invoke(cli, [])
    assert res.exit_code == 0
    assert res.output.startswith("Usage: ") and "Commands:" in res.output


def test_networks_of_a_missing_conf_dir_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    res = CliRunner().invoke(cli, ["networks", "--cni-conf-dir", str(missing), "-o", "json"])
    assert res.exit_code == 1
    assert f"the conf dir {missing} does not exist" in res.output
    assert "[]" not in res.output


def test_every_view_takes_table_as_an_output_name() -> None:
    from cnitool.cli.main import COMMANDS

    for name in ("chains", "leases", "networks", "version", "netns", "plugins", "cache"):
        assert name in COMMANDS
    res = CliRunner().invoke(cli, ["chains", "-o", "table", "--family", "9"])
    assert "Invalid value for '--family'" in res.output  # -o table itself was accepted
