"""The warm path end to end: ``cnitool serve`` on a temp socket, real launchers in a temp
bin dir, real plugin calls, compared with the same calls on the cold path (a socket
path with nothing behind it). Everything runs in the test run's private namespaces."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cnitool
from cnitool import launchers
from cnitool.warm import service, wire

pytestmark = pytest.mark.root

SAFETY = 60  # seconds: a hung test fails instead of blocking the suite (not an assertion)
# requests the service sees per bridge call: the host-local delegate runs in the worker
PER_BRIDGE_CALL = 1


class Warm:
    """A running service plus launchers; ``call`` runs a launcher warm or cold."""

    def __init__(
        self,
        tmp: Path,
        python: str,
        *serve_args: str,
        start: bool = True,
        kind: str = "python",
    ) -> None:
        self.tmp = tmp
        self.python = python
        self.bin = tmp / "bin"
        self.sock = tmp / "run" / "plugins.sock"
        self.kind = kind
        launchers.install(
            str(self.bin),
            ["bridge", "host-local", "noop"],
            python=python,
            compile_bytecode=False,
            kind=kind,
        )
        self.log = tmp / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        if start:
            self.start(*serve_args)

    def start(self, *serve_args: str) -> None:
        argv = [self.python, "-m", "cnitool.cli", "serve", "--socket", str(self.sock)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*argv, *serve_args], stdout=log, stderr=log)
        self.wait_for(lambda: self.status() is not None, "the service to answer")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(SAFETY)
        self.proc = None
        return code

    def status(self) -> dict[str, Any] | None:
        try:
            return service.query_status(str(self.sock))
        except OSError:
            return None

    def wait_for(self, cond: Callable[[], bool], what: str) -> None:
        end = time.monotonic() + SAFETY
        while not cond():
            if time.monotonic() > end:
                raise AssertionError(f"gave up waiting for {what}")
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the service exited: {self.log.read_text()}")
            time.sleep(0.05)

    def env(self, command: str, warm: bool, **cni: str) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_PATH": f"{self.bin}:/usr/lib/cni",
            "CNI_IFNAME": "eth0",
            "CNI_NETNS": "/run/netns/none",
            "PYCNI_SOCKET": str(self.sock) if warm else str(self.tmp / "nothing.sock"),
        }
        env.update({f"CNI_{k.upper()}": v for k, v in cni.items()})
        return env

    def popen(
        self, plugin: str, command: str, conf: dict[str, Any], warm: bool = True, **cni: str
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [str(self.bin / plugin)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(command, warm, **cni),
        )
        assert proc.stdin is not None
        # a launcher that answers without reading stdin (VERSION) may be gone already
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(json.dumps(conf).encode())
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        proc.stdin = None  # communicate() must not touch it again
        return proc

    def call(
        self, plugin: str, command: str, conf: dict[str, Any], warm: bool = True, **cni: str
    ) -> tuple[int, bytes, bytes]:
        proc = self.popen(plugin, command, conf, warm, **cni)
        out, err = proc.communicate(timeout=SAFETY)
        return proc.returncode, out, err

    def served(self) -> int:
        info = self.status()
        assert info is not None
        return int(info["requests"])


# every test on the warm fixture runs with both launchers: the Python script and the
# native program (when this machine has a C compiler to build it)
KINDS = [
    "python",
    pytest.param(
        "native",
        marks=pytest.mark.skipif(
            launchers.find_compiler() is None, reason="no C compiler to build native launchers"
        ),
    ),
]


@pytest.fixture(params=KINDS)
def warm(tmp_path: Path, python: str, request: pytest.FixtureRequest) -> Iterator[Warm]:
    w = Warm(tmp_path, python, "--workers", "4", kind=request.param)
    yield w
    if w.proc is not None:
        w.stop(signal.SIGKILL)


def ipam_conf(data_dir: Path, name: str = "wnet", subnet: str = "10.77.0.0/24") -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "ipam": {"type": "host-local", "subnet": subnet, "dataDir": str(data_dir)},
    }


def bridge_conf(data_dir: Path, bridge: str = "wbr0") -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "wbridge",
        "type": "bridge",
        "bridge": bridge,
        "isGateway": True,
        "ipam": {"type": "host-local", "subnet": "10.78.0.0/24", "dataDir": str(data_dir)},
    }


def without_random(result: dict[str, Any]) -> dict[str, Any]:
    """A bridge result without what differs per attachment (MACs, veth names, sandbox)."""
    out = json.loads(json.dumps(result))
    for iface in out.get("interfaces", []):
        iface.pop("mac", None)
        if iface.get("name", "").startswith("veth"):
            iface["name"] = "veth"
        if "sandbox" in iface:
            iface["sandbox"] = "<netns>"
    return out


def links_in(netns: str | None) -> str:
    argv = ["ip", "-o", "link"] if netns is None else ["ip", "-n", netns, "-o", "link"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


# -- real plugin calls ----------------------------------------------------------------------
def test_version_is_answered_by_the_launcher(warm: Warm) -> None:
    before = warm.served()
    code, out, err = warm.call("host-local", "VERSION", {})
    assert (code, err) == (0, b"")
    assert out == launchers.version_answer("host_local")
    assert warm.served() == before  # no request reached the service


def test_warm_launcher_imports_no_project_code(tmp_path: Path, python: str) -> None:
    warm = Warm(tmp_path, python)
    launcher = warm.bin / "host-local"
    proc = subprocess.run(
        [warm.python, "-I", "-X", "importtime", str(launcher)],
        input=json.dumps(ipam_conf(tmp_path)).encode(),
        env=warm.env("ADD", True, containerid="i1"),
        capture_output=True,
        timeout=SAFETY,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout
    lines = [ln for ln in proc.stderr.decode().splitlines() if ln.startswith("import time:")]
    modules = {ln.rsplit("|", 1)[1].strip() for ln in lines[1:]}
    assert "_socket" in modules
    assert not {m for m in modules if m.startswith(("cnitool", "json", "socket", "re"))}
    assert warm.stop() == 0


needs_cc = pytest.mark.skipif(launchers.find_compiler() is None, reason="no C compiler")


def native_launcher(path: Path, name: str, python: str, tag: str | None = None) -> None:
    """A native launcher written by hand: any interpreter path, any tag."""
    answer = launchers.version_answer(launchers.PLUGINS[name])
    cc = launchers.find_compiler()
    assert cc is not None
    path.write_bytes(
        launchers.build_native(cc) + launchers.native_trailer(name, python, answer, tag)
    )
    path.chmod(0o755)


@needs_cc
def test_native_warm_call_starts_no_python(tmp_path: Path, python: str) -> None:
    """A native launcher whose interpreter does not exist still serves warm calls: the
    warm path starts no interpreter. Cold, it reports the missing interpreter."""
    w = Warm(tmp_path, python)
    try:
        ghost = w.bin / "host-local"
        native_launcher(ghost, "host-local", str(tmp_path / "no" / "python3"))
        assert launchers.list_installed(str(w.bin))[1].launcher == "native"
        code, out, err = w.call("host-local", "ADD", ipam_conf(tmp_path / "ipam"), containerid="g")
        assert code == 0, (out, err)
        assert json.loads(out)["ips"][0]["address"] == "10.77.0.2/24"
        assert w.served() == 1
        code, out, _ = w.call(
            "host-local", "ADD", ipam_conf(tmp_path / "i2"), False, containerid="g"
        )
        assert code == 1
        error = json.loads(out)
        assert error["code"] == 999 and "cannot run the interpreter" in error["msg"]
        assert "no/python3: No such file or directory" in error["msg"]
    finally:
        assert w.stop() == 0


@needs_cc
def test_native_launcher_of_another_version_runs_cold_with_its_stdin(
    tmp_path: Path, python: str
) -> None:
    """The service sends back a call from a launcher of another installation after the
    launcher read stdin: the cold path gets the same bytes (replayed from memory)."""
    w = Warm(tmp_path, python)
    try:
        native_launcher(w.bin / "host-local", "host-local", python, tag="0.0.0-other")
        code, out, err = w.call("host-local", "ADD", ipam_conf(tmp_path / "ipam"), containerid="o")
        assert code == 0, (out, err)
        assert (tmp_path / "ipam" / "wnet" / "10.77.0.2").read_text().startswith("o")
        info = w.status()
        assert info is not None and info["requests"] == 0 and info["ranCold"] == 1
    finally:
        assert w.stop() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_dhcp_daemon_never_goes_to_the_service(tmp_path: Path, python: str, kind: str) -> None:
    """``dhcp daemon`` is a long-lived process of its own, not a plugin call."""
    w = Warm(tmp_path, python)
    try:
        launchers.install(str(w.bin), ["dhcp"], python=python, compile_bytecode=False, kind=kind)
        env = w.env("", True)
        del env["CNI_COMMAND"]
        proc = subprocess.run(
            [str(w.bin / "dhcp"), "daemon", "-no-such-flag"],
            env=env,
            capture_output=True,
            timeout=SAFETY,
            check=False,
        )
        assert proc.returncode == 2, proc
        assert b"no-such-flag" in proc.stderr
        assert w.served() == 0
    finally:
        assert w.stop() == 0


@needs_cc
def test_native_launcher_with_a_broken_trailer_is_a_cni_error(tmp_path: Path) -> None:
    cc = launchers.find_compiler()
    assert cc is not None
    path = tmp_path / "bridge"
    path.write_bytes(launchers.build_native(cc) + b"not a trailer")
    path.chmod(0o755)
    proc = subprocess.run([str(path)], capture_output=True, timeout=SAFETY, check=False)
    assert proc.returncode == 1
    assert "reinstall it" in json.loads(proc.stdout)["msg"]
    assert not launchers.is_ours(str(path))


def test_host_local_add_del_warm_equals_cold(warm: Warm, tmp_path: Path) -> None:
    results = {}
    for warm_path in (True, False):
        data = tmp_path / f"ipam-{warm_path}"
        before = warm.served()
        add = warm.call("host-local", "ADD", ipam_conf(data), warm_path, containerid="c1")
        assert add[0] == 0, add
        assert (data / "wnet" / "10.77.0.2").read_text().startswith("c1")
        dele = warm.call("host-local", "DEL", ipam_conf(data), warm_path, containerid="c1")
        assert dele == (0, b"", b"")
        assert not (data / "wnet" / "10.77.0.2").exists()
        assert warm.served() == before + (2 if warm_path else 0)
        results[warm_path] = add[1]
    assert results[True] == results[False]  # byte for byte


def test_plugin_errors_are_relayed_byte_for_byte(warm: Warm, tmp_path: Path) -> None:
    bad = {"cniVersion": "9.9.9", "name": "x"}
    warm_call = warm.call("host-local", "ADD", bad, True, containerid="c1", netns="/x")
    cold_call = warm.call("host-local", "ADD", bad, False, containerid="c1", netns="/x")
    assert warm_call == cold_call
    assert warm_call[0] == 1 and json.loads(warm_call[1])["code"] == 1
    missing = warm.call("host-local", "ADD", ipam_conf(tmp_path), True)
    assert missing == warm.call("host-local", "ADD", ipam_conf(tmp_path), False)
    assert json.loads(missing[1])["code"] == 4


def test_bridge_host_local_add_check_del(
    warm: Warm, tmp_path: Path, netns_factory: Callable[[], str]
) -> None:
    results = {}
    for warm_path in (True, False):
        pod = netns_factory()
        conf = bridge_conf(tmp_path / f"ipam-{warm_path}")
        before = warm.served()
        code, out, err = warm.call("bridge", "ADD", conf, warm_path, containerid="p1", netns=pod)
        assert code == 0, (out, err)
        result = json.loads(out)
        assert "10.78.0.2/24" in links_and_addrs(pod)
        check_conf = {**conf, "prevResult": result}
        check = warm.call("bridge", "CHECK", check_conf, warm_path, containerid="p1", netns=pod)
        assert check == (0, b"", b""), check
        dele = warm.call("bridge", "DEL", conf, warm_path, containerid="p1", netns=pod)
        assert dele == (0, b"", b""), dele
        assert "eth0" not in links_in(os.path.basename(pod))
        assert warm.served() == before + (3 * PER_BRIDGE_CALL if warm_path else 0)
        results[warm_path] = without_random(result)
    assert results[True] == results[False]


def links_and_addrs(netns: str) -> str:
    argv = ["ip", "-n", os.path.basename(netns), "-o", "addr"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def test_caller_in_another_mount_namespace(warm: Warm) -> None:
    """The worker sees the caller's files: host-local's default dataDir is the caller's."""
    conf = {"cniVersion": "1.0.0", "name": "mntnet", "ipam": {"type": "host-local",
            "subnet": "10.79.0.0/24"}}  # fmt: skip
    script = (
        "mount -t tmpfs tmpfs /var/lib/cni && "
        f"echo '{json.dumps(conf)}' | {warm.bin}/host-local >/dev/null && "
        "ls /var/lib/cni/networks/mntnet"
    )
    before = warm.served()
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        env=warm.env("ADD", True, containerid="m1"),
        capture_output=True,
        text=True,
        timeout=SAFETY,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "10.79.0.2" in proc.stdout.split()
    assert not Path("/var/lib/cni/networks/mntnet").exists()  # not in the service's view
    assert warm.served() == before + 1


