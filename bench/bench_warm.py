"""The warm path against the cold path and the Go plugins (not a test; prints a table).

Each call is an exec of a plugin executable, as a runtime makes it (stdin, CNI_*
variables), timed as wall time of the whole process; the table shows medians over N
runs, the modes taking turns run by run. Columns:

- ``before``: launchers as written before the warm path (import the plugin, run it);
- ``cold``:   today's thin Python launchers with no service (they fall back to the same);
- ``warm``:   the same launchers with ``cnitool serve`` up;
- ``ncold``:  native launchers (``--launcher native``) with no service (they exec Python);
- ``nwarm``:  native launchers with the service up;
- ``go``:     the reference plugins from /usr/lib/cni.

Rows: VERSION (host-local), host-local ADD and DEL, bridge + host-local ADD and DEL
into a fresh pod netns (ipMasq off), the seed chain (flannel -> bridge + host-local, then
portmap with one host port, nf_tables; DEL in reverse order) exec'd plugin by plugin as a
runtime does, prevResult passed on, and 50 pods (bridge + host-local) added, then
deleted, 8 at a time (wall time of each batch; the warm modes and Go take turns for
``--rounds`` rounds, and the median is shown). The CPU rows: the CPU time one bridge +
host-local ADD or DEL costs the machine, over 60 pods one after the other, counting
every process the call runs (the plugin and its delegate, the launcher, the service and
its workers, the latter from a cgroup the service is put in), and under the table where a
warm call's CPU went: the service's loop, the forker, the workers, the launchers. Also the service's resident memory
before and after the runs, and with ``--soak N`` after N more calls (noop VERSION, sent
straight over the socket by 4 threads, each one a forked worker).

Run as root; everything happens in private mount+net namespaces (tmpfs on /run/netns,
/var/lib/cni and /run/pycni):
    python bench/bench_warm.py [-n 30] [--soak 10000] [--rows parallel,cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REFERENCE_BIN = "/usr/lib/cni"
SOCKET = "/run/pycni/plugins.sock"
MODES = ("before", "cold", "warm", "ncold", "nwarm", "go")
ROWS = ("version", "host-local", "bridge", "seed", "parallel", "cpu")
WARM_MODES = ("warm", "nwarm")


def isolate() -> None:
    """Private mount+net namespaces with tmpfs on the dirs CNI and the service write: a
    tmpfs of its own on /run, so the directories made there are not the host's."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000 | 0x40000000) != 0:
        sys.exit(f"unshare failed: {os.strerror(ctypes.get_errno())} (run as root)")
    libc.mount(b"none", b"/", None, 0x4000 | (1 << 18), None)
    libc.mount(b"tmpfs", b"/run", b"tmpfs", 0, b"mode=0755")
    for d in ("/run/netns", "/var/lib/cni", "/run/pycni", "/run/flannel"):
        os.makedirs(d, exist_ok=True)
        libc.mount(b"tmpfs", d.encode(), b"tmpfs", 0, b"mode=0700")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def old_launcher(name: str, package: str) -> str:
    """A launcher as ``cnitool plugins install`` wrote it before the warm path."""
    return (
        f"#!{sys.executable} -I\n# pycni plugin launcher: {name} (benchmark copy)\n"
        f'from cnitool_plugins._launch import run\nrun("{package}")\n'
    )


