"""A DHCP lab for the dhcp tests: dnsmasq in a server netns, our dhcp daemon, launchers.

Everything lives in the test process's private node netns (tests/conftest.py): the
server netns is joined to the node by a veth pair whose node end is a bridge port (for
bridge pods) or a macvlan master (for macvlan pods). dnsmasq runs as a child of the test
(``--no-daemon``, no config file, DNS off, bound to the server interface only) with its
lease file in the test's temp dir, so ADD, CHECK, renewal and release can be read there.
No DHCP ever reaches a host interface.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

# T1/T2 that dnsmasq sends with every lease (its lease time is at least 2 minutes), so
# the daemon's renewal and rebinding happen within a test
T1, T2 = 3, 6
LEASE_TIME = "2m"


def ip(*args: str, ns: str | None = None, check: bool = True) -> str:
    cmd = ["ip"] + (["-n", os.path.basename(ns)] if ns else []) + list(args)
    return subprocess.run(cmd, check=check, capture_output=True, text=True).stdout


class Lease:
    def __init__(self, line: str) -> None:
        expiry, mac, address, host, client_id = line.split()[:5]
        self.expiry, self.mac, self.ip, self.host = int(expiry), mac, address, host
        self.client_id = client_id

    def __repr__(self) -> str:
        return f"Lease({self.ip} {self.client_id} exp {self.expiry})"


def hex_client_id(client_id: str) -> str:
    """A client ID as dnsmasq writes it in the lease file (type byte 0 included)."""
    return ":".join(f"{b:02x}" for b in b"\0" + client_id.encode())


class Server:
    """dnsmasq in a netns of its own, on ``<prefix>.1/24``."""

    def __init__(self, tmp: Path, ns: str, iface: str, prefix: str, extra: list[str]) -> None:
        self.ns, self.iface, self.prefix = ns, iface, prefix
        self.leasefile = tmp / f"leases-{iface}"
        self.log = tmp / f"dnsmasq-{iface}.log"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.leasefile.touch()
        cmd = [
            "ip", "netns", "exec", os.path.basename(self.ns),
            "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--user=root",
            "--no-resolv", "--no-hosts", "--log-dhcp", "--log-facility=-",
            # no ping of an address before offering it (3 s per new lease)
            "--no-ping",
            f"--interface={self.iface}", "--bind-interfaces", "--except-interface=lo",
            f"--dhcp-range={self.prefix}.50,{self.prefix}.150,255.255.255.0,{LEASE_TIME}",
            f"--dhcp-option=option:router,{self.prefix}.1",
            f"--dhcp-option=option:T1,{T1}", f"--dhcp-option=option:T2,{T2}",
            f"--dhcp-leasefile={self.leasefile}", "--dhcp-authoritative",
            *self.extra,
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while b"DHCP, sockets bound" not in self.log.read_bytes():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def leases(self) -> list[Lease]:
        return [Lease(line) for line in self.leasefile.read_text().splitlines() if line.strip()]

    def lease_of(self, client_id: str) -> Lease | None:
        wanted = hex_client_id(client_id)
        found = [lease for lease in self.leases() if lease.client_id == wanted]
        return found[0] if found else None

    def wait_for(self, what: str, predicate: Any, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: not seen within {timeout}s; leases {self.leases()}\n"
                    + self.log.read_text()[-3000:]
                )
            time.sleep(0.2)


class Daemon:
    """Our ``dhcp daemon`` from the launcher, socket and pidfile in the temp dir."""

    def __init__(self, launcher: Path, tmp: Path, *flags: str) -> None:
        self.launcher = launcher
        self.socket = tmp / "run" / "dhcp.sock"
        self.pidfile = tmp / "dhcp.pid"
        self.log = tmp / f"daemon-{secrets.token_hex(3)}.log"
        self.flags = list(flags)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [str(self.launcher), "daemon", "-socketpath", str(self.socket)]
        cmd += ["-pidfile", str(self.pidfile), *self.flags]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self.proc = None
        return code

    def text(self) -> str:
        return self.log.read_text()


def run_plugin(
    plugin: str,
    cmd: str,
    conf: dict[str, Any],
    *,
    cid: str,
    netns: str,
    cni_path: str,
    ifname: str = "eth0",
    args: str = "",
    timeout: float = 120,
) -> tuple[int, Any, str]:
    """(exit status, stdout JSON or None, stderr) of one plugin exec."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": cmd,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_ARGS": args,
        "CNI_PATH": cni_path,
    }
    exe = plugin if os.path.isabs(plugin) else _find(plugin, cni_path)
    p = subprocess.run(
        [exe],
        input=json.dumps(conf).encode(),
        env=env,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    out = json.loads(p.stdout) if p.stdout.strip() else None
    return p.returncode, out, p.stderr.decode()


def _find(plugin: str, cni_path: str) -> str:
    for d in cni_path.split(":"):
        candidate = os.path.join(d, plugin)
        if os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(plugin)


class ShortLeaseServer:
    """A minimal DHCP server (a thread of the test, its socket in the server netns) that
    hands out one address with a lease of a few seconds: dnsmasq's shortest lease is two
    minutes, too long to watch a lease run out. Answers are broadcast."""

    def __init__(self, ns: str, iface: str, address: str, lease: int, t1: int, t2: int) -> None:
        import threading

        from cnitool_plugins._lib import netns

        self.address, self.lease, self.t1, self.t2 = address, lease, t1, t2
        self.server_ip = "10.77.0.1"
        self.stop = threading.Event()
        self.seen: list[str] = []
        fd = netns.open_netns(ns)
        try:
            self.sock = netns.run_in_netns(fd, self._open, iface)
        finally:
            os.close(fd)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _open(iface: str) -> Any:
        import socket

        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
        sock.bind(("0.0.0.0", 67))
        sock.settimeout(0.2)
        return sock

    def _reply(self, msg: Any, msg_type: int) -> bytes:
        import ipaddress

        from cnitool_plugins.dhcp import packet

        def ip4(a: str) -> bytes:
            return ipaddress.IPv4Address(a).packed

        opts = [
            (packet.OPT_SERVER_ID, ip4(self.server_ip)),
            (packet.OPT_LEASE_TIME, self.lease.to_bytes(4, "big")),
            (packet.OPT_RENEWAL_TIME, self.t1.to_bytes(4, "big")),
            (packet.OPT_REBINDING_TIME, self.t2.to_bytes(4, "big")),
            (packet.OPT_SUBNET_MASK, ip4("255.255.255.0")),
            (packet.OPT_ROUTER, ip4(self.server_ip)),
        ]
        data = bytearray(packet.encode(msg_type, msg.xid, msg.chaddr[:6], opts))
        data[0] = packet.BOOTREPLY
        data[16:20] = ip4(self.address)  # yiaddr
        return bytes(data)

    def _serve(self) -> None:

        from cnitool_plugins.dhcp import packet

        while not self.stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            try:
                msg = packet.decode(data)
            except ValueError:
                continue
            answer = {packet.DISCOVER: packet.OFFER, packet.REQUEST: packet.ACK}.get(msg.type)
            self.seen.append(packet.TYPE_NAMES.get(msg.type, str(msg.type)))
            if answer is not None:
                self.sock.sendto(self._reply(msg, answer), ("255.255.255.255", 68))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()
