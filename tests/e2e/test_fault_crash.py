"""Fault suite, crash: SIGKILL at random points of ADD and DEL, then the runtime's retry.

Targets, exec'd as a runtime would: every plugin launcher (host-local; bridge and ptp
with ipMasq, and macvlan, each with host-local as its IPAM; portmap; tuning; flannel
delegating to bridge + host-local; loopback) and ``cnitool add``/``del`` over a bridge +
host-local + portmap list.

Where the kill lands: by time. Two undisturbed ADDs and DELs of each target are measured
first (the shorter counts); each attempt then starts the verb and sends SIGKILL to its process group after an
offset drawn (seeded ``random.Random``) from 0.8 times a plugin's measured VERSION call
(its start-up, where nothing happens yet; 0 for cnitool) to 1.2 times the measured verb,
so kills land anywhere from the end of the start-up to after the exit (counted as
"finished"). Timing only places the kill; no assertion depends on it.

A plugin runs its delegate (host-local under bridge, every plugin under cnitool) in a
process group of its own, as libcni does, so a delegate may outlive the kill; the retry
waits for those to end first (counted as "orphans"), as a runtime's DEL comes after a
timeout. The retry is a DEL that must exit 0 and leave no lease, hint, temporary or
scratch file, cache entry, link (bridges stay, as with Go), or iptables rule or chain
naming the container.

``PYCNI_CRASH_KILLS=100`` runs more kills per target and verb by hand (CI: 6), with a
fresh seed per run when ``PYCNI_CRASH_SEED`` is set.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fault_helpers import figures, host_links, install, plugin_env, scale, state_files

pytestmark = pytest.mark.root

NET = "crashnet"
CID = "crash0"
POD_IP = "10.81.0.5"
SAVE = "iptables-nft-save"


@dataclass
class Target:
    """How to start a verb of one target, and what it may have left."""

    name: str
    bin_dir: Path
    argv: Callable[[str], list[str]]
    env: Callable[[str], dict[str, str]]
    stdin: bytes
    leftovers: Callable[[], list[str]]
    plugin: bool = True
    timings: dict[str, float] = field(default_factory=dict)

    def start(self, verb: str) -> subprocess.Popen[bytes]:
        pipe = subprocess.PIPE
        proc = subprocess.Popen(
            self.argv(verb), env=self.env(verb), stdin=pipe, stdout=pipe,
            stderr=subprocess.PIPE, process_group=0,
        )  # fmt: skip
        assert proc.stdin is not None
        try:
            proc.stdin.write(self.stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        proc.stdin = None  # written and closed: communicate() must not touch it again
        return proc

    def run(self, verb: str) -> tuple[int, str]:
        proc = self.start(verb)
        out, err = proc.communicate(timeout=120)
        return proc.returncode, (out or b"").decode() + err.decode(errors="replace")


def rules_naming(cid: str) -> list[str]:
    """Rules and chains, in every table, whose text names ``cid`` or is a container chain."""
    out = subprocess.run([SAVE], capture_output=True, text=True, check=False).stdout
    lines = [line for line in out.splitlines() if f'id: "{cid}"' in line or cid in line]
    return lines + [f"chain {c}" for c in cni_container_chains(out)]


def cni_container_chains(save: str) -> list[str]:
    return [
        line.split()[0][1:]
        for line in save.splitlines()
        if line.startswith(":CNI-") and not line.startswith(":CNI-HOSTPORT-")
    ]


def netns_links(netns: str) -> list[str]:
    out = subprocess.run(
        ["ip", "-j", "-n", os.path.basename(netns), "link", "show"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [f"{netns}:{link['ifname']}" for link in json.loads(out) if link["ifname"] != "lo"]


def orphans(bin_dir: Path) -> list[int]:
    """Processes still running a launcher from ``bin_dir`` (delegates outliving a kill)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if entry.isdigit() and str(bin_dir).encode() in cmdline:
            pids.append(int(entry))
    return pids


def wait_for_orphans(bin_dir: Path) -> int:
    """Wait (up to a minute) until no delegate of ``bin_dir`` runs; how many there were."""
    seen = set(orphans(bin_dir))
    deadline = time.monotonic() + 60
    while orphans(bin_dir) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert orphans(bin_dir) == [], "a delegate still runs a minute after the kill"
    return len(seen)


def kill_at(target: Target, verb: str, offset: float) -> bool:
    """Start ``verb`` and SIGKILL its process group after ``offset`` seconds; whether the
    kill came before the verb finished."""
    proc = target.start(verb)
    try:
        proc.wait(offset)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return True
    proc.communicate()
    return False


def measure(target: Target) -> None:
    """Undisturbed ADD and DEL, twice: they must work, and their shorter durations (the
    first run may pay for cold caches) place the kills; a plugin's VERSION, its start-up
    alone, is where the kills begin."""
    for verb in ("VERSION", "ADD", "DEL", "VERSION", "ADD", "DEL"):
        if verb == "VERSION" and not target.plugin:
            continue
        began = time.monotonic()
        code, err = target.run(verb)
        took = time.monotonic() - began
        target.timings[verb] = min(target.timings.get(verb, took), took)
        assert code == 0, f"{target.name} {verb}: {err}"
    assert target.leftovers() == []