def test_caller_in_another_network_namespace(
    warm: Warm, tmp_path: Path, netns_factory: Callable[[], str]
) -> None:
    """The bridge lands in the caller's network namespace, not the service's."""
    node = netns_factory()
    pod = netns_factory()
    conf = bridge_conf(tmp_path / "ipam", bridge="wbrnode")
    before = warm.served()
    proc = subprocess.run(
        ["nsenter", f"--net={node}", str(warm.bin / "bridge")],
        input=json.dumps(conf).encode(),
        env=warm.env("ADD", True, containerid="n1", netns=pod),
        capture_output=True,
        timeout=SAFETY,
        check=False,
    )
    assert proc.returncode == 0, proc
    assert "wbrnode" in links_in(os.path.basename(node))
    assert "wbrnode" not in links_in(None)
    assert warm.served() == before + PER_BRIDGE_CALL


# -- failures -------------------------------------------------------------------------------
def hold_lease_lock(data_dir: Path, network: str = "wnet") -> int:
    """Take host-local's lock for ``network``: its next call blocks until released."""
    (data_dir / network).mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / network / "lock", os.O_RDONLY | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def running(warm: Warm) -> int:
    info = warm.status()
    return -1 if info is None else int(info["running"])


def test_killed_worker_costs_one_call(warm: Warm, tmp_path: Path) -> None:
    lock = hold_lease_lock(tmp_path / "ipam")
    try:
        proc = warm.popen("host-local", "ADD", ipam_conf(tmp_path / "ipam"), containerid="k1")
        warm.wait_for(lambda: running(warm) == 1, "the call to be running")
        info = warm.status()
        assert info is not None
        (worker,) = info["workerPids"]
        assert worker != info["spare"]
        os.kill(worker, signal.SIGKILL)
        out, err = proc.communicate(timeout=SAFETY)
    finally:
        os.close(lock)
    assert proc.returncode == 1
    error = json.loads(out)
    assert error["code"] == 999 and "SIGKILL" in error["msg"], error
    info = warm.status()
    assert info is not None and info["crashed"] == 1
    code, out, _ = warm.call("host-local", "ADD", ipam_conf(tmp_path / "ipam"), containerid="k2")
    assert code == 0, out


