"""ADD and DEL of one pod (bridge with ipMasq + host-local + portmap, one host port) on a
node already holding 0, 100, 300 and 600 pods: the median per size and the growth per
100 pods (least-squares slope), ours beside the Go reference plugins, on nf_tables and on
legacy x_tables (not a test; prints a table).

Paths timed:
- ``go plugins (runtime)``: the Go reference plugins exec'd by a libcni-like caller (this
  project's ``CNIConfig``, in process);
- ``ours (runtime)``: our plugins exec'd by the same caller;
- ``ours cnitool (operator)``: a ``cnitool add``/``cnitool del`` process per call.

The node is grown the way the plugins leave it, without running them N times: per pod a
host-local lease in the Go format (no hint of ours, so our first ADD on a big network
walks and keeps its index) and the nat rules of bridge ipMasq plus portmap (2 chains and
7 rules), loaded with one ``iptables-restore``; no veths. Each size starts from a fresh
table and lease directory; one untimed ADD/DEL pair warms up before the timed ones. The
plugins are the ones of the Python environment running this script, so time an installed
(not editable) copy:

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install -q .
    /tmp/venv/bin/python bench/bench_node_scale.py [--pods 0,100,300,600] [-n 5]
        [--backends nft,legacy]

Runs as root inside private mount+net namespaces it makes for itself.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_portmap import legacy_path  # noqa: E402
from bench_views import NETWORK, isolate, nat_rules, pod_ip  # noqa: E402

REFERENCE = Path("/usr/lib/cni")
LEASES = Path("/var/lib/cni/networks") / NETWORK
CONFLIST = {
    "cniVersion": "1.0.0",
    "name": NETWORK,
    "plugins": [
        {
            "type": "bridge",
            "bridge": "cnibench0",
            "isGateway": True,
            "ipMasq": True,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/8"}]]},
        },
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}
PORTS = {"portMappings": [{"hostPort": 9090, "containerPort": 80, "protocol": "tcp"}]}


def reset() -> None:
    """Empty the nat tables (of this private netns) and the lease directory."""
    tools = ["iptables-nft"]
    if "nat" in Path("/proc/self/net/ip_tables_names").read_text().split():
        tools.append("iptables-legacy")  # listing would create the legacy table
    for tool in tools:
        for flag in ("-F", "-X"):
            subprocess.run([tool, "-w", "-t", "nat", flag], check=False, capture_output=True)
    shutil.rmtree(LEASES, ignore_errors=True)
    subprocess.run(["ip", "link", "del", "cnibench0"], check=False, capture_output=True)


def grow(pods: int, backend: str) -> None:
    LEASES.mkdir(parents=True, exist_ok=True)
    for i in range(pods):
        (LEASES / pod_ip(i)).write_text(f"bench{i:05d}\r\neth0")
    if pods:
        restore = f"iptables-{backend}-restore"
        subprocess.run([restore, "--noflush"], input=nat_rules(0, pods).encode(), check=True)


# per call: (ADD wall, DEL wall, ADD cpu, DEL cpu) in ms
Caller = Callable[[str, str], tuple[float, float, float, float]]


def cpu_ms() -> float:
    """User+system time of the finished child processes (plugins, iptables, cnitool)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * 1000


def runtime_caller(cni_path: str, env_extra: dict[str, str]) -> Caller:
    from cnitool.libcni.api import CNIConfig
    from cnitool.libcni.config import conf_list_from_bytes
    from cnitool.libcni.runtime import RuntimeConf

    env = {**os.environ, **env_extra}
    cache = tempfile.mkdtemp(prefix="bench-cache-")
    cfg = CNIConfig([cni_path], cache_dir=cache, env=env)
    net = conf_list_from_bytes(json.dumps(CONFLIST).encode())

    def run(cid: str, ns: str) -> tuple[float, float, float, float]:
        rt = RuntimeConf(
            container_id=cid, netns=f"/run/netns/{ns}", ifname="eth0", capability_args=PORTS
        )
        c0, t0 = cpu_ms(), time.perf_counter()
        cfg.add_network_list(net, rt)
        c1, t1 = cpu_ms(), time.perf_counter()
        cfg.del_network_list(net, rt)
        c2, t2 = cpu_ms(), time.perf_counter()
        return (t1 - t0) * 1000, (t2 - t1) * 1000, c1 - c0, c2 - c1

    return run