def crash_campaign(target: Target) -> list[str]:
    """Kill ADD and DEL at random offsets; after each, the retry DEL must clean up."""
    seed = int(os.environ.get("PYCNI_CRASH_SEED", "0") or 0)
    rng = random.Random(f"{target.name}/{seed}")
    measure(target)
    problems = []
    for verb in ("ADD", "DEL"):
        counts = figures("crash", f"{target.name} {verb}")
        for _ in range(scale("PYCNI_CRASH_KILLS", 6)):
            if verb == "DEL":
                code, err = target.run("ADD")
                assert code == 0, f"{target.name} ADD before the killed DEL: {err}"
            offset = rng.uniform(
                0.8 * target.timings.get("VERSION", 0.0), 1.2 * target.timings[verb]
            )
            killed = kill_at(target, verb, offset)
            counts["attempts"] += 1
            counts["killed" if killed else "finished"] += 1
            counts["orphans"] += wait_for_orphans(target.bin_dir)
            code, err = target.run("DEL")
            leftovers = target.leftovers()
            counts["leaks"] += bool(leftovers)
            if code != 0 or leftovers:
                counts["failures"] += 1
                problems.append(
                    f"{verb} killed at {offset:.3f}s: DEL exit {code} {err} {leftovers}"
                )
    return problems


def plugin_target(
    name: str, bin_dir: Path, conf: dict[str, Any], netns: str, leftovers: Callable[[], list[str]]
) -> Target:
    def env(verb: str) -> dict[str, str]:
        return plugin_env(verb, CID, netns, str(bin_dir), PYCNI_IPTABLES_BACKEND="nft")

    return Target(
        name, bin_dir, lambda _verb: [str(bin_dir / conf["type"])], env,
        json.dumps(conf).encode(), leftovers,
    )  # fmt: skip


def host_local_ipam(data: Path) -> dict[str, Any]:
    return {"type": "host-local", "subnet": "10.81.0.0/24", "dataDir": str(data)}


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    return install(tmp_path / "bin", "bridge", "host-local", "portmap")


def test_crash_host_local(tmp_path: Path, bin_dir: Path) -> None:
    data = tmp_path / "leases"
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "host-local", "ipam": host_local_ipam(data)}
    target = plugin_target(
        "host-local", bin_dir, conf, "/nonexistent/netns", lambda: state_files(data)
    )
    assert crash_campaign(target) == []


def test_crash_bridge_host_local(
    tmp_path: Path, bin_dir: Path, netns_factory: Callable[[], str]
) -> None:
    data, netns = tmp_path / "leases", netns_factory()
    conf = {
        "cniVersion": "1.0.0", "name": NET, "type": "bridge", "bridge": "crashbr0",
        "isGateway": True, "ipMasq": True, "ipam": host_local_ipam(data),
    }  # fmt: skip

    def leftovers() -> list[str]:
        return state_files(data) + host_links() + netns_links(netns) + rules_naming(CID)

    target = plugin_target("bridge+host-local", bin_dir, conf, netns, leftovers)
    assert crash_campaign(target) == []


def portmap_conf() -> dict[str, Any]:
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
        "ips": [{"address": f"{POD_IP}/24", "interface": 0, "gateway": "10.81.0.1"}],
    }
    maps = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    return {
        "cniVersion": "1.0.0", "name": NET, "type": "portmap", "snat": True,
        "capabilities": {"portMappings": True}, "runtimeConfig": {"portMappings": maps},
        "prevResult": prev,
    }  # fmt: skip


def test_crash_portmap(bin_dir: Path, netns_factory: Callable[[], str]) -> None:
    netns = netns_factory()
    target = plugin_target("portmap", bin_dir, portmap_conf(), netns, lambda: rules_naming(CID))
    assert crash_campaign(target) == []


@pytest.fixture
def conf_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "net.d"
    d.mkdir()
    ipam = host_local_ipam(tmp_path / "leases")
    plugins = [
        {"type": "bridge", "bridge": "crashbr1", "isGateway": True, "ipMasq": True, "ipam": ipam},
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
    ]
    conflist = {"cniVersion": "1.0.0", "name": NET, "plugins": plugins}
    (d / f"10-{NET}.conflist").write_text(json.dumps(conflist))
    yield d


