"""Fixtures for the in-process plugin tests (bridge, ptp, loopback); helpers live in
plugin_helpers.py."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from plugin_helpers import Runner, ip_cmd


@pytest.fixture
def bin_dir(tmp_path: Path, python: str) -> Path:
    """Launchers for our plugins (host-local included when available)."""
    from cnitool import launchers

    d = tmp_path / "bin"
    launchers.install(str(d), ["bridge", "ptp", "loopback", "host-local"], python=python)
    return d


@pytest.fixture
def runner(bin_dir: Path, tmp_path: Path) -> Runner:
    """CNI_PATH = our launchers first, then the reference plugins."""
    return Runner(cni_path=f"{bin_dir}:/usr/lib/cni", data_dir=str(tmp_path / "ipam"))


@pytest.fixture
def go_runner(reference_bin: Path, tmp_path: Path) -> Runner:
    """CNI_PATH = the reference plugins only (Go host-local behind our bridge)."""
    return Runner(cni_path=str(reference_bin), data_dir=str(tmp_path / "ipam"))


@pytest.fixture
def make_master() -> Iterator[Callable[..., str]]:
    """Make a master: one end of a fresh veth pair (both up), in the node or in a pod."""
    made: list[tuple[str, str | None]] = []

    def make(ns: str | None = None, mtu: int = 1500) -> str:
        tag = secrets.token_hex(3)
        name, peer = f"mvm{tag}", f"mvp{tag}"
        ip_cmd("link", "add", name, "mtu", str(mtu), "type", "veth", "peer", "name", peer, ns=ns)
        ip_cmd("link", "set", name, "up", ns=ns)
        ip_cmd("link", "set", peer, "up", ns=ns)
        made.append((name, ns))
        return name

    yield make
    for name, ns in made:
        cmd = ["ip"] + (["-n", os.path.basename(ns)] if ns else []) + ["link", "del", name]
        subprocess.run(cmd, check=False, capture_output=True)


@pytest.fixture
def master(make_master: Callable[..., str]) -> str:
    return make_master()