def spares(warm: Warm) -> list[int]:
    """The spares the service holds, once the forker has made all it keeps ready."""
    warm.wait_for(lambda: len((warm.status() or {}).get("spares", [])) == 2, "two spares")
    info = warm.status()
    assert info is not None and info["spares"][0] == info["spare"]
    return list(info["spares"])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_call_runs_in_the_spare_forked_ahead_of_it(warm: Warm, tmp_path: Path) -> None:
    first, second = spares(warm)
    info = warm.status()
    assert info is not None and info["forker"] not in (None, info["pid"])
    # the forker forked them as the service's children (the service reaps them, and they
    # die with it)
    assert ppid(first) == ppid(second) == ppid(info["forker"]) == info["pid"]
    # forked before the service imported cnitool's commands: a smaller heap to fork
    assert rss_kib(info["forker"]) < rss_kib(info["pid"]) - 2048
    lock = hold_lease_lock(tmp_path / "ipam")
    try:
        proc = warm.popen("host-local", "ADD", ipam_conf(tmp_path / "ipam"), containerid="sp")
        warm.wait_for(lambda: running(warm) == 1, "the call to be running")
        during = warm.status()
        assert during is not None and during["workerPids"] == [first]
        # the one it took is replaced at once, while the call runs
        warm.wait_for(lambda: len((warm.status() or {})["spares"]) == 2, "a new spare")
        now = warm.status()
        assert now is not None and now["spares"][0] == second and first not in now["spares"]
    finally:
        os.close(lock)
    out, _ = proc.communicate(timeout=SAFETY)
    assert proc.returncode == 0, out
    after = warm.status()
    assert after is not None and after["requests"] == 1 and first not in after["spares"]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead and not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_dead_spare_costs_nothing(warm: Warm, tmp_path: Path) -> None:
    dead = spares(warm)
    for pid in dead:
        os.kill(pid, signal.SIGKILL)
    # dead, not dying: a spare the kill has not reached yet still takes the call (and dies
    # with it, a crash that costs that call, which is not what this test is about)
    warm.wait_for(lambda: not any(alive(pid) for pid in dead), "the spares to be dead")
    code, out, _ = warm.call("host-local", "ADD", ipam_conf(tmp_path / "ipam"), containerid="d")
    assert code == 0, out  # run by a new one
    after = warm.status()
    assert after is not None and after["requests"] == 1 and after["crashed"] == 0
    assert not set(spares(warm)) & set(dead)


