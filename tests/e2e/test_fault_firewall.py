"""Fault suite, firewall: another ``iptables -w`` writer busy in the same tables while
our bridge (ipMasq) and portmap run ADD and DEL, on iptables-nft and iptables-legacy.

The writer (a separate process) adds rules to the nat table's POSTROUTING and PREROUTING
chains (where ipMasq and portmap write too) and to a chain of its own, each with a
comment of its own, and deletes the rule it added four steps before, until told to stop;
then it prints the rules it holds. Our plugins run with the same backend. After each of
our ADDs the nat table must hold our rules exactly as an undisturbed ADD left them (none
lost, none twice); after each DEL none; at the end the writer's rules are exactly the
ones it holds. A lost update (a whole-table restore from a stale read) shows as a
missing rule on either side, a retried append as a duplicate.

``PYCNI_FIREWALL_ROUNDS=100`` runs more rounds per backend by hand (CI: 5).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fault_helpers import call, figures, install, plugin_env, protocol_problem, scale

pytestmark = pytest.mark.root

NET = "fwnet"
CID = "fw0"
BACKENDS = {"nft": "iptables-nft", "legacy": "iptables-legacy"}

WRITER = r"""
import json, os, subprocess, sys
ipt, stop = sys.argv[1], sys.argv[2]
def run(*args):
    subprocess.run([ipt, "-w", "-t", "nat", *args], check=True, capture_output=True)
run("-N", "WRITER")
held, i = [], 0
while not os.path.exists(stop):
    chain = ("POSTROUTING", "PREROUTING", "WRITER")[i % 3]
    spec = ["-s", f"192.0.2.{i % 250}/32", "-m", "comment", "--comment", f"writer-{i}",
            "-j", "RETURN"]
    run("-A", chain, *spec)
    held.append((chain, spec))
    if len(held) > 4:
        old_chain, old_spec = held.pop(0)
        run("-D", old_chain, *old_spec)
    i += 1
print(json.dumps({"held": sorted(s[5] for _, s in held), "steps": i}))
"""


def nat_lines(backend: str) -> list[str]:
    save = f"{BACKENDS[backend]}-save"
    out = subprocess.run([save, "-t", "nat"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.startswith(("-A", ":"))]


def ours(lines: list[str]) -> list[str]:
    """Our rules and chains: the ones naming the container, and its chains."""
    return sorted(
        line.split(" [")[0]
        for line in lines
        if f'id: "{CID}"' in line
        or (line.startswith(":CNI-") and not line.startswith(":CNI-HOSTPORT-"))
    )


def writers(lines: list[str]) -> list[str]:
    """The writer's rules, by comment (a duplicate shows twice)."""
    words = (word.strip('"') for line in lines for word in line.split())
    return sorted(word for word in words if word.startswith("writer-"))


class Plugins:
    """Our bridge (ipMasq, host-local) and portmap for one container, one backend."""

    def __init__(self, bin_dir: Path, data: Path, netns: str, backend: str) -> None:
        self.bin_dir, self.netns, self.backend = bin_dir, netns, backend
        ipam = {"type": "host-local", "subnet": "10.83.0.0/24", "dataDir": str(data)}
        self.bridge = {
            "cniVersion": "1.0.0", "name": NET, "type": "bridge", "bridge": "fwbr0",
            "isGateway": True, "ipMasq": True, "ipam": ipam,
        }  # fmt: skip
        self.portmap: dict[str, Any] = {
            "cniVersion": "1.0.0", "name": NET, "type": "portmap", "snat": True,
            "capabilities": {"portMappings": True},
            "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80}]},
        }  # fmt: skip

    def run(self, verb: str, conf: dict[str, Any]) -> tuple[int, Any, str]:
        env = plugin_env(
            verb, CID, self.netns, str(self.bin_dir), PYCNI_IPTABLES_BACKEND=self.backend
        )
        return call(str(self.bin_dir / conf["type"]), env, conf)

    def add(self) -> str:
        code, out, err = self.run("ADD", self.bridge)
        if code:
            return protocol_problem(code, out, err) or f"bridge ADD: {out}"
        self.portmap["prevResult"] = out
        code, out, err = self.run("ADD", self.portmap)
        return protocol_problem(code, out, err) or (f"portmap ADD: {out}" if code else "")

    def delete(self) -> str:
        problems = []
        for conf in (self.portmap, self.bridge):
            code, out, err = self.run("DEL", conf)
            problems.append(protocol_problem(code, out, err) or (f"DEL: {out}" if code else ""))
        return "; ".join(p for p in problems if p)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_concurrent_iptables_writer(
    backend: str, tmp_path: Path, netns_factory: Callable[[], str]
) -> None:
    bin_dir = install(tmp_path / "bin", "bridge", "host-local", "portmap")
    plugins = Plugins(bin_dir, tmp_path / "leases", netns_factory(), backend)
    assert plugins.add() == ""
    expected = ours(nat_lines(backend))  # an undisturbed ADD's rules and chains
    assert expected and plugins.delete() == ""
    counts = figures("firewall", f"iptables-{backend}")
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, BACKENDS[backend], str(stop)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        problems = rounds(plugins, backend, expected, counts)
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    report = json.loads(out)
    counts["writer steps"] += report["steps"]
    held = writers(nat_lines(backend))
    if held != report["held"]:
        counts["failures"] += 1
        problems.append(f"writer's rules: {held}, expected {report['held']}")
    assert problems == []


def rounds(plugins: Plugins, backend: str, expected: list[str], counts: Any) -> list[str]:
    """ADD, compare our rules with the undisturbed ones, DEL, check none is left."""
    problems = []
    for n in range(scale("PYCNI_FIREWALL_ROUNDS", 5)):
        counts["attempts"] += 1
        problem = plugins.add()
        got = ours(nat_lines(backend))
        if not problem and got != expected:
            problem = f"after ADD: {sorted(set(expected) ^ set(got)) or got}"
        problem = problem or plugins.delete()
        left = ours(nat_lines(backend))
        counts["leaks"] += bool(left)
        if problem or left:
            counts["failures"] += 1
            problems.append(f"round {n}: {problem} left {left}")
            plugins.delete()
    return problems


def test_writer_rules_are_counted() -> None:
    """The check itself: the writer's rules are found by comment, each once."""
    lines = [
        "-A POSTROUTING -s 192.0.2.1/32 -m comment --comment writer-1 -j RETURN",
        '-A WRITER -s 192.0.2.2/32 -m comment --comment "writer-2" -j RETURN',
    ]
    assert writers(lines + lines[:1]) == ["writer-1", "writer-1", "writer-2"]