class Bench:
    def __init__(self, tmp: Path, runs: int) -> None:
        from cnitool import launchers

        self.tmp = tmp
        self.runs = runs
        self.bins = {"cold": tmp / "bin", "warm": tmp / "bin", "before": tmp / "old"}
        self.bins.update({"ncold": tmp / "nbin", "nwarm": tmp / "nbin"})
        self.bins["go"] = Path(REFERENCE_BIN)
        names = ["bridge", "host-local", "flannel", "portmap"]
        launchers.install(str(self.bins["cold"]), names, kind="python")
        launchers.install(str(self.bins["ncold"]), names, kind="native")
        self.bins["before"].mkdir()
        for name, package in launchers.PLUGINS.items():
            if name not in names:
                continue
            path = self.bins["before"] / name
            path.write_text(old_launcher(name, package))
            path.chmod(0o755)
        self.counter = 0

    def env(self, mode: str, command: str, cid: str = "", netns: str = "") -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": netns or "/run/netns/none",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(self.bins[mode]),
            "PYCNI_SOCKET": SOCKET if mode in WARM_MODES else "/run/pycni/none.sock",
        }

    def call(self, mode: str, plugin: str, env: dict[str, str], conf: bytes) -> float:
        start = time.perf_counter()
        proc = subprocess.run(
            [str(self.bins[mode] / plugin)], input=conf, env=env, capture_output=True, check=False
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{mode} {plugin} {env['CNI_COMMAND']} failed: {proc.stdout!r}")
        return elapsed

    def ipam_conf(self, mode: str) -> bytes:
        ipam = {"type": "host-local", "subnet": "10.90.0.0/16", "dataDir": f"/var/lib/cni/{mode}"}
        return json.dumps({"cniVersion": "1.0.0", "name": "bench", "ipam": ipam}).encode()

    def bridge_conf(self, mode: str) -> bytes:
        conf = {
            "cniVersion": "1.0.0",
            "name": f"br-{mode}",
            "type": "bridge",
            "bridge": f"bb-{mode}",
            "isGateway": True,
            "ipMasq": False,
            "ipam": {
                "type": "host-local",
                "subnet": f"10.{91 + MODES.index(mode)}.0.0/16",
                "dataDir": f"/var/lib/cni/br-{mode}",
            },
        }
        return json.dumps(conf).encode()

    def version(self, mode: str, i: int) -> dict[str, float]:
        return {"": self.call(mode, "host-local", self.env(mode, "VERSION"), b"")}

    def host_local(self, mode: str, i: int) -> dict[str, float]:
        conf = self.ipam_conf(mode)
        cid = f"hl-{mode}-{i}"
        add = self.call(mode, "host-local", self.env(mode, "ADD", cid), conf)
        return {
            " ADD": add,
            " DEL": self.call(mode, "host-local", self.env(mode, "DEL", cid), conf),
        }

    def pod(self) -> str:
        self.counter += 1
        name = f"bench{self.counter}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        return f"/run/netns/{name}"

    def bridge_add_del(self, mode: str, pod: str, cid: str) -> tuple[float, float]:
        conf = self.bridge_conf(mode)
        add = self.call(mode, "bridge", self.env(mode, "ADD", cid, pod), conf)
        dele = self.call(mode, "bridge", self.env(mode, "DEL", cid, pod), conf)
        return add, dele

    def bridge(self, mode: str, i: int) -> dict[str, float]:
        pod = self.pod()
        add, dele = self.bridge_add_del(mode, pod, f"br-{mode}-{i}")
        subprocess.run(["ip", "netns", "del", os.path.basename(pod)], check=True)
        return {" ADD": add, " DEL": dele}

    def seed_confs(self, mode: str) -> tuple[dict[str, object], dict[str, object]]:
        """The first plugin of the seed list and its portmap, as a runtime sends them.

        Debian ships no Go flannel, so the Go side runs the config flannel hands to
        bridge (the same bridge, host-local and portmap work, without flannel's step)."""
        idx = MODES.index(mode)
        net = {"cniVersion": "1.0.0", "name": f"seed-{mode}"}
        if mode == "go":
            first: dict[str, object] = {
                **net,
                "type": "bridge",
                "bridge": f"sd-{mode}",
                "isGateway": True,
                "isDefaultGateway": True,
                "forceAddress": True,
                "ipMasq": False,
                "mtu": 1450,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": f"10.{120 + idx}.1.0/24"}]],
                    "routes": [{"dst": f"10.{120 + idx}.0.0/16"}],
                },
            }
        else:
            env_file = self.tmp / f"subnet-{mode}.env"
            env_file.write_text(
                f"FLANNEL_NETWORK=10.{120 + idx}.0.0/16\nFLANNEL_SUBNET=10.{120 + idx}.1.1/24\n"
                "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
            )
            first = {
                **net,
                "type": "flannel",
                "subnetFile": str(env_file),
                "dataDir": str(self.tmp / f"flannel-{mode}"),
                "delegate": {
                    "bridge": f"sd-{mode}",
                    "forceAddress": True,
                    "isDefaultGateway": True,
                },
            }
        portmap = {**net, "type": "portmap", "capabilities": {"portMappings": True}}
        return first, portmap

    def seed(self, mode: str, i: int) -> dict[str, float]:
        first, portmap = self.seed_confs(mode)
        pod, cid = self.pod(), f"seed-{mode}-{i}"
        ports = [
            {
                "hostPort": 20000 + 1000 * MODES.index(mode) + i,
                "containerPort": 80,
                "protocol": "tcp",
            }
        ]
        portmap = {**portmap, "runtimeConfig": {"portMappings": ports}}
        plugin = str(first["type"])
        env = self.env(mode, "ADD", cid, pod)
        start = time.perf_counter()
        out = self.run(mode, plugin, env, json.dumps(first).encode())
        self.run(mode, "portmap", env, json.dumps({**portmap, "prevResult": out}).encode())
        add = time.perf_counter() - start
        env = self.env(mode, "DEL", cid, pod)
        start = time.perf_counter()
        self.run(mode, "portmap", env, json.dumps({**portmap, "prevResult": out}).encode())
        self.run(mode, plugin, env, json.dumps({**first, "prevResult": out}).encode())
        dele = time.perf_counter() - start
        subprocess.run(["ip", "netns", "del", os.path.basename(pod)], check=True)
        return {" ADD": add, " DEL": dele}

    def run(self, mode: str, plugin: str, env: dict[str, str], conf: bytes) -> object:
        proc = subprocess.run(
            [str(self.bins[mode] / plugin)], input=conf, env=env, capture_output=True, check=False
        )
        if proc.returncode != 0:
            raise SystemExit(f"{mode} {plugin} {env['CNI_COMMAND']} failed: {proc.stdout!r}")
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def parallel(
        self, mode: str, meter: CpuMeter, pods: int = 50, width: int = 8
    ) -> dict[str, float]:
        """Wall seconds of ``pods`` ADDs ``width`` at a time, then of their DELs, and the
        CPU seconds per call of each batch (the service's cgroup and the callers'
        children: launchers, Go plugins)."""
        netns = [self.pod() for _ in range(pods)]
        conf = self.bridge_conf(mode)

        def batch(command: str) -> tuple[float, float]:
            def one(i: int) -> float:
                env = self.env(mode, command, f"par-{mode}-{i}", netns[i])
                return self.call(mode, "bridge", env, conf)

            cpu, start = meter.now(), time.perf_counter()
            with ThreadPoolExecutor(width) as pool:
                list(pool.map(one, range(pods)))
            return time.perf_counter() - start, (meter.now() - cpu) / pods

        (add, add_cpu), (dele, del_cpu) = batch("ADD"), batch("DEL")
        for path in netns:
            subprocess.run(["ip", "netns", "del", os.path.basename(path)], check=True)
        return {
            " ADD (wall)": add,
            " DEL (wall)": dele,
            " ADD (CPU per call)": add_cpu,
            " DEL (CPU per call)": del_cpu,
        }

    def cpu(
        self, mode: str, meter: CpuMeter, parts: dict[str, str], pods: int = 60
    ) -> tuple[float, float]:
        """CPU seconds per bridge + host-local ADD and per DEL, ``pods`` one at a time; for
        the warm modes, ``parts`` gets where it went, by process."""
        from cnitool.warm import service

        netns = [self.pod() for _ in range(pods)]
        conf = self.bridge_conf(mode)
        spent = []
        for command in ("ADD", "DEL"):
            info = service.query_status(SOCKET)
            procs = {"service loop": info["pid"], "forker": info.get("forker")}
            before = {what: proc_cpu(pid) for what, pid in procs.items()}
            start = meter.now()
            for i, path in enumerate(netns):
                self.call(mode, "bridge", self.env(mode, command, f"cpu-{mode}-{i}", path), conf)
            total = meter.now() - start
            spent.append(total / pods)
            if mode in WARM_MODES:
                parts[command] = cpu_parts(procs, before, total, pods)
        for path in netns:
            subprocess.run(["ip", "netns", "del", os.path.basename(path)], check=True)
        return spent[0], spent[1]


