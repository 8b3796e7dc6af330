"""The launchers ``cnitool node install`` writes run on the host with nothing but the
host's Python and /opt/pycni/lib: a private mount namespace shows the fake host root's
/opt at /opt, and the installed host-local is called cold (no plugin service)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import cnitool
from cnitool import launchers, nodeinstall

pytestmark = pytest.mark.root

HOST_PYTHON = "/usr/bin/python3"


@pytest.mark.parametrize("kind", ["python", "native"])
def test_an_installed_launcher_runs_with_the_hosts_python(tmp_path: Path, kind: str) -> None:
    native = None
    if kind == "native":
        cc = launchers.find_compiler()
        if cc is None:
            pytest.skip("no C compiler to build the native launcher program")
        native = tmp_path / "launcher-program"
        native.write_bytes(launchers.build_native(cc))
    if not os.access(HOST_PYTHON, os.X_OK):
        pytest.skip(f"no {HOST_PYTHON} on this machine")
    version = subprocess.run(
        [HOST_PYTHON, "-c", "import sys; print(sys.version_info >= (3, 11))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if version != "True":
        pytest.skip(f"{HOST_PYTHON} is older than 3.11")
    root = tmp_path / "host"
    (root / "usr" / "bin").mkdir(parents=True)
    os.symlink(HOST_PYTHON, root / "usr" / "bin" / "python3")
    nodeinstall.install(
        str(root), plugins=["host-local"], native_launcher=None if native is None else str(native)
    )
    conf = {
        "cniVersion": "1.0.0",
        "name": "nodenet",
        "ipam": {"type": "host-local", "subnet": "10.77.0.0/24", "dataDir": str(tmp_path / "d")},
    }
    script = (
        "mount -t tmpfs none /opt && mkdir -p /opt/pycni /opt/cni/bin"
        f" && mount --bind {root}/opt/pycni /opt/pycni"
        f" && mount --bind {root}/opt/cni/bin /opt/cni/bin"
        " && exec /opt/cni/bin/host-local"
    )
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "nodeinstall1",
        "CNI_NETNS": "/run/netns/unused",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin",
        "PYCNI_SOCKET": str(tmp_path / "no-service.sock"),  # the cold path, for sure
    }
    p = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        input=json.dumps(conf),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["ips"][0]["address"] == "10.77.0.2/24"
    assert (tmp_path / "d" / "nodenet" / "10.77.0.2").read_bytes() == b"nodeinstall1\r\neth0"
    # the launcher really ran the host's Python on the installed packages
    launcher = (root / "opt/cni/bin/host-local").read_bytes()
    if native is None:
        assert launcher.startswith(b"#!/usr/bin/python3 -IS\n")
    else:
        assert launcher.startswith(native.read_bytes())
        assert launchers.parse_trailer(launcher) == (HOST_PYTHON, "host_local", cnitool.__version__)
