"""State files (flannel's scratch config, tuning's backup) are written whole or not at all."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cnitool_plugins._lib import statefile
from test_flannel import GOOD, Recorder, rec, run  # noqa: F401 - rec is a fixture
from test_host_local_disk import fill, mount_tmpfs

pytestmark = pytest.mark.root


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs of the test's own."""
    where = tmp_path / "small"
    mount_tmpfs(where, "size=256k")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def files(where: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in where.rglob("*") if p.is_file() and p.name != "filler"}


def test_write_on_a_full_disk_keeps_the_old_file(small: Path) -> None:
    target = small / "state"
    statefile.write(str(target), b"old")
    fill(small, free_pages=0)
    with pytest.raises(OSError, match="No space left on device"):
        statefile.write(str(target), b"new")
    assert files(small) == {"state": b"old"}


def test_temporary_file_a_crash_left_goes_with_the_next_write_or_remove(small: Path) -> None:
    target = small / "state"
    Path(statefile.temp_path(str(target))).write_bytes(b"cut")
    statefile.write(str(target), b"whole")
    assert files(small) == {"state": b"whole"}
    Path(statefile.temp_path(str(target))).write_bytes(b"cut")
    assert statefile.remove(str(target)) is True
    assert files(small) == {}
    assert statefile.remove(str(target)) is False


def test_flannel_add_on_a_full_disk_leaves_no_empty_scratch_file(
    rec: Recorder,  # noqa: F811
    small: Path,
    tmp_path: Path,
) -> None:
    sub = tmp_path / "subnet.env"
    sub.write_text(GOOD)
    data_dir = small / "flannel"
    data_dir.mkdir()
    fill(small, free_pages=0)
    conf = {"cniVersion": "1.0.0", "name": "n", "subnetFile": str(sub), "dataDir": str(data_dir)}
    out, code, _ = run("ADD", conf)
    assert code == 1
    assert out["msg"] == f"failed to write scratch netconf {data_dir}/ctr1: No space left on device"
    assert rec.calls == []  # nothing delegated
    assert files(small) == {}
