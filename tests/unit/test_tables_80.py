"""The cache and leases tables on an 80-column terminal: no line is wider, and every row
stays on one line (long container IDs are cut the way ``docker ps`` cuts them)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnitool.cli.output import short_ids
from cnitool.libcni.cache import ResultCache
from cnitool.libcni.config import conf_list_from_bytes
from cnitool.libcni.runtime import RuntimeConf

ROWS = 6


def ids() -> list[str]:
    """Container IDs as runtimes make them: 64 hex (containerd, CRI-O) and Go cnitool's."""
    out = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(ROWS - 2)]
    return out + ["cnitool-" + hashlib.sha512(b"/var/run/netns/x").hexdigest()[:20], "short"]


def render(*args: str) -> list[str]:
    env = {**os.environ, "COLUMNS": "80", "LINES": "50"}
    p = subprocess.run(
        [sys.executable, "-m", "cnitool.cli", *args, "-o", "table"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return p.stdout.splitlines()


def body(lines: list[str]) -> list[str]:
    """The data rows of a rich table (between the header rule and the bottom line)."""
    start = next(i for i, ln in enumerate(lines) if ln.startswith("┡"))
    end = next(i for i, ln in enumerate(lines) if ln.startswith("└"))
    return lines[start + 1 : end]


@pytest.fixture
def node(tmp_path: Path) -> Path:
    conf = {
        "cniVersion": "1.0.0",
        "name": "a-network-with-a-rather-long-name",
        "plugins": [{"type": "bridge", "ipam": {"type": "host-local", "subnet": "10.9.0.0/16"}}],
    }
    net = conf_list_from_bytes(json.dumps(conf).encode())
    cache = ResultCache(str(tmp_path / "cache"))
    leases = tmp_path / "data" / net.name
    leases.mkdir(parents=True)
    for i, cid in enumerate(ids()):
        ip = f"10.9.{i}.{200 + i}"
        result = {
            "cniVersion": "1.0.0",
            "ips": [{"address": f"{ip}/16"}, {"address": f"fd00:1234:5678::{i:x}/64"}],
        }
        netns = f"/var/run/netns/cni-{cid[:8]}-aaaa-bbbb-cccc-{i:012}"
        if i % 2:  # half of them owned by a cached attachment
            cache.save(net, RuntimeConf(container_id=cid, netns=netns, ifname="eth0"), result)
        (leases / ip).write_text(f"{cid}\r\neth0")
    return tmp_path


def test_cache_list_fits_80_columns(node: Path) -> None:
    lines = render("cache", "list", "--cache-dir", str(node / "cache"))
    assert max(map(len, lines)) <= 80, "\n".join(lines)
    assert len(body(lines)) == ROWS // 2, "\n".join(lines)


def test_leases_fit_80_columns(node: Path) -> None:
    lines = render(
        "leases",
        "--data-dir",
        str(node / "data"),
        "--cache-dir",
        str(node / "cache"),
        "--cni-conf-dir",
        str(node / "none"),
    )
    assert max(map(len, lines)) <= 80, "\n".join(lines)
    rows = body(lines)
    assert len(rows) == ROWS, "\n".join(lines)
    assert sum("STALE" in row for row in rows) == ROWS // 2, "\n".join(lines)
    # every row shows its address in full
    assert all(f"10.9.{i}.{200 + i}" in "\n".join(rows) for i in range(ROWS))


def test_short_ids_stay_unique() -> None:
    a, b = "ab" * 32, "ab" * 16 + "cd" * 16
    cut = short_ids([a, b, "cnitool-0123456789abcdef0123", "pod1"])
    assert cut["pod1"] == "pod1"
    assert cut[a] != cut[b] and cut[a].endswith("…")
    assert cut["cnitool-0123456789abcdef0123"] == "cnitool-0123456789ab…"
