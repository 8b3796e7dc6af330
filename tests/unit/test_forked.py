"""Plugins of ours forked from a preloaded process (a warm cnitool command): the same
contract as exec'ing their launchers."""

from __future__ import annotations

import fcntl
import io
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnitool import launchers
from cnitool.invoke import exec as plugin_exec
from cnitool.invoke import forked
from cnitool.libcni.api import SubprocessExecutor
from cnitool.spec.errors import CNIError


def conf(data_dir: Path, **extra: object) -> bytes:
    ipam = {"type": "host-local", "subnet": "10.67.0.0/24", "dataDir": str(data_dir)}
    return json.dumps({"cniVersion": "1.0.0", "name": "fnet", "ipam": ipam, **extra}).encode()


def env(bin_dir: Path, command: str = "ADD", cid: str = "f1") -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/run/netns/none",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(bin_dir),
    }


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    d = tmp_path / "bin"
    launchers.install(str(d), ["host-local"], compile_bytecode=False)
    return d


@pytest.fixture
def enabled(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(forked, "_ENABLED", True)
    yield


def test_nothing_is_forked_unless_enabled(bin_dir: Path) -> None:
    assert forked.package_of(str(bin_dir / "host-local")) is None


def test_only_our_launchers_are_forked(bin_dir: Path, enabled: None) -> None:
    assert forked.package_of(str(bin_dir / "host-local")) == "host_local"
    assert forked.package_of("/bin/true") is None


def test_a_forked_plugin_gives_the_exec_result(
    bin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(bin_dir / "host-local")
    executor = SubprocessExecutor()
    by_exec = executor.exec(path, conf(tmp_path / "a"), env(bin_dir))
    monkeypatch.setattr(forked, "_ENABLED", True)
    monkeypatch.setattr(plugin_exec, "exec_plugin", None)  # an exec now fails the test
    err = io.BytesIO()
    by_fork = SubprocessExecutor(stderr=err).exec(path, conf(tmp_path / "b"), env(bin_dir))
    assert by_fork == by_exec
    assert (tmp_path / "b" / "fnet" / "10.67.0.2").exists()
    SubprocessExecutor(stderr=err).exec(path, conf(tmp_path / "b"), env(bin_dir, "DEL"))
    assert not (tmp_path / "b" / "fnet" / "10.67.0.2").exists()
    assert err.getvalue() == b""


@pytest.mark.parametrize(
    "stdin",
    [b"{not json", b'{"cniVersion": "1.0.0", "name": "fnet"}', b'{"cniVersion": "9.9.9"}'],
)
def test_a_forked_plugin_fails_as_the_exec_fails(
    bin_dir: Path, enabled: None, stdin: bytes
) -> None:
    path = str(bin_dir / "host-local")
    with pytest.raises(CNIError) as by_exec:
        plugin_exec.exec_plugin(path, stdin, env(bin_dir))
    with pytest.raises(CNIError) as by_fork:
        forked.run(path, "host_local", stdin, env(bin_dir))
    assert (by_fork.value.code, str(by_fork.value)) == (by_exec.value.code, str(by_exec.value))


def hold_lock(data_dir: Path) -> int:
    (data_dir / "fnet").mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / "fnet" / "lock", os.O_RDONLY | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def children() -> list[str]:
    pid = os.getpid()
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


def test_a_timeout_kills_the_forked_plugin(bin_dir: Path, tmp_path: Path, enabled: None) -> None:
    lock = hold_lock(tmp_path / "ipam")
    try:
        with pytest.raises(plugin_exec.PluginTimeoutError, match="timed out after 0.3s"):
            forked.run(
                str(bin_dir / "host-local"),
                "host_local",
                conf(tmp_path / "ipam"),
                env(bin_dir),
                timeout=0.3,
            )
    finally:
        os.close(lock)
    assert children() == []
    assert not (tmp_path / "ipam" / "fnet" / "10.67.0.2").exists()


def test_an_interrupt_kills_the_forked_plugin(bin_dir: Path, tmp_path: Path, enabled: None) -> None:
    lock = hold_lock(tmp_path / "ipam")
    old = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(KeyboardInterrupt):
            forked.run(
                str(bin_dir / "host-local"), "host_local", conf(tmp_path / "ipam"), env(bin_dir)
            )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        os.close(lock)
    assert children() == []
