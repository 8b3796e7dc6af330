"""Per-exec latency of host-local: our launcher next to the Go reference binary.

Installs our launcher into a temporary CNI bin dir (cnitool.launchers.install), then
times VERSION, ADD, CHECK and DEL calls, each a fresh process, against a temporary dataDir
that already holds ``--leases`` leases (one size or a comma-separated list, e.g.
``1000,10000,50000``). The Go plugin reads every lease file on ADD (to find an address
the container holds already) and, without our hints, on CHECK and DEL.

``--prefill files`` (the default) writes the leases as the Go plugin does (one file each,
``<id>\\r\\n<ifname>``, no hint of ours), which is what a node shared with the Go plugin
holds; our first ADD there walks them once and keeps its index: that call is shown as
"1st ADD", the others are medians after it. ``--prefill exec`` makes them by running each
plugin's ADD (slow for big sizes). ``--warm`` adds our launcher with a plugin service up
(``cnitool serve`` on a temporary socket): a row of its own, wall time only (the work
runs in the service's worker, not in a child of this script). Time an installed (not
editable) copy:

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install -q .
    /tmp/venv/bin/python bench/bench_host_local.py [--runs 30] [--leases 200]
        [--prefill files|exec] [--reference /usr/lib/cni/host-local] [--warm]
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from cnitool import launchers

# user+system ms of the last call's process (other load on the machine disturbs it less)
last_cpu = [0.0]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * 1000


# PYCNI_SOCKET of our calls: a service's socket (--warm), or a path with nothing behind it
SOCKET = ["/nonexistent/plugins.sock"]


def call(binary: str, cmd: str, conf: bytes, cid: str = "bench") -> float:
    env = {
        "PYCNI_SOCKET": SOCKET[0],
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": cmd,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/var/run/netns/bench",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": os.path.dirname(binary),
        "CNI_ARGS": "",
    }
    cpu, start = _children_cpu(), time.perf_counter()
    p = subprocess.run([binary], input=conf, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    last_cpu[0] = _children_cpu() - cpu
    if p.returncode != 0:
        raise SystemExit(f"{binary} {cmd} failed: {p.stdout.decode()} {p.stderr.decode()}")
    return elapsed * 1000


SUBNET = "10.192.0.0/12"  # room for a million leases


def prefill(binary: str, conf: bytes, count: int, tag: str, how: str, directory: str) -> None:
    if how == "exec":
        for i in range(count):
            call(binary, "ADD", conf, f"{tag}-fill{i}")
        return
    os.makedirs(directory, exist_ok=True)
    base = int(ipaddress.ip_network(SUBNET).network_address) + 2
    for i in range(count):
        with open(os.path.join(directory, str(ipaddress.ip_address(base + i))), "w") as f:
            f.write(f"{tag}-fill{i}\r\neth0")
    if count:
        with open(os.path.join(directory, "last_reserved_ip.0"), "w") as f:
            f.write(str(ipaddress.ip_address(base + count - 1)))


def measure(
    binary: str, tag: str, data_dir: str, runs: int, leases: int, how: str = "files"
) -> dict[str, float]:
    name = f"bench-{tag}-{leases}"
    conf = json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": name,
            "ipam": {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": SUBNET}]]},
        }
    ).encode()
    prefill(binary, conf, leases, tag, how, os.path.join(data_dir, name))
    wall: dict[str, list[float]] = {v: [] for v in ("1st ADD", "VERSION", "ADD", "CHECK", "DEL")}
    cpu: dict[str, list[float]] = {v: [] for v in wall}
    wall["1st ADD"].append(call(binary, "ADD", conf, f"{tag}-first"))
    cpu["1st ADD"].append(last_cpu[0])
    call(binary, "DEL", conf, f"{tag}-first")
    for i in range(runs):
        cid = f"{tag}-run{i}"
        for verb, stdin in (("VERSION", b""), ("ADD", conf), ("CHECK", conf), ("DEL", conf)):
            wall[verb].append(call(binary, verb, stdin, cid))
            cpu[verb].append(last_cpu[0])
    out = {v: statistics.median(xs) for v, xs in wall.items()}
    out.update({f"{v} cpu": statistics.median(xs) for v, xs in cpu.items()})
    return out


@contextlib.contextmanager
def serving(tmp: str) -> Iterator[None]:
    """A plugin service on a socket in ``tmp`` while the block runs."""
    from cnitool.warm import service

    sock = os.path.join(tmp, "run", "plugins.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnitool.cli", "serve", "--socket", sock],
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(400):
            try:
                service.query_status(sock)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("the plugin service did not come up")
        SOCKET[0] = sock
        yield
    finally:
        SOCKET[0] = "/nonexistent/plugins.sock"
        proc.terminate()
        proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument(
        "--leases", default="200", help="leases present before timing (comma-separated sizes)"
    )
    ap.add_argument("--prefill", choices=("files", "exec"), default="files")
    ap.add_argument("--reference", default="/usr/lib/cni/host-local")
    ap.add_argument("--warm", action="store_true", help="also time ours through cnitool serve")
    opts = ap.parse_args()

    verbs = ("1st ADD", "VERSION", "ADD", "CHECK", "DEL")
    print(
        f"host-local, median ms per exec ({opts.runs} runs; 1st ADD: one call); wall: "
        "elapsed, cpu: user+system time of the process"
    )
    print(f"{'leases':>8} {'':18}" + "".join(f"{v:>10}" for v in verbs))
    for size in (int(x) for x in opts.leases.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-host-local-") as tmp:
            bin_dir = os.path.join(tmp, "bin")
            launchers.install(bin_dir, ["host-local"])
            ours = os.path.join(bin_dir, "host-local")
            data = os.path.join(tmp, "data")
            rows = {"pycni": measure(ours, "py", data, opts.runs, size, opts.prefill)}
            if opts.warm:
                with serving(tmp):
                    rows["pycni warm"] = measure(ours, "pw", data, opts.runs, size, opts.prefill)
            if os.access(opts.reference, os.X_OK):
                rows["go 1.1.1"] = measure(
                    opts.reference, "go", data, opts.runs, size, opts.prefill
                )
            else:
                print(f"reference {opts.reference} not found; showing ours only", file=sys.stderr)
        for kind, suffix in (("wall", ""), ("cpu", " cpu")):
            for name, vals in rows.items():
                if kind == "cpu" and name == "pycni warm":
                    continue
                print(
                    f"{size:>8} {name + ' ' + kind:18}"
                    + "".join(f"{vals[v + suffix]:10.1f}" for v in verbs)
                )
            go = rows.get("go 1.1.1")
            for name in ("pycni", "pycni warm"):
                if go is None or name not in rows or (kind == "cpu" and name == "pycni warm"):
                    continue
                ratio = {v: go[v + suffix] / rows[name][v + suffix] for v in verbs}
                label = "go/ours" + (" warm" if name == "pycni warm" else "")
                print(
                    f"{size:>8} {label + ' ' + kind:18}"
                    + "".join(f"{ratio[v]:9.1f}x" for v in verbs)
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
