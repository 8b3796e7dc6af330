"""The plugin service's warm-up: the common call run in namespaces of its own, leaving
nothing behind in the service's namespace, its files or its process state."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import pytest
from cnitool_plugins import _warmup
from cnitool_plugins._lib import netns, sysctl
from cnitool_plugins._lib.netlink import Netlink

from cnitool.invoke import delegate

pytestmark = pytest.mark.root


def _links() -> list[str]:
    with Netlink() as nl:
        return sorted(link.name for link in nl.links())


def test_warm_up_runs_the_calls_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where its leases go
    links = _links()
    sysctl.set("net/ipv4/ip_forward", "0")  # the warm-up's gateway turns it on in its own
    home = os.stat("/proc/thread-self/ns/net").st_ino
    threads = threading.active_count()
    logged: list[str] = []
    _warmup.warm_up(logged.append)
    assert logged == []  # it ran: nothing to report
    # nothing new here (links of earlier tests' namespaces may still be going away)
    assert set(_links()) <= set(links) and _warmup.BRIDGE not in _links()
    assert list(tmp_path.iterdir()) == []
    assert sysctl.get("net/ipv4/ip_forward") == "0"
    assert os.stat("/proc/thread-self/ns/net").st_ino == home
    assert threading.active_count() == threads
    assert netns._STRANDED is None and delegate._IN_PROCESS is False


def test_warm_up_that_fails_is_logged_and_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_warmup, "SUBNET", "not-a-subnet")
    logged: list[str] = []
    _warmup.warm_up(logged.append)
    assert len(logged) == 1 and logged[0].startswith("warm-up skipped: bridge ADD failed")
    assert netns._STRANDED is None and delegate._IN_PROCESS is False
    assert _warmup.BRIDGE not in _links()


def test_warm_up_without_namespaces_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoUnshare:
        def unshare(self, flags: int) -> int:
            return -1

    monkeypatch.setattr(netns, "_LIBC", NoUnshare())
    logged: list[str] = []
    _warmup.warm_up(logged.append)
    assert len(logged) == 1 and "cannot make a network namespace" in logged[0]
