"""A real runtime drives our plugins: podman (on its CNI backend) runs a container on a
bridge + host-local + portmap network of pycni launchers, inside a fresh node netns.

Podman calls VERSION on every plugin, then ADD and DEL from its own process, as on a node;
the plugins run cold (an interpreter per exec) or warm (through ``cnitool serve``).
The container (busybox httpd from a local rootfs: no image registry is needed) gets an
address, its published port serves a page to another netns through the node's address and
to the node itself through 127.0.0.1, and ``podman rm`` leaves no lease, no per-container
chain and no cache entry behind.

What podman needs here: runc (crun fails on this cgroup setup), explicit nproc/nofile
ulimits (its defaults exceed what the sandbox lets runc set), its storage, run root and
temp dir under the test's temp dir (the run root path kept short for conmon's socket), and
every podman call in this process's private mount namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from plugin_service import link, plugin_path, run

pytestmark = pytest.mark.root

NEEDS = ("podman", "runc", "conmon", "busybox")
CONFLIST = {
    "cniVersion": "1.0.0",
    "name": "pytestnet",
    "plugins": [
        {
            "type": "bridge",
            "bridge": "cni-pytest0",
            "isGateway": True,
            "ipMasq": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.89.7.0/24"}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        },
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}


@pytest.fixture(params=["cold", "warm"])
def podman(
    request: pytest.FixtureRequest, tmp_path: Path, python: str
) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """``podman(*args, netns=...)`` with a private store and CNI config of our plugins."""
    missing = [n for n in NEEDS if shutil.which(n) is None]
    if missing:
        pytest.skip(f"podman test needs {', '.join(missing)} (apt: podman runc busybox-static)")
    from cnitool import launchers

    bin_dir, net_dir = tmp_path / "bin", tmp_path / "net.d"
    launchers.install(str(bin_dir), ["bridge", "host-local", "portmap", "loopback"], python=python)
    net_dir.mkdir()
    (net_dir / "10-pytestnet.conflist").write_text(json.dumps(CONFLIST))
    conf = tmp_path / "containers.conf"
    conf.write_text(
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        "[network]\n"
        'network_backend = "cni"\n'
        f'cni_plugin_dirs = ["{bin_dir}"]\n'
        f'network_config_dir = "{net_dir}"\n'
    )
    runroot = Path("/tmp") / f"pmr{os.getpid()}"  # short: conmon's attach socket path
    base = [
        "podman",
        "--root",
        str(tmp_path / "store"),
        "--runroot",
        str(runroot),
        "--tmpdir",
        str(tmp_path / "libpod"),
        "--storage-driver",
        "vfs",
    ]
    with plugin_path(request.param, tmp_path, python) as path_env:
        env = dict(os.environ, CONTAINERS_CONF=str(conf), **path_env)

        def call(*args: str, netns: str | None = None) -> subprocess.CompletedProcess[str]:
            return run(*base, *args, netns=netns, env=env)

        yield call
    shutil.rmtree(runroot, ignore_errors=True)


def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "www").mkdir()
    busybox = shutil.which("busybox")
    assert busybox is not None
    shutil.copy(busybox, root / "bin" / "busybox")
    (root / "www" / "index.html").write_text("hello from podman\n")
    return root


GET = (
    "import sys, urllib.request\n"
    "print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode(), end='')\n"
)


def fetch(netns: str, url: str) -> str:
    """The page at ``url`` from ``netns``; the server may still be starting (a few tries)."""
    page = run(sys.executable, "-c", GET, url, netns=netns)
    for _ in range(20):
        if page.returncode == 0:
            break
        time.sleep(0.25)
        page = run(sys.executable, "-c", GET, url, netns=netns)
    return page.stdout or f"(no page: {page.stderr.strip().splitlines()[-1:]})"


def state_left(node: str) -> dict[str, list[str]]:
    leases = Path("/var/lib/cni/networks/pytestnet")
    kept = {"lock", "last_reserved_ip.0", ".pycni"}
    nat = run("iptables-save", "-t", "nat", netns=node).stdout
    results = Path("/var/lib/cni/results")
    return {
        "leases": sorted(p.name for p in leases.iterdir() if p.name not in kept)
        if leases.exists()
        else [],
        "chains": sorted(
            {ln.split()[0][1:] for ln in nat.splitlines() if ln.startswith((":CNI-DN-", ":CNI-"))}
            - {"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"}
        ),
        "cache": sorted(p.name for p in results.iterdir() if "pytestnet" in p.name)
        if results.exists()
        else [],
    }


def test_podman_runs_a_container_on_our_plugins(
    podman: Callable[..., subprocess.CompletedProcess[str]],
    netns_factory: Callable[[], str],
    tmp_path: Path,
) -> None:
    node, client = netns_factory(), netns_factory()
    link(node, client, 78)
    nets = podman("network", "ls", "--format", "{{.Name}}", netns=node)
    assert nets.returncode == 0 and "pytestnet" in nets.stdout.split(), nets.stderr
    started = podman(
        "run", "-d", "--name", "web", "--network", "pytestnet", "-p", "8080:80",
        "--ulimit", "nproc=1024:1024", "--ulimit", "nofile=1024:1024",
        "--rootfs", str(rootfs(tmp_path)), "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www",
        netns=node,
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        inspect = podman("inspect", "web", netns=node)
        assert inspect.returncode == 0, inspect.stderr
        settings = json.loads(inspect.stdout)[0]["NetworkSettings"]["Networks"]["pytestnet"]
        assert settings["IPAddress"].startswith("10.89.7.")
        leases = os.listdir("/var/lib/cni/networks/pytestnet")
        assert settings["IPAddress"] in leases  # our host-local made the lease
        for where, url in ((client, "http://192.168.78.1:8080/"), (node, "http://127.0.0.1:8080/")):
            assert fetch(where, url) == "hello from podman\n", url
        during = state_left(node)
        assert during["leases"] and during["chains"] and during["cache"]
    finally:
        removed = podman("rm", "-f", "-t", "0", "web", netns=node)
    assert removed.returncode == 0, removed.stderr
    assert state_left(node) == {"leases": [], "chains": [], "cache": []}
