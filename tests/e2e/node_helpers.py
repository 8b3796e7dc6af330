"""The private node of the doctor and inspect tests: a throwaway netns as the node (its
bridges, sysctls and iptables tables are its own), temp conf, bin, cache and lease dirs,
our launchers for bridge, host-local and loopback and the Go portmap (a mixed chain)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cnitool import launchers

LIVE_SUBNET = "10.61.0"
GO_SUBNET = "10.62.0"


@dataclass
class Node:
    tmp: Path
    ns: str  # the node's netns path
    ours: Path  # our launchers
    spare: Path  # a second bin dir (a launcher whose interpreter goes)

    @property
    def cni_path(self) -> str:
        return f"{self.ours}:{self.spare}:/usr/lib/cni"

    def run(
        self, *argv: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full = {**os.environ, "NETCONFPATH": str(self.tmp / "conf"), "CNI_PATH": self.cni_path}
        full["PATH"] = f"{Path(sys.executable).parent}:{full.get('PATH', '/usr/bin:/bin')}"
        full.update(env or {})
        return subprocess.run(
            ["nsenter", f"--net={self.ns}", *argv],
            env=full,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def cnitool(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "cnitool.cli", *args]
        if args[0] in ("add", "check", "del", "gc", "doctor"):
            argv += ["--cache-dir", str(self.tmp / "cache")]
        if args[0] == "doctor":
            argv += ["--data-dir", str(self.tmp / "leases"), "--socket", str(self.tmp / "svc.sock")]
            if "--min-age" not in args:  # what the tests plant is seconds old
                argv += ["--min-age", "0"]
        return self.run(*argv, env=env)

    def doctor(self, *args: str) -> tuple[int, dict[str, Any]]:
        p = self.cnitool("doctor", "-o", "json", *args)
        assert p.returncode in (0, 1), p.stderr
        assert "Traceback" not in p.stderr, p.stderr
        return p.returncode, json.loads(p.stdout)

    def add(self, network: str, pod: str, *extra: str, env: dict[str, str] | None = None) -> Any:
        p = self.cnitool("add", network, pod, "-o", "json", *extra, env=env)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def nat(self, tool: str = "iptables-nft") -> str:
        return self.run(f"{tool}-save", "-t", "nat").stdout


def make_node(tmp_path: Path, ns: str) -> Node:
    if not Path("/usr/lib/cni/portmap").is_file():
        pytest.skip("the Go reference plugins are not installed")
    (tmp_path / "conf").mkdir()
    ours = tmp_path / "bin"
    # our bridge, host-local and loopback; portmap stays Go's (a mixed chain)
    actions = launchers.install(
        str(ours), ["bridge", "host-local", "loopback"], compile_bytecode=False
    )
    assert all(a.action == "installed" for a in actions if a.kind == "launcher"), actions
    spare = tmp_path / "bin2"
    spare.mkdir()
    n = Node(tmp_path, ns, ours, spare)
    n.run("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")  # as a node has it
    network(tmp_path, "live", "cnidoc0", LIVE_SUBNET)
    network(tmp_path, "gonet", "cnidoc1", GO_SUBNET)
    return n


def network(tmp: Path, name: str, bridge: str, subnet: str, file: str = "") -> None:
    body = {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": True,
                "ipam": {
                    "type": "host-local",
                    "subnet": f"{subnet}.0/24",
                    "dataDir": str(tmp / "leases"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    (tmp / "conf" / (file or f"10-{name}.conflist")).write_text(json.dumps(body))


def ports(host: int) -> str:
    return json.dumps(
        {"portMappings": [{"hostPort": host, "containerPort": 80, "protocol": "tcp"}]}
    )


def address(result: Any) -> str:
    return str(result["ips"][0]["address"].split("/")[0])


SERVER = """
import socket, sys
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(20)
    print("ready", flush=True)
    c, _ = s.accept(); c.sendall(c.recv(64))
"""
CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as c:
    c.sendall(b"across the bridge"); print(c.recv(64).decode())
"""


def talk(
    server_ns: str,
    server_ip: str,
    client_ns: str,
    *,
    port: int = 7777,
    via: tuple[str, int] | None = None,
) -> str:
    """A TCP round trip between two netns of this test: a server on ``server_ip:port`` in
    ``server_ns``, a client in ``client_ns`` connecting there, or to ``via`` (a node's
    address and host port that leads to the server)."""
    target = via or (server_ip, port)
    server = subprocess.Popen(
        ["nsenter", f"--net={server_ns}", sys.executable, "-c", SERVER, server_ip, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        client = subprocess.run(
            ["nsenter", f"--net={client_ns}", sys.executable, "-c", CLIENT]
            + [target[0], str(target[1])],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert client.returncode == 0, client.stderr
        return client.stdout.strip()
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()
