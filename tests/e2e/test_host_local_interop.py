"""host-local exec'd side by side with the Go reference binary on one lease directory."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cnitool import launchers

pytestmark = pytest.mark.root


@pytest.fixture
def ours(tmp_path: Path) -> str:
    bin_dir = tmp_path / "bin"
    actions = launchers.install(str(bin_dir), ["host-local"], compile_bytecode=False)
    assert actions[0].action == "installed", actions
    return str(bin_dir / "host-local")


@pytest.fixture
def theirs(reference_bin: Path) -> str:
    path = reference_bin / "host-local"
    if not path.is_file():
        pytest.skip("reference host-local not installed")
    return str(path)


class Net:
    def __init__(self, tmp: Path, ranges: list[Any] | None = None) -> None:
        self.data = tmp / "leases"
        self.dir = self.data / "mixnet"
        self.conf = {
            "cniVersion": "1.0.0",
            "name": "mixnet",
            "ipam": {
                "type": "host-local",
                "dataDir": str(self.data),
                "ranges": ranges or [[{"subnet": "10.77.0.0/24"}], [{"subnet": "fd77::/64"}]],
            },
        }

    def run(self, binary: str, cmd: str, cid: str, ifname: str = "eth0") -> tuple[Any, int]:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "CNI_COMMAND": cmd,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": "/var/run/netns/nonexistent",
            "CNI_IFNAME": ifname,
            "CNI_PATH": "/usr/lib/cni",
            "CNI_ARGS": "",
        }
        p = subprocess.run(
            [binary],
            input=json.dumps(self.conf).encode(),
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        out = json.loads(p.stdout) if p.stdout.strip() else None
        if p.returncode != 0 and p.stderr.strip():
            # a crash (a panic, a traceback) says why only there: keep it for the report
            out = {**(out or {}), "stderr": p.stderr.decode(errors="replace")[-2000:]}
        return out, p.returncode

    def add(self, binary: str, cid: str, ifname: str = "eth0") -> list[str]:
        out, rc = self.run(binary, "ADD", cid, ifname)
        assert rc == 0, out
        return [ip["address"] for ip in out["ips"]]

    def leases(self) -> dict[str, bytes]:
        return {
            p.name: p.read_bytes()
            for p in self.dir.iterdir()
            if p.is_file() and p.name != "lock" and not p.name.startswith(("last_", "."))
        }


def test_ours_add_go_check_and_del(tmp_path: Path, ours: str, theirs: str) -> None:
    net = Net(tmp_path)
    assert net.add(ours, "c1") == ["10.77.0.2/24", "fd77::2/64"]
    assert net.run(theirs, "CHECK", "c1") == (None, 0)
    # the Go plugin walks sub-directories too: our hint files must not look like a lease
    out, rc = net.run(theirs, "CHECK", "c2")
    assert rc == 1 and "Failed to find address" in out["msg"]
    # Go's duplicate check sees our lease
    out, rc = net.run(theirs, "ADD", "c1")
    assert rc == 1 and "10.77.0.2 has been allocated to c1" in out["msg"]
    assert net.run(theirs, "DEL", "c1") == (None, 0)
    assert net.leases() == {}
    # our hint is now stale: CHECK and DEL must notice, not trust it
    out, rc = net.run(ours, "CHECK", "c1")
    assert rc == 1 and "Failed to find address" in out["msg"]
    assert net.run(ours, "DEL", "c1") == (None, 0)


def test_go_add_ours_check_and_del(tmp_path: Path, ours: str, theirs: str) -> None:
    net = Net(tmp_path)
    assert net.add(theirs, "g1") == ["10.77.0.2/24", "fd77::2/64"]
    # round robin continues from the Go plugin's last_reserved_ip files
    assert net.add(ours, "p1") == ["10.77.0.3/24", "fd77::3/64"]
    assert net.add(theirs, "g2") == ["10.77.0.4/24", "fd77::4/64"]
    assert net.run(ours, "CHECK", "g1") == (None, 0)
    out, rc = net.run(ours, "ADD", "g1")
    assert rc == 1 and "has been allocated to g1" in out["msg"]
    assert net.run(ours, "DEL", "g1") == (None, 0)
    out, rc = net.run(theirs, "CHECK", "g1")
    assert rc == 1
    assert net.run(theirs, "DEL", "p1") == (None, 0)
    assert sorted(net.leases()) == ["10.77.0.4", "fd77::4"]
    assert net.run(ours, "DEL", "g2") == (None, 0)
    assert net.leases() == {}
    names = sorted(p.name for p in net.dir.iterdir() if not p.name.startswith("."))
    assert names == ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]


def test_same_bytes_as_go(tmp_path: Path, ours: str, theirs: str) -> None:
    a, b = Net(tmp_path / "a"), Net(tmp_path / "b")
    ra, _ = a.run(theirs, "ADD", "example")
    rb, _ = b.run(ours, "ADD", "example")
    ra.pop("dns", None)  # the 1.1.x binaries print an empty "dns": {}
    assert ra == rb
    for name in ("10.77.0.2", "fd77::2", "last_reserved_ip.0", "last_reserved_ip.1", "lock"):
        fa, fb = a.dir / name, b.dir / name
        assert fa.read_bytes() == fb.read_bytes(), name
        assert fa.stat().st_mode == fb.stat().st_mode, name


@pytest.mark.parametrize("mix", ["ours", "mixed"])
def test_parallel_adds_never_share_an_address(
    tmp_path: Path, ours: str, theirs: str, mix: str
) -> None:
    """50 ADD processes at once (ours alone, or ours and Go's interleaved), then 50 DELs."""
    net = Net(tmp_path, ranges=[[{"subnet": "10.78.0.0/24"}]])
    other = ours if mix == "ours" else theirs
    jobs = [(ours if i % 2 == 0 else other, f"ctr{i}") for i in range(50)]
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda j: net.run(j[0], "ADD", j[1]), jobs))
    assert all(rc == 0 for _, rc in results), [r for r in results if r[1] != 0][:3]
    addresses = [out["ips"][0]["address"] for out, _ in results]
    assert len(set(addresses)) == 50
    leases = net.leases()
    assert len(leases) == 50
    assert {v for v in leases.values()} == {f"ctr{i}\r\neth0".encode() for i in range(50)}
    # delete with the other implementation than the one that added
    dels = [(other if i % 2 == 0 else ours, f"ctr{i}") for i in range(50)]
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda j: net.run(j[0], "DEL", j[1]), dels))
    assert all(r == (None, 0) for r in results), results[:3]
    assert net.leases() == {}

    # nothing else is left behind either: no per-attachment hint, no temporary file...
    def left() -> list[str]:
        return sorted(str(p.relative_to(net.dir)) for p in net.dir.rglob("*") if p.is_file())

    # ...except the hints of our leases that the Go plugin released (it cannot know them);
    # they are only hints (checked against the lease files), and our next ADD, which
    # scans every lease anyway, drops them (so does our GC)
    go_deleted = [f".pycni/ctr{i}:eth0" for i in range(0, 50, 2)] if mix == "mixed" else []
    assert left() == sorted(["last_reserved_ip.0", "lock", *go_deleted])
    net.add(ours, "next")
    assert net.run(ours, "DEL", "next") == (None, 0)
    assert left() == ["last_reserved_ip.0", "lock"]


