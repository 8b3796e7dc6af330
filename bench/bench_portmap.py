"""The seed chain (flannel -> bridge -> host-local, then portmap) ADD and DEL times through
libcni's CNIConfig: our plugins against the Go reference ones.

The Go flannel plugin is not shipped by Debian, so the Go side runs the chain flannel would
produce (the delegate bridge config + portmap) -- the same bridge/host-local/portmap work
minus flannel's own small step; ours is also timed on that same bridge+portmap list, so
the flannel cost shows separately. Portmap runs on the nf_tables backend (the host's
default) and on legacy x_tables: ours through libiptc and through iptables-legacy-restore,
Go's through `iptables-legacy` (a PATH whose `iptables` is the legacy tool).

Runs as root inside private mount+net namespaces it creates for itself (nothing reaches
the host). Prints the median (and p90) wall time of ADD and DEL per chain.

    sudo /work/venv/bin/python bench/bench_portmap.py [-n 15]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REFERENCE = Path("/usr/lib/cni")
CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
SUBNET_ENV = (
    "FLANNEL_NETWORK=172.28.0.0/14\nFLANNEL_SUBNET=172.28.2.1/24\n"
    "FLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n"
)
PORTS = {
    "portMappings": [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
    ]
}


def isolate() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS | CLONE_NEWNET) != 0:
        raise SystemExit(f"unshare failed: {os.strerror(ctypes.get_errno())} (run as root)")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise SystemExit("making / private failed")
    for d in ("/run/netns", "/var/lib/cni", "/run/flannel"):
        os.makedirs(d, exist_ok=True)
        if libc.mount(b"tmpfs", d.encode(), b"tmpfs", 0, b"mode=0755") != 0:
            raise SystemExit(f"tmpfs on {d} failed")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def seed_list(name: str) -> dict[str, object]:
    return {
        "cniVersion": "0.3.1",
        "name": name,
        "plugins": [
            {"type": "flannel", "delegate": {"forceAddress": True, "isDefaultGateway": True}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def delegated_list(name: str) -> dict[str, object]:
    """What flannel hands to bridge for the seed list, as a plain bridge+portmap list."""
    return {
        "cniVersion": "0.3.1",
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "forceAddress": True,
                "isDefaultGateway": True,
                "isGateway": True,
                "ipMasq": False,
                "mtu": 1500,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "172.28.2.0/24"}]],
                    "routes": [{"dst": "172.28.0.0/14"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def measure(
    label: str, conflist: dict[str, object], cni_path: str, n: int, env_extra: dict[str, str]
) -> tuple[str, list[float], list[float]]:
    from cnitool.libcni.api import CNIConfig
    from cnitool.libcni.config import conf_list_from_bytes
    from cnitool.libcni.runtime import RuntimeConf

    env = dict(os.environ)
    env.update(env_extra)
    cache = tempfile.mkdtemp(prefix="bench-cache-")
    sink = open(os.devnull, "wb")  # noqa: SIM115 - flannel logs its delegate config each ADD
    cfg = CNIConfig(cni_path.split(":"), cache_dir=cache, env=env, stderr=sink)
    net = conf_list_from_bytes(json.dumps(conflist).encode())
    adds: list[float] = []
    dels: list[float] = []
    for i in range(n + 1):
        ns = f"benchpod{i}"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        rt = RuntimeConf(
            container_id=f"bench-{abs(hash(label)) % 10**8}-{i}",
            netns=f"/run/netns/{ns}",
            ifname="eth0",
            capability_args=PORTS,
        )
        t0 = time.perf_counter()
        cfg.add_network_list(net, rt)
        t1 = time.perf_counter()
        cfg.del_network_list(net, rt)
        t2 = time.perf_counter()
        subprocess.run(["ip", "netns", "del", ns], check=True)
        if i:  # the first round warms caches (bridge creation, page cache)
            adds.append((t1 - t0) * 1000)
            dels.append((t2 - t1) * 1000)
    subprocess.run(["ip", "link", "del", "cni0"], check=False, capture_output=True)
    sink.close()
    return label, adds, dels


def legacy_path() -> str:
    """A directory whose iptables/ip6tables(-save/-restore) are the legacy tools, so the Go
    plugins (which run plain `iptables`) write x_tables like our legacy backend."""
    d = tempfile.mkdtemp(prefix="bench-legacy-")
    for base in ("iptables", "ip6tables"):
        for suffix in ("", "-save", "-restore"):
            target = subprocess.run(
                ["sh", "-c", f"command -v {base}-legacy{suffix}"], capture_output=True, text=True
            ).stdout.strip()
            if target:
                os.symlink(target, os.path.join(d, base + suffix))
    return d


def p90(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.9) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=15, help="rounds per chain (after one warm-up)")
    opts = ap.parse_args()
    if os.environ.get("PYCNI_BENCH_ISOLATED") != "1":
        isolate()
        os.environ["PYCNI_BENCH_ISOLATED"] = "1"
    Path("/run/flannel/subnet.env").write_text(SUBNET_ENV)
    from cnitool import launchers

    bin_dir = tempfile.mkdtemp(prefix="bench-bin-")
    launchers.install(
        bin_dir, ["flannel", "bridge", "host-local", "portmap"], python=sys.executable
    )
    runs = [
        (
            "ours seed (flannel+portmap)",
            seed_list("cni0"),
            bin_dir,
            {"PYCNI_IPTABLES_BACKEND": "nft"},
        ),
        ("ours bridge+portmap", delegated_list("cni0"), bin_dir, {"PYCNI_IPTABLES_BACKEND": "nft"}),
        (
            "ours bridge+portmap legacy",
            delegated_list("cni0"),
            bin_dir,
            {"PYCNI_IPTABLES_BACKEND": "legacy"},
        ),
    ]
    runs.append(
        (
            "ours bridge+portmap legacy-restore",
            delegated_list("cni0"),
            bin_dir,
            {"PYCNI_IPTABLES_BACKEND": "legacy-restore"},
        )
    )
    if (REFERENCE / "portmap").exists():
        runs.append(("go bridge+portmap", delegated_list("cni0"), str(REFERENCE), {}))
        runs.append(
            (
                "go bridge+portmap legacy",
                delegated_list("cni0"),
                str(REFERENCE),
                {"PATH": f"{legacy_path()}:{os.environ.get('PATH', '/usr/sbin:/usr/bin')}"},
            )
        )
    print(
        f"{'chain':36} {'ADD median':>11} {'ADD p90':>9} {'DEL median':>11} {'DEL p90':>9}  (ms, n={opts.n})"
    )
    for label, conflist, path, extra in runs:
        _, adds, dels = measure(label, conflist, path, opts.n, extra)
        print(
            f"{label:36} {statistics.median(adds):11.1f} {p90(adds):9.1f} "
            f"{statistics.median(dels):11.1f} {p90(dels):9.1f}"
        )


if __name__ == "__main__":
    main()
