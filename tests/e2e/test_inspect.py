"""``cnitool inspect`` of one attachment on a private node: what it shows by netns and by
container ID, and the drift it reports once the node no longer matches the cache."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from node_helpers import LIVE_SUBNET, Node, address, ports

pytestmark = pytest.mark.root


def inspect(n: Node, target: str, *extra: str) -> tuple[int, Any]:
    p = n.cnitool("inspect", target, "--cache-dir", str(n.tmp / "cache"), *extra)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, (json.loads(p.stdout) if p.stdout.startswith("{") else p)


def test_inspect_shows_one_attachment_whole(node: Node, netns_factory: Callable[[], str]) -> None:
    n = node
    pod = netns_factory()
    res = n.add("live", pod, "--cap-args", ports(18090))
    ip = address(res)
    code, report = inspect(n, os.path.basename(pod), "-o", "json")
    assert code == 0, report["attachments"][0]["drift"]
    (rec,) = report["attachments"]
    assert (report["by"], rec["network"], rec["ifname"]) == ("netns", "live", "eth0")
    assert rec["result"] == res
    assert [lease["ip"] for lease in rec["leases"]] == [ip]
    inside = rec["netnsView"]
    assert {"ifname": "eth0", "address": f"{ip}/24", "family": 4} in inside["addresses"]
    assert any(
        r["dst"] == f"{LIVE_SUBNET}.0/24" and r["ifname"] == "eth0" for r in inside["routes"]
    )
    (veth,) = [lk for lk in rec["host"]["links"] if lk["kind"] == "veth"]
    assert (veth["bridge"], veth["peer"]) == ("cnidoc0", "eth0")
    (mapping,) = rec["portMappings"]
    assert (mapping["hostPort"], mapping["podIP"], mapping["podPort"]) == (18090, ip, 80)
    kinds = sorted(ch["kind"] for ch in rec["chains"])
    assert kinds == ["ipMasq", "portmap dnat"]
    assert rec["drift"] == []
    # the same attachment by container ID, and by a prefix of it
    cid = rec["containerID"]
    for target in (cid, cid[:14]):
        code, again = inspect(n, target, "-o", "json")
        assert code == 0 and again["by"] == "container"
        assert [r["cacheFile"] for r in again["attachments"]] == [rec["cacheFile"]]
    tree = n.cnitool("inspect", pod, "--cache-dir", str(n.tmp / "cache"), "-o", "tree")
    assert tree.returncode == 0, tree.stderr
    assert "matches the cached result" in tree.stdout and "18090/tcp" in tree.stdout
    assert n.cnitool("del", "live", pod).returncode == 0


def test_inspect_reports_drift(node: Node, netns_factory: Callable[[], str]) -> None:
    n = node
    pod = netns_factory()
    res = n.add("live", pod, "--cap-args", ports(18091))
    ip = address(res)
    name = os.path.basename(pod)
    subprocess.run(["ip", "-n", name, "addr", "del", f"{ip}/24", "dev", "eth0"], check=True)
    (n.tmp / "leases" / "live" / ip).unlink()
    code, report = inspect(n, name, "-o", "json")
    assert code == 1
    (rec,) = report["attachments"]
    assert f"address {ip}/24 is not on eth0" in rec["drift"]
    assert f"no lease names this attachment for {ip}" in rec["drift"]
    subprocess.run(["ip", "netns", "del", name], check=True)
    code, report = inspect(n, rec["containerID"], "-o", "json")
    assert code == 1
    (rec,) = report["attachments"]
    assert rec["netnsView"] is None and "is gone" in rec["drift"][0]
    assert [lk["kind"] for lk in rec["host"]["links"]] == ["bridge"]


def test_inspect_of_nothing_cached_fails_clearly(node: Node) -> None:
    p = node.cnitool("inspect", "nosuchcontainer", "--cache-dir", str(node.tmp / "cache"))
    assert p.returncode == 1 and p.stdout == ""
    assert "no cached attachment for container nosuchcontainer" in p.stderr
