"""host-local on a troubled lease disk: read-only, full. A clear error, nothing half-done."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_host_local_plugin import HL, addrs

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
    mount_tmpfs(hl.data, "size=256k")
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


PAGE = 4096


def fill(where: Path, free_pages: int) -> None:
    """Fill the tmpfs at ``where`` until exactly ``free_pages`` pages are left."""
    fd = os.open(where / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * PAGE)
        size = os.fstat(fd).st_size // PAGE * PAGE
        os.ftruncate(fd, size - free_pages * PAGE)
    finally:
        os.close(fd)


def state(hl: HL) -> dict[str, bytes]:
    """Every file under the network directory, hints and temporary files included."""
    return {str(p.relative_to(hl.dir)): p.read_bytes() for p in hl.dir.rglob("*") if p.is_file()}


def test_full_disk_leaves_no_empty_last_reserved_ip(disk: HL) -> None:
    """The first ADD on a disk with one page left: the lease fits, last_reserved_ip.0 does
    not; the ADD fails and leaves neither (the reference leaves an empty last_reserved_ip)."""
    conf = disk.conf()
    disk.dir.mkdir()
    fill(disk.data, free_pages=1)
    out = disk.fail("ADD", conf, cid="first")
    assert out["msg"] == (
        f"failed to allocate for range 0: cannot write {disk.dir}/last_reserved_ip.0: no space left on device"
    ), out
    assert state(disk) == {"lock": b""}
    (disk.data / "filler").unlink()
    assert addrs(disk.add(conf, cid="first")) == ["10.1.2.2/24"]


def test_full_disk_keeps_the_last_reserved_ip_it_had(disk: HL) -> None:
    conf = disk.conf()
    disk.add(conf, cid="first")
    before = state(disk)
    fill(disk.data, free_pages=0)
    out = disk.fail("ADD", conf, cid="second")
    assert out["msg"].startswith(
        f"failed to allocate for range 0: cannot create lease file {disk.dir}/10.1.2.3: "
    )
    assert out["msg"].endswith("no space left on device")
    assert state(disk) == before
    (disk.data / "filler").unlink()
    assert addrs(disk.add(conf, cid="second")) == ["10.1.2.3/24"]
    assert (disk.dir / "last_reserved_ip.0").read_bytes() == b"10.1.2.3"


def test_temporary_files_a_crash_left_are_removed(disk: HL) -> None:
    """Only names of our own pattern go; the next operation of any verb removes them."""
    conf = disk.conf()
    disk.add(conf, cid="first")
    tmp_dir = disk.dir / ".pycni" / "tmp"
    tmp_dir.mkdir()
    ours = tmp_dir / f".tmp-{os.getpid()}-0123456789abcdef"
    ours.write_bytes(b"crashed\r\neth0")
    other = tmp_dir / "not-ours"
    other.write_bytes(b"")
    disk.ok("DEL", conf, cid="never-added")
    assert sorted(p.name for p in tmp_dir.iterdir()) == ["not-ours"]
    other.unlink()
    ours.write_bytes(b"crashed\r\neth0")
    disk.ok("DEL", conf, cid="first")
    assert not tmp_dir.exists()
    assert sorted(state(disk)) == ["last_reserved_ip.0", "lock"]
