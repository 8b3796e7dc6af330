"""dhcp: our plugin and daemon against dnsmasq, behind our bridge, our macvlan and the Go
bridge; leases checked in dnsmasq's lease file (see dhcp_lab.py for the topology)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dhcp_lab import T1, Daemon, Server, ShortLeaseServer, ip, run_plugin

from cnitool import launchers

pytestmark = pytest.mark.root

NET = "dhcpnet"
VERSIONS = ("0.3.1", "0.4.0", "1.0.0", "1.1.0")


def _cid() -> str:
    return "c" + secrets.token_hex(8)


class Lab:
    def __init__(self, tmp: Path, bin_dir: Path, server: Server, daemon: Daemon) -> None:
        self.tmp, self.bin, self.server, self.daemon = tmp, bin_dir, server, daemon
        self.cni_path = f"{bin_dir}:/usr/lib/cni"

    def ipam(self, **extra: Any) -> dict[str, Any]:
        return {"type": "dhcp", "daemonSocketPath": str(self.daemon.socket), **extra}

    def bridge_conf(self, version: str = "1.0.0", **ipam: Any) -> dict[str, Any]:
        return {
            "cniVersion": version,
            "name": NET,
            "type": "bridge",
            "bridge": "dhcpbr0",
            "ipam": self.ipam(**ipam),
        }

    def run(
        self, plugin: str, cmd: str, conf: dict[str, Any], cid: str, netns: str, **kw: Any
    ) -> tuple[int, Any, str]:
        return run_plugin(plugin, cmd, conf, cid=cid, netns=netns, cni_path=self.cni_path, **kw)

    def ok(
        self, plugin: str, cmd: str, conf: dict[str, Any], cid: str, netns: str, **kw: Any
    ) -> Any:
        code, out, err = self.run(plugin, cmd, conf, cid, netns, **kw)
        assert code == 0, (plugin, cmd, out, err, self.daemon.text()[-3000:])
        return out


def _have_dnsmasq() -> None:
    if shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq not installed (apt-get install dnsmasq-base)")


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    d = tmp_path / "bin"
    launchers.install(str(d), ["bridge", "macvlan", "dhcp"], compile_bytecode=False)
    return d


@pytest.fixture
def make_lab(
    tmp_path: Path, bin_dir: Path, netns_factory: Callable[[], str]
) -> Iterator[Callable[..., Lab]]:
    """A server netns with dnsmasq on 10.77.0.1/24, reached from the node's bridge
    ``dhcpbr0`` (``topology="bridge"``) or from the macvlan master ``dmaster0``
    (``"macvlan"``), and our daemon; all stopped and removed afterwards."""
    _have_dnsmasq()
    started: list[tuple[Server, Daemon]] = []
    links: list[str] = []

    def make(
        topology: str = "bridge",
        daemon_flags: tuple[str, ...] = (),
        server_args: tuple[str, ...] = (),
        dnsmasq: bool = True,
    ) -> Lab:
        srv_ns = netns_factory()
        node_end = "dmaster0" if topology == "macvlan" else "dsrvh0"
        ip("link", "add", node_end, "type", "veth", "peer", "name", "dsrv0", "netns", srv_ns)
        links.append(node_end)
        ip("addr", "add", "10.77.0.1/24", "dev", "dsrv0", ns=srv_ns)
        ip("link", "set", "dsrv0", "up", ns=srv_ns)
        node_if = node_end
        if topology == "bridge":
            node_if = "dhcpbr0"
            ip("link", "add", "dhcpbr0", "type", "bridge")
            links.append("dhcpbr0")
            ip("link", "set", node_end, "master", "dhcpbr0")
        # the node's own address on the server's network (the route a DHCPRELEASE takes
        # once the bridge or macvlan plugin has removed the pod's interface)
        ip("addr", "add", "10.77.0.254/24", "dev", node_if)
        ip("link", "set", node_if, "up")
        ip("link", "set", node_end, "up")
        server = Server(tmp_path, srv_ns, "dsrv0", "10.77.0", list(server_args))
        if dnsmasq:
            server.start()
        daemon = Daemon(bin_dir / "dhcp", tmp_path, "-timeout", "2s", *daemon_flags)
        daemon.start()
        started.append((server, daemon))
        return Lab(tmp_path, bin_dir, server, daemon)

    yield make
    for server, daemon in started:
        daemon.stop()
        server.stop()
    for name in links:
        ip("link", "del", name, check=False)


def _in_ns_addrs(netns: str, ifname: str = "eth0") -> list[str]:
    out = json.loads(ip("-j", "-4", "addr", "show", "dev", ifname, ns=netns) or "[]")
    return [f"{a['local']}/{a['prefixlen']}" for link in out for a in link.get("addr_info", [])]


def _link_up(netns: str, ifname: str = "eth0") -> bool:
    (link,) = json.loads(ip("-j", "link", "show", "dev", ifname, ns=netns))
    return "UP" in link["flags"]


# -- ADD, CHECK, renewal, DEL: our bridge ------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_bridge_add_check_renew_del(
    make_lab: Callable[..., Lab], netns_factory: Callable[[], str], version: str
) -> None:
    lab = make_lab()
    pod, cid = netns_factory(), _cid()
    client_id = f"{cid}/{NET}/eth0"
    conf = lab.bridge_conf(version)

    result = lab.ok("bridge", "ADD", conf, cid, pod)
    addr = result["ips"][0]["address"]
    assert ipaddress.ip_interface(addr).network == ipaddress.ip_network("10.77.0.0/24")
    assert result["ips"][0]["gateway"] == "10.77.0.1"
    assert {"dst": "0.0.0.0/0", "gw": "10.77.0.1"} in result["routes"]
    assert _in_ns_addrs(pod) == [addr]
    added = lab.server.lease_of(client_id)
    assert added is not None and added.ip == addr.split("/")[0]

    # renewal at T1, seen as a later expiry in dnsmasq's lease file
    renewed = lab.server.wait_for(
        "renewal",
        lambda: (lease := lab.server.lease_of(client_id)) and lease.expiry > added.expiry and lease,
        timeout=T1 + 20,
    )
    assert renewed.ip == added.ip
    assert "lease renewed" in lab.daemon.text()

    if version != "0.3.1":  # CHECK needs 0.4.0
        time.sleep(1.1)  # a new expiry second
        lab.ok("bridge", "CHECK", {**conf, "prevResult": result}, cid, pod)
        checked = lab.server.lease_of(client_id)
        assert checked is not None and checked.expiry > renewed.expiry
        assert checked.ip == added.ip

    lab.ok("bridge", "DEL", conf, cid, pod)
    lab.server.wait_for("release", lambda: lab.server.lease_of(client_id) is None, timeout=10)
    assert f"{client_id}: lease released" in lab.daemon.text()
    # a second DEL (the lease is unknown now) succeeds
    lab.ok("bridge", "DEL", conf, cid, pod)


# -- our macvlan, and the Go bridge ------------------------------------------------------
def test_macvlan_add_check_del(
    make_lab: Callable[..., Lab], netns_factory: Callable[[], str]
) -> None:
    lab = make_lab("macvlan")
    pod, cid = netns_factory(), _cid()
    client_id = f"{cid}/{NET}/eth0"
    conf = {
        "cniVersion": "1.0.0",
        "name": NET,
        "type": "macvlan",
        "master": "dmaster0",
        "ipam": lab.ipam(),
    }
    result = lab.ok("macvlan", "ADD", conf, cid, pod)
    addr = result["ips"][0]["address"]
    assert _in_ns_addrs(pod) == [addr]
    lease = lab.server.lease_of(client_id)
    assert lease is not None and lease.ip == addr.split("/")[0]
    (link,) = json.loads(ip("-j", "link", "show", "dev", "eth0", ns=pod))
    assert lease.mac == link["address"]  # the exchange ran on the pod's macvlan

    time.sleep(1.1)
    lab.ok("macvlan", "CHECK", {**conf, "prevResult": result}, cid, pod)
    checked = lab.server.lease_of(client_id)
    assert checked is not None and checked.expiry > lease.expiry

    lab.ok("macvlan", "DEL", conf, cid, pod)
    lab.server.wait_for("release", lambda: lab.server.lease_of(client_id) is None, timeout=10)


def test_go_bridge_with_our_dhcp(
    make_lab: Callable[..., Lab], netns_factory: Callable[[], str], reference_bin: Path
) -> None:
    lab = make_lab()
    pod, cid = netns_factory(), _cid()
    client_id = f"{cid}/{NET}/eth0"
    conf = lab.bridge_conf("1.0.0")
    go_bridge = str(reference_bin / "bridge")  # it finds our dhcp first in CNI_PATH

    result = lab.ok(go_bridge, "ADD", conf, cid, pod)
    addr = result["ips"][0]["address"]
    assert _in_ns_addrs(pod) == [addr]
    added = lab.server.lease_of(client_id)
    assert added is not None and added.ip == addr.split("/")[0]
    time.sleep(1.1)
    lab.ok(go_bridge, "CHECK", {**conf, "prevResult": result}, cid, pod)
    checked = lab.server.lease_of(client_id)
    assert checked is not None and checked.expiry > added.expiry
    lab.ok(go_bridge, "DEL", conf, cid, pod)
    lab.server.wait_for("release", lambda: lab.server.lease_of(client_id) is None, timeout=10)


# -- robustness ---------------------------------------------------------------------------
def test_many_pods_each_with_its_own_lease_and_renewal(
    make_lab: Callable[..., Lab], netns_factory: Callable[[], str]
) -> None:
    lab = make_lab()
    pods = [(netns_factory(), _cid()) for _ in range(8)]
    conf = lab.bridge_conf("1.0.0")
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def add(pod: str, cid: str) -> None:
        try:
            results[cid] = lab.ok("bridge", "ADD", conf, cid, pod)
        except BaseException as exc:  # collected: the main thread asserts
            errors.append(exc)

    threads = [threading.Thread(target=add, args=pod) for pod in pods]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    addrs = {results[cid]["ips"][0]["address"] for _, cid in pods}
    assert len(addrs) == len(pods)  # one address each
    first = {cid: lab.server.lease_of(f"{cid}/{NET}/eth0") for _, cid in pods}
    assert all(lease is not None for lease in first.values()), lab.server.leases()

    def all_renewed() -> bool:
        now = {cid: lab.server.lease_of(f"{cid}/{NET}/eth0") for _, cid in pods}
        return all(
            (new := now[cid]) is not None and (old := first[cid]) is not None
            and new.expiry > old.expiry and new.ip == old.ip
            for cid in now
        )  # fmt: skip

    lab.server.wait_for("every pod's renewal", all_renewed, timeout=T1 + 30)

    for pod, cid in pods:
        lab.ok("bridge", "DEL", conf, cid, pod)
    lab.server.wait_for("every release", lambda: lab.server.leases() == [], timeout=10)


def test_pod_netns_deleted_under_a_live_lease(
    make_lab: Callable[..., Lab], netns_factory: Callable[[], str]
) -> None:
    lab = make_lab()
    conf = lab.bridge_conf("1.0.0")
    gone, gone_cid = netns_factory(), _cid()
    lab.ok("bridge", "ADD", conf, gone_cid, gone)
    subprocess.run(["ip", "netns", "del", os.path.basename(gone)], check=True)

    # at T1 the daemon finds the netns gone and stops maintaining that lease, quietly
    deadline = time.monotonic() + T1 + 20
    while "maintenance stops" not in lab.daemon.text():
        assert time.monotonic() < deadline, lab.daemon.text()
        time.sleep(0.2)
    assert lab.daemon.proc is not None and lab.daemon.proc.poll() is None
    assert "Traceback" not in lab.daemon.text()

    # the daemon still serves others
    pod, cid = netns_factory(), _cid()
    lab.ok("bridge", "ADD", conf, cid, pod)
    assert lab.server.lease_of(f"{cid}/{NET}/eth0") is not None
    # the runtime's DEL of the dead pod succeeds and still releases its lease (from the node)
    lab.ok("bridge", "DEL", conf, gone_cid, gone)
    gone_id = f"{gone_cid}/{NET}/eth0"
    lab.server.wait_for("release", lambda: lab.server.lease_of(gone_id) is None, timeout=10)
    lab.ok("bridge", "DEL", conf, cid, pod)


def test_server_that_stops_answering_is_a_clear_error_within_the_timeout(
    make_lab: Callable[..., Lab], netns_factory: Callable[[], str]
) -> None:
    lab = make_lab(daemon_flags=("-timeout", "1s", "-resendtimeout", "4s"))
    lab.server.stop()
    pod, cid = netns_factory(), _cid()
    conf = lab.bridge_conf("1.0.0")
    started = time.monotonic()
    code, out, err = lab.run("bridge", "ADD", conf, cid, pod)
    took = time.monotonic() - started
    assert code == 1 and "Traceback" not in err
    assert out["code"] == 999
    assert out["msg"] == f"no DHCP answer on eth0 within 4s (client ID {cid}/{NET}/eth0)", out
    assert 3.5 < took < 15, took
    # the failed ADD left no pod interface behind (the bridge rolled back)
    assert "eth0" not in ip("link", "show", ns=pod)
    lab.ok("bridge", "DEL", conf, cid, pod)


def test_restarted_daemon_takes_its_leases_up_again(
    make_lab: Callable[..., Lab], netns_factory: Callable[[], str]
) -> None:
    """The leases a daemon kept on disk are renewed by the next daemon without any call,
    and its DEL releases them."""
    lab = make_lab()
    pod, cid = netns_factory(), _cid()
    client_id = f"{cid}/{NET}/eth0"
    conf = lab.bridge_conf("1.0.0")
    lab.ok("bridge", "ADD", conf, cid, pod)
    before = lab.server.lease_of(client_id)
    assert before is not None

    assert lab.daemon.stop() == 0  # SIGTERM: socket and pidfile go, leases stay
    assert not lab.daemon.socket.exists() and not lab.daemon.pidfile.exists()
    assert lab.server.lease_of(client_id) is not None
    assert len(list((lab.daemon.socket.parent / "dhcp-leases").glob("*.json"))) == 1
    mark = len(lab.daemon.text())
    lab.daemon.start()
    assert lab.daemon.pidfile.read_text() == str(lab.daemon.proc.pid if lab.daemon.proc else "")

    renewed = lab.server.wait_for(
        "renewal by the new daemon",
        lambda: (
            (lease := lab.server.lease_of(client_id)) and lease.expiry > before.expiry and lease
        ),
        timeout=T1 + 20,
    )
    assert renewed.ip == before.ip
    text = lab.daemon.text()[mark:]
    assert f"{client_id}: lease taken up again" in text and "lease renewed" in text
    lab.ok("bridge", "DEL", conf, cid, pod)
    lab.server.wait_for("release", lambda: lab.server.lease_of(client_id) is None, timeout=10)
    assert list((lab.daemon.socket.parent / "dhcp-leases").glob("*.json")) == []


def test_restarted_daemon_without_its_files_reacquires_a_known_lease(
    make_lab: Callable[..., Lab], netns_factory: Callable[[], str]
) -> None:
    """A daemon that lost its lease files (as the reference daemon always does) acquires
    the lease again on the next CHECK, asking for the address the pod has."""
    lab = make_lab()
    pod, cid = netns_factory(), _cid()
    client_id = f"{cid}/{NET}/eth0"
    conf = lab.bridge_conf("1.0.0")
    result = lab.ok("bridge", "ADD", conf, cid, pod)
    addr = result["ips"][0]["address"]
    before = lab.server.lease_of(client_id)
    assert before is not None

    assert lab.daemon.stop() == 0
    shutil.rmtree(lab.daemon.socket.parent / "dhcp-leases")
    lab.daemon.start()

    time.sleep(1.1)
    lab.ok("bridge", "CHECK", {**conf, "prevResult": result}, cid, pod)  # re-acquired
    after = lab.server.lease_of(client_id)
    assert after is not None and after.ip == before.ip and after.expiry > before.expiry
    # the new daemon holds the lease: IPAM ADD of the same client ID gives the same address
    again = lab.ok("dhcp", "ADD", conf, cid, pod)
    assert again["ips"][0]["address"] == addr
    lab.ok("bridge", "DEL", conf, cid, pod)
    lab.server.wait_for("release", lambda: lab.server.lease_of(client_id) is None, timeout=10)


def _raw_call(path: Path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        with contextlib.suppress(OSError):  # the daemon may answer before reading it all
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _answer(data: bytes) -> Any:
    assert data[:4] == b"PDHC", data[:64]
    return json.loads(data[10:])


def test_garbage_and_oversized_requests_get_errors(
    make_lab: Callable[..., Lab], netns_factory: Callable[[], str]
) -> None:
    lab = make_lab()
    sock = lab.daemon.socket
    garbage = _answer(_raw_call(sock, b"GET / HTTP/1.0\r\n\r\n" * 10))
    assert garbage["error"]["code"] == 6 and "not a pycni dhcp message" in garbage["error"]["msg"]
    bad_json = _answer(_raw_call(sock, b"PDHC\x00\x01\x00\x00\x00\x05{nope"))
    assert "malformed message" in bad_json["error"]["msg"]
    bad_method = _answer(_raw_call(sock, wire_message({"method": "EXPLODE", "args": {}})))
    assert "unknown method" in bad_method["error"]["msg"]
    huge_header = _answer(_raw_call(sock, b"PDHC\x00\x01\xff\xff\xff\xff"))
    assert "exceeds the limit" in huge_header["error"]["msg"]
    oversized = _answer(_raw_call(sock, b"PDHC\x00\x01\x00\x40\x00\x00" + b"x" * (4 << 20)))
    assert "exceeds the limit" in oversized["error"]["msg"]
    cut_short = _answer(_raw_call(sock, b"PDHC\x00\x01\x00\x00\x01\x00{}"))
    assert "closed before the request was complete" in cut_short["error"]["msg"]
    # an oversized config through the plugin: refused by the plugin, as any plugin's
    conf = lab.bridge_conf("1.0.0", filler="y" * (2 << 20))
    pod, cid = netns_factory(), _cid()
    code, out, _ = lab.run("dhcp", "ADD", conf, cid, pod)
    assert code == 1 and out["code"] == 6

    # the daemon survived all of it
    assert lab.daemon.proc is not None and lab.daemon.proc.poll() is None
    assert "Traceback" not in lab.daemon.text()
    result = lab.ok("bridge", "ADD", lab.bridge_conf("1.0.0"), cid, pod)
    assert result["ips"]
    lab.ok("bridge", "DEL", lab.bridge_conf("1.0.0"), cid, pod)


def wire_message(obj: Any) -> bytes:
    payload = json.dumps(obj).encode()
    return b"PDHC\x00\x01" + len(payload).to_bytes(4, "big") + payload


def test_options_routes_priority_and_broadcast(
    make_lab: Callable[..., Lab], netns_factory: Callable[[], str]
) -> None:
    """``provide`` (a value, and ``fromArg``), ``request`` and ``priority``; classless
    routes (option 121) replace the router's default route; ``-broadcast``."""
    lab = make_lab(
        daemon_flags=("-broadcast",),
        server_args=("--dhcp-option=option:classless-static-route,10.99.0.0/16,10.77.0.1",),
    )
    pod, cid = netns_factory(), _cid()
    conf = lab.bridge_conf(
        "1.1.0",
        provide=[
            {"option": "host-name", "fromArg": "K8S_POD_NAME"},
            {"option": "vendor-class-identifier", "value": "pycni-test"},
        ],
        request=[{"option": "121"}],
        priority=50,
    )
    args = "IgnoreUnknown=1;K8S_POD_NAME=web-0"
    result = lab.ok("bridge", "ADD", conf, cid, pod, args=args)
    assert result["routes"] == [{"dst": "10.99.0.0/16", "gw": "10.77.0.1", "priority": 50}]
    assert result["ips"][0]["gateway"] == "10.77.0.1"
    lease = lab.server.lease_of(f"{cid}/{NET}/eth0")
    assert lease is not None and lease.host == "web-0"  # option 12 from CNI_ARGS
    log = lab.server.log.read_text()
    assert "vendor class: pycni-test" in log
    assert "requested options: 121:classless-static-route, 3:router, 1:netmask" in log
    assert "broadcast response" in log
    lab.ok("bridge", "DEL", conf, cid, pod, args=args)


