"""host-local on a troubled lease disk: read-only, full. A clear error, nothing half-done."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_host_local_plugin import HL

pytestmark = pytest.mark.root


def mount_tmpfs(where: Path, *options: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    opts = ",".join(("mode=0755", *options))
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], check=True)


def remount(where: Path, option: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{option}", str(where)], check=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[HL]:
    """A host-local whose dataDir is a tmpfs of its own (in the tests' mount namespace)."""
    hl = HL(tmp_path)
    mount_tmpfs(hl.data)
    try:
        yield hl
    finally:
        subprocess.run(["umount", "-l", str(hl.data)], check=False)


def test_del_with_nothing_to_release_succeeds_on_a_read_only_disk(disk: HL) -> None:
    conf = disk.conf()
    disk.add(conf, cid="held")
    before = disk.leases()
    remount(disk.data, "ro")
    disk.ok("DEL", conf, cid="never-added")
    disk.ok("DEL", disk.conf(name="never-used"), cid="never-added")
    # a lease to release: a clear error, and the lease stays what it was
    out = disk.fail("DEL", conf, cid="held")
    assert out["code"] == 999
    assert out["msg"].startswith(f"cannot remove lease file {disk.dir}/10.1.2.2: ")
    assert "read-only file system" in out["msg"]
    assert disk.leases() == before
    remount(disk.data, "rw")
    disk.ok("DEL", conf, cid="held")
    assert disk.leases() == {}
