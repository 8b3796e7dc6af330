"""host-local's index at scale, beside the Go reference binary on one lease directory:
the directory token changes with every change another writer makes (tmpfs and ext4),
and thousands of Go-made leases are found, never handed out twice."""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cnitool_plugins.host_local import store as store_mod
from test_host_local_interop import Net, ours, theirs  # noqa: F401 - fixtures

pytestmark = pytest.mark.root


@pytest.fixture(params=["tmpfs", "ext4"])
def fs_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A fresh file system of each kind (the suite runs in a private mount namespace)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if request.param == "tmpfs":
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mnt)], check=True)
    else:
        if not os.path.exists("/sbin/mkfs.ext4") and not os.path.exists("/usr/sbin/mkfs.ext4"):
            pytest.skip("mkfs.ext4 not installed")
        img = tmp_path / "ext4.img"
        with open(img, "wb") as f:
            f.truncate(32 << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], check=True)
        if subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=False).returncode:
            pytest.skip("no loop device to mount an ext4 image")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _locked(directory: Path) -> int:
    """Take the lock as the Go plugin does (flock on <dir>/lock)."""
    fd = os.open(directory / "lock", os.O_RDONLY | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_token_changes_with_every_change_by_another_writer(fs_dir: Path) -> None:
    data = str(fs_dir)
    directory = fs_dir / "net"
    changes = ["create", "unlink", "create+unlink", "unlink+create"]
    rounds = 0
    for i in range(240):
        with store_mod.Store("net", data) as st:
            assert st.reserve(f"ours{i}", "eth0", f"10.9.{i // 250}.{i % 250 + 1}", 0)
            st.write_index(store_mod.ForeignIndex())
        with store_mod.Store("net", data) as st:
            assert st.read_index() is not None  # no change: the index holds (the test can fail)
        # another writer, right after our write, holding the same lock as the Go plugin
        fd = _locked(directory)
        kind = changes[i % len(changes)]
        victim = directory / f"10.9.{i // 250}.{i % 250 + 1}"
        if kind.startswith("unlink"):
            victim.unlink()
        if "create" in kind:
            (directory / f"10.8.{i // 250}.{i % 250 + 1}").write_bytes(b"other\r\neth0")
        if kind == "create+unlink":
            victim.unlink()
        os.close(fd)
        with store_mod.Store("net", data) as st:
            assert st.read_index() is None, (kind, i)
        rounds += 1
    assert rounds == 240


def test_token_changes_when_the_go_plugin_writes(fs_dir: Path, ours: str, theirs: str) -> None:  # noqa: F811
    net = Net(fs_dir, ranges=[[{"subnet": "10.79.0.0/24"}]])
    for i in range(8):
        net.add(ours, f"p{i}")
        with store_mod.Store("mixnet", str(net.data)) as st:
            st.write_index(store_mod.ForeignIndex())
        verb, cid = ("ADD", f"g{i}") if i % 2 == 0 else ("DEL", f"g{i - 1}")
        assert net.run(theirs, verb, cid)[1] == 0
        with store_mod.Store("mixnet", str(net.data)) as st:
            assert st.read_index() is None, (verb, i)


GO_LEASES = store_mod.INDEX_MIN_LEASES * 2


def test_thousands_of_go_leases_are_found_and_never_handed_out_twice(
    tmp_path: Path,
    ours: str,  # noqa: F811
    theirs: str,  # noqa: F811
) -> None:
    net = Net(tmp_path, ranges=[[{"subnet": "10.80.0.0/20"}]])
    with ThreadPoolExecutor(max_workers=4) as pool:
        added = list(pool.map(lambda i: net.add(theirs, f"g{i}"), range(GO_LEASES)))
    assert len({a[0] for a in added}) == GO_LEASES
    # our first ADD walks and keeps the index; the Go leases are then found without one
    net.add(ours, "p0")
    assert (net.dir / store_mod.INDEX_NAME).is_file()
    for i in range(0, GO_LEASES, GO_LEASES // 8):
        out, rc = net.run(ours, "ADD", f"g{i}")
        assert rc == 1 and f"has been allocated to g{i}" in out["msg"], out
        assert net.run(ours, "CHECK", f"g{i}") == (None, 0)
    # interleaved: each side's new leases are seen by the other
    for i in range(12):
        net.add(theirs, f"h{i}")
        net.add(ours, f"q{i}")
        out, rc = net.run(ours, "ADD", f"h{i}")
        assert rc == 1 and f"has been allocated to h{i}" in out["msg"], out
        out, rc = net.run(theirs, "ADD", f"q{i}")
        assert rc == 1 and f"has been allocated to q{i}" in out["msg"], out
        assert net.run(ours, "CHECK", f"h{i}") == (None, 0)
        assert net.run(theirs, "CHECK", f"q{i}") == (None, 0)
    # releases across implementations; a released container gets exactly one new address
    for i in range(6):
        assert net.run(ours, "DEL", f"h{i}") == (None, 0)
        assert net.run(theirs, "DEL", f"q{i}") == (None, 0)
        assert net.run(theirs, "CHECK", f"h{i}")[1] == 1
        assert net.run(ours, "CHECK", f"q{i}")[1] == 1
        net.add(ours, f"h{i}")
        net.add(ours, f"q{i}")
    owners = Counter(net.leases().values())
    assert max(owners.values()) == 1, [c for c, n in owners.items() if n > 1][:5]
    assert len(owners) == GO_LEASES + 1 + 24
