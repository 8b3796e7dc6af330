"""How much time cnitool itself adds to a CNI call (not a test; prints a table).

Measures, as median wall time over N runs of a fresh process each:
  - ``python -I -c pass`` (the interpreter floor) and ``import click``;
  - ``cnitool --version`` (the lazy group alone);
  - the noop plugin exec'd alone with an ADD request (the plugin's own time);
  - ``cnitool add ... --output json`` and ``cnitool del`` with one noop plugin
    (cnitool's overhead plus one Python plugin start); the overhead alone is printed
    as the difference of the medians;
  - the same with a bridge+host-local chain: ours, and the reference plugins from
    /usr/lib/cni when present.

Run as root (it makes network namespaces, inside its own private mount+net namespaces):
    python bench/bench_cnitool.py [-n 15]
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
from collections.abc import Sequence

REFERENCE_BIN = "/usr/lib/cni"


def isolate() -> None:
    """Private mount+net namespaces with tmpfs on the dirs CNI writes (like the tests)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000 | 0x40000000) != 0:
        sys.exit(f"unshare failed: {os.strerror(ctypes.get_errno())} (run as root)")
    libc.mount(b"none", b"/", None, 0x4000 | (1 << 18), None)
    for d in ("/run/netns", "/var/lib/cni"):
        os.makedirs(d, exist_ok=True)
        libc.mount(b"tmpfs", d.encode(), b"tmpfs", 0, b"mode=0755")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def run_once(argv: Sequence[str], env: dict[str, str], stdin: bytes = b"") -> float:
    """Wall time of one run of argv; a failing run ends the benchmark with its output."""
    start = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).decode(errors="replace")
        raise SystemExit(f"{' '.join(argv)} failed: {out}")
    return elapsed


def timed(argv: Sequence[str], env: dict[str, str], runs: int) -> list[float]:
    return [run_once(argv, env) for _ in range(runs)]


def plugin_alone(plugin: str, env: dict[str, str], runs: int) -> list[float]:
    """The noop plugin exec'd directly with an ADD request, as cnitool would run it."""
    stdin = json.dumps({"cniVersion": "1.0.0", "name": "bench", "type": "noop"}).encode()
    cni_env = {
        **env,
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "bench",
        "CNI_NETNS": "/var/run/netns/benchns",
        "CNI_IFNAME": "eth0",
    }
    return [run_once([plugin], cni_env, stdin) for _ in range(runs)]


def add_del(cnitool: list[str], env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """Alternate add and del of one attachment; time each separately."""
    adds, dels = [], []
    for _ in range(runs):
        for verb, bucket in (("add", adds), ("del", dels)):
            bucket.append(run_once([*cnitool, verb, "bench", "benchns", "--output", "json"], env))
    return adds, dels


def conflist(conf_dir: str, plugins: list[dict[str, object]]) -> None:
    with open(os.path.join(conf_dir, "10-bench.conflist"), "w") as fh:
        json.dump({"cniVersion": "1.0.0", "name": "bench", "plugins": plugins}, fh)


def bridge_chain(data_dir: str) -> list[dict[str, object]]:
    return [
        {
            "type": "bridge",
            "bridge": "cnibench0",
            "isGateway": True,
            "ipMasq": False,
            "ipam": {
                "type": "host-local",
                "dataDir": data_dir,
                "ranges": [[{"subnet": "10.123.0.0/24"}]],
            },
        }
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=15)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the add/del rows need network namespaces")
    isolate()
    python = sys.executable
    cnitool = [python, "-I", "-c", "from cnitool.cli.main import main; main()"]
    script = shutil.which("cnitool", path=os.path.dirname(python))
    if script:
        cnitool = [script]
    work = tempfile.mkdtemp(prefix="pycni-bench.")
    bin_dir, conf_dir = os.path.join(work, "bin"), os.path.join(work, "conf")
    os.makedirs(conf_dir)
    from cnitool import launchers

    launchers.install(bin_dir, ["noop", "bridge", "host-local"])
    subprocess.run(["ip", "netns", "add", "benchns"], check=True)
    base = {**os.environ, "NETCONFPATH": conf_dir, "CNI_PATH": bin_dir}
    rows: list[tuple[str, list[float]]] = []
    n = args.runs
    rows.append(("python -I -c pass", timed([python, "-I", "-c", "pass"], base, n)))
    rows.append(
        ("python -I -c 'import click'", timed([python, "-I", "-c", "import click"], base, n))
    )
    rows.append(("cnitool --version", timed([*cnitool, "--version"], base, n)))

    conflist(conf_dir, [{"type": "noop"}])
    alone = plugin_alone(os.path.join(bin_dir, "noop"), base, n)
    adds, dels = add_del(cnitool, base, n)
    rows += [
        ("noop plugin alone (exec'd ADD, no cnitool)", alone),
        ("cnitool add, 1 noop plugin (pycni)", adds),
        ("cnitool del, 1 noop plugin (pycni)", dels),
    ]
    overhead = statistics.median(adds) - statistics.median(alone)

    data = os.path.join(work, "ipam")
    conflist(conf_dir, bridge_chain(data))
    if os.path.isfile(os.path.join(bin_dir, "bridge")) and os.path.isfile(
        os.path.join(bin_dir, "host-local")
    ):
        adds, dels = add_del(cnitool, base, n)
        rows += [
            ("cnitool add, bridge+host-local (pycni)", adds),
            ("cnitool del, bridge+host-local (pycni)", dels),
        ]
    if os.path.isfile(os.path.join(REFERENCE_BIN, "bridge")):
        adds, dels = add_del(cnitool, {**base, "CNI_PATH": REFERENCE_BIN}, n)
        rows += [
            ("cnitool add, bridge+host-local (Go reference)", adds),
            ("cnitool del, bridge+host-local (Go reference)", dels),
        ]
    subprocess.run(["ip", "netns", "del", "benchns"], check=False)
    shutil.rmtree(work, ignore_errors=True)

    width = max(len(name) for name, _ in rows)
    print(f"{'what':<{width}}  {'median ms':>9}  {'min ms':>7}  {'max ms':>7}   (n={n})")
    for name, samples in rows:
        ms = [s * 1000 for s in samples]
        print(f"{name:<{width}}  {statistics.median(ms):9.1f}  {min(ms):7.1f}  {max(ms):7.1f}")
    print(
        f"cnitool's own overhead on add (median add - median noop alone): {overhead * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