def test_lease_expiry_sets_the_interface_down(
    make_lab: Callable[..., Lab], netns_factory: Callable[[], str]
) -> None:
    """Renewal, then rebinding, then expiry with the server gone: the pod's interface
    goes down, as the reference does (a lease of 6 s from a minimal server)."""
    lab = make_lab(daemon_flags=("-timeout", "1s"), dnsmasq=False)
    server = ShortLeaseServer(lab.server.ns, "dsrv0", "10.77.0.60", lease=6, t1=2, t2=4)
    pod, cid = netns_factory(), _cid()
    conf = lab.bridge_conf("1.0.0")
    try:
        result = lab.ok("bridge", "ADD", conf, cid, pod)
        assert result["ips"][0]["address"] == "10.77.0.60/24"
        assert _link_up(pod)
        deadline = time.monotonic() + 10
        while "lease renewed" not in lab.daemon.text():  # at T1, while the server answers
            assert time.monotonic() < deadline, lab.daemon.text()
            time.sleep(0.2)
    finally:
        server.close()
    deadline = time.monotonic() + 20
    while _link_up(pod):
        assert time.monotonic() < deadline, lab.daemon.text()
        time.sleep(0.2)
    text = lab.daemon.text()
    assert "rebinding lease" in text and "lease expired, bringing interface down" in text
    lab.ok("bridge", "DEL", conf, cid, pod)  # an expired lease: nothing to release


