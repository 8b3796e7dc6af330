"""Start-up cost: what an installed launcher imports on its cheap paths.

Every plugin call is a new interpreter, so heavy libraries (click, rich, pyroute2,
python-iptables) must stay out of paths that do not need them. ``-X importtime`` lists
every module the interpreter imported, so the test reads the real import set.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cnitool import launchers

FORBIDDEN = ("click", "rich", "pyroute2", "iptc")


def imported_modules(stderr: str) -> set[str]:
    """Module names from ``-X importtime`` output (``import time: self | cumulative | name``)."""
    names: set[str] = set()
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line.split("|")
        if len(parts) != 3:
            continue
        name = parts[2].strip()
        if name == "imported package":  # the header line
            continue
        names.add(name)
    return names


def forbidden_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)


@pytest.fixture
def noop_launcher(tmp_path: Path) -> Path:
    launchers.install(str(tmp_path), ["noop"], compile_bytecode=False, kind="python")
    return tmp_path / "noop"


def run_importtime(
    launcher: Path, env: dict[str, str], stdin: bytes, fresh_netns: bool = False
) -> tuple[bytes, set[str]]:
    """The launcher's stdout and imported modules; with ``fresh_netns`` (as root) in a new
    empty network namespace, so what earlier tests left (legacy iptables tables, which
    rightly make a teardown load python-iptables) does not decide the path taken."""
    first = launcher.read_text().splitlines()[0]
    python = first[2:].split()[0]
    wrap = ["unshare", "--net"] if fresh_netns and os.geteuid() == 0 else []
    proc = subprocess.run(
        [*wrap, python, "-I", "-X", "importtime", str(launcher)],
        input=stdin,
        # the cold path, even when a plugin service is up (PYCNI_TEST_WARM)
        env={**env, "PYCNI_SOCKET": "/nonexistent/plugins.sock"},
        capture_output=True,
        check=False,
    )
    return proc.stdout, imported_modules(proc.stderr.decode())


def test_parser_reads_importtime_lines() -> None:
    sample = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       120 |        120 |   _io\n"
        "import time:      5000 |     225000 | pyroute2\n"
        "some other stderr line\n"
    )
    assert imported_modules(sample) == {"_io", "pyroute2"}
    assert forbidden_in({"pyroute2.iproute", "json", "rich"}) == ["pyroute2.iproute", "rich"]


def test_noop_version_path_imports_nothing_heavy(noop_launcher: Path) -> None:
    out, modules = run_importtime(noop_launcher, {"CNI_COMMAND": "VERSION"}, b"")
    assert out.startswith(b'{"cniVersion":"1.1.0"')
    assert "cnitool.skel" in modules  # the run really went through the plugin
    assert forbidden_in(modules) == []


def test_noop_add_path_imports_nothing_heavy(noop_launcher: Path, tmp_path: Path) -> None:
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/run/netns/c1",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(tmp_path),
    }
    out, modules = run_importtime(noop_launcher, env, b'{"cniVersion":"1.0.0","name":"n"}')
    assert out == b"{}"
    assert "cnitool_plugins.noop.verbs" in modules
    assert forbidden_in(modules) == []


# Every plugin call starts a fresh interpreter, so the plugins' records are NamedTuples
# (``typing`` is loaded anyway) and mutable state is plain classes: ``dataclasses`` (with
# the ``inspect`` it pulls in) would cost every exec several milliseconds.
EXEC_PATH_BUDGET = ("dataclasses", "inspect")
CALLS = {
    # plugin: (verb, config); the netns names nothing, so the plugins stop early but only
    # after loading their verb modules (portmap's DEL loads the whole firewall layer)
    "bridge": ("ADD", {"ipam": {"type": "host-local"}}),
    "ptp": ("ADD", {"ipam": {"type": "host-local"}}),
    "macvlan": ("ADD", {"master": "eth0"}),
    "ipvlan": ("ADD", {"master": "eth0", "ipam": {"type": "host-local"}}),
    "vlan": ("ADD", {"master": "eth0", "ipam": {"type": "host-local"}}),
    "loopback": ("ADD", {}),
    "tuning": ("ADD", {"prevResult": {"cniVersion": "1.0.0"}, "mtu": 1400}),
    "portmap": ("DEL", {"runtimeConfig": {"portMappings": []}, "iptablesBackend": "nft"}),
    "flannel": ("DEL", {}),
    "host-local": ("DEL", {"ipam": {"type": "host-local", "subnet": "10.9.0.0/24"}}),
    "dhcp": ("ADD", {"ipam": {"type": "dhcp", "daemonSocketPath": "/nonexistent/dhcp.sock"}}),
}


@pytest.mark.parametrize("plugin", sorted(CALLS))
def test_plugin_exec_paths_stay_in_the_import_budget(plugin: str, tmp_path: Path) -> None:
    launchers.install(str(tmp_path / "bin"), [plugin], compile_bytecode=False, kind="python")
    verb, extra = CALLS[plugin]
    conf = {"cniVersion": "1.0.0", "name": "n", "type": plugin, "dataDir": str(tmp_path), **extra}
    if "ipam" in conf:
        conf["ipam"] = {**conf["ipam"], "dataDir": str(tmp_path / "leases")}
    env = {
        "CNI_COMMAND": verb,
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/nonexistent/netns",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(tmp_path / "bin"),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    }
    launcher = tmp_path / "bin" / plugin
    _, modules = run_importtime(launcher, env, json.dumps(conf).encode(), fresh_netns=True)
    package = "cnitool_plugins." + plugin.replace("-", "_")
    assert f"{package}.verbs" in modules  # the call reached the plugin's verbs
    assert [m for m in EXEC_PATH_BUDGET if m in modules] == []
    assert forbidden_in(modules) == []
