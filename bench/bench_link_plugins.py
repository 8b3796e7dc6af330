"""macvlan, ipvlan and vlan (each with host-local) ADD and DEL times: ours against the Go
reference plugins, each exec'd as a runtime would.

Runs as root inside private mount+net namespaces it creates for itself (nothing reaches
the host): a throwaway "node" netns with a veth pair as the master, pods as named netns on
a private /run/netns, IPAM state in a temp dir. A plugin whose link type the kernel lacks
(ipvlan and vlan on a kernel without them) is left out, saying so; ``.ci/vm-run.sh`` runs
the bench on a kernel that has them, where emulation slows both implementations alike.

    sudo .venv/bin/python bench/bench_link_plugins.py [-n 20] [plugins...]
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
from pathlib import Path

from bench_bridge import REFERENCE, env, isolate, p90

PLUGINS = ("macvlan", "ipvlan", "vlan")


def conf(plugin: str, name: str, master: str, data_dir: str, vid: int) -> bytes:
    """A network on ``master``; a vlan one in VLAN ``vid`` (one VLAN ID per master and
    attachment: the kernel refuses a second link with the same ID on one master)."""
    extra: dict[str, object] = {"master": master}
    if plugin == "vlan":
        extra["vlanId"] = vid
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": name,
            "type": plugin,
            **extra,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.251.0.0/16"}]],
                "dataDir": data_dir,
            },
        }
    ).encode()


def supported(plugin: str) -> bool:
    kind = {"macvlan": ["macvlan"], "ipvlan": ["ipvlan"], "vlan": ["vlan", "id", "9"]}[plugin]
    made = subprocess.run(
        ["ip", "link", "add", "bprobe", "link", "bm0", "type", *kind], capture_output=True
    )
    subprocess.run(["ip", "link", "del", "bprobe"], capture_output=True)
    return made.returncode == 0


def run_once(exe: Path, cni_path: str, stdin: bytes, command: str, cid: str, netns: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(exe)], input=stdin, capture_output=True, env=env(command, cid, netns, cni_path)
    )
    took = (time.perf_counter() - t0) * 1000
    if proc.returncode != 0:
        raise SystemExit(f"{exe} {command} failed: {proc.stdout!r} {proc.stderr!r}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=20, help="attachments per implementation")
    ap.add_argument("plugins", nargs="*", default=list(PLUGINS))
    opts = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (it creates namespaces and links)")
    isolate()
    from cnitool import launchers

    subprocess.run(["ip", "link", "add", "bm0", "type", "veth", "peer", "name", "bm1"], check=True)
    for dev in ("bm0", "bm1"):
        subprocess.run(["ip", "link", "set", dev, "up"], check=True)
    work = Path(tempfile.mkdtemp(prefix="bench-link-"))
    ours = work / "bin"
    launchers.install(str(ours), [*PLUGINS, "host-local"], python=sys.executable)
    pods = []
    for i in range(opts.n):
        subprocess.run(["ip", "netns", "add", f"lp{i}"], check=True)
        pods.append(f"/run/netns/lp{i}")
    rows = []
    for plugin in opts.plugins:
        if not supported(plugin):
            print(f"{plugin}: left out, this kernel has no {plugin} links")
            continue
        impls = [("pycni", ours / plugin, str(ours))]
        if (REFERENCE / plugin).exists():
            impls.append(("Go", REFERENCE / plugin, str(REFERENCE)))
        for label, exe, cni_path in impls:
            stdin = [
                conf(plugin, f"{label}{plugin}", "bm0", str(work / "ipam"), 100 + i)
                for i in range(len(pods))
            ]
            run_once(exe, cni_path, stdin[0], "ADD", "warmup", pods[0])
            run_once(exe, cni_path, stdin[0], "DEL", "warmup", pods[0])
            adds = [
                run_once(exe, cni_path, stdin[i], "ADD", f"c{i}", p) for i, p in enumerate(pods)
            ]
            dels = [
                run_once(exe, cni_path, stdin[i], "DEL", f"c{i}", p) for i, p in enumerate(pods)
            ]
            rows.append(
                (
                    f"{label} {plugin} + {label} host-local",
                    statistics.median(adds),
                    p90(adds),
                    statistics.median(dels),
                    p90(dels),
                )
            )
    if not rows:
        return 1
    width = max(len(r[0]) for r in rows)
    print(f"link plugins + host-local (exec), {opts.n} attachments each, times in ms")
    print(
        f"{'implementation':<{width}}  {'ADD med':>8} {'ADD p90':>8} {'DEL med':>8} {'DEL p90':>8}"
    )
    for label, am, ap90, dm, dp90 in rows:
        print(f"{label:<{width}}  {am:8.1f} {ap90:8.1f} {dm:8.1f} {dp90:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
