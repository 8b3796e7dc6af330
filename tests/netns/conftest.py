"""Fixtures for the in-process plugin tests (bridge, ptp, loopback); helpers live in
plugin_helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_helpers import Runner


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