def _daemon_argv(bin_dir: Path, *flags: str) -> list[str]:
    return [str(bin_dir / "dhcp"), "daemon", *flags]


def test_socket_activation_and_flags(bin_dir: Path, tmp_path: Path) -> None:
    """systemd socket activation (LISTEN_FDS=1 on fd 3): the daemon serves the socket it
    is handed and leaves the file to systemd; bad flags and bad activation are errors."""
    path = tmp_path / "activated.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    fd = listener.fileno()
    # the shell sets LISTEN_PID to its own pid, which exec hands to the daemon
    script = 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" daemon'
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["sh", "-c", script, str(bin_dir / "dhcp")],
            preexec_fn=lambda: os.dup2(fd, 3),  # the listening socket on fd 3
            pass_fds=(3,),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    listener.close()
    try:
        conf = {"cniVersion": "1.0.0", "name": NET, "type": "dhcp"}
        conf["ipam"] = {"type": "dhcp", "daemonSocketPath": str(path)}
        # DEL of an unknown lease: answered by the activated daemon (a success)
        deadline = time.monotonic() + 30
        while "listening on the socket from systemd" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        code, out_json, err = run_plugin(
            "dhcp", "DEL", conf, cid="c1", netns="", cni_path=str(bin_dir)
        )
        assert code == 0, (out_json, err)
        assert "release of an unknown lease" in log.read_text()
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    assert path.exists()  # systemd's socket file stays

    # two fds are refused, as the reference refuses them
    env = {**os.environ, "LISTEN_FDS": "2"}
    two = subprocess.run(
        ["sh", "-c", 'export LISTEN_PID=$$; exec "$0" daemon', str(bin_dir / "dhcp")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert two.returncode == 1 and "Too many (2) FDs passed through socket activation" in two.stderr

    bad = subprocess.run(_daemon_argv(bin_dir, "-nope"), capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "flag provided but not defined: -nope" in bad.stderr
    rel = subprocess.run(
        _daemon_argv(bin_dir, "-pidfile", "rel.pid", "-socketpath", str(tmp_path / "x.sock")),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (
        rel.returncode == 1 and 'Error writing pidfile "rel.pid": path not absolute' in rel.stderr
    )


def test_hostprefix_and_a_live_socket(bin_dir: Path, tmp_path: Path) -> None:
    """``-hostprefix`` prefixes the socket path; a second daemon on a live socket fails,
    one on a stale socket file takes it over."""
    root = tmp_path / "host"
    cmd = [str(bin_dir / "dhcp"), "daemon", "-hostprefix", str(root), "-socketpath", "/run/d.sock"]
    with open(tmp_path / "first.log", "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (root / "run" / "d.sock").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        assert second.returncode == 1 and "another daemon is listening" in second.stderr
    finally:
        proc.kill()  # no clean-up: the socket file stays behind, stale
        proc.wait(30)
    assert (root / "run" / "d.sock").exists()
    with open(tmp_path / "third.log", "wb") as out:
        third = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "dhcp daemon listening" not in (tmp_path / "third.log").read_text():
            assert third.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        third.terminate()
        assert third.wait(30) == 0
    assert not (root / "run" / "d.sock").exists()


def test_del_stops_an_add_still_waiting_for_the_server(
    make_lab: Callable[..., Lab], netns_factory: Callable[[], str]
) -> None:
    """A runtime that gives up on a slow ADD (its timeout) then DELs: the daemon stops
    that acquisition at once instead of holding the DEL until -resendtimeout."""
    lab = make_lab(daemon_flags=("-timeout", "1s", "-resendtimeout", "60s"))
    lab.server.stop()
    pod, cid = netns_factory(), _cid()
    conf = lab.bridge_conf("1.0.0")
    with pytest.raises(subprocess.TimeoutExpired):
        lab.run("bridge", "ADD", conf, cid, pod, timeout=3)
    started = time.monotonic()
    lab.ok("dhcp", "DEL", conf, cid, pod)  # the IPAM's DEL, while the interface is there
    assert time.monotonic() - started < 15
    deadline = time.monotonic() + 15
    while "released while being acquired" not in lab.daemon.text():
        assert time.monotonic() < deadline, lab.daemon.text()
        time.sleep(0.2)
    assert lab.daemon.proc is not None and lab.daemon.proc.poll() is None
    lab.ok("bridge", "DEL", conf, cid, pod)
