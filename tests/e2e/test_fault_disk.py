"""Fault suite, disk: the state directories on a full tmpfs, on one with a single page
free (the first file of an ADD fits, the next does not), on a tmpfs with no free inode,
and read-only (each a mount of its own in the test run's private mount namespace).

Targets, exec'd: our host-local (leases, hints, ``last_reserved_ip``), flannel delegating
to host-local (its scratch file), tuning on a veth (its backup), and ``cnitool
add`` over bridge + host-local (its cache entry). Each first runs one ADD and DEL on the
healthy mount, so directories and the lock exist as on a node that has been running;
then the fault is made and a fresh attachment is added and deleted.

Each call must exit 0 or give one CNI error with a message (never a traceback). A failed
ADD leaves every file on the mount as it was, byte for byte: no empty or partial lease,
backup, scratch or cache file, no temporary file. A successful one leaves no empty file.
The DEL after it must succeed (it has nothing to release, or only removes files) and
leave the names the warm-up left. An attachment made before the fault is deleted last:
on a full mount that must work and leave nothing of it (removing needs no room); on a
read-only one it must change nothing and fail clearly (tuning's DEL, like the
reference's, always exits 0).

``PYCNI_DISK_ROUNDS=20`` repeats each case by hand (CI: 1).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_helpers import call, figures, install, plugin_env, protocol_problem, scale

pytestmark = pytest.mark.root

NET = "disknet"
FAULTS = ("full", "one-page-free", "no-inodes", "read-only")
SUBNET_ENV = "FLANNEL_NETWORK=10.82.0.0/16\nFLANNEL_SUBNET=10.82.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"


def mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)


def make_fault(mount: Path, fault: str) -> None:
    """Fill the mount's space or inodes, or make it read-only."""
    if fault == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        return
    fill = mount / "fill"
    fill.mkdir()
    if fault in ("full", "one-page-free"):
        blob = fill / "blob"
        with open(blob, "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 4096)
        if fault == "one-page-free":  # room for one small file: the next write fails
            os.truncate(blob, blob.stat().st_size - 4096)
        return
    with contextlib.suppress(OSError):
        for n in range(1 << 20):
            (fill / str(n)).touch()


def snapshot(mount: Path) -> dict[str, bytes]:
    """Every file on the mount but the filler, with its bytes."""
    return {
        str(p.relative_to(mount)): p.read_bytes()
        for p in sorted(mount.rglob("*"))
        if p.is_file() and "fill" not in p.relative_to(mount).parts
    }


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs of its own (room for the plugins, quick to fill)."""
    path = tmp_path / "state"
    mount_tmpfs(path, "size=1m,nr_inodes=256,mode=0755")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


Runner = Callable[[str, str, str], tuple[int, Any, str]]


def host_local_runner(bin_dir: Path, mount: Path, _netns: str) -> Runner:
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "host-local"}
    conf["ipam"] = {"type": "host-local", "subnet": "10.82.0.0/24", "dataDir": str(mount)}

    def run(verb: str, cid: str, ifname: str) -> tuple[int, Any, str]:
        env = plugin_env(verb, cid, "/nonexistent/netns", str(bin_dir), ifname)
        return call(str(bin_dir / "host-local"), env, conf)

    return run


def flannel_runner(bin_dir: Path, mount: Path, _netns: str) -> Runner:
    subnet = bin_dir.parent / "subnet.env"
    subnet.write_text(SUBNET_ENV)
    conf = {
        "cniVersion": "1.0.0", "name": NET, "type": "flannel", "subnetFile": str(subnet),
        "dataDir": str(mount / "flannel"), "delegate": {"type": "host-local"},
        "ipam": {"dataDir": str(mount / "leases")},
    }  # fmt: skip

    def run(verb: str, cid: str, ifname: str) -> tuple[int, Any, str]:
        env = plugin_env(verb, cid, "/nonexistent/netns", str(bin_dir), ifname)
        return call(str(bin_dir / "flannel"), env, conf)

    return run


def tuning_runner(bin_dir: Path, mount: Path, netns: str) -> Runner:
    ns = os.path.basename(netns)
    link = ["ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"]
    subprocess.run(link, check=True)
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": netns}]}
    conf = {
        "cniVersion": "1.0.0", "name": NET, "type": "tuning", "mtu": 1400, "promisc": True,
        "dataDir": str(mount / "tuning"), "prevResult": prev,
    }  # fmt: skip

    def run(verb: str, cid: str, ifname: str) -> tuple[int, Any, str]:
        env = plugin_env(verb, cid, netns, str(bin_dir), ifname)
        return call(str(bin_dir / "tuning"), env, conf)

    return run


def cnitool_runner(bin_dir: Path, mount: Path, netns: str) -> Runner:
    conf_dir = bin_dir.parent / "net.d"
    conf_dir.mkdir()
    ipam = {"type": "host-local", "subnet": "10.82.0.0/24", "dataDir": str(mount / "leases")}
    plugins = [{"type": "bridge", "bridge": "diskbr0", "ipam": ipam}]
    conflist = {"cniVersion": "1.0.0", "name": NET, "plugins": plugins}
    (conf_dir / f"10-{NET}.conflist").write_text(json.dumps(conflist))
    env = {**os.environ, "NETCONFPATH": str(conf_dir), "CNI_PATH": str(bin_dir)}

    def run(verb: str, cid: str, ifname: str) -> tuple[int, Any, str]:
        argv = [sys.executable, "-m", "cnitool.cli", verb.lower(), NET, netns, "-o", "json"]
        argv += ["--cache-dir", str(mount / "cache"), "--container-id", cid, "--ifname", ifname]
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        if p.returncode == 1 and p.stderr.startswith("cnitool:"):  # its one-line error
            return 1, {"code": 1, "msg": p.stderr}, p.stderr
        return p.returncode, None, p.stderr

    return run


TARGETS: dict[str, Callable[[Path, Path, str], Runner]] = {
    "host-local": host_local_runner,
    "flannel": flannel_runner,
    "tuning": tuning_runner,
    "cnitool add": cnitool_runner,
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_state_disk_fault(
    target: str, fault: str, tmp_path: Path, mount: Path, netns_factory: Callable[[], str]
) -> None:
    bin_dir = install(tmp_path / "bin", "host-local", "flannel", "tuning", "bridge")
    run = TARGETS[target](bin_dir, mount, netns_factory())
    for verb, cid in (("ADD", "warmup"), ("DEL", "warmup"), ("ADD", "kept")):
        code, out, err = run(verb, cid, "peer0")
        assert code == 0, f"{verb} {cid} on the healthy mount: {out} {err}"
    make_fault(mount, fault)
    counts = figures("disk", f"{target}, {fault}")
    problems = []
    for n in range(scale("PYCNI_DISK_ROUNDS", 1)):
        problems += one_round(run, mount, f"c{n}", counts)
    problems += del_kept(run, mount, fault, target, counts)
    assert problems == []


# tuning's DEL always exits 0, as the reference's does (it logs what it could not do)
ALWAYS_EXIT_0 = ("tuning",)


def del_kept(run: Runner, mount: Path, fault: str, target: str, counts: Any) -> list[str]:
    """DEL of the attachment made before the fault: removing needs no room, so it must
    succeed on a full mount and leave nothing of it; on a read-only one it must change
    nothing and fail clearly (but where DEL always exits 0)."""
    before = snapshot(mount)
    code, out, err = run("DEL", "kept", "peer0")
    counts["attempts"] += 1
    after = snapshot(mount)
    problem = protocol_problem(code, out, err)
    if fault == "read-only" and not problem:
        said = code or target in ALWAYS_EXIT_0
        problem = "" if said and after == before else f"read-only DEL: exit {code}, {after}"
    elif not problem:
        left = [k for k in after if "kept" in k or after[k] == b"kept\r\npeer0"]
        problem = f"DEL: {out} {err[-300:]}" if code else (f"left {left}" if left else "")
        counts["leaks"] += bool(left)
    counts["failures"] += bool(problem)
    return [f"kept: {problem}"] if problem else []


def one_round(run: Runner, mount: Path, cid: str, counts: Any) -> list[str]:
    """ADD then DEL of ``cid`` on the faulty mount; what went wrong."""
    before = snapshot(mount)
    code, out, err = run("ADD", cid, "eth0")
    counts["attempts"] += 1
    counts["ADD ok" if code == 0 else "ADD refused"] += 1
    after = snapshot(mount)
    problem = protocol_problem(code, out, err)
    if not problem and code != 0 and after != before:
        changed = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
        problem = f"failed ADD changed {changed}"
    if not problem and code == 0:
        empty = [k for k, v in after.items() if not v and os.path.basename(k) != "lock"]
        problem = f"empty files {empty}" if empty else ""
    code, out, err = run("DEL", cid, "eth0")
    problem = problem or protocol_problem(code, out, err) or (f"DEL: {out}" if code else "")
    leaks = sorted(set(snapshot(mount)) - set(before))
    counts["leaks"] += bool(leaks)
    if problem or leaks:
        counts["failures"] += 1
        return [f"{cid}: {problem} {leaks} ({out})"]
    return []
