"""dhcp: our plugin and daemon against the Go plugin and daemon (not a test; prints a table).

Both pairs get the same DHCP server (dnsmasq, no conflict ping, in a netns of its own,
behind a bridge) and the same pods: a netns with a veth whose peer is a port of that
bridge. Each call is an exec of the IPAM plugin as a main plugin would make it; the table
shows medians over N pods, one pair after the other:

- ``ADD``: the DHCP exchange (DISCOVER, OFFER, REQUEST, ACK) for a new client ID;
- ``CHECK``: a lease the daemon holds (ours re-checks it with the server; the Go daemon
  answers from memory);
- ``DEL``: DHCPRELEASE and the end of maintenance;
- ``ADD xN``: N pods' ADDs at once (wall time of the batch);
- daemon RSS after the N leases.

Run as root; everything happens in private mount+net namespaces:
    python bench/bench_dhcp.py [-n 20]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REFERENCE = "/usr/lib/cni/dhcp"


def isolate() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000 | 0x40000000) != 0:
        sys.exit(f"unshare failed: {os.strerror(ctypes.get_errno())} (run as root)")
    libc.mount(b"none", b"/", None, 0x4000 | (1 << 18), None)
    for d in ("/run/netns", "/var/lib/cni", "/run/pycni", "/run/cni"):
        os.makedirs(d, exist_ok=True)
        libc.mount(b"tmpfs", d.encode(), b"tmpfs", 0, b"mode=0700")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def lab(tmp: Path) -> subprocess.Popen[bytes]:
    ip("netns", "add", "bsrv")
    ip("link", "add", "bsrvh", "type", "veth", "peer", "name", "bsrv0", "netns", "bsrv")
    ip("link", "add", "bbr0", "type", "bridge")
    ip("link", "set", "bsrvh", "master", "bbr0")
    ip("addr", "add", "10.66.0.254/16", "dev", "bbr0")
    for dev in ("bbr0", "bsrvh"):
        ip("link", "set", dev, "up")
    ip("-n", "bsrv", "addr", "add", "10.66.0.1/16", "dev", "bsrv0")
    ip("-n", "bsrv", "link", "set", "bsrv0", "up")
    log = open(tmp / "dnsmasq.log", "wb")  # noqa: SIM115 (lives as long as dnsmasq)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", "bsrv", "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
         "--port=0", "--user=root", "--no-ping", "--interface=bsrv0", "--bind-interfaces",
         "--dhcp-range=10.66.1.1,10.66.250.250,255.255.0.0,2m",
         "--dhcp-option=option:router,10.66.0.1", f"--dhcp-leasefile={tmp / 'leases'}",
         "--dhcp-authoritative"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    time.sleep(1)
    return proc


def make_pod(name: str, index: int) -> str:
    ip("netns", "add", name)
    host = f"bh{index}"
    ip("link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", name)
    ip("link", "set", host, "master", "bbr0")
    ip("link", "set", host, "up")
    ip("-n", name, "link", "set", "eth0", "up")
    return f"/run/netns/{name}"


def call(plugin: str, cmd: str, cid: str, netns: str, sock: str) -> float:
    conf = {
        "cniVersion": "1.0.0",
        "name": "benchnet",
        "type": "dhcp",
        "ipam": {"type": "dhcp", "daemonSocketPath": sock},
    }
    env = {
        "CNI_COMMAND": cmd,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": os.path.dirname(plugin),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    }
    started = time.perf_counter()
    p = subprocess.run(
        [plugin], input=json.dumps(conf).encode(), env=env, capture_output=True, timeout=120
    )
    took = time.perf_counter() - started
    if p.returncode != 0:
        raise RuntimeError(f"{plugin} {cmd}: {p.stdout!r} {p.stderr!r}")
    return took


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_pair(name: str, plugin: str, tmp: Path, n: int, first: int) -> dict[str, str]:
    sock = str(tmp / f"{name}.sock")
    daemon = subprocess.Popen(
        [plugin, "daemon", "-socketpath", sock],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not os.path.exists(sock):
        time.sleep(0.05)
    pods = [(f"c{name}{i}", make_pod(f"p{name}{i}", first + i)) for i in range(n)]
    adds = [call(plugin, "ADD", cid, ns, sock) for cid, ns in pods]
    checks = [call(plugin, "CHECK", cid, ns, sock) for cid, ns in pods]
    rss = rss_mib(daemon.pid)
    dels = [call(plugin, "DEL", cid, ns, sock) for cid, ns in pods]
    batch = [(f"b{name}{i}", make_pod(f"q{name}{i}", first + n + i)) for i in range(n)]
    started = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(lambda pod: call(plugin, "ADD", pod[0], pod[1], sock), batch))
    batch_time = time.perf_counter() - started
    for cid, ns in batch:
        call(plugin, "DEL", cid, ns, sock)
    daemon.terminate()
    daemon.wait(30)

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.1f} ms"

    return {
        "ADD": ms(adds),
        "CHECK": ms(checks),
        "DEL": ms(dels),
        f"ADD x{n} (batch)": f"{batch_time * 1000:.0f} ms",
        f"daemon RSS, {n} leases": f"{rss:.1f} MiB",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="pods per pair")
    args = parser.parse_args()
    if shutil.which("dnsmasq") is None:
        sys.exit("dnsmasq is not installed (apt-get install dnsmasq-base)")
    isolate()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dhcp-"))
    from cnitool import launchers

    launchers.install(str(tmp / "bin"), ["dhcp"])
    server = lab(tmp)
    try:
        columns = {"pycni": run_pair("py", str(tmp / "bin" / "dhcp"), tmp, args.n, 0)}
        if os.access(REFERENCE, os.X_OK):
            columns["go"] = run_pair("go", REFERENCE, tmp, args.n, 2 * args.n)
    finally:
        server.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
    rows = list(next(iter(columns.values())))
    width = max(len(r) for r in rows)
    print(f"{'':{width}}  " + "  ".join(f"{c:>12}" for c in columns))
    for row in rows:
        print(f"{row:{width}}  " + "  ".join(f"{columns[c][row]:>12}" for c in columns))


if __name__ == "__main__":
    main()