def proc_cpu(pid: int | None) -> tuple[float, float, int]:
    """CPU seconds of ``pid`` itself and of its reaped children, and its minor faults."""
    if pid is None:
        return 0.0, 0.0, 0
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / tick
    return own, (int(fields[13]) + int(fields[14])) / tick, int(fields[7])


def cpu_parts(
    procs: dict[str, int | None],
    before: dict[str, tuple[float, float, int]],
    total: float,
    pods: int,
) -> str:
    """Per call: the service's loop and the forker (CPU, faults), the workers (the
    service's reaped children), and the rest (the launchers)."""
    out, accounted = [], 0.0
    for what, pid in procs.items():
        if pid is None:
            continue
        own, reaped, faults = (a - b for a, b in zip(proc_cpu(pid), before[what], strict=True))
        accounted += own
        out.append(f"{what} {own / pods * 1000:.2f} ms ({faults / pods:.0f} faults)")
        if what == "service loop":
            accounted += reaped
            out.append(f"workers {reaped / pods * 1000:.2f} ms")
    out.append(f"launchers {(total - accounted) / pods * 1000:.2f} ms")
    return ", ".join(out)


class CpuMeter:
    """CPU time of the service's process tree (a cgroup v2 of its own, removed after) plus
    that of this process's reaped children (launchers and Go plugins, with their
    delegates)."""

    def __init__(self) -> None:
        self.path: Path | None = None
        with open("/proc/self/mounts") as fh:
            mounts = [line.split()[1] for line in fh if line.split()[2] == "cgroup2"]
        for mount in mounts:
            path = Path(mount) / f"pycni-bench-{os.getpid()}"
            try:
                path.mkdir()
            except OSError:
                continue
            self.path = path
            break

    def enter(self) -> None:
        """Move the calling process into the cgroup (a ``preexec_fn``)."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text("0")

    def now(self) -> float:
        """Seconds of CPU so far; the service's part is 0 without a cgroup."""
        times = os.times()
        total = times.children_user + times.children_system
        if self.path is not None:
            for line in (self.path / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    total += int(line.split()[1]) / 1e6
        return total

    def remove(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.rmdir()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_service(meter: CpuMeter | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnitool.cli", "serve", "--socket", SOCKET],
        stderr=subprocess.DEVNULL,
        preexec_fn=None if meter is None else meter.enter,
    )
    from cnitool.warm import service

    for _ in range(200):
        try:
            service.query_status(SOCKET)
            return proc
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the service did not come up")


def soak(calls: int, threads: int = 4) -> None:
    """``calls`` requests straight over the socket (no launcher exec), each run by a worker."""
    import socket

    import cnitool
    from cnitool.warm import wire

    req = wire.encode_request(
        wire.Request(
            op=wire.OP_RUN, plugin="noop", env={b"CNI_COMMAND": b"VERSION"}, tag=cnitool.__version__
        )
    )

    def one(_: int) -> None:
        fds = [os.open(p, os.O_RDONLY) for p in ("/proc/self/ns/mnt", "/proc/self/ns/net", "/")]
        rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(SOCKET)
            sock.sendmsg([req], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
            for fd in fds:
                os.close(fd)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        if wire.decode_response(data).status != 0:
            raise SystemExit("a soak call failed")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(calls)))


def ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def row(name: str, cells: dict[str, float]) -> str:
    go = cells.get("go") or 0.0
    parts = [f"{cells[m]:8.1f}" if m in cells else f"{'-':>8}" for m in MODES]
    ratios = [f"{cells[m] / go:5.2f}x" if go and m in cells else "    -" for m in WARM_MODES]
    return f"| {name:<38} | " + " | ".join(parts) + " | " + " | ".join(ratios) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=30)
    parser.add_argument("--soak", type=int, default=0, metavar="N")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        metavar="N",
        help="rounds of the 50-pod rows for the warm modes and Go, taking turns (median)",
    )
    parser.add_argument(
        "--rows",
        default=",".join(ROWS),
        help=f"which rows, comma-separated, of: {', '.join(ROWS)} (default: all)",
    )
    args = parser.parse_args()
    rows = set(args.rows.split(","))
    if rows - set(ROWS):
        parser.error(f"unknown rows: {', '.join(sorted(rows - set(ROWS)))}")
    if not os.path.isfile(f"{REFERENCE_BIN}/bridge"):
        raise SystemExit("needs the reference plugins in /usr/lib/cni")
    isolate()
    tmp = Path(tempfile.mkdtemp(prefix="pycni-bench-"))
    meter = CpuMeter()
    parts: dict[str, str] = {}  # where a warm call's CPU went, by process (the last round)
    service = start_service(meter)
    try:
        bench = Bench(tmp, args.runs)
        rss_start = rss_kib(service.pid)
        results: dict[str, dict[str, float]] = {}

        def record(name: str, fn: Callable[[str, int], dict[str, float]]) -> None:
            """Run i of every mode, then run i+1: the modes share the machine's moods."""
            samples: dict[str, dict[str, list[float]]] = {}
            for i in range(args.runs):
                for mode in MODES:
                    for suffix, value in fn(mode, i).items():
                        samples.setdefault(name + suffix, {}).setdefault(mode, []).append(value)
            for row_name, by_mode in samples.items():
                results[row_name] = {mode: ms(values) for mode, values in by_mode.items()}

        for mode in MODES:  # warm-up: page cache, byte code, the service's first fork
            bench.version(mode, 0)
        if "version" in rows:
            record("VERSION exec (host-local)", bench.version)
        if "host-local" in rows:
            record("host-local", bench.host_local)
        if "bridge" in rows:
            record("bridge + host-local", bench.bridge)
        if "seed" in rows:
            record("seed chain (runtime path)", bench.seed)
        if "parallel" in rows:
            name = "50 pods, 8 parallel"
            walls: dict[str, dict[str, list[float]]] = {}
            # the cold path once (it is slow); the others args.rounds times, taking turns
            order = ["cold"] + ["warm", "nwarm", "go"] * args.rounds
            for mode in order:
                for suffix, value in bench.parallel(mode, meter).items():
                    if "CPU" in suffix and meter.path is None:
                        continue  # the service's part would be missing
                    walls.setdefault(name + suffix, {}).setdefault(mode, []).append(value)
            for row_name, by_mode in walls.items():
                results[row_name] = {mode: ms(values) for mode, values in by_mode.items()}
        if "cpu" in rows:
            name = "CPU per bridge + host-local call"
            if meter.path is None:
                print("no cgroup v2 to count the service's CPU in: no CPU rows")
            else:
                for mode in ("nwarm", "go", "nwarm", "go"):  # twice, taking turns
                    add, dele = bench.cpu(mode, meter, parts)
                    for suffix, value in ((" ADD", add), (" DEL", dele)):
                        cell = results.setdefault(f"{name}{suffix}", {})
                        cell[mode] = min(cell.get(mode, value * 1000), value * 1000)
        rss_end = rss_kib(service.pid)
        if args.soak:
            soak(args.soak)
        rss_soak = rss_kib(service.pid)
        from cnitool.warm import service as svc

        status = svc.query_status(SOCKET)
    finally:
        service.terminate()
        service.wait()
        meter.remove()
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"median of {args.runs} runs, milliseconds ("
        f"the 50-pod rows: median of {args.rounds} rounds, the cold column one; "
        "the CPU rows: the lower of two rounds of 60 calls)\n"
    )
    print(f"| {'call':<38} | " + " | ".join(f"{m:>8}" for m in MODES) + " | warm/go | nwarm/go |")
    print(f"|{'-' * 40}|" + "|".join("-" * 10 for _ in MODES) + "|---------|----------|")
    for name, cells in results.items():
        print(row(name, cells))
    lat = status["latencyMs"]
    print(
        f"\nservice: {status['requests']} requests, {status['failed']} failed, "
        f"p50 {lat['p50']} ms, p99 {lat['p99']} ms; RSS {rss_start} KiB -> {rss_end} KiB"
        + (f" -> {rss_soak} KiB after {args.soak} more calls" if args.soak else "")
    )
    for command, line in parts.items():
        print(f"CPU per nwarm {command}, by process (/proc, 10 ms ticks): {line}")


if __name__ == "__main__":
    main()