def test_crash_cnitool_add(
    tmp_path: Path, bin_dir: Path, conf_dir: Path, netns_factory: Callable[[], str]
) -> None:
    netns = netns_factory()
    cache = tmp_path / "cache"
    caps = json.dumps({"portMappings": [{"hostPort": 8080, "containerPort": 80}]})

    def argv(verb: str) -> list[str]:
        args = [sys.executable, "-m", "cnitool.cli", verb.lower(), NET, netns]
        return args + ["--cache-dir", str(cache), "--container-id", CID, "--cap-args", caps]

    def env(_verb: str) -> dict[str, str]:
        return {
            **os.environ, "NETCONFPATH": str(conf_dir), "CNI_PATH": str(bin_dir),
            "PYCNI_IPTABLES_BACKEND": "nft",
        }  # fmt: skip

    def leftovers() -> list[str]:
        data = tmp_path / "leases"
        found = state_files(data, cache) + host_links() + netns_links(netns)
        return found + rules_naming(CID)

    target = Target("cnitool", bin_dir, argv, env, b"", leftovers, plugin=False)
    assert crash_campaign(target) == []


# -- the other plugins ------------------------------------------------------------------


@pytest.fixture
def more_bins(tmp_path: Path) -> Path:
    names = ("ptp", "macvlan", "tuning", "flannel", "loopback", "bridge", "host-local")
    return install(tmp_path / "more-bin", *names)


def test_crash_ptp_host_local(
    tmp_path: Path, more_bins: Path, netns_factory: Callable[[], str]
) -> None:
    data, netns = tmp_path / "leases", netns_factory()
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "ptp", "ipMasq": True,
            "ipam": host_local_ipam(data)}  # fmt: skip

    def leftovers() -> list[str]:
        return state_files(data) + host_links() + netns_links(netns) + rules_naming(CID)

    assert crash_campaign(plugin_target("ptp+host-local", more_bins, conf, netns, leftovers)) == []


def test_crash_macvlan_host_local(
    tmp_path: Path, more_bins: Path, netns_factory: Callable[[], str]
) -> None:
    """The master is one end of a veth pair made for the test (no dummy links here)."""
    data, netns = tmp_path / "leases", netns_factory()
    subprocess.run(["ip", "link", "add", "crashm0", "type", "veth", "peer", "crashm1"], check=True)
    try:
        subprocess.run(["ip", "link", "set", "crashm0", "up"], check=True)
        conf = {"cniVersion": "1.0.0", "name": NET, "type": "macvlan", "master": "crashm0",
                "ipam": host_local_ipam(data)}  # fmt: skip

        def leftovers() -> list[str]:
            links = [n for n in host_links() if n not in ("crashm0", "crashm1")]
            return state_files(data) + links + netns_links(netns)

        target = plugin_target("macvlan+host-local", more_bins, conf, netns, leftovers)
        assert crash_campaign(target) == []
    finally:
        subprocess.run(["ip", "link", "del", "crashm0"], check=False)


def test_crash_tuning(tmp_path: Path, more_bins: Path, netns_factory: Callable[[], str]) -> None:
    """tuning changes the pod's eth0 and keeps a backup; after the retry DEL the backup is
    gone and the link has its first MTU back."""
    netns, backups = netns_factory(), tmp_path / "tuning"
    name = os.path.basename(netns)
    subprocess.run(["ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "eth1"],
                   check=True)  # fmt: skip
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": netns}]}
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "tuning", "mtu": 1280,
            "dataDir": str(backups), "prevResult": prev}  # fmt: skip

    def leftovers() -> list[str]:
        out = subprocess.run(["ip", "-j", "-n", name, "link", "show", "eth0"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        mtu = json.loads(out)[0]["mtu"]
        return state_files(backups) + ([f"eth0 mtu {mtu}"] if mtu != 1500 else [])

    assert crash_campaign(plugin_target("tuning", more_bins, conf, netns, leftovers)) == []


def test_crash_flannel(tmp_path: Path, more_bins: Path, netns_factory: Callable[[], str]) -> None:
    """flannel writes its scratch file and delegates to bridge + host-local."""
    netns, scratch, subnet = netns_factory(), tmp_path / "flannel", tmp_path / "subnet.env"
    leases = Path("/var/lib/cni/networks") / NET
    subnet.write_text("FLANNEL_NETWORK=10.82.0.0/16\nFLANNEL_SUBNET=10.82.4.1/24\n"
                      "FLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n")  # fmt: skip
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "flannel", "subnetFile": str(subnet),
            "dataDir": str(scratch), "delegate": {"bridge": "crashfl0"}}  # fmt: skip

    def leftovers() -> list[str]:
        found = state_files(scratch, leases) + host_links() + netns_links(netns)
        return found + rules_naming(CID)

    assert crash_campaign(plugin_target("flannel", more_bins, conf, netns, leftovers)) == []


def test_crash_loopback(more_bins: Path, netns_factory: Callable[[], str]) -> None:
    netns = netns_factory()
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "loopback"}

    def leftovers() -> list[str]:
        out = subprocess.run(["ip", "-j", "-n", os.path.basename(netns), "link", "show", "lo"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        return ["lo up"] if "UP" in json.loads(out)[0]["flags"] else []

    assert crash_campaign(plugin_target("loopback", more_bins, conf, netns, leftovers)) == []
