"""containerd's CRI, the kubelet's own path in the seed, runs a pod sandbox with a hostPort
on the seed's conflist (flannel delegating to bridge + host-local, then portmap), all of
them pycni launchers, inside a fresh node netns.

containerd (through go-cni and libcni) calls the plugins as it does on a Kubernetes node:
loopback first, then the list, with the port mappings as ``runtimeConfig.portMappings`` in
Go field case (``HostPort``, ``ContainerPort``, ...). A TCP server started in the pod's
netns answers through nodeIP:hostPort from another netns; stopping and removing the
sandbox leaves no lease, no per-container chain, no flannel scratch file and no cache entry.

The sandbox's pause image is built here from the node's static busybox (no registry), the
CRI messages are encoded by ``cri_client`` (no generated code), and containerd's root,
state, socket and shim sockets all live in the test's private mount namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

grpc = pytest.importorskip("grpc", reason="the CRI test needs grpcio (the test extras)")

from cri_client import (  # noqa: E402 - after the skip above
    pause_image,
    remove_pod_sandbox,
    run_pod_sandbox,
    sandbox_config,
    stop_pod_sandbox,
    version,
)
from plugin_service import link, plugin_path, run  # noqa: E402 - after the skip above

SEED_CONFLIST = {
    "cniVersion": "0.3.1",
    "name": "cni0",
    "plugins": [
        {"type": "flannel", "delegate": {"forceAddress": True, "isDefaultGateway": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}
SUBNET_ENV = (
    "FLANNEL_NETWORK=172.29.0.0/16\nFLANNEL_SUBNET=172.29.3.1/24\n"
    "FLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n"
)
PAUSE = "localhost/pycni-pause:1"
SERVER = (
    "import socket\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 80)); s.listen(8); print('ready', flush=True)\n"
    "while True:\n"
    "    c,a=s.accept(); c.sendall(b'hello from the pod'); c.close()\n"
)
CLIENT = (
    "import socket,sys\n"
    "c=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n"
    "print(c.recv(100).decode())\n"
)


def containerd_config(tmp: Path, bin_dir: Path, conf_dir: Path, sock: Path) -> Path:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    text = f"""version = 2
root = "{tmp / "root"}"
state = "{tmp / "state"}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[{cri}]
  sandbox_image = "{PAUSE}"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
[{cri}.containerd]
  snapshotter = "native"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "{bin_dir}"
  conf_dir = "{conf_dir}"
  max_conf_num = 1
