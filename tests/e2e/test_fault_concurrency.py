"""Fault suite, concurrency: many writers on one lease directory, and one attachment
added twice at once.

16 workers ADD and DEL on a range of 12 addresses, each call made at random (seeded) by
our host-local launcher or by the Go reference binary, so that the two lock and allocate
against each other. An address counts as held from the moment ADD returns it until its
DEL starts (each worker keeps its address over its next ADD); a second holder in that window is a duplicate. A full range is a refusal,
not a failure. At the end no lease may remain; hints only of our ADDs that Go's DEL
released, and our next ADD (its scan) must prune those.

Two ``cnitool add`` calls for one attachment (bridge + host-local) start together:
exactly one attaches, the other is refused, and DEL then leaves no lease, link or cache
entry.

``PYCNI_CONCURRENCY_ROUNDS=200`` runs more rounds per worker by hand (CI: 12).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fault_helpers import (
    figures,
    host_links,
    install,
    plugin_env,
    protocol_problem,
    scale,
    state_files,
)

pytestmark = pytest.mark.root

WORKERS = 16
CASE = "host-local ours+go, 16 workers, 12 addresses"
FULL = ("no IP addresses available", "range is full", "no more addresses")


class Holders:
    """Who holds which address right now, as the callers saw it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: dict[str, str] = {}
        self.duplicates: list[str] = []

    def take(self, address: str, cid: str) -> None:
        with self.lock:
            if address in self.held:
                self.duplicates.append(f"{address} to {cid} while {self.held[address]} held it")
            self.held[address] = cid

    def give_back(self, address: str) -> None:
        with self.lock:
            self.held.pop(address, None)


def host_local_conf(data: Path) -> dict[str, Any]:
    ipam = {"type": "host-local", "dataDir": str(data)}
    ipam["ranges"] = [[{"subnet": "10.79.0.0/24", "rangeStart": "10.79.0.2"}]]
    ipam["ranges"][0][0]["rangeEnd"] = "10.79.0.13"
    return {"cniVersion": "1.0.0", "name": "busy", "ipam": ipam}


def worker(
    n: int, rounds: int, binaries: list[str], conf: dict[str, Any], holders: Holders
) -> list[str]:
    """``rounds`` times: ADD a new attachment, then DEL the one before it (so every
    worker holds an address most of the time); each call by a binary picked at random."""
    rng = random.Random(n)
    counts = figures("concurrency", CASE)
    problems: list[str] = []
    held: tuple[str, str] | None = None  # (container ID, address)
    for r in range(rounds + 1):
        fresh = None
        if r < rounds:
            fresh, problem = add_one(f"w{n}r{r}", rng.choice(binaries), conf, holders)
            counts["attempts"] += 1
            counts["range full" if problem == "full" else "failures"] += bool(problem)
            if problem and problem != "full":
                problems.append(problem)
        if held is not None:
            holders.give_back(held[1])
            env = plugin_env("DEL", held[0], "/nonexistent/netns", "/usr/lib/cni")
            code, out, err = call(rng.choice(binaries), env, conf)
            problem = protocol_problem(code, out, err) or (f"DEL failed: {out}" if code else "")
            counts["failures"] += bool(problem)
            problems += [f"{held[0]}: {problem}"] if problem else []
        held = fresh
    return problems


def add_one(
    cid: str, binary: str, conf: dict[str, Any], holders: Holders
) -> tuple[tuple[str, str] | None, str]:
    """ADD ``cid``; ((cid, address) or None, '' or "full" or what went wrong)."""
    env = plugin_env("ADD", cid, "/nonexistent/netns", "/usr/lib/cni")
    code, out, err = call(binary, env, conf)
    if code == 1 and any(text in str(out) for text in FULL):
        return None, "full"
    problem = protocol_problem(code, out, err) or (f"ADD failed: {out}" if code else "")
    if problem:
        return None, f"{cid} ({binary}): {problem}"
    address = str(out["ips"][0]["address"])
    holders.take(address, cid)
    return (cid, address), ""


def call(binary: str, env: dict[str, str], conf: dict[str, Any]) -> tuple[int, Any, str]:
    p = subprocess.run(
        [binary], input=json.dumps(conf).encode(), env=env, capture_output=True, timeout=120
    )
    out = json.loads(p.stdout) if p.stdout.strip() else None
    return p.returncode, out, p.stderr.decode(errors="replace")