def test_a_killed_forker_costs_no_call(warm: Warm, tmp_path: Path) -> None:
    spares(warm)
    info = warm.status()
    assert info is not None
    os.kill(info["forker"], signal.SIGKILL)
    warm.wait_for(lambda: (warm.status() or {}).get("forker", 0) is None, "the forker's loss")
    assert all(alive(spare) for spare in info["spares"])  # the service's, not the forker's
    # the two spares it made take two calls; the service forks the next one itself
    for cid in ("f1", "f2", "f3"):
        code, out, _ = warm.call("host-local", "ADD", ipam_conf(tmp_path / "ipam"), containerid=cid)
        assert code == 0, out
    after = warm.status()
    assert after is not None and (after["requests"], after["crashed"]) == (3, 0)
    assert after["spares"] == [] and after["forker"] is None
    assert "the forker died" in warm.log.read_text()


def test_a_stalled_forker_holds_no_call_up(warm: Warm, tmp_path: Path) -> None:
    dead = spares(warm)
    info = warm.status()
    assert info is not None
    os.kill(info["forker"], signal.SIGSTOP)  # alive, but it delivers nothing
    try:
        for pid in dead:
            os.kill(pid, signal.SIGKILL)
        warm.wait_for(lambda: not any(alive(pid) for pid in dead), "the spares to be dead")
        code, out, _ = warm.call("host-local", "ADD", ipam_conf(tmp_path / "ipam"), containerid="s")
        assert code == 0, out  # forked by the service once the forker was late
    finally:
        os.kill(info["forker"], signal.SIGCONT)
    assert "the forker is late" in warm.log.read_text()
    after = warm.status()
    assert after is not None and (after["requests"], after["crashed"]) == (1, 0)
    assert after["forker"] == info["forker"]  # still the service's forker, going on
    warm.wait_for(lambda: len((warm.status() or {}).get("spares", [])) >= 2, "new spares")