def test_our_gc_releases_go_leases_of_invalid_attachments(
    tmp_path: Path, ours: str, theirs: str
) -> None:
    net = Net(tmp_path)
    net.conf["cniVersion"] = "1.1.0"
    go_conf = dict(net.conf, cniVersion="1.0.0")  # the 1.1.1 binaries stop at 1.0.0
    saved = net.conf
    net.conf = go_conf
    net.add(theirs, "keep")
    net.add(theirs, "drop")
    net.conf = saved
    net.add(ours, "mine")
    net.conf = dict(
        saved,
        **{
            "cni.dev/valid-attachments": [
                {"containerID": "keep", "ifname": "eth0"},
                {"containerID": "mine", "ifname": "eth0"},
            ]
        },
    )
    assert net.run(ours, "GC", "") == (None, 0)
    owners = sorted(set(net.leases().values()))
    assert owners == [b"keep\r\neth0", b"mine\r\neth0"]
    net.conf = go_conf
    assert net.run(theirs, "CHECK", "keep") == (None, 0)
    assert net.run(theirs, "CHECK", "drop")[1] == 1
    # the Go plugin keeps allocating after our GC (lock and last_reserved_ip untouched)
    assert net.add(theirs, "next") == ["10.77.0.5/24", "fd77::5/64"]


