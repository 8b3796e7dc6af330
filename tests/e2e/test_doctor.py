"""``cnitool doctor`` on a private node: every kind of problem is planted (some by our
plugins, some by the Go ones in /usr/lib/cni), doctor finds each one, and ``--fix``
leaves a node doctor calls clean with the live pods still attached and talking.

The node is a throwaway netns (its bridges, sysctls and iptables tables are its own);
pods are further throwaway netns; conf, bin, cache and lease dirs are temp dirs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from node_helpers import Node, address, network, ports, talk

from cnitool import launchers

pytestmark = pytest.mark.root


def plant_state(n: Node, netns_factory: Callable[[], str]) -> dict[str, Any]:
    """Two live pods, and every kind of leftover a node collects."""
    planted: dict[str, Any] = {}
    pod_a, pod_b = netns_factory(), netns_factory()
    planted["a"] = (pod_a, n.add("live", pod_a, "--cap-args", ports(18080)))
    planted["b"] = (pod_b, n.add("live", pod_b))
    # a stale attachment: the runtime lost the netns without a DEL
    gone = netns_factory()
    n.add("live", gone, "--cap-args", ports(18081))
    subprocess.run(["ip", "netns", "del", os.path.basename(gone)], check=True)
    planted["stale"] = gone
    # our leftovers: cache entry lost, netns alive -> leaked lease, orphan chains and veth
    lost = netns_factory()
    res = n.add("live", lost, "--cap-args", ports(18082))
    planted["lost_ip"] = address(res)
    planted["lost_veth"] = next(
        i["name"] for i in res["interfaces"] if i["name"].startswith("veth")
    )
    assert (
        n.cnitool("cache", "rm", "live", lost, "--cache-dir", str(n.tmp / "cache")).returncode == 0
    )
    # the Go tools' leftovers: Go bridge, host-local and portmap; netns and cache gone
    go_pod = netns_factory()
    res = n.add("gonet", go_pod, "--cap-args", ports(18083), env={"CNI_PATH": "/usr/lib/cni"})
    planted["go_ip"] = address(res)
    subprocess.run(["ip", "netns", "del", os.path.basename(go_pod)], check=True)
    for entry in (n.tmp / "cache" / "results").iterdir():
        if entry.name.startswith("gonet-"):
            entry.unlink()
    # a CNI chain nothing attributes, and another tool's chain that must stay
    planted["bare_chain"] = "CNI-" + "ab" * 12
    for chain in (planted["bare_chain"], "KUBE-DOCTOR-TEST"):
        assert n.run("iptables", "-t", "nat", "-N", chain).returncode == 0
    assert n.run("iptables", "-t", "nat", "-A", "KUBE-DOCTOR-TEST", "-j", "RETURN").returncode == 0
    # a stale service socket
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(n.tmp / "svc.sock"))
    sock.close()
    # a launcher whose interpreter goes away
    python = n.tmp / "py" / "python3"
    python.parent.mkdir()
    shutil.copy2(os.path.realpath(sys.executable), python)
    launchers.install(str(n.spare), ["tuning"], python=str(python), compile_bytecode=False)
    python.unlink()
    return planted


def plant_sysctls(n: Node) -> None:
    """Kernel settings the networks need, turned off (after the last ADD, which turns
    ip_forward on)."""
    n.run("sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward")
    n.run("sh", "-c", "echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables")


def kinds(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for f in report["findings"]:
        out.setdefault(f["kind"], []).append(f)
    return out


def test_doctor_finds_every_planted_problem(node: Node, netns_factory: Callable[[], str]) -> None:
    n = node
    clean_code, clean = n.doctor()
    assert {f["kind"] for f in clean["findings"] if f["severity"] != "info"} == set(), clean
    planted = plant_state(n, netns_factory)
    # a live pod whose chains sit in the legacy tables of a node that uses nf_tables
    legacy_pod = netns_factory()
    network(n.tmp, "legnet", "cnidoc2", "10.63.0")
    n.add("legnet", legacy_pod, env={"PYCNI_IPTABLES_BACKEND": "legacy"})
    conf = n.tmp / "conf"
    # last in order: a broken file stops libcni's search, so it hides only what follows
    (conf / "99-broken.conflist").write_text('{"name": "broken", "plugins": [')
    network(n.tmp, "live", "cnidoc9", "10.69.0", file="20-live-copy.conflist")
    (conf / "30-lost.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lost", "plugins": [{"type": "nosuch"}]})
    )
    (conf / "40-future.conflist").write_text(
        json.dumps({"cniVersion": "1.1.0", "name": "future", "plugins": [{"type": "sbr"}]})
    )
    plant_sysctls(n)

    # by default, leases seconds old (and their owners' chains) may be an ADD in flight
    code, cautious = n.doctor("--min-age", "3600")
    assert code == 1
    recent = kinds(cautious)
    assert recent["leaked-lease"] and not any(f["autoFix"] for f in recent["leaked-lease"])
    assert all("ADD may still be running" in f["detail"] for f in recent["leaked-lease"])
    assert not any(f["autoFix"] for f in recent["orphan-chain"])
    assert any(f["autoFix"] for f in recent["stale-attachment"])
    code, report = n.doctor()
    assert code == 1
    found = kinds(report)
    subjects = {k: {f["subject"] for f in v} for k, v in found.items()}
    assert subjects["config-invalid"] == {str(conf / "99-broken.conflist")}
    assert subjects["config-shadowed"] == {str(conf / "20-live-copy.conflist")}
    assert subjects["plugin-missing"] == {"lost: nosuch"}
    assert subjects["cni-version"] == {"future: sbr"}
    assert subjects["launcher-interpreter"] == {str(n.spare / "tuning")}
    assert "live" in subjects["mixed-chain"]
    assert {f["severity"] for f in found["mixed-chain"]} == {"info"}
    assert subjects["ip-forward"] == {"net.ipv4.ip_forward"}
    assert subjects["br-netfilter"] == {"net.bridge.bridge-nf-call-iptables"}
    (svc,) = found["service"]
    assert svc["severity"] == "warning" and "stale socket" in svc["detail"]
    (stale,) = found["stale-attachment"]
    assert stale["subject"].startswith("live cnitool-") and stale["autoFix"]
    assert subjects["leaked-lease"] == {f"live {planted['lost_ip']}", f"gonet {planted['go_ip']}"}
    assert all(f["autoFix"] for f in found["leaked-lease"])
    orphans = {f["subject"].split()[0]: f for f in found["orphan-chain"]}
    # the lost pod's and the Go pod's ipMasq and portmap chains, and the bare one
    assert sum(1 for c in orphans if c.startswith("CNI-DN-")) == 2, orphans
    assert len(orphans) == 5, orphans
    assert not orphans[planted["bare_chain"]]["autoFix"]
    assert all(f["autoFix"] for c, f in orphans.items() if c != planted["bare_chain"])
    assert subjects["orphan-veth"] == {planted["lost_veth"]}
    (legacy,) = found["iptables-backend"]
    assert "(ipv4/legacy)" in legacy["subject"] and "nft" in legacy["detail"]
    for f in report["findings"]:
        assert set(f) == {"kind", "severity", "subject", "detail", "fix", "autoFix"}
        assert f["severity"] == "info" or f["fix"], f
    # the live pods are nowhere in the findings
    live_ips = {address(planted[p][1]) for p in ("a", "b")}
    assert not any(ip in json.dumps(report) for ip in live_ips)
    assert (
        n.cnitool("del", "legnet", legacy_pod, env={"PYCNI_IPTABLES_BACKEND": "legacy"}).returncode
        == 0
    )


def test_doctor_fix_leaves_a_clean_node_with_live_pods_working(
    node: Node, netns_factory: Callable[[], str]
) -> None:
    n = node
    planted = plant_state(n, netns_factory)
    plant_sysctls(n)
    (pod_a, res_a), (pod_b, res_b) = planted["a"], planted["b"]
    before_nat = n.nat()
    code, fixed = n.doctor("--fix")
    assert code == 1  # what --fix may not touch is still there
    done = {(a["kind"], a["ok"]) for a in fixed["actions"]}
    assert done == {
        ("stale-attachment", True),
        ("leaked-lease", True),
        ("orphan-chain", True),
    }, fixed["actions"]
    left = kinds(fixed)
    assert not {"stale-attachment", "leaked-lease"} & set(left)
    assert [f["subject"].split()[0] for f in left["orphan-chain"]] == [planted["bare_chain"]]
    # the operator runs the commands doctor printed for the rest
    for f in fixed["findings"]:
        if f["severity"] != "info":
            p = n.run("sh", "-c", f["fix"])
            assert p.returncode == 0, (f, p.stderr)
    code, report = n.doctor()
    assert code == 0, report
    assert {f["kind"] for f in report["findings"]} <= {"mixed-chain", "service"}, report
    # the live pods are untouched: leases, cache entries, chains and traffic
    leases = sorted(p.name for p in (n.tmp / "leases" / "live").iterdir() if p.name[0].isdigit())
    assert leases == sorted([address(res_a), address(res_b)])
    assert len(list((n.tmp / "cache" / "results").iterdir())) == 2
    nat = n.nat()
    assert "--dport 18080" in nat
    assert not any(f"--dport {p}" in nat for p in (18081, 18082, 18083))
    assert "KUBE-DOCTOR-TEST -j RETURN" in nat and "KUBE-DOCTOR-TEST -j RETURN" in before_nat
    assert talk(pod_b, address(res_b), pod_a) == "across the bridge"
    for pod in (pod_a, pod_b):
        assert n.cnitool("check", "live", pod).returncode == 0
    for pod in (pod_a, pod_b):
        assert n.cnitool("del", "live", pod).returncode == 0


def test_doctor_output_picks_json_on_a_pipe_and_a_table_when_asked(node: Node) -> None:
    n = node
    piped = n.cnitool("doctor")
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert piped.stderr == ""  # no progress on a pipe
    assert isinstance(json.loads(piped.stdout)["findings"], list)
    (n.tmp / "conf" / "05-broken.conflist").write_text("{")
    table = n.cnitool("doctor", "-o", "table")
    assert table.returncode == 1
    assert "config-invalid" in table.stdout and "05-broken.conflist" in table.stdout
    assert table.stderr == ""
