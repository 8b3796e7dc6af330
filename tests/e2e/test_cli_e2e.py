"""cnitool as a user runs it: the real command in a subprocess, real launchers, real
network namespaces (inside the test run's private namespaces, see tests/conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cnitool.cli.settings import container_id_for

pytestmark = pytest.mark.root

RESULT = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "mac": "0a:58:0a:16:00:02"}],
    "ips": [{"interface": 0, "address": "10.22.0.2/16", "gateway": "10.22.0.1"}],
}


class Env:
    def __init__(self, tmp: Path, python: str) -> None:
        self.python = python
        self.bin = tmp / "bin"
        self.conf = tmp / "conf"
        self.cache = tmp / "cache"
        self.data = tmp / "ipam"
        for d in (self.bin, self.conf, self.cache, self.data):
            d.mkdir()
        self.tmp = tmp

    def run(
        self,
        *args: str,
        bin_dirs: str | None = None,
        check: bool = False,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        full = {**os.environ, "NETCONFPATH": str(self.conf), "CNI_PATH": bin_dirs or str(self.bin)}
        full.update(env or {})
        argv = [self.python, "-m", "cnitool.cli", *args]
        if args and args[0] in ("add", "check", "del", "gc", "status"):
            argv += ["--cache-dir", str(self.cache)]
        proc = subprocess.run(
            argv, env=full, capture_output=True, text=True, timeout=120, check=False
        )
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    def conflist(self, name: str, plugins: list[dict[str, Any]], version: str = "1.0.0") -> None:
        (self.conf / f"10-{name}.conflist").write_text(
            json.dumps({"cniVersion": version, "name": name, "plugins": plugins}, indent=2) + "\n"
        )

    def cache_files(self) -> list[Path]:
        """The result cache's files (the netns marks of add live beside it)."""
        return [p for p in (self.cache / "results").rglob("*") if p.is_file()]

    def install(self, *names: str) -> None:
        proc = self.run("plugins", "install", "--bin-dir", str(self.bin), "-o", "json", *names)
        assert proc.returncode == 0, proc.stderr
        rows = json.loads(proc.stdout)
        assert [r["name"] for r in rows if r["action"] == "installed"] == list(names), rows


@pytest.fixture
def cli(tmp_path: Path, python: str) -> Env:
    return Env(tmp_path, python)


def debug_file(cli: Env, name: str, **fields: Any) -> Path:
    path = cli.tmp / f"{name}.debug.json"
    path.write_text(json.dumps(fields))
    return path


def ip_json(netns: str, *args: str) -> Any:
    out = subprocess.run(
        ["ip", "-j", "-n", os.path.basename(netns), *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out or "[]")


# ---------------------------------------------------------------------------- noop chain


def test_noop_chain_add_check_del(cli: Env, netns_factory: Callable[[], str]) -> None:
    cli.install("noop")
    first = debug_file(cli, "first", ReportResult=json.dumps(RESULT))
    second = debug_file(cli, "second", ReportResult="PASSTHROUGH")
    cli.conflist(
        "chain",
        [{"type": "noop", "debugFile": str(first)}, {"type": "noop", "debugFile": str(second)}],
    )
    ns = netns_factory()
    cid = container_id_for(ns)

    add = cli.run("add", "chain", ns, "--output", "json", check=True)
    assert json.loads(add.stdout) == RESULT
    assert not add.stdout.endswith("\n")  # Go's bytes: no trailing newline
    rec = json.loads(second.read_text())
    assert rec["Command"] == "ADD"
    assert rec["CmdArgs"]["ContainerID"] == cid and rec["CmdArgs"]["Netns"] == ns
    assert rec["CmdArgs"]["IfName"] == "eth0"
    stdin = json.loads(__import__("base64").b64decode(rec["CmdArgs"]["StdinData"]))
    assert stdin["prevResult"] == RESULT
    assert [p.name for p in cli.cache_files()] == [f"chain-{cid}-eth0"]

    cli.run("check", "chain", ns, check=True)
    assert json.loads(first.read_text())["Command"] == "CHECK"

    delete = cli.run("del", "chain", ns, "--output", "json", check=True)
    assert delete.stdout == ""
    assert json.loads(first.read_text())["Command"] == "DEL"
    assert cli.cache_files() == []


def test_failing_plugin_error_line_and_rollback(cli: Env, netns_factory: Callable[[], str]) -> None:
    cli.install("noop")
    first = debug_file(cli, "first", ReportResult=json.dumps(RESULT))
    second = debug_file(cli, "second", ReportError="no capacity", ReportErrorCode=117)
    cli.conflist(
        "chain",
        [{"type": "noop", "debugFile": str(first)}, {"type": "noop", "debugFile": str(second)}],
    )
    ns = netns_factory()
    proc = cli.run("add", "chain", ns)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("cnitool:")]
    # the failing noop fails its rollback DEL too: both errors are reported
    assert lines == [
        "cnitool: noop add failed [code 117 plugin-specific]: no capacity",
        "cnitool: rollback noop delete failed [code 117 plugin-specific]: no capacity",
    ]
    assert "Traceback" not in proc.stderr
    # rollback: DEL ran for every plugin, the first one too despite the second's failure
    assert json.loads(second.read_text())["Command"] == "DEL"
    assert json.loads(first.read_text())["Command"] == "DEL"
    assert cli.cache_files() == []


