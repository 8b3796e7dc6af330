"""cnitool driven the way an operator drives the Go tool: environment variables, odd
names and leftovers, checked against what the command promises."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
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
    finally:
        gone = run(tmp_path, "netns", "del", name)
    assert gone.returncode == 0, gone.stderr
    assert not os.path.exists(path)


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
