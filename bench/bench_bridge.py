"""bridge + host-local ADD and DEL times: our plugins against the Go reference ones.

Runs as root inside private mount+net namespaces it creates for itself (nothing reaches
the host): a throwaway "node" netns, pods as named netns on a private /run/netns, IPAM
state in a temp dir. Prints the median (and p90) wall time of each verb per implementation:
the bridge exec'd directly, in-process, and through ``cnitool add|del`` (which adds the
CLI's start-up and the result cache, as a runtime's view of the chain).

    sudo /work/venv/bin/python bench/bench_bridge.py [-n 20]
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REFERENCE = Path("/usr/lib/cni")
CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18


def isolate() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS | CLONE_NEWNET) != 0:
        raise SystemExit(f"unshare failed: {os.strerror(ctypes.get_errno())} (run as root)")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise SystemExit("making / private failed")
    for d in ("/run/netns", "/var/lib/cni"):
        os.makedirs(d, exist_ok=True)
        if libc.mount(b"tmpfs", d.encode(), b"tmpfs", 0, b"mode=0755") != 0:
            raise SystemExit(f"tmpfs on {d} failed")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def conf(name: str, data_dir: str) -> bytes:
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": name,
            "type": "bridge",
            "bridge": "bench0",
            "isGateway": True,
            "ipMasq": False,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.250.0.0/16"}]],
                "dataDir": data_dir,
            },
        }
    ).encode()


def env(command: str, cid: str, netns: str, cni_path: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "",
        "CNI_PATH": cni_path,
    }


Runner = Callable[[str, str, str], None]


def exec_runner(bridge: Path, cni_path: str, stdin: bytes) -> Runner:
    def run(command: str, cid: str, netns: str) -> None:
        proc = subprocess.run(
            [str(bridge)], input=stdin, capture_output=True, env=env(command, cid, netns, cni_path)
        )
        if proc.returncode != 0:
            raise SystemExit(f"{bridge} {command} failed: {proc.stdout!r} {proc.stderr!r}")

    return run


def cnitool_runner(work: Path, label: str, cni_path: str, stdin: bytes) -> Runner:
    """``cnitool add|del NETWORK NETNS`` with a one-plugin conflist (cache included)."""
    plugin = json.loads(stdin)
    name = plugin.pop("name")
    version = plugin.pop("cniVersion")
    confdir = work / f"net.d-{label}"
    confdir.mkdir()
    conflist = {"cniVersion": version, "name": name, "plugins": [plugin]}
    (confdir / f"10-{name}.conflist").write_text(json.dumps(conflist))
    cnitool = Path(sys.executable).with_name("cnitool")
    base = [str(cnitool)]
    if not cnitool.exists():
        base = [sys.executable, "-m", "cnitool.cli.main"]
    cache = str(work / f"cache-{label}")

    def run(command: str, cid: str, netns: str) -> None:
        verb = {"ADD": "add", "DEL": "del"}[command]
        argv = [*base, verb, name, netns, "--container-id", cid, "--cache-dir", cache]
        argv += ["--cni-conf-dir", str(confdir), "--cni-bin-dir", cni_path, "-o", "json"]
        proc = subprocess.run(argv, capture_output=True)
        if proc.returncode != 0:
            raise SystemExit(f"cnitool {verb} failed: {proc.stdout!r} {proc.stderr!r}")

    return run


def inprocess_runner(cni_path: str, stdin: bytes) -> Runner:
    from cnitool_plugins.bridge.__main__ import PLUGIN

    from cnitool import skel

    def run(command: str, cid: str, netns: str) -> None:
        out, code = skel.run(PLUGIN, env(command, cid, netns, cni_path), stdin, io.StringIO())
        if code != 0:
            raise SystemExit(f"in-process {command} failed: {out!r}")

    return run


def measure(run: Runner, pods: list[str], tag: str) -> tuple[list[float], list[float]]:
    adds, dels = [], []
    for i, pod in enumerate(pods):
        t0 = time.perf_counter()
        run("ADD", f"{tag}-{i}", pod)
        adds.append((time.perf_counter() - t0) * 1000)
    for i, pod in enumerate(pods):
        t0 = time.perf_counter()
        run("DEL", f"{tag}-{i}", pod)
        dels.append((time.perf_counter() - t0) * 1000)
    return adds, dels


def p90(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.9) - 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=20, help="attachments per implementation")
    opts = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (it creates namespaces, links and a bridge)")
    isolate()
    from cnitool import launchers

    work = Path(tempfile.mkdtemp(prefix="bench-bridge-"))
    try:
        ours = work / "bin"
        launchers.install(str(ours), ["bridge", "host-local"], python=sys.executable)
        pods = []
        for i in range(opts.n):
            subprocess.run(["ip", "netns", "add", f"bp{i}"], check=True)
            pods.append(f"/run/netns/bp{i}")
        rows = []
        ipam_dir = str(work / "ipam")
        py_bridge = ours / "bridge"
        cases: list[tuple[str, Runner]] = [
            (
                "pycni bridge + pycni host-local (exec)",
                exec_runner(py_bridge, str(ours), conf("pyexec", ipam_dir)),
            ),
            (
                "pycni bridge in-process + pycni host-local",
                inprocess_runner(str(ours), conf("pyinproc", ipam_dir)),
            ),
        ]
        have_go = (REFERENCE / "bridge").exists()
        if have_go:
            cases += [
                (
                    "pycni bridge + Go host-local (exec)",
                    exec_runner(py_bridge, str(REFERENCE), conf("pygo", ipam_dir)),
                ),
                (
                    "Go bridge + Go host-local (exec)",
                    exec_runner(REFERENCE / "bridge", str(REFERENCE), conf("go", ipam_dir)),
                ),
            ]
        cases.append(
            (
                "cnitool -> pycni bridge + pycni host-local",
                cnitool_runner(work, "py", str(ours), conf("cnipy", ipam_dir)),
            )
        )
        if have_go:
            cases.append(
                (
                    "cnitool -> Go bridge + Go host-local",
                    cnitool_runner(work, "go", str(REFERENCE), conf("cnigo", ipam_dir)),
                )
            )
        for label, run in cases:
            run("ADD", "warmup", pods[0])
            run("DEL", "warmup", pods[0])
            adds, dels = measure(run, pods, label.split()[0] + str(len(rows)))
            rows.append(
                (label, statistics.median(adds), p90(adds), statistics.median(dels), p90(dels))
            )
        width = max(len(r[0]) for r in rows)
        print(f"bridge + host-local, {opts.n} attachments each, times in ms")
        print(
            f"{'implementation':<{width}}  {'ADD med':>8} {'ADD p90':>8} "
            f"{'DEL med':>8} {'DEL p90':>8}"
        )
        for label, am, ap90, dm, dp90 in rows:
            print(f"{label:<{width}}  {am:8.1f} {ap90:8.1f} {dm:8.1f} {dp90:8.1f}")
        for prefix in ("Go", "cnitool -> Go"):
            go = [r for r in rows if r[0].startswith(prefix)]
            mine = [r for r in rows if r[0].startswith("cnitool") == prefix.startswith("cnitool")]
            if go:
                print(
                    f"\nratio to {go[0][0]} (ADD/DEL medians): "
                    + ", ".join(
                        f"{r[0].split(' (')[0]}: {r[1] / go[0][1]:.1f}x/{r[3] / go[0][3]:.1f}x"
                        for r in mine
                        if r is not go[0]
                    ),
                    end="",
                )
        print()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