# ---------------------------------------------------------------------------- bridge + host-local


def bridge_chain(cli: Env, subnet: str = "10.99.0.0/24") -> None:
    cli.conflist(
        "br",
        [
            {
                "type": "bridge",
                "bridge": "cnie2e0",
                "isGateway": True,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(cli.data),
                    "ranges": [[{"subnet": subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
        ],
    )


@pytest.fixture(params=["reference", "pycni"])
def bridge_bins(request: pytest.FixtureRequest, cli: Env) -> str:
    if request.param == "reference":
        return str(request.getfixturevalue("reference_bin"))
    cli.install("bridge", "host-local")
    return str(cli.bin)


def test_bridge_host_local_add_del(
    cli: Env, netns_factory: Callable[[], str], bridge_bins: str
) -> None:
    bridge_chain(cli)
    ns = netns_factory()
    cid = container_id_for(ns)
    add = cli.run("add", "br", ns, "-o", "json", bin_dirs=bridge_bins, check=True)
    result = json.loads(add.stdout)
    assert [ip["address"] for ip in result["ips"]] == ["10.99.0.2/24"]
    addrs = [
        a["local"]
        for link in ip_json(ns, "addr", "show", "eth0")
        for a in link["addr_info"]
        if a["family"] == "inet"
    ]
    assert addrs == ["10.99.0.2"]
    lease = cli.data / "br" / "10.99.0.2"
    assert lease.read_bytes() == f"{cid}\r\neth0".encode()
    cached = json.loads((cli.cache / "results" / f"br-{cid}-eth0").read_text())
    assert (
        cached["kind"] == "cniCacheV1" and cached["result"]["ips"][0]["address"] == "10.99.0.2/24"
    )

    cli.run("check", "br", ns, bin_dirs=bridge_bins, check=True)
    cli.run("del", "br", ns, bin_dirs=bridge_bins, check=True)
    assert not lease.exists()
    links = [link["ifname"] for link in ip_json(ns, "link", "show")]
    assert "eth0" not in links
    assert cli.cache_files() == []


def test_table_output_shows_addresses(
    cli: Env, netns_factory: Callable[[], str], reference_bin: Path
) -> None:
    bridge_chain(cli)
    ns = netns_factory()
    add = cli.run("add", "br", ns, "-o", "table", bin_dirs=str(reference_bin), check=True)
    assert "Addresses" in add.stdout and "10.99.0.2/24" in add.stdout
    assert "Routes" in add.stdout and "0.0.0.0/0" in add.stdout
    cli.run("del", "br", ns, bin_dirs=str(reference_bin), check=True)


def test_del_after_netns_is_gone_releases_the_lease(
    cli: Env, netns_factory: Callable[[], str], reference_bin: Path
) -> None:
    bridge_chain(cli)
    ns = netns_factory()
    cli.run("add", "br", ns, bin_dirs=str(reference_bin), check=True)
    assert (cli.data / "br" / "10.99.0.2").exists()
    subprocess.run(["ip", "netns", "del", os.path.basename(ns)], check=True)
    proc = cli.run("del", "br", ns, bin_dirs=str(reference_bin))
    assert proc.returncode == 0, proc.stderr
    assert not (cli.data / "br" / "10.99.0.2").exists()
    assert cli.cache_files() == []


def test_rollback_releases_bridge_and_lease(
    cli: Env, netns_factory: Callable[[], str], reference_bin: Path
) -> None:
    cli.install("noop")
    failing = debug_file(cli, "fail", ReportError="boom")
    cli.conflist(
        "br",
        [
            {
                "type": "bridge",
                "bridge": "cnie2e0",
                "isGateway": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(cli.data),
                    "ranges": [[{"subnet": "10.99.0.0/24"}]],
                },
            },
            {"type": "noop", "debugFile": str(failing)},
        ],
    )
    ns = netns_factory()
    proc = cli.run("add", "br", ns, bin_dirs=f"{reference_bin}:{cli.bin}")
    assert proc.returncode == 1
    assert "cnitool: noop add failed [code 999 internal error]: boom" in proc.stderr
    assert not (cli.data / "br" / "10.99.0.2").exists()
    assert "eth0" not in [link["ifname"] for link in ip_json(ns, "link", "show")]
    assert cli.cache_files() == []


# ---------------------------------------------------------------------------- named netns


def test_add_creates_a_missing_named_netns(cli: Env) -> None:
    cli.install("noop")
    cli.conflist("chain", [{"type": "noop"}])
    add = cli.run("add", "chain", "e2e-auto", "-o", "json", check=True)
    assert "created network namespace /var/run/netns/e2e-auto" in add.stderr
    names = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert "e2e-auto" in names
    cached = cli.cache_files()
    assert [p.name for p in cached] == [f"chain-{container_id_for('/var/run/netns/e2e-auto')}-eth0"]
    # del removes the netns add made (the Go tool's runtime would not have made one)
    gone = cli.run("del", "chain", "e2e-auto", check=True)
    assert "removed network namespace /var/run/netns/e2e-auto" in gone.stderr
    assert not Path("/var/run/netns/e2e-auto").exists()


def test_del_removes_only_a_netns_add_made_and_only_when_unused(cli: Env) -> None:
    cli.install("noop")
    cli.conflist("one", [{"type": "noop"}])
    cli.conflist("two", [{"type": "noop"}])
    auto = Path("/var/run/netns/e2e-shared")
    cli.run("add", "one", "e2e-shared", check=True)  # made here
    cli.run("add", "two", "e2e-shared", "-i", "eth1", check=True)
    cli.run("del", "one", "e2e-shared", check=True)
    assert auto.exists()  # network two still uses it
    cli.run("del", "two", "e2e-shared", "-i", "eth1", "--keep-netns", check=True)
    assert auto.exists()  # kept on request
    cli.run("netns", "del", "e2e-shared", check=True)
    # a netns that existed before add is never removed by del
    cli.run("netns", "add", "e2e-before", check=True)
    cli.run("add", "one", "e2e-before", check=True)
    kept = cli.run("del", "one", "e2e-before", check=True)
    assert "removed network namespace" not in kept.stderr
    assert Path("/var/run/netns/e2e-before").exists()
    cli.run("netns", "del", "e2e-before", check=True)


def test_netns_commands_interoperate_with_ip_netns(cli: Env) -> None:
    cli.run("netns", "add", "e2e-ours", check=True)
    subprocess.run(["ip", "netns", "add", "e2e-theirs"], check=True)
    try:
        listed = json.loads(cli.run("netns", "list", "-o", "json", check=True).stdout)
        assert {"e2e-ours", "e2e-theirs"} <= set(listed)
        # a real netns: ip can run a command in it, and it has only lo
        links = ip_json("/run/netns/e2e-ours", "link", "show")
        assert [link["ifname"] for link in links] == ["lo"]
        dup = cli.run("netns", "add", "e2e-ours")
        assert dup.returncode == 1 and "already exists" in dup.stderr
        bad = cli.run("netns", "add", "../escape")
        assert bad.returncode == 1 and "invalid netns name" in bad.stderr
    finally:
        cli.run("netns", "del", "e2e-ours", "e2e-theirs", "--missing-ok", check=True)
    assert (
        "e2e-theirs"
        not in subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=True
        ).stdout
    )


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "case",
    [
        "malformed",
        "unknown-plugin",
        "plugin-path",
        "container-id",
        "ifname",
        "missing-netns-check",
        "missing-path-add",
    ],
)
def test_bad_input_clear_error_nothing_cached(
    cli: Env, netns_factory: Callable[[], str], case: str
) -> None:
    cli.install("noop")
    ns = netns_factory()
    verb, extra = "add", []
    if case == "malformed":
        (cli.conf / "10-bad.conflist").write_text(
            '{"name": "bad", "cniVersion": "1.0.0", "plugins": [}'
        )
        net, fragment = "bad", "10-bad.conflist"
    elif case == "unknown-plugin":
        cli.conflist("bad", [{"type": "noop"}, {"type": "no-such-plugin"}])
        net, fragment = "bad", 'failed to find plugin "no-such-plugin"'
    elif case == "plugin-path":
        cli.conflist("bad", [{"type": "../bin/noop"}])
        net, fragment = "bad", "../bin/noop"
    elif case == "container-id":
        cli.conflist("bad", [{"type": "noop"}])
        net, fragment, extra = (
            "bad",
            "invalid characters in containerID",
            ["--container-id", "../x"],
        )
    elif case == "ifname":
        cli.conflist("bad", [{"type": "noop"}])
        net, fragment, extra = "bad", "interface name contains", ["--ifname", "../x"]
    elif case == "missing-netns-check":
        cli.conflist("bad", [{"type": "noop"}])
        net, fragment, verb = "bad", "does not exist", "check"
        ns = str(cli.tmp / "no-such-netns")
    else:
        cli.conflist("bad", [{"type": "noop"}])
        net, fragment = "bad", "does not exist"
        ns = str(cli.tmp / "no-such-netns")
    proc = cli.run(verb, net, ns, *extra)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("cnitool: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert cli.cache_files() == []


def test_networks_and_version_against_reference(cli: Env, reference_bin: Path) -> None:
    bridge_chain(cli)
    nets = json.loads(cli.run("networks", "-o", "json", check=True).stdout)
    assert [(n["name"], n["plugins"]) for n in nets] == [("br", ["bridge"])]
    ver = json.loads(
        cli.run("version", "--cni-bin-dir", str(reference_bin), "-o", "json", check=True).stdout
    )
    bridge = next(p for p in ver["plugins"] if p["plugin"] == "bridge")
    assert "1.0.0" in bridge["supportedVersions"]


def test_cli_runs_under_the_current_interpreter() -> None:
    # guards the helper above: the module entry really is the CLI
    out = subprocess.run(
        [sys.executable, "-m", "cnitool.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("cnitool, version ")


def test_gc_keeps_valid_and_releases_the_rest(
    cli: Env, netns_factory: Callable[[], str], reference_bin: Path
) -> None:
    bridge_chain(cli)
    keep, drop = netns_factory(), netns_factory()
    for ns in (keep, drop):
        cli.run("add", "br", ns, bin_dirs=str(reference_bin), check=True)
    leases = sorted(p.name for p in (cli.data / "br").iterdir() if p.name[0].isdigit())
    assert leases == ["10.99.0.2", "10.99.0.3"]
    cli.run(
        "gc",
        "br",
        "--valid",
        f"{container_id_for(keep)}:eth0",
        bin_dirs=str(reference_bin),
        check=True,
    )
    leases = sorted(p.name for p in (cli.data / "br").iterdir() if p.name[0].isdigit())
    assert leases == ["10.99.0.2"]
    assert [p.name for p in cli.cache_files()] == [f"br-{container_id_for(keep)}-eth0"]
    assert "eth0" not in [link["ifname"] for link in ip_json(drop, "link", "show")]
    # without --valid every cached attachment of the network goes (the Go tool's gc)
    cli.run("gc", "br", keep, bin_dirs=str(reference_bin), check=True)
    assert cli.cache_files() == []
    assert not (cli.data / "br" / "10.99.0.2").exists()


def test_failed_add_removes_the_netns_it_created(cli: Env) -> None:
    cli.install("noop")
    failing = debug_file(cli, "fail", ReportError="boom")
    cli.conflist("chain", [{"type": "noop", "debugFile": str(failing)}])
    # noop fails DEL too, so with that chain the netns is kept for inspection
    proc = cli.run("add", "chain", "e2e-kept")
    assert proc.returncode == 1 and Path("/var/run/netns/e2e-kept").exists()
    cli.run("netns", "del", "e2e-kept", check=True)
    # a plugin that fails only ADD: rollback succeeds and the new netns goes again
    script = cli.bin / "addfails"
    script.write_text(
        '#!/bin/sh\n[ "$CNI_COMMAND" = ADD ] || exit 0\n'
        'printf \'{"code": 11, "msg": "later"}\'; exit 1\n'
    )
    script.chmod(0o755)
    cli.conflist("chain", [{"type": "addfails"}])
    proc = cli.run("add", "chain", "e2e-temp")
    assert proc.returncode == 1
    assert "removed network namespace /var/run/netns/e2e-temp again" in proc.stderr
    assert not Path("/var/run/netns/e2e-temp").exists()
    assert cli.cache_files() == []


def test_del_after_a_plugin_crash_keeps_the_cache_for_a_retry(
    cli: Env, netns_factory: Callable[[], str]
) -> None:
    cli.install("noop")
    first = debug_file(cli, "first", ReportResult=json.dumps(RESULT))
    marker = cli.tmp / "crash-on-del"
    crashy = cli.bin / "crashy"
    crashy.write_text(
        "#!/bin/sh\n"
        "cat >/dev/null\n"
        f'if [ "$CNI_COMMAND" = DEL ] && [ -e {marker} ]; then\n'
        "  echo 'crashy: dying' >&2; kill -KILL $$\n"
        "fi\n"
        f"[ \"$CNI_COMMAND\" = ADD ] && echo '{json.dumps(RESULT)}'\n"
        "exit 0\n"
    )
    crashy.chmod(0o755)
    cli.conflist("chain", [{"type": "noop", "debugFile": str(first)}, {"type": "crashy"}])
    ns = netns_factory()
    cli.run("add", "chain", ns, "--output", "json", check=True)
    cached = cli.cache_files()
    assert len(cached) == 1

    marker.touch()
    proc = cli.run("del", "chain", ns)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    line = [x for x in proc.stderr.splitlines() if x.startswith("cnitool:")]
    assert len(line) == 1 and "crashy delete failed" in line[0] and "SIGKILL" in line[0]
    assert cli.cache_files() == cached  # kept: the DEL can be retried
    assert json.loads(first.read_text())["Command"] == "ADD"  # the chain stopped there

    marker.unlink()
    cli.run("del", "chain", ns, check=True)
    assert cli.cache_files() == []
    rec = json.loads(first.read_text())
    assert rec["Command"] == "DEL"
    stdin = json.loads(__import__("base64").b64decode(rec["CmdArgs"]["StdinData"]))
    assert stdin["prevResult"] == RESULT  # the retry still had the cached result


def hanging_chain(cli: Env, naptime: str) -> tuple[Path, Path, str]:
    """List ``chain``: noop (a result), then ``hang``, whose ADD sleeps ``naptime`` seconds
    in two processes (a unique number, to find exactly these sleepers afterwards); every
    verb ``hang`` gets is logged. Returns noop's debug file, the log and the naptime."""
    cli.install("noop")
    first = debug_file(cli, "first", ReportResult=json.dumps(RESULT))
    log = cli.tmp / "hang.log"
    hang = cli.bin / "hang"
    hang.write_text(
        "#!/bin/sh\n"
        "cat >/dev/null\n"
        f"echo $CNI_COMMAND >> {log}\n"
        f'[ "$CNI_COMMAND" = ADD ] && {{ sleep {naptime} & sleep {naptime}; }}\n'
        "exit 0\n"
    )
    hang.chmod(0o755)
    cli.conflist("chain", [{"type": "noop", "debugFile": str(first)}, {"type": "hang"}])
    return first, log, naptime


def test_add_timeout_kills_the_plugin_and_rolls_back(
    cli: Env, netns_factory: Callable[[], str]
) -> None:
    first, log, naptime = hanging_chain(cli, f"60.{os.getpid()}")
    ns = netns_factory()
    start = time.monotonic()
    proc = cli.run("add", "chain", ns, "--timeout", "1", "--output", "json")
    assert time.monotonic() - start < 15
    assert proc.returncode == 1 and proc.stdout == ""
    lines = [x for x in proc.stderr.splitlines() if x.startswith("cnitool:")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("cnitool: hang add failed [code 999 internal error]: ")
    assert "timed out after 1s" in lines[0]
    assert log.read_text().split() == ["ADD", "DEL"]  # the rollback reached it too
    assert json.loads(first.read_text())["Command"] == "DEL"
    assert cli.cache_files() == []
    sleepers = subprocess.run(
        ["pgrep", "-f", f"^sleep {naptime}$"], capture_output=True, text=True, check=False
    ).stdout.split()
    assert sleepers == []  # the whole process group was killed


def test_interrupted_add_rolls_back_and_exits_130(
    cli: Env, netns_factory: Callable[[], str]
) -> None:
    """Ctrl-C while a plugin runs: the plugin's group is killed, DEL runs for the chain."""
    cli.install("noop")
    first = debug_file(cli, "first", ReportResult=json.dumps(RESULT))
    log = cli.tmp / "hang.log"
    hang = cli.bin / "hang"
    hang.write_text(
        "#!/bin/sh\n"
        "cat >/dev/null\n"
        f"echo $CNI_COMMAND >> {log}\n"
        '[ "$CNI_COMMAND" = ADD ] && sleep 60\n'
        "exit 0\n"
    )
    hang.chmod(0o755)
    cli.conflist("chain", [{"type": "noop", "debugFile": str(first)}, {"type": "hang"}])
    ns = netns_factory()
    env = {**os.environ, "NETCONFPATH": str(cli.conf), "CNI_PATH": str(cli.bin)}
    argv = [cli.python, "-m", "cnitool.cli", "add", "chain", ns, "-o", "json"]
    proc = subprocess.Popen(
        [*argv, "--cache-dir", str(cli.cache)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not (log.exists() and log.read_text().split() == ["ADD"]):
        assert time.monotonic() < deadline, "the hanging plugin never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert out == ""
    assert "interrupted; running DEL for the chain" in err
    assert log.read_text().split() == ["ADD", "DEL"]
    assert json.loads(first.read_text())["Command"] == "DEL"
    assert cli.cache_files() == []


def test_rollback_succeeds_on_a_read_only_lease_disk(cli: Env) -> None:
    """ADD cannot lease on a read-only disk; the rollback DEL, with nothing to release,
    succeeds, so the netns the ADD created goes again and only the ADD error is reported."""
    cli.install("host-local")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(cli.data)], check=True)
    try:
        (cli.data / "ro").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(cli.data)], check=True)
        ipam = {"type": "host-local", "dataDir": str(cli.data), "subnet": "10.98.0.0/24"}
        cli.conflist("ro", [{"type": "host-local", "ipam": ipam}])
        proc = cli.run("add", "ro", "e2e-ro")
    finally:
        subprocess.run(["umount", "-l", str(cli.data)], check=False)
    assert proc.returncode == 1
    lines = [x for x in proc.stderr.splitlines() if " failed " in x]
    assert len(lines) == 1, proc.stderr  # the ADD's error, and no rollback error
    assert lines[0].startswith("cnitool: host-local add failed [code 999 internal error]: ")
    assert "read-only file system" in lines[0]
    assert "removed network namespace /var/run/netns/e2e-ro again" in proc.stderr
    assert not Path("/var/run/netns/e2e-ro").exists()
    assert cli.cache_files() == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_terminated_add_rolls_back_and_stops_the_plugin(cli: Env, sig: signal.Signals) -> None:
    """SIGTERM or SIGHUP while a plugin runs: its process group is killed, DEL runs for the
    chain, the netns the ADD created goes again, and the exit status is 128 + signal."""
    first, log, naptime = hanging_chain(cli, f"60.{os.getpid()}{int(sig)}")
    netns = f"e2e-{sig.name.lower()}"
    env = {**os.environ, "NETCONFPATH": str(cli.conf), "CNI_PATH": str(cli.bin)}
    argv = [cli.python, "-m", "cnitool.cli", "add", "chain", netns, "-o", "json"]
    proc = subprocess.Popen(
        [*argv, "--cache-dir", str(cli.cache)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not (log.exists() and log.read_text().split() == ["ADD"]):
        assert time.monotonic() < deadline, "the hanging plugin never started"
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    assert out == ""
    assert f"cnitool: {sig.name} received; running DEL for the chain" in err
    assert f"cnitool: terminated by {sig.name}" in err
    assert "Traceback" not in err
    assert log.read_text().split() == ["ADD", "DEL"]
    assert json.loads(first.read_text())["Command"] == "DEL"
    assert cli.cache_files() == []
    assert not Path(f"/var/run/netns/{netns}").exists()
    sleepers = subprocess.run(
        ["pgrep", "-f", f"^sleep {naptime}$"], capture_output=True, text=True, check=False
    ).stdout.split()
    assert sleepers == []  # the plugin's whole process group was stopped


def test_add_refuses_a_kernel_name_template(cli: Env, reference_bin: Path) -> None:
    """With eth%d the Go bridge fails and leaves its veth pair: cnitool refuses first."""
    bridge_chain(cli)
    before = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    proc = cli.run("add", "br", "e2e-tpl", "--ifname", "eth%d", bin_dirs=str(reference_bin))
    assert proc.returncode == 1
    assert proc.stderr == (
        "cnitool: add failed [code 4 invalid environment]: interface name contains %, "
        "which the kernel takes for a name template; eth%d\n"
    )
    assert not Path("/var/run/netns/e2e-tpl").exists()
    assert subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout == before
    assert not (cli.data / "br").exists() and cli.cache_files() == []


def test_gc_stale_keeps_live_attachments_and_releases_the_gone(
    cli: Env, netns_factory: Callable[[], str], reference_bin: Path
) -> None:
    bridge_chain(cli)
    live, gone = netns_factory(), netns_factory()
    for ns in (live, gone):
        cli.run("add", "br", ns, bin_dirs=str(reference_bin), check=True)
    subprocess.run(["ip", "netns", "del", os.path.basename(gone)], check=True)
    proc = cli.run("gc", "br", "--stale", "-o", "table", bin_dirs=str(reference_bin), check=True)
    assert f"deleting {container_id_for(gone)} eth0" in proc.stderr
    assert "deleted 1, kept 1" in proc.stderr
    leases = sorted(p.name for p in (cli.data / "br").iterdir() if p.name[0].isdigit())
    assert leases == ["10.99.0.2"]  # the live pod's; the gone one's was released
    assert [p.name for p in cli.cache_files()] == [f"br-{container_id_for(live)}-eth0"]
    assert "eth0" in [link["ifname"] for link in ip_json(live, "link", "show")]
    both = cli.run("gc", "br", "--stale", "--valid", "x:eth0", bin_dirs=str(reference_bin))
    assert both.returncode == 1 and "give one" in both.stderr
