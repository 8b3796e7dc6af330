"""cnitool driven the way an operator drives the Go tool: environment variables, odd
names and leftovers, checked against what the command promises."""

from __future__ import annotations

import hashlib
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

pytestmark = pytest.mark.root


def run(
    tmp: Path, *args: str | bytes, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "NETCONFPATH": str(tmp / "conf"),
        "CNI_PATH": "/usr/lib/cni",
    }
    full.update(env or {})
    argv: list[str | bytes] = [sys.executable, "-m", "cnitool.cli", *args]
    if args and args[0] in ("add", "check", "del", "gc", "status"):
        argv += ["--cache-dir", str(tmp / "cache")]
    return subprocess.run(argv, env=full, capture_output=True, text=True, timeout=120, check=False)


def conflist(tmp: Path, name: str, plugins: list[dict[str, Any]], file: str = "") -> None:
    conf = tmp / "conf"
    conf.mkdir(exist_ok=True)
    body = {"cniVersion": "1.0.0", "name": name, "plugins": plugins}
    (conf / (file or f"10-{name}.conflist")).write_text(json.dumps(body))


def test_netns_name_that_is_not_utf8(tmp_path: Path) -> None:
    # Linux names are bytes; the Go tool hashes the path bytes for the container ID
    conflist(tmp_path, "lo", [{"type": "loopback"}])
    name = b"op\xffns"
    path = b"/var/run/netns/" + name
    add = run(tmp_path, "add", "lo", name, "-i", "lo", "-o", "json")
    try:
        assert add.returncode == 0, add.stderr
        assert "127.0.0.1/8" in add.stdout
        cid = "cnitool-" + hashlib.sha512(path).hexdigest()[:20]
        assert [p.name for p in (tmp_path / "cache" / "results").iterdir()] == [f"lo-{cid}-lo"]
        delete = run(tmp_path, "del", "lo", name, "-i", "lo")
        assert delete.returncode == 0, delete.stderr
        assert not os.path.exists(path)  # add made it, so del removed it
    finally:
        if os.path.exists(path):
            run(tmp_path, "netns", "del", name)


def test_networks_reports_a_name_add_refuses(tmp_path: Path) -> None:
    conflist(tmp_path, "réseau", [{"type": "loopback"}], file="10-fr.conflist")
    add = run(tmp_path, "add", "réseau", "/var/run/netns/unused", "--dry-run")
    assert add.returncode == 1 and "invalid characters found in network name" in add.stderr
    listing = run(tmp_path, "networks", "-o", "json")
    assert listing.returncode == 1, listing.stdout
    (row,) = json.loads(listing.stdout)
    assert row["name"] == "réseau"
    assert any("invalid characters found in network name" in p for p in row["problems"])


def test_gc_note_counts_the_attachments_kept(
    tmp_path: Path, netns_factory: Callable[[], str]
) -> None:
    conflist(tmp_path, "lo", [{"type": "loopback"}])
    ns = netns_factory()
    assert run(tmp_path, "add", "lo", ns, "-i", "lo").returncode == 0
    # the --valid attachment does not exist: the one cached attachment is deleted
    gc = run(tmp_path, "gc", "lo", "--valid", "nosuch:eth0", "-o", "table")
    assert gc.returncode == 0, gc.stderr
    assert not list((tmp_path / "cache" / "results").iterdir())
    assert "kept 0" in gc.stderr, gc.stderr


