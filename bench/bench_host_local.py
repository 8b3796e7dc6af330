"""Per-exec latency of host-local: our launcher next to the Go reference binary.

Installs our launcher into a temporary CNI bin dir (cnitool.launchers.install), then
times VERSION, ADD, CHECK and DEL calls, each a fresh process, against a temporary dataDir
that already holds ``--leases`` leases (DEL and CHECK cost grows with them for the Go
plugin, which reads every lease file). Prints medians side by side.

    python bench/bench_host_local.py [--runs 30] [--leases 200] [--reference /usr/lib/cni/host-local]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from cnitool import launchers


def call(binary: str, cmd: str, conf: bytes, cid: str = "bench") -> float:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": cmd,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/var/run/netns/bench",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": os.path.dirname(binary),
        "CNI_ARGS": "",
    }
    start = time.perf_counter()
    p = subprocess.run([binary], input=conf, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        raise SystemExit(f"{binary} {cmd} failed: {p.stdout.decode()} {p.stderr.decode()}")
    return elapsed * 1000


def prefill(binary: str, conf: bytes, count: int, tag: str) -> None:
    for i in range(count):
        call(binary, "ADD", conf, f"{tag}-fill{i}")


def measure(binary: str, tag: str, data_dir: str, runs: int, leases: int) -> dict[str, float]:
    conf = json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": f"bench-{tag}",
            "ipam": {
                "type": "host-local",
                "dataDir": data_dir,
                "ranges": [[{"subnet": "10.200.0.0/16"}]],
            },
        }
    ).encode()
    prefill(binary, conf, leases, tag)
    version, add, check, delete = [], [], [], []
    for i in range(runs):
        cid = f"{tag}-run{i}"
        version.append(call(binary, "VERSION", b""))
        add.append(call(binary, "ADD", conf, cid))
        check.append(call(binary, "CHECK", conf, cid))
        delete.append(call(binary, "DEL", conf, cid))
    return {
        "VERSION": statistics.median(version),
        "ADD": statistics.median(add),
        "CHECK": statistics.median(check),
        "DEL": statistics.median(delete),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--leases", type=int, default=200, help="leases present before timing")
    ap.add_argument("--reference", default="/usr/lib/cni/host-local")
    opts = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-host-local-") as tmp:
        bin_dir = os.path.join(tmp, "bin")
        launchers.install(bin_dir, ["host-local"])
        ours = os.path.join(bin_dir, "host-local")
        rows = {"pycni": measure(ours, "py", os.path.join(tmp, "data"), opts.runs, opts.leases)}
        if os.access(opts.reference, os.X_OK):
            rows["go 1.1.1"] = measure(
                opts.reference, "go", os.path.join(tmp, "data"), opts.runs, opts.leases
            )
        else:
            print(f"reference {opts.reference} not found; showing ours only", file=sys.stderr)

    verbs = ("VERSION", "ADD", "CHECK", "DEL")
    print(f"host-local, median ms per exec ({opts.runs} runs, {opts.leases} leases in the network)")
    print(f"{'':10}" + "".join(f"{v:>10}" for v in verbs))
    for name, vals in rows.items():
        print(f"{name:10}" + "".join(f"{vals[v]:10.1f}" for v in verbs))
    if len(rows) == 2:
        ratio = {v: rows["pycni"][v] / rows["go 1.1.1"][v] for v in verbs}
        print(f"{'ratio':10}" + "".join(f"{ratio[v]:9.1f}x" for v in verbs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