def test_a_stopped_service_leaves_no_spare(tmp_path: Path, python: str) -> None:
    w = Warm(tmp_path, python)
    left = spares(w)
    info = w.status()
    assert info is not None
    assert w.stop() == 0
    for pid in [*left, info["forker"]]:
        assert not Path(f"/proc/{pid}").exists()


def test_without_a_spare(tmp_path: Path, python: str) -> None:
    w = Warm(tmp_path, python, "--no-spare")
    try:
        info = w.status()
        assert info is not None and info["spare"] is None and info["forker"] is None
        code, out, _ = w.call("host-local", "ADD", ipam_conf(tmp_path / "ipam"), containerid="n")
        assert code == 0, out
    finally:
        assert w.stop() == 0


def test_timeout_kills_the_worker(tmp_path: Path, python: str) -> None:
    w = Warm(tmp_path, python, "--timeout", "0.5")
    try:
        lock = hold_lease_lock(tmp_path / "ipam")
        try:
            code, out, _ = w.call(
                "host-local", "ADD", ipam_conf(tmp_path / "ipam"), containerid="t"
            )
        finally:
            os.close(lock)
        assert code == 1
        assert "timed out after 0.5s" in json.loads(out)["msg"]
        info = w.status()
        assert info is not None and (info["timedOut"], info["crashed"]) == (1, 1)
    finally:
        assert w.stop() == 0


