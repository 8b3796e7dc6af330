"""sysctl reads and writes as plain descriptor I/O, on a stand-in for /proc/sys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cnitool_plugins._lib import sysctl


@pytest.fixture
def proc_sys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(sysctl, "PROC_SYS", str(tmp_path))
    (tmp_path / "net" / "ipv4" / "conf" / "eth0.100").mkdir(parents=True)
    return tmp_path


def test_get_strips_the_newline(proc_sys: Path) -> None:
    (proc_sys / "net" / "ipv4" / "ip_forward").write_bytes(b"1\n")
    assert sysctl.get("net.ipv4.ip_forward") == "1"
    assert sysctl.get("net/ipv4/ip_forward") == "1"


def test_get_reads_a_value_longer_than_one_read(proc_sys: Path) -> None:
    value = "x" * (3 * 4096 + 7)
    (proc_sys / "net" / "long").write_bytes(value.encode() + b"\n")
    assert sysctl.get("net/long") == value


def test_set_writes_the_value_as_is(proc_sys: Path) -> None:
    key = proc_sys / "net" / "ipv4" / "conf" / "eth0.100" / "arp_notify"
    key.write_bytes(b"0\n")
    sysctl.set("net/ipv4/conf/eth0.100/arp_notify", "1")
    assert key.read_bytes() == b"1"


def test_ensure_leaves_an_equal_value_unwritten(proc_sys: Path) -> None:
    key = proc_sys / "net" / "ipv4" / "ip_forward"
    key.write_bytes(b"1\n")
    key.chmod(0o444)  # a write would now fail for a non-root user; mtime tells for root
    before = os.stat(key).st_mtime_ns
    sysctl.ensure("net.ipv4.ip_forward", "1")
    assert os.stat(key).st_mtime_ns == before
    assert key.read_bytes() == b"1\n"


def test_ensure_writes_a_different_value(proc_sys: Path) -> None:
    key = proc_sys / "net" / "ipv4" / "ip_forward"
    key.write_bytes(b"0\n")
    sysctl.ensure("net.ipv4.ip_forward", "1")
    assert sysctl.get("net.ipv4.ip_forward") == "1"


def test_missing_key_is_an_oserror_and_optional_ignores_it(proc_sys: Path) -> None:
    with pytest.raises(OSError):
        sysctl.get("net/ipv6/conf/nope/accept_ra")
    assert sysctl.ensure_optional("net/ipv6/conf/nope/accept_ra", "0") is False
    assert not (proc_sys / "net" / "ipv6").exists()


def test_non_ascii_value_is_refused(proc_sys: Path) -> None:
    (proc_sys / "net" / "odd").write_bytes("é\n".encode())
    with pytest.raises(UnicodeDecodeError):
        sysctl.get("net/odd")