def test_concurrent_adds_of_one_attachment_leave_it_attached(
    tmp_path: Path, netns_factory: Callable[[], str]
) -> None:
    conflist(
        tmp_path,
        "race",
        [
            {
                "type": "bridge",
                "bridge": "cniop0",
                "ipam": {
                    "type": "host-local",
                    "subnet": "10.199.0.0/24",
                    "dataDir": str(tmp_path / "ipam"),
                },
            }
        ],
    )
    ns = netns_factory()
    # the pycni plugins: slower than the Go ones, so the adds overlap for sure
    bin_dir = tmp_path / "bin"
    install = run(tmp_path, "plugins", "install", "--bin-dir", str(bin_dir), "bridge", "host-local")
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "NETCONFPATH": str(tmp_path / "conf"), "CNI_PATH": str(bin_dir)}
    argv = [sys.executable, "-m", "cnitool.cli", "add", "race", ns, "-o", "json"]
    argv += ["--cache-dir", str(tmp_path / "cache")]
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    outcomes = []
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        outcomes.append((proc.returncode, err))
    assert sorted(rc for rc, _ in outcomes) == [0, 1, 1, 1, 1, 1], outcomes
    assert all("already attached" in err for rc, err in outcomes if rc), outcomes
    # the one that succeeded is still in place: interface, lease and cache entry
    links = subprocess.run(
        ["ip", "-j", "-n", os.path.basename(ns), "addr", "show", "eth0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert links.returncode == 0, links.stderr
    assert "10.199.0." in links.stdout
    leases = [p.name for p in (tmp_path / "ipam" / "race").iterdir() if p.name.startswith("10.")]
    assert len(leases) == 1, leases
    assert len(list((tmp_path / "cache" / "results").iterdir())) == 1
    assert run(tmp_path, "del", "race", ns).returncode == 0


SLOW_PLUGIN = """#!/bin/sh
if [ "$CNI_COMMAND" = VERSION ]; then
  echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}'; exit 0
fi
if [ "$CNI_COMMAND" = ADD ]; then touch "$0.started"; sleep 30; fi
exit 0
"""


def test_interrupted_add_reports_without_blank_lines(
    tmp_path: Path, netns_factory: Callable[[], str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    slow = bin_dir / "slow"
    slow.write_text(SLOW_PLUGIN)
    slow.chmod(0o755)
    conflist(tmp_path, "slow", [{"type": "loopback"}, {"type": "slow"}])
    ns = netns_factory()
    env = {
        **os.environ,
        "NETCONFPATH": str(tmp_path / "conf"),
        "CNI_PATH": f"{bin_dir}:/usr/lib/cni",
    }
    argv = [sys.executable, "-m", "cnitool.cli", "add", "slow", ns, "-i", "lo"]
    argv += ["--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    started = Path(f"{slow}.started")
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.splitlines() == [
        "cnitool: interrupted; running DEL for the chain",
        "cnitool: interrupted",
    ]


def test_del_without_cap_args_removes_the_go_portmap_rules(
    tmp_path: Path, netns_factory: Callable[[], str]
) -> None:
    conflist(
        tmp_path,
        "pm",
        [
            {
                "type": "bridge",
                "bridge": "cniop1",
                "ipam": {
                    "type": "host-local",
                    "subnet": "10.198.0.0/24",
                    "dataDir": str(tmp_path / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    )
    ns = netns_factory()
    caps = {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}
    add = run(tmp_path, "add", "pm", ns, "--cap-args", json.dumps(caps))
    assert add.returncode == 0, add.stderr

    def dnat_rules() -> list[str]:
        out = subprocess.run(
            ["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True
        ).stdout
        return [ln for ln in out.splitlines() if "--dport 18080" in ln]

    assert dnat_rules()
    # the operator detaches as usual, without repeating the mappings
    delete = run(tmp_path, "del", "pm", ns)
    assert delete.returncode == 0, delete.stderr
    assert dnat_rules() == []


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_table_view_of_an_old_result_shows_its_routes(
    tmp_path: Path, netns_factory: Callable[[], str], version: str
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    ipam = {
        "type": "host-local",
        "subnet": "10.196.0.0/24",
        "dataDir": str(tmp_path / "ipam"),
        "routes": [{"dst": "192.0.2.0/24", "gw": "10.196.0.254"}],
    }
    body = {"cniVersion": version, "name": "old", "type": "bridge", "bridge": "cniop2"}
    (conf / "old.conf").write_text(json.dumps({**body, "ipam": ipam}))
    ns = netns_factory()
    add = run(tmp_path, "add", "old", ns, "-o", "table")
    assert add.returncode == 0, add.stderr
    assert "ip4: 10.196.0.2/24" in add.stdout
    assert "192.0.2.0/24 via 10.196.0.254" in add.stdout, add.stdout
    assert run(tmp_path, "del", "old", ns).returncode == 0


def test_cache_show_of_an_unreadable_entry_is_an_io_failure_not_corruption(
    tmp_path: Path, netns_factory: Callable[[], str]
) -> None:
    conflist(tmp_path, "lo", [{"type": "loopback"}])
    ns = netns_factory()
    assert run(tmp_path, "add", "lo", ns, "-i", "lo").returncode == 0
    results = tmp_path / "cache" / "results"
    results.chmod(0o755)
    tmp_path.chmod(0o755)
    (tmp_path / "cache").chmod(0o755)
    (entry,) = results.iterdir()
    entry.chmod(0o600)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    argv = [*nobody, sys.executable, "-m", "cnitool.cli", "cache", "show", "lo", ns, "-i", "lo"]
    show = subprocess.run(
        [*argv, "--cache-dir", str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert show.returncode == 1
    assert "[code 5 I/O failure]" in show.stderr, show.stderr
    assert "corrupt" not in show.stderr
    assert "Permission denied" in show.stderr


def test_gc_without_valid_succeeds_with_the_pycni_plugins(
    tmp_path: Path, netns_factory: Callable[[], str]
) -> None:
    bin_dir = tmp_path / "bin"
    install = run(tmp_path, "plugins", "install", "--bin-dir", str(bin_dir), "bridge", "host-local")
    assert install.returncode == 0, install.stderr
    ipam = {"type": "host-local", "subnet": "10.194.0.0/24", "dataDir": str(tmp_path / "ipam")}
    (tmp_path / "conf").mkdir(exist_ok=True)
    body = {
        "cniVersion": "1.1.0",
        "name": "gcnet",
        "plugins": [{"type": "bridge", "bridge": "cniop3", "ipam": ipam}],
    }
    (tmp_path / "conf" / "gc.conflist").write_text(json.dumps(body))
    env = {"CNI_PATH": str(bin_dir)}
    ns = netns_factory()
    assert run(tmp_path, "add", "gcnet", ns, env=env).returncode == 0
    gc = run(tmp_path, "gc", "gcnet", env=env)
    assert gc.returncode == 0, gc.stderr
    # the synthetic DEL released the lease; the GC that followed had nothing left to do
    lease_dir = tmp_path / "ipam" / "gcnet"
    assert [p.name for p in lease_dir.iterdir() if p.name[0].isdigit()] == []
    assert "nothing released" in gc.stderr