def test_host_local_ours_and_go_on_one_range(tmp_path: Path, reference_bin: Path) -> None:
    ours = str(install(tmp_path / "bin", "host-local") / "host-local")
    binaries = [ours, str(reference_bin / "host-local")]
    conf = host_local_conf(tmp_path / "leases")
    holders = Holders()
    rounds = scale("PYCNI_CONCURRENCY_ROUNDS", 12)
    with ThreadPoolExecutor(WORKERS) as pool:
        jobs = [pool.submit(worker, n, rounds, binaries, conf, holders) for n in range(WORKERS)]
        problems = [p for job in jobs for p in job.result()]
    counts = figures("concurrency", CASE)
    counts["duplicates"] += len(holders.duplicates)
    leases_dir = tmp_path / "leases" / "busy"
    stale = state_files(leases_dir / ".pycni")
    counts["stale hints"] += len(stale)
    assert [p for p in state_files(leases_dir) if p not in stale] == []
    # a Go DEL of our ADD leaves our hint; our next ADD's scan prunes what no lease backs
    for cmd in ("ADD", "DEL"):
        code, out, _ = call(
            ours, plugin_env(cmd, "last", "/nonexistent/netns", "/usr/lib/cni"), conf
        )
        assert code == 0, out
    leaks = state_files(tmp_path / "leases")
    counts["leaks"] += len(leaks)
    assert holders.duplicates == []
    assert problems == []
    assert leaks == []


def cnitool_argv(tmp: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "NETCONFPATH": str(tmp / "net.d"), "CNI_PATH": str(tmp / "bin")}
    return [sys.executable, "-m", "cnitool.cli", *args, "--cache-dir", str(tmp / "cache")], env


def cnitool(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv, env = cnitool_argv(tmp, *args)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def cnitool_together(tmp: Path, *args: str) -> list[tuple[int, str, str]]:
    """Two ``cnitool`` calls started together; (exit code, stdout, stderr) of each."""
    argv, env = cnitool_argv(tmp, *args)
    pipe = subprocess.PIPE
    procs = [subprocess.Popen(argv, env=env, stdout=pipe, stderr=pipe, text=True) for _ in "ab"]
    outs = [p.communicate(timeout=120) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs, strict=True)]


def test_two_cnitool_adds_of_one_attachment(
    tmp_path: Path, netns_factory: Callable[[], str]
) -> None:
    """Both start at once; one attaches, one is refused; DEL leaves nothing."""
    install(tmp_path / "bin", "bridge", "host-local")
    (tmp_path / "net.d").mkdir()
    ipam = {"type": "host-local", "subnet": "10.80.0.0/24", "dataDir": str(tmp_path / "ipam")}
    plugins = [{"type": "bridge", "bridge": "cnitwice", "isGateway": True, "ipam": ipam}]
    conflist = {"cniVersion": "1.0.0", "name": "twice", "plugins": plugins}
    (tmp_path / "net.d" / "10-twice.conflist").write_text(json.dumps(conflist))
    counts = figures("concurrency", "cnitool add twice at once")
    problems = []
    for _ in range(scale("PYCNI_CONCURRENCY_ROUNDS", 12) // 4):
        ns = netns_factory()
        done = cnitool_together(tmp_path, "add", "twice", ns)
        counts["attempts"] += 1
        winners = [d for d in done if d[0] == 0]
        refused = [d for d in done if d[0] != 0 and "already attached" in d[2]]
        if not (len(winners) == 1 and len(refused) == 1):
            counts["failures"] += 1
            problems.append(f"not one winner and one refusal: {done}")
        attached = attached_state(tmp_path, ns)
        if attached != (1, 1, ["eth0"]):
            counts["failures"] += 1
            problems.append(f"after the race (leases, cache entries, links in netns): {attached}")
        delete = cnitool(tmp_path, "del", "twice", ns)
        assert delete.returncode == 0, delete.stderr
        leaks = state_files(tmp_path / "ipam" / "twice", tmp_path / "cache") + host_links()
        counts["leaks"] += len(leaks)
        problems += [f"left after DEL: {leaks}"] if leaks else []
    assert problems == []


def attached_state(tmp: Path, ns: str) -> tuple[int, int, list[str]]:
    """(leases, cache entries, non-loopback links in ``ns``) of the attachment."""
    leases = [p for p in state_files(tmp / "ipam" / "twice") if "/." not in p]
    cache = state_files(tmp / "cache")
    out = subprocess.run(
        ["ip", "-j", "-n", os.path.basename(ns), "link", "show"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    links = [link["ifname"] for link in json.loads(out) if link["ifname"] != "lo"]
    return len(leases), len(cache), links