def test_service_killed_mid_call_is_an_error_never_a_rerun(warm: Warm, tmp_path: Path) -> None:
    data = tmp_path / "ipam"
    lock = hold_lease_lock(data)
    try:
        proc = warm.popen("host-local", "ADD", ipam_conf(data), containerid="s1")
        warm.wait_for(lambda: running(warm) == 1, "the call to be running")
        assert warm.proc is not None
        warm.proc.kill()
        warm.proc.wait(SAFETY)
        warm.proc = None
        out, _ = proc.communicate(timeout=SAFETY)
    finally:
        os.close(lock)
    assert proc.returncode == 1
    error = json.loads(out)
    assert error["code"] == 999 and "was not retried" in error["msg"]
    # the stale socket file is left behind: the next call finds nobody and runs cold
    assert warm.sock.exists()
    code, out, _ = warm.call("host-local", "ADD", ipam_conf(data), containerid="s2")
    assert code == 0, out
    # the worker died with its service (no late ADD behind the runtime's back)
    leases = [p.read_text() for p in (data / "wnet").iterdir() if p.name.startswith("10.")]
    assert [lease.splitlines()[0] for lease in leases] == ["s2"]


@pytest.mark.parametrize("kind", KINDS)
def test_full_service_sends_the_call_back_cold(tmp_path: Path, python: str, kind: str) -> None:
    w = Warm(tmp_path, python, "--workers", "1", "--queue", "0", kind=kind)
    try:
        lock = hold_lease_lock(tmp_path / "ipam")
        try:
            first = w.popen("host-local", "ADD", ipam_conf(tmp_path / "ipam"), containerid="f1")
            w.wait_for(lambda: running(w) == 1, "the first call to be running")
            other = ipam_conf(tmp_path / "other", name="other")
            code, out, err = w.call("host-local", "ADD", other, containerid="f2")
            assert code == 0, (out, err)  # ran cold, in the launcher
            info = w.status()
            assert info is not None and info["ranCold"] == 1
        finally:
            os.close(lock)
        first.communicate(timeout=SAFETY)
        assert first.returncode == 0
    finally:
        assert w.stop() == 0
    assert not w.sock.exists()  # a clean stop removes the socket