def operator_caller(bin_dir: str, conf_dir: str, env_extra: dict[str, str]) -> Caller:
    cnitool = shutil.which("cnitool", path=os.path.dirname(sys.executable))
    argv = [cnitool] if cnitool else [sys.executable, "-I", "-m", "cnitool.cli.main"]
    env = {
        **os.environ,
        **env_extra,
        "NETCONFPATH": conf_dir,
        "CNI_PATH": bin_dir,
        "CAP_ARGS": json.dumps(PORTS),
    }

    def once(verb: str, ns: str) -> tuple[float, float]:
        c0, t0 = cpu_ms(), time.perf_counter()
        proc = subprocess.run(
            [*argv, verb, NETWORK, f"/run/netns/{ns}", "--output", "json"],
            env=env,
            capture_output=True,
            check=False,
        )
        elapsed, cpu = (time.perf_counter() - t0) * 1000, cpu_ms() - c0
        if proc.returncode != 0:
            sys.exit(f"cnitool {verb} failed: {proc.stdout.decode()} {proc.stderr.decode()}")
        return elapsed, cpu

    def run(cid: str, ns: str) -> tuple[float, float, float, float]:
        (add, add_cpu), (delete, del_cpu) = once("add", ns), once("del", ns)
        return add, delete, add_cpu, del_cpu

    return run


def measure(run: Caller, label: str, pods: int, backend: str, n: int) -> list[float]:
    """Medians of ADD wall, DEL wall, ADD cpu, DEL cpu."""
    reset()
    grow(pods, backend)
    samples: list[tuple[float, float, float, float]] = []
    for i in range(n + 1):
        ns = f"bench{i}"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        try:
            sample = run(f"bench-{label[:2]}-{pods}-{i}", ns)
        finally:
            subprocess.run(["ip", "netns", "del", ns], check=False)
        if i:  # the first pair warms up (bridge creation, our index on a big network)
            samples.append(sample)
    return [statistics.median(col) for col in zip(*samples, strict=True)]


def slope(xs: list[int], ys: list[float]) -> float:
    """Least-squares growth per 100 pods."""
    if len(xs) < 2:
        return float("nan")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 100 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", default="0,100,300,600", help="comma-separated node sizes")
    ap.add_argument("-n", type=int, default=5, help="timed ADD/DEL pairs per size")
    ap.add_argument("--backends", default="nft,legacy")
    ap.add_argument("--paths", default="go,ours,cnitool", help="which of go,ours,cnitool")
    opts = ap.parse_args()
    sizes = [int(s) for s in opts.pods.split(",")]
    if os.environ.get("PYCNI_BENCH_ISOLATED") != "1":
        isolate()
        os.environ["PYCNI_BENCH_ISOLATED"] = "1"
    os.makedirs("/run/pycni", exist_ok=True)  # an empty one: no warm plugin service
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run/pycni"], check=True)
    from cnitool import launchers

    bin_dir = tempfile.mkdtemp(prefix="bench-bin-")
    launchers.install(bin_dir, ["bridge", "host-local", "portmap"], python=sys.executable)
    conf_dir = tempfile.mkdtemp(prefix="bench-conf-")
    Path(conf_dir, "10-bench.conflist").write_text(json.dumps(CONFLIST))
    wanted = opts.paths.split(",")
    print(
        f"ADD and DEL of one pod, median of {opts.n} per size, ms; growth = least-squares "
        "ms per 100 pods.\nwall: elapsed time; cpu: user+system time of the processes the "
        "call ran (plugins, iptables, cnitool), which other load on the machine disturbs less"
    )
    for backend in opts.backends.split(","):
        ours_env = {"PYCNI_IPTABLES_BACKEND": backend}
        go_env = (
            {"PATH": f"{legacy_path()}:{os.environ.get('PATH', '/usr/sbin:/usr/bin')}"}
            if backend == "legacy"
            else {}
        )
        callers: list[tuple[str, Caller]] = []
        if "go" in wanted and (REFERENCE / "portmap").exists():
            callers.append(("go plugins (runtime)", runtime_caller(str(REFERENCE), go_env)))
        if "ours" in wanted:
            callers.append(("ours (runtime)", runtime_caller(bin_dir, ours_env)))
        if "cnitool" in wanted:
            callers.append(
                ("ours cnitool (operator)", operator_caller(bin_dir, conf_dir, ours_env))
            )
        head = "".join(f"{s:>7}" for s in sizes)
        print(f"\n{backend:7}{'':25}{'':5}ADD at{head} {'growth':>7} | DEL at{head} {'growth':>7}")
        for label, run in callers:
            cols: list[list[float]] = [[], [], [], []]
            for size in sizes:
                for col, value in zip(
                    cols, measure(run, label, size, backend, opts.n), strict=True
                ):
                    col.append(value)
            for kind, add, delete in (("wall", cols[0], cols[1]), ("cpu", cols[2], cols[3])):
                row_a = "".join(f"{v:7.1f}" for v in add)
                row_d = "".join(f"{v:7.1f}" for v in delete)
                print(
                    f"{backend:7}{label:25}{kind:>5}      {row_a} {slope(sizes, add):7.1f} |"
                    f"       {row_d} {slope(sizes, delete):7.1f}",
                    flush=True,
                )
    reset()


if __name__ == "__main__":
    main()
