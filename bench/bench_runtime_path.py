"""The runtime path as a node runs it: Go's libcni exec'ing the plugins (not a test).

Builds ``bench/golibcni`` (a small driver of Go's libcni, the library containerd's CRI and
CRI-O call) from Debian's ``golang-go`` and ``golang-github-appc-cni-dev``, then times
one pod's ADD and DEL (median of N, wall ms) for two chains:

- ``bridge + host-local`` (ipMasq off);
- the seed chain: ``flannel`` (delegating to bridge + host-local) then ``portmap`` with
  one host port. Debian ships no Go flannel, so the Go plugins run the list flannel
  would hand on (bridge + host-local, portmap): the same work without flannel's step.

Columns:

- ``go plugins``: Go libcni with the reference plugins from /usr/lib/cni;
- ``ours warm``: Go libcni with our native launchers and ``cnitool serve`` up;
- ``ours cold``: Go libcni with our launchers and no service;
- ``cnitool warm``: the operator path, our ``cnitool add|del`` with the service up;
- ``cnitool go``: our ``cnitool`` driving the Go plugins.

The modes take turns pod by pod, so they share the machine's load. Runs as root in
private mount+net namespaces (tmpfs on /run/netns, /var/lib/cni, /run/pycni,
/run/flannel). Time an installed (not editable) copy:

    apt-get install golang-go golang-github-appc-cni-dev
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install -q .
    /tmp/venv/bin/python bench/bench_runtime_path.py [-n 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_warm import SOCKET, isolate, start_service  # noqa: E402  (the same set-up)

GOPATH = "/usr/share/gocode"
REFERENCE = "/usr/lib/cni"
MODES = ("go plugins", "ours warm", "ours cold", "cnitool warm", "cnitool go")


def build_driver(out: Path) -> Path:
    if (
        shutil.which("go") is None
        or not Path(GOPATH, "src/github.com/containernetworking/cni").is_dir()
    ):
        sys.exit("needs go and Go's libcni: apt-get install golang-go golang-github-appc-cni-dev")
    binary = out / "golibcni"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": GOPATH, "GOCACHE": str(out / "gocache")}
    subprocess.run(
        ["go", "build", "-o", str(binary), str(HERE / "golibcni" / "main.go")], env=env, check=True
    )
    return binary


def conflists(tmp: Path) -> dict[str, dict[str, object]]:
    """The chains, as our plugins and the Go plugins each get them."""
    (Path("/run/flannel/subnet.env")).write_text(
        "FLANNEL_NETWORK=10.150.0.0/16\nFLANNEL_SUBNET=10.150.1.1/24\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    )
    bridge = {
        "type": "bridge",
        "bridge": "rp0",
        "isGateway": True,
        "ipMasq": False,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.151.0.0/16"}]]},
    }
    portmap = {"type": "portmap", "capabilities": {"portMappings": True}}
    go_seed_bridge = {
        "type": "bridge",
        "bridge": "cni0",
        "isGateway": True,
        "isDefaultGateway": True,
        "forceAddress": True,
        "ipMasq": False,
        "mtu": 1450,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.150.1.0/24"}]],
            "routes": [{"dst": "10.150.0.0/16"}],
        },
    }
    flannel = {"type": "flannel", "delegate": {"forceAddress": True, "isDefaultGateway": True}}
    lists = {
        "bridge": {"cniVersion": "1.0.0", "name": "rpbridge", "plugins": [bridge]},
        "seed": {"cniVersion": "1.0.0", "name": "rpseed", "plugins": [flannel, portmap]},
        "seed-go": {"cniVersion": "1.0.0", "name": "rpseed", "plugins": [go_seed_bridge, portmap]},
    }
    for name, conf in lists.items():
        directory = tmp / f"net-{name}"
        directory.mkdir()
        (directory / f"10-{name}.conflist").write_text(json.dumps(conf))
    return lists


class Runner:
    def __init__(self, tmp: Path, driver: Path, cnitool: str, ours: Path) -> None:
        self.tmp, self.driver, self.cnitool, self.ours = tmp, driver, cnitool, ours
        self.pods = 0

    def pod(self) -> str:
        self.pods += 1
        name = f"rp{self.pods}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        return name

    def env(self, mode: str) -> dict[str, str]:
        go = mode in ("go plugins", "cnitool go")
        warm = mode in ("ours warm", "cnitool warm")
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_PATH": REFERENCE if go else str(self.ours),
            "CNI_CACHE_DIR": str(self.tmp / "cache"),
            "PYCNI_SOCKET": SOCKET if warm else "/run/pycni/none.sock",
        }

    def run(self, mode: str, chain: str, verb: str, pod: str, cid: str, port: int) -> float:
        conflist = "seed-go" if chain == "seed" and mode in ("go plugins", "cnitool go") else chain
        env = self.env(mode)
        caps = {"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]}
        if mode.startswith("cnitool"):
            name = "rpseed" if chain == "seed" else "rpbridge"
            argv = [self.cnitool, verb, name, pod, "--container-id", cid, "-o", "json"]
            argv += ["--cni-conf-dir", str(self.tmp / f"net-{conflist}")]
            argv += ["--cache-dir", env.pop("CNI_CACHE_DIR")]
        else:
            path = self.tmp / f"net-{conflist}" / f"10-{conflist}.conflist"
            argv = [str(self.driver), verb, str(path), f"/run/netns/{pod}", cid]
        env["CAP_ARGS"] = json.dumps(caps)
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"{mode} {chain} {verb} failed: {proc.stdout!r} {proc.stderr!r}")
        return elapsed * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=20)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    tmp = Path(tempfile.mkdtemp(prefix="pycni-rp-"))
    driver = build_driver(tmp)
    isolate()
    from cnitool import launchers

    ours = tmp / "bin"
    launchers.install(str(ours), ["bridge", "host-local", "flannel", "portmap"], kind="native")
    conflists(tmp)
    cnitool = str(Path(sys.executable).with_name("cnitool"))
    runner = Runner(tmp, driver, cnitool, ours)
    service = start_service()
    samples: dict[tuple[str, str, str], list[float]] = {}
    try:
        port = 30000
        for i in range(args.runs + 1):  # run 0 warms caches up and is not counted
            for chain in ("bridge", "seed"):
                for mode in MODES:
                    pod, cid = runner.pod(), f"rp-{i}-{chain}-{MODES.index(mode)}"
                    port += 1
                    add = runner.run(mode, chain, "add", pod, cid, port)
                    dele = runner.run(mode, chain, "del", pod, cid, port)
                    subprocess.run(["ip", "netns", "del", pod], check=True)
                    if i:
                        samples.setdefault((chain, "ADD", mode), []).append(add)
                        samples.setdefault((chain, "DEL", mode), []).append(dele)
    finally:
        service.terminate()
        service.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"median of {args.runs} pods, wall ms; ratios against Go libcni + the Go plugins\n")
    head = "".join(f"{m:>14}" for m in MODES)
    print(f"{'chain':<22}{head}   warm/go  cnitool-warm/go")
    for chain in ("bridge", "seed"):
        for verb in ("ADD", "DEL"):
            med = {m: statistics.median(samples[(chain, verb, m)]) for m in MODES}
            label = "bridge + host-local" if chain == "bridge" else "seed chain"
            cells = "".join(f"{med[m]:14.1f}" for m in MODES)
            go = med["go plugins"]
            print(
                f"{label + ' ' + verb:<22}{cells}"
                f"   {med['ours warm'] / go:6.2f}x  {med['cnitool warm'] / go:6.2f}x"
            )


if __name__ == "__main__":
    main()