def raw_exchange(path: Path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(SAFETY)
        sock.connect(str(path))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)  # the service may answer and hang up before reading it all
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GET / HTTP/1.1\r\nHost: pycni\r\nAccept: */*\r\n\r\n", "bad magic"),
        (b"\0" * 64, "bad magic"),
        (
            wire.REQUEST_HEADER.pack(b"PCNQ", 1, 1, 0, 0, 0, 0, 0, wire.LIMITS["stdin"] + 1),
            "stdin too large",
        ),
        (
            wire.encode_request(wire.Request(op=wire.OP_RUN, plugin="host_local", tag="0.1.0")),
            "needs 3 descriptors",
        ),
    ],
)
def test_garbage_and_oversized_requests(warm: Warm, data: bytes, message: str) -> None:
    resp = wire.decode_response(raw_exchange(warm.sock, data))
    assert resp.kind == wire.KIND_RESULT and resp.status == 1
    assert message in json.loads(resp.stdout)["msg"]
    info = warm.status()
    assert info is not None and info["rejected"] == 1


def test_a_request_cut_short_runs_nothing(warm: Warm) -> None:
    data = wire.encode_request(wire.Request(op=wire.OP_RUN, plugin="host_local", stdin=b"{}"))
    assert raw_exchange(warm.sock, data[:-1]) == b""
    info = warm.status()
    assert info is not None and (info["requests"], info["rejected"]) == (0, 1)


def test_unknown_plugin_is_sent_back_cold(warm: Warm) -> None:
    req = wire.Request(op=wire.OP_RUN, plugin="os", tag=cnitool.__version__)
    assert send_run(warm.sock, req, half_close=False).kind == wire.KIND_COLD


def connect_as_nobody(path: Path) -> bytes:
    """What a uid 65534 process gets when it connects and sends a status request."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(w, raw_exchange(path, wire.encode_request(wire.Request(op=wire.OP_STATUS))))
        except OSError as exc:
            os.write(w, f"{type(exc).__name__}".encode())
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    return b"".join(chunks)


def test_non_root_callers_are_refused(python: str) -> None:
    # a directory another user can traverse (pytest's tmp_path is root-only)
    tmp = Path(tempfile.mkdtemp(prefix="pycni-warm-"))
    tmp.chmod(0o711)
    w = Warm(tmp, python)
    try:
        # the socket is root-only: another user cannot even connect
        assert connect_as_nobody(w.sock) == b"PermissionError"
        # made reachable on purpose, the peer check still refuses
        w.sock.parent.chmod(0o711)
        w.sock.chmod(0o666)
        resp = wire.decode_response(connect_as_nobody(w.sock))
        assert resp.status == 1 and "only root may call" in json.loads(resp.stdout)["msg"]
        info = w.status()
        assert info is not None and info["rejected"] == 1 and info["requests"] == 0
    finally:
        w.stop()
        shutil.rmtree(tmp)


def test_parallel_add_del_no_duplicates_no_leaks(warm: Warm, tmp_path: Path) -> None:
    """200 calls from 16 callers at once: every ADD a distinct address, DEL frees all."""
    from concurrent.futures import ThreadPoolExecutor

    data = tmp_path / "ipam"
    conf = ipam_conf(data, subnet="10.80.0.0/16")

    def one(command: str, i: int) -> tuple[int, bytes, bytes]:
        return warm.call("host-local", command, conf, containerid=f"par{i}")

    with ThreadPoolExecutor(16) as pool:
        adds = list(pool.map(lambda i: one("ADD", i), range(100)))
        assert all(code == 0 for code, _, _ in adds), [a for a in adds if a[0]][:1]
        addresses = [json.loads(out)["ips"][0]["address"] for _, out, _ in adds]
        assert len(set(addresses)) == 100
        dels = list(pool.map(lambda i: one("DEL", i), range(100)))
    assert all(d == (0, b"", b"") for d in dels)
    assert [p.name for p in (data / "wnet").iterdir() if p.name.startswith("10.")] == []
    info = warm.status()
    assert info is not None
    assert (info["requests"], info["failed"], info["crashed"], info["running"]) == (200, 0, 0, 0)


def test_socket_activation(tmp_path: Path, python: str) -> None:
    """Started as systemd does it (LISTEN_PID, LISTEN_FDS, the socket as fd 3)."""
    w = Warm(tmp_path, python, start=False)
    w.sock.parent.mkdir(mode=0o700)
    path = w.sock
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    fd = listener.fileno()
    serve = f"{python} -m cnitool.cli serve --socket /nonexistent/never.sock"
    proc = subprocess.Popen(
        ["bash", "-c", f"LISTEN_PID=$$ LISTEN_FDS=1 exec {serve} 3<&{fd}"],
        pass_fds=[fd],
        stderr=subprocess.DEVNULL,
    )
    listener.close()  # the service holds it now, as it would hold systemd's
    try:
        w.wait_for(lambda: w.status() is not None, "the activated service to answer")
        code, out, err = w.call("host-local", "ADD", ipam_conf(tmp_path / "ipam"), containerid="a")
        assert code == 0, (out, err)
        info = w.status()
        assert info is not None and info["requests"] == 1
    finally:
        proc.terminate()
        assert proc.wait(SAFETY) == 0
    assert path.exists()  # systemd's socket: the service leaves it in place


def test_a_caller_that_hangs_up_has_its_worker_killed(warm: Warm, tmp_path: Path) -> None:
    data = tmp_path / "ipam"
    lock = hold_lease_lock(data)
    try:
        proc = warm.popen("host-local", "ADD", ipam_conf(data), containerid="h1")
        warm.wait_for(lambda: running(warm) == 1, "the call to be running")
        proc.kill()  # a runtime's timeout kills the plugin it exec'd
        proc.communicate(timeout=SAFETY)
        warm.wait_for(lambda: running(warm) == 0, "the worker to be killed")
    finally:
        os.close(lock)
    info = warm.status()
    assert info is not None and info["crashed"] == 1
    assert [p.name for p in (data / "wnet").iterdir() if p.name.startswith("10.")] == []


def send_run(path: Path, req: wire.Request, half_close: bool) -> wire.Response:
    """A run request from this process (its namespaces and directory), read to the end."""
    fds = [os.open(p, os.O_RDONLY) for p in ("/proc/self/ns/mnt", "/proc/self/ns/net", ".")]
    rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(SAFETY)
        sock.connect(str(path))
        sock.sendmsg([wire.encode_request(req)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
        for fd in fds:
            os.close(fd)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return wire.decode_response(b"".join(chunks))


def test_a_client_may_half_close_after_sending(warm: Warm, tmp_path: Path) -> None:
    env = warm.env("ADD", True, containerid="hc")
    req = wire.Request(
        op=wire.OP_RUN,
        plugin="host_local",
        env={k.encode(): v.encode() for k, v in env.items()},
        tag=cnitool.__version__,
        stdin=json.dumps(ipam_conf(tmp_path / "ipam")).encode(),
    )
    resp = send_run(warm.sock, req, half_close=True)
    assert (resp.kind, resp.status, resp.stderr) == (wire.KIND_RESULT, 0, b"")
    assert json.loads(resp.stdout)["ips"][0]["address"] == "10.77.0.2/24"
