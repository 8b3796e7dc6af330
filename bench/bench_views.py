"""How the operator's views grow with the node: ``cnitool chains``, ``leases`` and
``cache list`` at N and 2N attachments (not a test; prints a table).

The node is built the way the plugins leave it, without running them N times: per pod one
host-local lease (and its hint), one cniCacheV1 result file, and the nat rules of bridge
ipMasq plus portmap with one host port (2 chains and 7 rules, loaded with one
``iptables-restore``). Each view runs as a fresh ``cnitool ... -o json`` process; the
table gives the median wall time and the ratio of 2N to N (2.0 is linear).

Run as root; it works inside private mount+net namespaces it makes for itself:
    python bench/bench_views.py [--pods 300] [-n 5]
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
from pathlib import Path

NETWORK = "benchnet"


def isolate() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000 | 0x40000000) != 0:
        sys.exit(f"unshare failed: {os.strerror(ctypes.get_errno())} (run as root)")
    libc.mount(b"none", b"/", None, 0x4000 | (1 << 18), None)
    for d in ("/run/netns", "/var/lib/cni", "/etc/cni"):
        os.makedirs(d, exist_ok=True)
        libc.mount(b"tmpfs", d.encode(), b"tmpfs", 0, b"mode=0755")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def pod_ip(i: int) -> str:
    return f"10.{20 + i // 250}.{i % 250}.2"


def nat_rules(first: int, count: int) -> str:
    """iptables-restore input adding ``count`` pods' ipMasq and portmap rules."""
    from cnitool_plugins import inspect

    lines = ["*nat"]
    if first == 0:
        lines += [":CNI-HOSTPORT-DNAT - [0:0]", ":CNI-HOSTPORT-SETMARK - [0:0]"]
        lines += ["-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"]
    for i in range(first, first + count):
        cid = f"bench{i:05d}"
        ip = pod_ip(i)
        masq = inspect.chain_name(NETWORK, cid, "CNI-")
        dn = inspect.chain_name(NETWORK, cid, "CNI-DN-")
        note = f'"name: \\"{NETWORK}\\" id: \\"{cid}\\""'
        dnote = f'"dnat name: \\"{NETWORK}\\" id: \\"{cid}\\""'
        lines += [f":{masq} - [0:0]", f":{dn} - [0:0]"]
        lines += [
            f"-A POSTROUTING -s {ip}/32 -m comment --comment {note} -j {masq}",
            f"-A {masq} -d 10.0.0.0/8 -m comment --comment {note} -j ACCEPT",
            f"-A {masq} ! -d 224.0.0.0/4 -m comment --comment {note} -j MASQUERADE",
            f"-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment {dnote} -m multiport "
            f"--dports {10000 + i} -j {dn}",
            f"-A {dn} -s {ip}/32 -p tcp -m tcp --dport {10000 + i} -j CNI-HOSTPORT-SETMARK",
            f"-A {dn} -s 127.0.0.1/32 -p tcp -m tcp --dport {10000 + i} -j CNI-HOSTPORT-SETMARK",
            f"-A {dn} -p tcp -m tcp --dport {10000 + i} -j DNAT --to-destination {ip}:80",
        ]
    return "\n".join([*lines, "COMMIT", ""])


def grow(first: int, count: int, conflist: bytes) -> None:
    """Leases, cache files and nat rules for pods ``first`` .. ``first + count - 1``."""
    from cnitool.libcni.cache import encode_entry

    leases = Path("/var/lib/cni/networks") / NETWORK
    results = Path("/var/lib/cni/results")
    leases.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + count):
        cid, ip = f"bench{i:05d}", pod_ip(i)
        (leases / ip).write_text(f"{cid}\r\neth0")
        result = {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": f"/var/run/netns/{cid}"}],
            "ips": [{"interface": 0, "address": f"{ip}/8", "gateway": "10.0.0.1"}],
        }
        caps = {"portMappings": [{"hostPort": 10000 + i, "containerPort": 80, "protocol": "tcp"}]}
        data = encode_entry(NETWORK, cid, "eth0", conflist, f"/var/run/netns/{cid}",
                            capability_args=caps, result=result)  # fmt: skip
        (results / f"{NETWORK}-{cid}-eth0").write_bytes(data)
    subprocess.run(["iptables-restore", "--noflush"], input=nat_rules(first, count).encode(),
                   check=True)  # fmt: skip


def median_ms(argv: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, check=False)
        times.append((time.perf_counter() - start) * 1000)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed: {proc.stderr.decode(errors='replace')}")
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", type=int, default=300, help="N (the second point is 2N)")
    ap.add_argument("-n", type=int, default=5, help="runs per view and size")
    args = ap.parse_args()
    isolate()
    cnitool = shutil.which("cnitool", path=os.path.dirname(sys.executable)) or "cnitool"
    conf_dir = Path(tempfile.mkdtemp(prefix="bench-views-"))
    conflist = {
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [
            {"type": "bridge", "ipMasq": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/8"}]]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }  # fmt: skip
    raw = json.dumps(conflist).encode()
    (conf_dir / "10-bench.conflist").write_bytes(raw)
    env = dict(os.environ, NETCONFPATH=str(conf_dir))
    views = {
        "chains": [cnitool, "chains", "-o", "json"],
        "leases": [cnitool, "leases", "-o", "json"],
        "cache list": [cnitool, "cache", "list", "-o", "json"],
    }
    sizes = [args.pods, 2 * args.pods]
    table: dict[str, list[float]] = {name: [] for name in views}
    made = 0
    for size in sizes:
        grow(made, size - made, raw)
        made = size
        for name, argv in views.items():
            table[name].append(median_ms(argv, env, args.n))
    shutil.rmtree(conf_dir)
    print(f"views at {sizes[0]} and {sizes[1]} pods, median of {args.n} runs, ms")
    print(f"{'view':<12}{sizes[0]:>10}{sizes[1]:>10}{'2N/N':>8}")
    for name, (small, large) in table.items():
        print(f"{name:<12}{small:>10.1f}{large:>10.1f}{large / small:>8.2f}")


if __name__ == "__main__":
    main()