BAD_IPAM = {
    "ranges of a wrong type": {"ranges": "10.79.0.0/24"},
    "subnet of a wrong type": {"ranges": [[{"subnet": 5}]]},
    "host bits set": {"ranges": [[{"subnet": "10.79.0.1/24"}]]},
    "overlapping sets": {"ranges": [[{"subnet": "10.79.0.0/24"}], [{"subnet": "10.79.0.0/16"}]]},
    "overlapping ranges in a set": {
        "ranges": [[{"subnet": "10.79.0.0/24"}, {"subnet": "10.79.0.0/25"}]]
    },
    "rangeStart outside": {"ranges": [[{"subnet": "10.79.0.0/24", "rangeStart": "10.8.0.1"}]]},
    "too small": {"ranges": [[{"subnet": "10.79.0.0/31"}]]},
    "exhausted": {"ranges": [[{"subnet": "10.79.0.0/30"}]]},
    "missing resolvConf": {"resolvConf": "/nonexistent/resolv.conf"},
}


@pytest.mark.parametrize("case", sorted(BAD_IPAM))
def test_bad_input_gives_the_reference_code(
    tmp_path: Path, ours: str, theirs: str, case: str
) -> None:
    """The same bad request fails with the same code and message in both, leaking nothing."""
    outs = []
    for name, binary in (("go", theirs), ("py", ours)):
        net = Net(tmp_path / name, ranges=[[{"subnet": "10.79.0.0/24"}]])
        net.conf["ipam"].update(BAD_IPAM[case])
        if case == "exhausted":
            net.add(binary, "first")  # the only address of a /30
        out, rc = net.run(binary, "ADD", "ctr")
        assert rc == 1, (name, out)
        outs.append(out)
        leases = net.leases() if net.dir.is_dir() else {}
        assert set(leases.values()) <= {b"first\r\neth0"}, (name, leases)
    go, py = outs
    assert py["code"] == go["code"] == 999
    assert py["msg"].split(":")[0] == go["msg"].split(":")[0] or "json:" in go["msg"]


@pytest.mark.parametrize(
    ("what", "env"),
    [
        ("requested IP taken", {"CNI_ARGS": "IP=10.79.0.2"}),
        ("path-like container id", {"CNI_CONTAINERID": "../../etc"}),
        ("path-like ifname", {"CNI_IFNAME": "../x"}),
    ],
)
def test_bad_request_gives_the_reference_code(
    tmp_path: Path, ours: str, theirs: str, what: str, env: dict[str, str]
) -> None:
    outs = []
    for name, binary in (("go", theirs), ("py", ours)):
        net = Net(tmp_path / name, ranges=[[{"subnet": "10.79.0.0/24"}]])
        net.add(binary, "holder")  # holds 10.79.0.2
        full = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": "ctr",
            "CNI_NETNS": "/var/run/netns/nonexistent",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": "/usr/lib/cni",
            "CNI_ARGS": "",
        }
        full.update(env)
        p = subprocess.run(
            [binary], input=json.dumps(net.conf).encode(), env=full, capture_output=True, timeout=60
        )
        assert p.returncode == 1, (name, p.stdout)
        outs.append(json.loads(p.stdout))
        assert list(net.leases().values()) == [b"holder\r\neth0"], name
        assert sorted(q.name for q in tmp_path.rglob("*") if "etc" in q.name) == []
    go, py = ({k: o[k] for k in ("code", "msg")} for o in outs)
    assert go == py, what


@pytest.mark.parametrize("length", [4097, 5000, 70000])
def test_long_container_id_lease_is_found_and_released(
    tmp_path: Path, ours: str, theirs: str, length: int
) -> None:
    """A lease is as long as its container ID: each side reads the other's in full."""
    net = Net(tmp_path)
    long_a, long_b = "a" * length, "b" * length
    assert net.add(ours, long_a) == ["10.77.0.2/24", "fd77::2/64"]
    assert net.run(ours, "CHECK", long_a) == (None, 0)
    assert net.run(theirs, "CHECK", long_a) == (None, 0)
    out, rc = net.run(ours, "ADD", long_a)
    assert rc == 1 and "duplicate allocation is not allowed" in out["msg"]
    assert net.run(ours, "DEL", long_a) == (None, 0)
    assert net.leases() == {}
    # made by the Go plugin, released by ours
    assert net.add(theirs, long_b) == ["10.77.0.3/24", "fd77::3/64"]
    assert net.run(ours, "CHECK", long_b) == (None, 0)
    assert net.run(ours, "DEL", long_b) == (None, 0)
    assert net.leases() == {}
    # made by ours, released by the Go plugin
    assert net.add(ours, long_a) == ["10.77.0.4/24", "fd77::4/64"]
    assert net.run(theirs, "DEL", long_a) == (None, 0)
    assert net.leases() == {}