"""
    path = tmp / "config.toml"
    path.write_text(text)
    return path


@pytest.fixture(params=["cold", "warm"])
def containerd(
    request: pytest.FixtureRequest, tmp_path: Path, python: str, netns_factory: Callable[[], str]
) -> Iterator[tuple[str, Path]]:
    """containerd serving the CRI in a fresh node netns: (node netns, socket)."""
    missing = [n for n in ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "busybox")]
    missing = [n for n in missing if shutil.which(n) is None]
    if missing:
        pytest.skip(f"the CRI test needs {', '.join(missing)} (apt: containerd busybox-static)")
    from cnitool import launchers

    node = netns_factory()
    bin_dir, conf_dir = tmp_path / "bin", tmp_path / "net.d"
    names = ["flannel", "bridge", "host-local", "portmap", "loopback"]
    launchers.install(str(bin_dir), names, python=python)
    conf_dir.mkdir()
    (conf_dir / "10-flannel.conflist").write_text(json.dumps(SEED_CONFLIST))
    os.makedirs("/run/flannel", exist_ok=True)
    Path("/run/flannel/subnet.env").write_text(SUBNET_ENV)
    # the shims put their sockets under /run/containerd whatever the state dir says: a
    # private tmpfs there (the mount point is removed again when this test made it)
    made_run_dir = not os.path.exists("/run/containerd")
    os.makedirs("/run/containerd", exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run/containerd"], check=True)
    sock = Path("/run/containerd") / f"cri{os.getpid()}.sock"
    config = containerd_config(tmp_path, bin_dir, conf_dir, sock)
    path = plugin_path(request.param, tmp_path, python)
    path_env = path.__enter__()
    log = open(tmp_path / "containerd.log", "w")  # noqa: SIM115 - closed below
    daemon = subprocess.Popen(
        ["nsenter", f"--net={node}", "containerd", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=dict(os.environ, **path_env),  # go-cni passes it on to every plugin
    )
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.1)
        assert sock.exists(), (tmp_path / "containerd.log").read_text()[-2000:]
        archive = pause_image(Path(str(shutil.which("busybox"))), PAUSE, tmp_path / "pause.tar")
        imported = run("ctr", "--address", str(sock), "-n", "k8s.io", "images", "import",
                       str(archive))  # fmt: skip
        assert imported.returncode == 0, imported.stderr
        yield node, sock
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        log.close()
        subprocess.run(["pkill", "-f", f"containerd-shim-runc-v2 .*{tmp_path}"], check=False)
        subprocess.run(["umount", "-l", "/run/containerd"], check=False)
        if made_run_dir:
            os.rmdir("/run/containerd")
        path.__exit__(None, None, None)


def pod_netns() -> str:
    """The one netns containerd made for the sandbox (the private /run/netns holds no other
    ``cni-`` namespace)."""
    made = sorted(p for p in os.listdir("/run/netns") if p.startswith("cni-"))
    assert len(made) == 1, made
    return f"/run/netns/{made[0]}"


def state_left(node: str) -> dict[str, list[str]]:
    def listing(path: str, skip: tuple[str, ...] = ()) -> list[str]:
        p = Path(path)
        return sorted(x.name for x in p.iterdir() if x.name not in skip) if p.exists() else []

    nat = run("iptables-save", "-t", "nat", netns=node).stdout
    shared = {"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"}
    return {
        "leases": listing("/var/lib/cni/networks/cni0", ("lock", "last_reserved_ip.0", ".pycni")),
        "chains": sorted(
            {ln.split()[0][1:] for ln in nat.splitlines() if ln.startswith(":CNI-")} - shared
        ),
        "scratch": listing("/var/lib/cni/flannel"),
        "cache": [n for n in listing("/var/lib/cni/results") if n.startswith("cni0-")],
    }


def test_containerd_cri_runs_a_hostport_pod_on_the_seed_list(
    containerd: tuple[str, Path], netns_factory: Callable[[], str]
) -> None:
    node, sock = containerd
    client = netns_factory()
    link(node, client, 79)
    channel = grpc.insecure_channel(f"unix://{sock}")
    try:
        assert version(channel)[4][0] == b"v1"  # runtime_api_version: the CRI answers
        config = sandbox_config("web", "uid-1", "default", [(80, 8080)])
        sandbox = run_pod_sandbox(channel, config)
        try:
            pod = pod_netns()
            during = state_left(node)
            assert during["leases"] and during["scratch"] and during["cache"], during
            assert any(c.startswith("CNI-DN-") for c in during["chains"]), during
            server = subprocess.Popen(
                ["nsenter", f"--net={pod}", sys.executable, "-c", SERVER],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            try:
                assert server.stdout is not None and server.stdout.readline().strip() == "ready"
                got = run(sys.executable, "-c", CLIENT, "192.168.79.1", "8080", netns=client)
                assert got.stdout.strip() == "hello from the pod", got.stderr
            finally:
                server.kill()
                server.wait()
                if server.stdout is not None:
                    server.stdout.close()
        finally:
            stop_pod_sandbox(channel, sandbox)
            remove_pod_sandbox(channel, sandbox)
    finally:
        channel.close()
    assert state_left(node) == {"leases": [], "chains": [], "scratch": [], "cache": []}
    assert not [p for p in os.listdir("/run/netns") if p.startswith("cni-")]
