"""``cnitool add|check|del`` run by the plugin service (the operator's warm path), beside
the same commands run by a ``cnitool`` process of their own (a socket path with nothing
behind it). Real plugins, real namespaces, all in the test run's private namespaces."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_warm_path import SAFETY, Warm, alive, hold_lease_lock, running

import cnitool
from cnitool import launchers
from cnitool.warm import wire

pytestmark = pytest.mark.root

NET = "wcli"


def make_warm(tmp_path: Path, python: str, *args: str) -> Warm:
    w = Warm(tmp_path, python, "--workers", "4", *args)
    launchers.install(str(w.bin), ["portmap", "loopback"], python=python, compile_bytecode=False)
    return w


@pytest.fixture
def warm(tmp_path: Path, python: str) -> Iterator[Warm]:
    w = make_warm(tmp_path, python)
    yield w
    if w.proc is not None:
        w.stop(signal.SIGKILL)


def write_conflist(warm: Warm, bridge: str = "wclibr0", subnet: str = "10.81.0.0/24") -> Path:
    conf = warm.tmp / "conf"
    conf.mkdir(exist_ok=True)
    doc = {
        "cniVersion": "1.0.0",
        "name": NET,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipam": {
                    "type": "host-local",
                    "subnet": subnet,
                    "dataDir": str(warm.tmp / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    (conf / "10-wcli.conflist").write_text(json.dumps(doc))
    return conf


def cli_env(warm: Warm, warm_path: bool) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "NETCONFPATH": str(warm.tmp / "conf"),
        "CNI_PATH": str(warm.bin),
        "PYCNI_SOCKET": str(warm.sock) if warm_path else str(warm.tmp / "nothing.sock"),
    }


def cnitool_argv(warm: Warm, *args: str) -> list[str]:
    return [warm.python, "-m", "cnitool.cli", *args, "--cache-dir", str(warm.tmp / "cache")]


def run_cnitool(
    warm: Warm, warm_path: bool, *args: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *cnitool_argv(warm, *args)],
        env=cli_env(warm, warm_path),
        capture_output=True,
        text=True,
        timeout=SAFETY,
        check=False,
    )


def commands(warm: Warm) -> int:
    info = warm.status()
    assert info is not None
    return int(info["commands"])


def stable(result: dict[str, Any], netns: str) -> dict[str, Any]:
    """A bridge result without what differs per attachment (MACs, veth name, netns)."""
    out = json.loads(json.dumps(result).replace(netns, "<netns>"))
    for iface in out["interfaces"]:
        iface.pop("mac", None)
        if iface["name"].startswith("veth"):
            iface["name"] = "veth"
    for ip in out["ips"]:
        ip["address"] = ip["address"].rsplit(".", 1)[0]
    return out


def test_add_check_del_warm_equal_cold(warm: Warm, netns_factory: Callable[[], str]) -> None:
    write_conflist(warm)
    cold_ns, warm_ns = netns_factory(), netns_factory()
    cold = run_cnitool(warm, False, "add", NET, cold_ns)
    assert commands(warm) == 0
    hot = run_cnitool(warm, True, "add", NET, warm_ns)
    assert commands(warm) == 1
    assert (hot.returncode, hot.stderr) == (cold.returncode, cold.stderr) == (0, ""), hot
    assert stable(json.loads(hot.stdout), warm_ns) == stable(json.loads(cold.stdout), cold_ns)
    # the plugins ran as forks of the command's worker: no plugin call reached the service
    info = warm.status()
    assert info is not None and info["requests"] == 1
    for ns in (cold_ns, warm_ns):
        for warm_path in (True, False):
            done = run_cnitool(warm, warm_path, "check", NET, ns)
            assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), done
    for ns, warm_path in ((cold_ns, True), (warm_ns, False)):  # each path undoes the other's
        done = run_cnitool(warm, warm_path, "del", NET, ns)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), done
    assert commands(warm) == 4
    assert not list((warm.tmp / "cache").rglob("*wcli*"))
    # a named netns that does not exist yet is made in the caller's /run/netns, and its DEL
    # removes it again
    made = run_cnitool(warm, True, "add", NET, "wcli-made")
    assert made.returncode == 0, made.stderr
    assert Path("/run/netns/wcli-made").exists()
    done = run_cnitool(warm, True, "del", NET, "wcli-made")
    assert done.returncode == 0, done.stderr
    assert not Path("/run/netns/wcli-made").exists()
    leases = [p.name for p in (warm.tmp / "ipam" / NET).iterdir() if p.name[0].isdigit()]
    assert leases == []


@pytest.mark.parametrize(
    "args",
    [
        ("add", "nosuchnet", "/run/netns/nosuchns"),
        ("add", NET, "/nonexistent/netns"),
        ("del", NET, "../../etc"),
        ("check", NET, "/run/netns/nosuchns"),
        ("add", NET),
        ("add", "--help"),
        ("del", NET, "/run/netns/x", "--no-such-option"),
    ],
)
def test_errors_and_usage_are_the_same(warm: Warm, args: tuple[str, ...]) -> None:
    write_conflist(warm)
    cold = run_cnitool(warm, False, *args)
    hot = run_cnitool(warm, True, *args)
    assert (hot.returncode, hot.stdout, hot.stderr) == (cold.returncode, cold.stdout, cold.stderr)
    assert commands(warm) == 1


def test_a_malformed_conflist_is_the_same_error(warm: Warm) -> None:
    conf = write_conflist(warm)
    (conf / "10-wcli.conflist").write_text('{"name": "wcli", "plugins": [')
    cold = run_cnitool(warm, False, "add", NET, "/run/netns/whatever")
    hot = run_cnitool(warm, True, "add", NET, "/run/netns/whatever")
    assert cold.returncode != 0 and "Traceback" not in cold.stderr
    assert (hot.returncode, hot.stdout, hot.stderr) == (cold.returncode, cold.stdout, cold.stderr)


def test_other_commands_run_in_the_caller(warm: Warm) -> None:
    write_conflist(warm)
    done = subprocess.run(
        [warm.python, "-m", "cnitool.cli", "networks", "-o", "json"],
        env=cli_env(warm, True),
        capture_output=True,
        text=True,
        timeout=SAFETY,
        check=False,
    )
    assert done.returncode == 0 and NET in done.stdout
    assert commands(warm) == 0


def test_the_command_runs_in_the_callers_namespaces(
    warm: Warm, netns_factory: Callable[[], str]
) -> None:
    """A caller in a node netns and its own mount namespace: the bridge lands in the node
    netns, the cache in the caller's default /var/lib/cni, neither in the service's."""
    write_conflist(warm, bridge="wclinode")
    node, pod = netns_factory(), netns_factory()
    script = (
        "mount -t tmpfs tmpfs /var/lib/cni && "
        f"{' '.join(cnitool_argv(warm, 'add', NET, pod)[:-2])} >/dev/null && "
        "ls /var/lib/cni/results"
    )
    proc = subprocess.run(
        ["nsenter", f"--net={node}", "unshare", "--mount", "--propagation", "private"]
        + ["sh", "-c", script],
        env=cli_env(warm, True),
        capture_output=True,
        text=True,
        timeout=SAFETY,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() and all(n.startswith(f"{NET}-") for n in proc.stdout.split())
    assert commands(warm) == 1
    assert not Path(f"/var/lib/cni/results/{proc.stdout.split()[0]}").exists()
    links = subprocess.run(
        ["ip", "-n", os.path.basename(node), "-o", "link"], capture_output=True, text=True
    ).stdout
    assert "wclinode" in links
    assert (
        "wclinode" not in subprocess.run(["ip", "-o", "link"], capture_output=True).stdout.decode()
    )


def plugin_children(warm: Warm) -> list[str]:
    """The processes the running command's worker forked (its plugins)."""
    info = warm.status()
    if info is None or not info["workerPids"]:
        return []
    pid = info["workerPids"][0]
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


