"""``cnitool doctor``'s checks that need no root: kernel probes read from files, the
plugin service's socket states, and the commands printed for chains."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from cnitool.cli import diagnose


def node(tmp_path: Path) -> diagnose.Node:
    conf = tmp_path / "conf"
    conf.mkdir()
    body = {
        "cniVersion": "1.0.0",
        "name": "pm",
        "plugins": [
            {"type": "bridge", "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    (conf / "10-pm.conflist").write_text(json.dumps(body))
    return diagnose.Node(
        conf_dir=str(conf),
        bin_dirs=[str(tmp_path / "bin")],
        cache_dir=str(tmp_path / "cache"),
        data_dir=str(tmp_path / "leases"),
        socket=str(tmp_path / "svc.sock"),
        timeout=5,
    )


def test_a_missing_br_netfilter_is_reported_not_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(diagnose, "BRIDGE_SYSCTLS", str(tmp_path / "no-such-dir"))
    found = [f for f in diagnose.check_sysctls(node(tmp_path)) if f.kind == "br-netfilter"]
    assert [(f.subject, f.fix) for f in found] == [("br_netfilter", "modprobe br_netfilter")]


def test_bridge_nf_call_iptables_off_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sysctls = tmp_path / "bridge"
    sysctls.mkdir()
    (sysctls / "bridge-nf-call-iptables").write_text("0\n")
    monkeypatch.setattr(diagnose, "BRIDGE_SYSCTLS", str(sysctls))
    n = node(tmp_path)
    found = [f for f in diagnose.check_sysctls(n) if f.kind == "br-netfilter"]
    assert [f.fix for f in found] == ["sysctl -w net.bridge.bridge-nf-call-iptables=1"]
    (sysctls / "bridge-nf-call-iptables").write_text("1\n")
    assert not [f for f in diagnose.check_sysctls(n) if f.kind == "br-netfilter"]


def test_service_states(tmp_path: Path) -> None:
    n = node(tmp_path)
    (down,) = diagnose.check_service(n)
    assert (down.severity, down.kind) == ("info", "service")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(n.socket)
    sock.close()  # the file stays, nothing listens
    (stale,) = diagnose.check_service(n)
    assert stale.severity == "warning" and "stale socket" in stale.detail
    assert stale.fix.startswith(f"rm -f {n.socket}")


def test_chain_fix_deletes_the_jumps_then_the_chain() -> None:
    chain = {
        "chain": "CNI-DN-0123456789abcdef01234",
        "family": 6,
        "backend": "legacy",
        "jumps": [
            {
                "from": "CNI-HOSTPORT-DNAT",
                "rule": '-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"n\\" id: '
                '\\"c\\"" -m multiport --dports 80 -j CNI-DN-0123456789abcdef01234',
            }
        ],
    }
    fix = diagnose._chain_fix(chain)
    steps = fix.split(" && ")
    assert steps[0].startswith("ip6tables-legacy -t nat -D CNI-HOSTPORT-DNAT -p tcp")
    assert steps[1:] == [
        "ip6tables-legacy -t nat -F CNI-DN-0123456789abcdef01234",
        "ip6tables-legacy -t nat -X CNI-DN-0123456789abcdef01234",
    ]


def test_a_finding_record_has_the_documented_keys() -> None:
    f = diagnose.Finding("leaked-lease", "warning", "n 10.0.0.2", "why", "rm x", repair=lambda: "")
    assert f.record() == {
        "kind": "leaked-lease",
        "severity": "warning",
        "subject": "n 10.0.0.2",
        "detail": "why",
        "fix": "rm x",
        "autoFix": True,
    }
