"""The seed's 10-flannel.conflist end to end: cnitool (CLI) runs our flannel (delegating to
our bridge + host-local) and our portmap inside a fresh node netns; a TCP server in the pod
answers through nodeIP:hostPort from another netns and through 127.0.0.1:hostPort on the
node; after DEL no per-container chain, rule, lease, link, scratch file or cache entry is
left (the shared CNI-HOSTPORT-* chains and the cni0 bridge stay, as with the Go plugins)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

SEED_CONFLIST = """{
"cniVersion": "0.3.1",
"name": "cni0",
"plugins": [
{
"delegate": {
"forceAddress": true,
"isDefaultGateway": true
},
"type": "flannel"
},
{
"capabilities": {
"portMappings": true
},
"type": "portmap"
}
]
}
"""
SUBNET_ENV = (
    "FLANNEL_NETWORK=172.28.0.0/14\nFLANNEL_SUBNET=172.28.2.1/24\n"
    "FLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n"
)
SERVER = (
    "import socket,sys\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 80)); s.listen(8); print('ready', flush=True)\n"
    "while True:\n"
    "    c,a=s.accept(); c.sendall(b'hello from pod'); c.close()\n"
)
CLIENT = (
    "import socket,sys\n"
    "c=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n"
    "print(c.recv(100).decode())\n"
)


def sh(*args: str, netns: str | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    argv = [*(["nsenter", f"--net={netns}"] if netns else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]


def fetch(netns: str, host: str, port: int) -> str:
    p = sh(sys.executable, "-c", CLIENT, host, str(port), netns=netns)
    assert p.returncode == 0, p.stderr
    return str(p.stdout.strip())


@pytest.fixture
def bin_dir(tmp_path: Path, python: str) -> Path:
    from cnitool import launchers

    d = tmp_path / "bin"
    launchers.install(
        str(d), ["flannel", "bridge", "host-local", "portmap", "loopback"], python=python
    )
    return d


@pytest.mark.parametrize(
    ("backend", "flannel_masq"),
    [("auto", True), ("legacy", False)],
    ids=["seed-nft", "legacy-bridge-ipmasq"],
)
def test_seed_flannel_portmap_chain(
    netns_factory: Callable[[], str],
    tmp_path: Path,
    bin_dir: Path,
    backend: str,
    flannel_masq: bool,
) -> None:
    """``seed-nft`` is the seed as is (the host's nf_tables iptables); the other runs the
    same list on legacy x_tables with FLANNEL_IPMASQ=false, so the bridge adds (and must
    remove) its ipMasq chain too, and with ``hairpinMode`` so the pod can reach itself
    through the hostPort."""
    node, pod, client = netns_factory(), netns_factory(), netns_factory()
    n_node, n_client = os.path.basename(node), os.path.basename(client)
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    conflist = SEED_CONFLIST
    if not flannel_masq:
        conflist = conflist.replace(
            '"forceAddress": true,', '"forceAddress": true,\n"hairpinMode": true,'
        )
        assert "hairpinMode" in conflist
    (conf_dir / "10-flannel.conflist").write_text(conflist)
    os.makedirs("/run/flannel", exist_ok=True)
    subnet_env = SUBNET_ENV if flannel_masq else SUBNET_ENV.replace("=true", "=false")
    Path("/run/flannel/subnet.env").write_text(subnet_env)
    env = dict(os.environ, PYCNI_IPTABLES_BACKEND=backend)
    save4, save6 = (
        ("iptables-legacy-save", "ip6tables-legacy-save")
        if backend == "legacy"
        else ("iptables-nft-save", "ip6tables-nft-save")
    )
    cache = tmp_path / "cache"
    # node <-> client link (the "outside" of the node)
    subprocess.run(
        [
            "ip",
            "-n",
            n_node,
            "link",
            "add",
            "up0",
            "type",
            "veth",
            "peer",
            "name",
            "up1",
            "netns",
            n_client,
        ],
        check=True,
    )
    subprocess.run(["ip", "-n", n_node, "addr", "add", "192.168.77.1/24", "dev", "up0"], check=True)
    subprocess.run(
        ["ip", "-n", n_client, "addr", "add", "192.168.77.2/24", "dev", "up1"], check=True
    )
    subprocess.run(["ip", "-n", n_node, "link", "set", "up0", "up"], check=True)
    subprocess.run(["ip", "-n", n_client, "link", "set", "up1", "up"], check=True)

    cnitool = [str(Path(sys.executable).parent / "cnitool")]
    common = [
        "--cni-conf-dir",
        str(conf_dir),
        "--cni-bin-dir",
        str(bin_dir),
        "--cache-dir",
        str(cache),
    ]
    caps = json.dumps(
        {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    )
    add = sh(
        *cnitool, "add", "cni0", pod, *common, "--cap-args", caps, "-o", "json", netns=node, env=env
    )
    assert add.returncode == 0, add.stderr
    result = json.loads(add.stdout)
    assert result["cniVersion"] == "0.3.1"
    pod_ip = result["ips"][0]["address"].split("/")[0]
    assert pod_ip.startswith("172.28.2.")
    cid = "cnitool-" + hashlib.sha512(os.path.abspath(pod).encode()).hexdigest()[:20]
    masq_chain = "CNI-" + hashlib.sha512(("cni0" + cid).encode()).hexdigest()[:24]
    added = sh(save4, "-t", "nat", netns=node).stdout
    assert "CNI-DN-" in added
    assert (masq_chain in added) is not flannel_masq  # the bridge masquerades iff flannel won't

    server = subprocess.Popen(
        ["nsenter", f"--net={pod}", sys.executable, "-c", SERVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        assert fetch(client, "192.168.77.1", 8080) == "hello from pod"
        assert fetch(node, "127.0.0.1", 8080) == "hello from pod"  # route_localnet + masquerade
        assert fetch(node, "192.168.77.1", 8080) == "hello from pod"  # the node's own address
        if not flannel_masq:
            # the pod reaches itself through the node's hostPort (SETMARK + MASQ); needs the
            # bridge port in hairpin mode (br_netfilter bridges the DNATed packet back out
            # of the port it came in), which the seed list does not set
            assert fetch(pod, "192.168.77.1", 8080) == "hello from pod"
        chk = sh(*cnitool, "check", "cni0", pod, *common, netns=node, env=env)
        # the seed list is 0.3.1: CHECK is refused before any plugin runs
        assert chk.returncode == 1 and "does not support the CHECK command" in chk.stderr
        chains = sh(*cnitool, "chains", "-o", "json", netns=node)
        assert chains.returncode == 0, chains.stderr
        report = json.loads(chains.stdout)
        (net,) = report["networks"]
        assert net["network"] == "cni0" and net["containers"][0]["containerID"] == cid
        maps = net["containers"][0]["portMappings"]
        assert maps[0]["hostPort"] == 8080 and maps[0]["podIP"] == pod_ip
        assert maps[0]["packets"] >= 1  # the connections above went through the DNAT rule
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()

    delete = sh(*cnitool, "del", "cni0", pod, *common, netns=node, env=env)
    assert delete.returncode == 0, delete.stderr
    save = sh(save4, netns=node).stdout
    for needle in (cid, "CNI-DN-", masq_chain[4:]):
        assert needle not in save, save
    assert sorted(ln.split()[0] for ln in save.splitlines() if ln.startswith(":CNI-")) == [
        ":CNI-HOSTPORT-DNAT",
        ":CNI-HOSTPORT-MASQ",
        ":CNI-HOSTPORT-SETMARK",
    ]
    save6 = sh(save6, netns=node).stdout
    assert cid not in save6 and "CNI-DN-" not in save6 and masq_chain not in save6, save6
    if backend == "auto":  # an nf_tables node: not even empty legacy tables were created
        for names in ("/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"):
            assert sh("cat", names, netns=node).stdout.strip() == "", names
    else:  # nothing was written through iptables-nft
        assert "CNI-" not in sh("iptables-nft-save", netns=node).stdout
    after = json.loads(sh(*cnitool, "chains", "-o", "json", netns=node).stdout)
    assert after["networks"] == [] and after["orphans"] == [], after
    lease_dir = "/var/lib/cni/networks/cni0"
    leases = os.listdir(lease_dir)
    assert [f for f in leases if f not in ("lock", ".pycni") and "last_reserved" not in f] == []
    if ".pycni" in leases:  # nor the attachment's lookup hint
        assert os.listdir(os.path.join(lease_dir, ".pycni")) == []
    assert not os.path.exists(f"/var/lib/cni/flannel/{cid}")
    assert not os.listdir(cache / "results") if (cache / "results").exists() else True
    node_links = sh("ip", "-o", "link", netns=node).stdout
    assert "veth" not in node_links
    assert "eth0" not in sh("ip", "-o", "link", netns=pod).stdout
    # a second DEL still succeeds
    assert sh(*cnitool, "del", "cni0", pod, *common, netns=node, env=env).returncode == 0
    os.unlink("/run/flannel/subnet.env")
