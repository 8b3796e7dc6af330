"""host-local with many leases: whether an attachment already holds an address comes
from the hints and the index of the leases no hint lists, not from a walk of every lease.
Walks are counted (not timed); leases written as the Go plugin writes them (no hint)
must still be found, and a change by another writer must lead to one walk."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
from cnitool_plugins.host_local import store as store_mod
from cnitool_plugins.host_local import verbs
from test_host_local_plugin import HL

LEASES = store_mod.INDEX_MIN_LEASES + 100
SUBNET = "10.64.0.0/20"


class Node(HL):
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(tmp)
        self.walks = 0
        real = store_mod.scan_dir

        def counting(directory: str):  # type: ignore[no-untyped-def]
            self.walks += 1
            return real(directory)

        monkeypatch.setattr(store_mod, "scan_dir", counting)
        self.cfg = self.conf({"ranges": [[{"subnet": SUBNET}]]})

    def go_lease(self, n: int, cid: str) -> str:
        """A lease as the Go plugin leaves it: the file alone, no hint."""
        ip = str(ipaddress.ip_network(SUBNET)[100 + n])
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / ip).write_bytes(f"{cid}\r\neth0".encode())
        return ip

    def fill(self, count: int) -> None:
        for i in range(count):
            self.go_lease(i, f"go{i}")


def test_add_walks_once_then_not_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = Node(tmp_path, monkeypatch)
    node.fill(LEASES)
    node.add(node.cfg, "p0")
    assert node.walks == 1 and (node.dir / store_mod.INDEX_NAME).is_file()
    for i in range(1, 6):
        node.add(node.cfg, f"p{i}")
        node.ok("CHECK", node.cfg, f"p{i}")
    # the Go-made leases are found through the index: no walk
    out = node.fail("ADD", node.cfg, "go7")
    assert "has been allocated to go7" in out["msg"]
    node.ok("CHECK", node.cfg, "go8")
    node.ok("DEL", node.cfg, "go9")
    assert not (node.dir / str(ipaddress.ip_network(SUBNET)[109])).exists()
    node.ok("DEL", node.cfg, "p3")
    assert node.walks == 1
    out = node.fail("CHECK", node.cfg, "go9")
    assert "Failed to find address" in out["msg"]
    # the address the DEL freed is free again, and go9 gets one address
    node.add(node.cfg, "go9")
    node.fail("ADD", node.cfg, "go9")
    assert node.walks == 1


@pytest.mark.parametrize("change", ["create", "unlink", "create-and-unlink"])
def test_another_writer_leads_to_one_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    node = Node(tmp_path, monkeypatch)
    node.fill(LEASES)
    node.add(node.cfg, "p0")
    assert node.walks == 1
    # another writer (no index kept), right after our write
    if change in ("create", "create-and-unlink"):
        node.go_lease(LEASES + 5, "late")
    if change in ("unlink", "create-and-unlink"):
        os.unlink(node.dir / str(ipaddress.ip_network(SUBNET)[100 + 3]))
    if change == "create":
        out = node.fail("ADD", node.cfg, "late")  # found after the rebuild
        assert "has been allocated to late" in out["msg"]
    else:
        node.add(node.cfg, "go3")  # its lease is gone: it gets one
    assert node.walks == 2
    node.add(node.cfg, "p1")
    assert node.walks == 2


def test_go_lease_of_an_attachment_with_a_stale_hint_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our hint names an address the Go plugin released; Go then gave the container
    another: the rebuild must not take the hint's word for the attachment."""
    node = Node(tmp_path, monkeypatch)
    node.fill(LEASES)
    first = node.add(node.cfg, "mix")["ips"][0]["address"].split("/")[0]
    os.unlink(node.dir / first)  # Go's DEL leaves our hint
    node.go_lease(LEASES + 9, "mix")  # Go's ADD
    out = node.fail("ADD", node.cfg, "mix")
    assert "has been allocated to mix" in out["msg"]
    node.ok("CHECK", node.cfg, "mix")
    node.ok("DEL", node.cfg, "mix")
    assert not any(p.read_bytes() == b"mix\r\neth0" for p in node.dir.iterdir() if p.is_file())


def test_no_index_below_the_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = Node(tmp_path, monkeypatch)
    node.fill(10)
    node.add(node.cfg, "p0")
    node.add(node.cfg, "p1")
    assert not (node.dir / store_mod.INDEX_NAME).exists()
    assert node.walks == 2


def test_index_is_no_lease_and_a_broken_one_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = Node(tmp_path, monkeypatch)
    node.fill(LEASES)
    node.add(node.cfg, "p0")
    index = node.dir / store_mod.INDEX_NAME
    text = index.read_text()
    assert text.startswith("#pycni host-local index v1\n")
    # a damaged index (its token kept) is not trusted
    index.write_text(text.splitlines()[0] + "\n" + text.splitlines()[1] + "\nnot json\n")
    out = node.fail("ADD", node.cfg, "go1")
    assert "has been allocated to go1" in out["msg"]
    assert node.walks == 2


def test_the_index_lists_only_leases_without_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = Node(tmp_path, monkeypatch)
    node.fill(LEASES)
    for i in range(3):
        node.add(node.cfg, f"p{i}")
    with store_mod.Store(node.net, str(node.data)) as st:
        index = st.read_index()
        assert index is not None
        assert index.count() == LEASES and index.get("p1\r\neth0") == []
        ip = str(ipaddress.ip_network(SUBNET)[104])
        assert index.get("go4\r\neth0") == [ip]
        assert verbs._owned(st, "go4", "eth0", index) == [ip]
        assert index.pop("go4\r\neth0") == [ip] and index.get("go4\r\neth0") == []
        assert index.count() == LEASES - 1 and index.get("go5\r\neth0") != []


def test_foreign_lookup_is_exact() -> None:
    """A content is found whole: never as the start of a longer one, whatever it holds."""
    fi = store_mod.ForeignIndex()
    odd = ["a", "a b", "a\r\neth0", "a\r\neth0 x", "a\\s", "tab\there", "a\nb"]
    for n, content in enumerate(odd):
        fi.add(content, [f"10.0.0.{n}"])
    for n, content in enumerate(odd):
        assert fi.get(content) == [f"10.0.0.{n}"], content
    assert fi.get("a\r\n") == [] and fi.get("b") == []
    assert fi.pop("a b") == ["10.0.0.1"] and fi.get("a b") == [] and fi.get("a") == ["10.0.0.0"]
    assert fi.count() == len(odd) - 1