def popen_add(warm: Warm, netns: str) -> subprocess.Popen[str]:
    """A warm ``cnitool add`` started in the background."""
    return subprocess.Popen(
        cnitool_argv(warm, "add", NET, netns),
        env=cli_env(warm, True),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def blocked_add(warm: Warm, netns: str) -> tuple[subprocess.Popen[str], int]:
    """A warm ``cnitool add`` held inside host-local (its lease lock is taken)."""
    lock = hold_lease_lock(warm.tmp / "ipam", NET)
    proc = popen_add(warm, netns)
    warm.wait_for(lambda: running(warm) == 1, "the command to be running")
    warm.wait_for(lambda: bool(plugin_children(warm)), "the command's bridge plugin to start")
    return proc, lock


def veths(netns: str | None = None) -> list[str]:
    argv = ["ip", "-o", "link"] if netns is None else ["ip", "-n", netns, "-o", "link"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "master wclibr0" in line]


@pytest.mark.parametrize(
    ("sig", "code", "said"),
    [
        (signal.SIGINT, 130, "cnitool: interrupted; running DEL for the chain"),
        (signal.SIGTERM, 143, "cnitool: SIGTERM received; running DEL for the chain"),
    ],
)
def test_a_signal_reaches_the_command_which_rolls_back(
    warm: Warm, netns_factory: Callable[[], str], sig: int, code: int, said: str
) -> None:
    write_conflist(warm)
    pod = netns_factory()
    proc, lock = blocked_add(warm, pod)
    try:
        (plugin,) = plugin_children(warm)
        proc.send_signal(sig)
        # the interrupted bridge is killed; the rollback's DEL then waits for the lock
        warm.wait_for(lambda: plugin not in plugin_children(warm), "the plugin to be killed")
    finally:
        os.close(lock)
    out, err = proc.communicate(timeout=SAFETY)
    assert proc.returncode == code, err
    assert said in err and "Traceback" not in err
    assert out == ""
    assert not list((warm.tmp / "cache").rglob("*wcli*"))  # nothing cached
    assert veths() == []  # the rollback's DEL removed the bridge's veth
    info = warm.status()
    assert info is not None and info["running"] == 0 and info["crashed"] == 0


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.parametrize("timeout", [None, 2.0])
def test_a_stop_stops_the_command_and_a_continue_continues_it(
    tmp_path: Path, python: str, netns_factory: Callable[[], str], timeout: float | None
) -> None:
    """``--timeout`` (here shorter than the stop) waits while the command is stopped."""
    warm = make_warm(tmp_path, python, *([] if timeout is None else ["--timeout", str(timeout)]))
    try:
        stop_and_continue(warm, netns_factory(), pause=(timeout or 0) * 1.75)
    finally:
        assert warm.stop() == 0


def stop_and_continue(warm: Warm, netns: str, pause: float) -> None:
    write_conflist(warm)
    proc, lock = blocked_add(warm, netns)
    try:
        info = warm.status()
        assert info is not None
        (worker,) = info["workerPids"]
        proc.send_signal(signal.SIGTSTP)  # what ^Z sends the caller
        warm.wait_for(lambda: state(proc.pid) == "T", "the caller to stop")
        warm.wait_for(lambda: state(worker) == "T", "the command to stop")
        time.sleep(pause)
        proc.send_signal(signal.SIGCONT)  # fg
        warm.wait_for(lambda: state(worker) != "T", "the command to go on")
        assert state(proc.pid) != "T"
    finally:
        os.close(lock)
    out, err = proc.communicate(timeout=SAFETY)
    assert proc.returncode == 0, err
    assert json.loads(out)["interfaces"]
    info = warm.status()
    assert info is not None and info["crashed"] == 0 and info["running"] == 0


def test_a_command_killed_at_the_timeout_takes_its_plugins(
    tmp_path: Path, python: str, netns_factory: Callable[[], str]
) -> None:
    warm = make_warm(tmp_path, python, "--timeout", "2")
    try:
        write_conflist(warm)
        lock = hold_lease_lock(warm.tmp / "ipam", NET)
        try:
            proc = popen_add(warm, netns_factory())
            warm.wait_for(lambda: bool(plugin_children(warm)), "the command's bridge to start")
            plugins = [int(pid) for pid in plugin_children(warm)]
            out, err = proc.communicate(timeout=SAFETY)
            assert proc.returncode == 1 and "timed out after 2s" in err, err
            for pid in plugins:  # gone with the command, not left holding on to the lock
                warm.wait_for(lambda pid=pid: not alive(pid), "the plugin to be killed")
        finally:
            os.close(lock)
        # nothing took a lease after the lock was free
        assert not [p for p in (warm.tmp / "ipam" / NET).iterdir() if p.name.startswith("10.")]
    finally:
        assert warm.stop() == 0


def test_a_killed_caller_ends_its_command(warm: Warm, netns_factory: Callable[[], str]) -> None:
    write_conflist(warm)
    proc, lock = blocked_add(warm, netns_factory())
    try:
        proc.kill()
        proc.communicate(timeout=SAFETY)
        warm.wait_for(lambda: running(warm) == 0, "the command's worker to be killed")
    finally:
        os.close(lock)
    info = warm.status()
    assert info is not None and info["crashed"] == 1
    # the service goes on
    done = run_cnitool(warm, True, "add", NET, netns_factory())
    assert done.returncode == 0, done.stderr


def test_a_killed_worker_is_reported_and_not_rerun(
    warm: Warm, netns_factory: Callable[[], str]
) -> None:
    write_conflist(warm)
    proc, lock = blocked_add(warm, netns_factory())
    try:
        info = warm.status()
        assert info is not None
        os.kill(info["workerPids"][0], signal.SIGKILL)
        out, err = proc.communicate(timeout=SAFETY)
    finally:
        os.close(lock)
    assert proc.returncode == 1 and out == ""
    assert err == (
        "cnitool: the plugin service's worker running this command was killed by SIGKILL; "
        "the command may have run in part\n"
    )
    assert commands(warm) == 1


def test_commands_leave_workers_for_plugin_calls(
    warm: Warm, netns_factory: Callable[[], str]
) -> None:
    """With 4 workers at most 2 run commands; the others still serve plugin calls."""
    write_conflist(warm)
    held = [blocked_add(warm, netns_factory())]
    try:
        second = popen_add(warm, netns_factory())
        warm.wait_for(lambda: running(warm) == 2, "a second command to run")
        third = popen_add(warm, netns_factory())
        warm.wait_for(lambda: (warm.status() or {}).get("queued") == 1, "the third to queue")
        # a plugin call still finds a worker
        conf = {"cniVersion": "1.0.0", "name": "other", "type": "noop"}
        code, out, err = warm.call("noop", "ADD", conf, containerid="p1")
        assert code == 0, (out, err)
    finally:
        for _, lock in held:
            os.close(lock)
    for proc in (held[0][0], second, third):
        out, err = proc.communicate(timeout=SAFETY)
        assert proc.returncode == 0, err
    assert commands(warm) == 3


def raw_cli_request(warm: Warm, tag: str, *args: bytes) -> wire.Response:
    argv = [b"cnitool", *(args or [b"add"])]
    req = wire.Request(op=wire.OP_CLI, plugin=wire.CLI_PROGRAM, argv=argv, tag=tag)
    fds = [os.open(p, os.O_RDONLY) for p in ("/proc/self/ns/mnt", "/proc/self/ns/net", ".")]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(SAFETY)
        sock.connect(str(warm.sock))
        socket.send_fds(sock, [wire.encode_request(req)], [*fds, 0, 1, 2])
        for fd in fds:
            os.close(fd)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return wire.decode_response(b"".join(chunks))


def test_another_version_runs_in_the_caller(warm: Warm) -> None:
    assert raw_cli_request(warm, "0.0.0-other").kind == wire.KIND_COLD
    assert commands(warm) == 0


@pytest.mark.parametrize("command", [b"serve", b"node", b"gc", b"", b"\xff"])
def test_the_service_runs_only_add_check_and_del(warm: Warm, command: bytes) -> None:
    assert raw_cli_request(warm, cnitool.__version__, command).kind == wire.KIND_COLD
    assert commands(warm) == 0


def test_a_cli_request_needs_six_descriptors(warm: Warm) -> None:
    req = wire.Request(op=wire.OP_CLI, plugin="cnitool", tag=cnitool.__version__)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(SAFETY)
        sock.connect(str(warm.sock))
        sock.sendall(wire.encode_request(req))
        data = sock.recv(65536)
    resp = wire.decode_response(data)
    assert resp.status == 1 and "needs 6 descriptors" in json.loads(resp.stdout)["msg"]


def test_front_runs_here_without_a_service(tmp_path: Path) -> None:
    env = {**os.environ, "PYCNI_SOCKET": str(tmp_path / "none.sock")}
    done = subprocess.run(
        [sys.executable, "-m", "cnitool.cli", "add", "--help"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "Usage: cnitool add" in done.stdout


def on_a_terminal(warm: Warm, warm_path: bool, *args: str) -> tuple[int, str]:
    """``cnitool`` with stdin, stdout and stderr on a pseudo-terminal: status and screen."""
    import pty

    master, slave = pty.openpty()
    env = {**cli_env(warm, warm_path), "TERM": "xterm-256color", "COLUMNS": "100"}
    proc = subprocess.Popen(
        cnitool_argv(warm, *args), stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(SAFETY), b"".join(chunks).decode()


def test_a_terminal_gets_the_same_tables(warm: Warm, netns_factory: Callable[[], str]) -> None:
    """On a terminal ``add`` draws its result as coloured tables: the same screen warm."""
    import re

    write_conflist(warm)
    pod = netns_factory()
    screens = []
    for warm_path in (False, True):
        code, screen = on_a_terminal(warm, warm_path, "add", NET, pod)
        assert code == 0, screen
        screens.append(screen)
        assert run_cnitool(warm, True, "del", NET, pod).returncode == 0
    assert commands(warm) == 3
    assert "\x1b[" in screens[0] and "Interfaces" in screens[0]  # a terminal's tables

    def same(screen: str) -> str:
        screen = re.sub(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", "<mac>", screen)
        screen = re.sub(r"veth[0-9a-f]{8}", "<veth>", screen)
        return re.sub(r"10\.81\.0\.(?!1\b)\d+", "<ip>", screen)

    assert same(screens[1]) == same(screens[0])


def test_a_service_that_rejects_commands_leaves_them_here(tmp_path: Path) -> None:
    """A service from before commands answers the op with a bad-request error on stdout:
    nothing ran there, so the command runs in the caller."""
    import threading

    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    path = run_dir / "old.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    refusal = json.dumps({"code": 999, "msg": "bad request: unknown request op 3"}).encode()

    def old_service() -> None:
        conn, _ = listener.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 1 << 16, 8)
            for fd in fds:  # the caller's stdout among them: keep no copy open
                os.close(fd)
            conn.sendall(wire.encode_response(wire.KIND_RESULT, 1, refusal))

    server = threading.Thread(target=old_service, daemon=True)
    server.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cnitool.cli", "add", "--help"],
            env={**os.environ, "PYCNI_SOCKET": str(path)},
            capture_output=True,
            text=True,
            timeout=SAFETY,
            check=False,
        )
        server.join(SAFETY)
    finally:
        listener.close()
    assert not server.is_alive()  # the request did reach it
    assert done.returncode == 0 and "Usage: cnitool add" in done.stdout
    assert "bad request" not in done.stdout + done.stderr
