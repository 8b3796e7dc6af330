"""``cnitool node install|uninstall`` against a temp dir as the host root: what lands
where, that a second run changes nothing, that files it did not write are refused or
backed up, that a failed copy leaves nothing half-done, and that uninstall gives back
the tree exactly as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import cnitool
from cnitool import launchers, nodeinstall

CONFLIST = {"cniVersion": "1.0.0", "name": "podnet", "plugins": [{"type": "bridge"}]}


def snapshot(root: Path) -> dict[str, Any]:
    """Every path under root: its content hash (files), target (links), or 'dir'."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_ino)
    return out


@pytest.fixture
def host(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    (root / "usr" / "bin").mkdir(parents=True)
    os.symlink(os.path.realpath(sys.executable), root / "usr" / "bin" / "python3")
    (root / "opt" / "cni" / "bin").mkdir(parents=True)
    (root / "opt" / "cni" / "bin" / "vrf").write_bytes(b"\x7fELF a Go plugin")
    (root / "etc" / "cni" / "net.d").mkdir(parents=True)
    (root / "etc" / "cni" / "net.d" / "05-other.conflist").write_text("{}")
    return root


@pytest.fixture
def conflist(tmp_path: Path) -> Path:
    path = tmp_path / "10-podnet.conflist"
    path.write_text(json.dumps(CONFLIST))
    return path


def test_install_places_everything_and_uninstall_gives_the_tree_back(
    host: Path, conflist: Path
) -> None:
    before = snapshot(host)
    steps = nodeinstall.install(str(host), conflist=str(conflist))
    actions = {s.path: s.action for s in steps}
    assert actions["/opt/pycni/lib"] == "installed"
    assert actions["/opt/cni/bin/bridge"] == "installed"
    assert actions["/etc/cni/net.d/10-podnet.conflist"] == "installed"
    bridge = (host / "opt/cni/bin/bridge").read_text()
    assert bridge.startswith("#!/usr/bin/python3 -IS\n")
    assert "sys.path.insert(0, '/opt/pycni/lib')\nroute(" in bridge
    assert os.stat(host / "opt/cni/bin/bridge").st_mode & 0o777 == 0o755
    lib = host / "opt/pycni/lib"
    assert (lib / "cnitool_plugins/bridge/__main__.py").is_file()
    assert (lib / "cnitool/skel.py").is_file()
    assert not list(lib.rglob("*.pyc")) and not list(lib.rglob("__pycache__"))
    assert json.loads((host / "etc/cni/net.d/10-podnet.conflist").read_text()) == CONFLIST
    manifest = json.loads((host / "opt/pycni/install.json").read_text())
    assert "/opt/cni/bin/bridge" in manifest["files"]
    assert "/opt/cni/bin/vrf" not in manifest["files"]  # not ours, not touched
    # nothing temporary is left anywhere
    assert not [p for p in host.rglob(".*")]
    nodeinstall.uninstall(str(host))
    assert snapshot(host) == before


def test_a_second_install_changes_nothing(host: Path, conflist: Path) -> None:
    nodeinstall.install(str(host), conflist=str(conflist))
    first = snapshot(host)
    steps = nodeinstall.install(str(host), conflist=str(conflist))
    assert {s.action for s in steps} == {"unchanged"}
    assert snapshot(host) == first  # same content and the same inodes: nothing rewritten


def test_files_it_did_not_write_are_refused_or_backed_up(host: Path, conflist: Path) -> None:
    go_bridge = host / "opt/cni/bin/bridge"
    go_bridge.write_bytes(b"\x7fELF the Go bridge")
    before = snapshot(host)
    steps = nodeinstall.install(str(host), plugins=["bridge", "host-local"], conflist=str(conflist))
    assert {s.path: s.action for s in steps}["/opt/cni/bin/bridge"] == "refused"
    assert go_bridge.read_bytes() == b"\x7fELF the Go bridge"
    steps = nodeinstall.install(
        str(host), plugins=["bridge", "host-local"], conflist=str(conflist), force=True
    )
    assert {s.path: s.action for s in steps}["/opt/cni/bin/bridge"] == "replaced"
    assert go_bridge.read_text().startswith("#!/usr/bin/python3")
    assert (host / "opt/pycni/backup/opt/cni/bin/bridge").read_bytes() == b"\x7fELF the Go bridge"
    nodeinstall.uninstall(str(host))
    assert go_bridge.read_bytes() == b"\x7fELF the Go bridge"
    assert snapshot(host) == {**before, "opt/cni/bin/bridge": snapshot(host)["opt/cni/bin/bridge"]}
    assert not (host / "opt/pycni").exists()


def test_uninstall_keeps_a_file_changed_since(host: Path) -> None:
    nodeinstall.install(str(host), plugins=["loopback"])
    launcher = host / "opt/cni/bin/loopback"
    launcher.write_text("#!/bin/sh\n# edited by the operator\n")
    steps = nodeinstall.uninstall(str(host))
    assert {s.path: s.action for s in steps}["/opt/cni/bin/loopback"] == "kept"
    assert launcher.read_text().endswith("edited by the operator\n")
    assert not (host / "opt/pycni/lib").exists()


def test_a_failed_copy_leaves_no_half_tree(host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = shutil.copyfile

    def flaky(src: str, dst: str) -> Any:
        calls["n"] += 1
        if calls["n"] == 20:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(shutil, "copyfile", flaky)
    with pytest.raises(OSError, match="No space"):
        nodeinstall.install(str(host))
    assert not (host / "opt/pycni").exists() or os.listdir(host / "opt/pycni") == []
    assert sorted(os.listdir(host / "opt/cni/bin")) == ["vrf"]


def test_a_host_without_python_is_refused(tmp_path: Path) -> None:
    with pytest.raises(nodeinstall.NodeInstallError, match="no Python at /usr/bin/python3"):
        nodeinstall.install(str(tmp_path))


def test_the_cli(host: Path, conflist: Path) -> None:
    argv = [sys.executable, "-m", "cnitool.cli", "node", "install", "--host-root", str(host)]
    p = subprocess.run(
        [*argv, "--conflist", str(conflist), "loopback"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    rows = json.loads(p.stdout)
    assert {"path": "/opt/cni/bin/loopback", "action": "installed", "detail": ""} in rows
    argv = [sys.executable, "-m", "cnitool.cli", "node", "uninstall", "--host-root", str(host)]
    p = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    assert not (host / "opt/cni/bin/loopback").exists()


@pytest.mark.skipif(launchers.find_compiler() is None, reason="no C compiler")
def test_native_launchers_switch_with_python_ones_and_uninstall(host: Path, tmp_path: Path) -> None:
    cc = launchers.find_compiler()
    assert cc is not None
    program = tmp_path / "launcher"
    program.write_bytes(launchers.build_native(cc))
    before = snapshot(host)
    nodeinstall.install(str(host), plugins=["bridge"], native_launcher=str(program))
    bridge = (host / "opt/cni/bin/bridge").read_bytes()
    assert bridge.startswith(program.read_bytes())
    assert launchers.parse_trailer(bridge) == ("/usr/bin/python3", "bridge", cnitool.__version__)
    assert b"sys.path.insert(0, '/opt/pycni/lib')\nfrom cnitool_plugins._launch" in bridge
    # VERSION is the launcher's own answer, no interpreter
    version = subprocess.run(
        [str(host / "opt/cni/bin/bridge")], env={"CNI_COMMAND": "VERSION"}, capture_output=True
    )
    assert version.returncode == 0
    assert "1.0.0" in json.loads(version.stdout)["supportedVersions"]
    # back to Python launchers: the native one is ours, replaced without --force
    steps = nodeinstall.install(str(host), plugins=["bridge"])
    assert {s.path: s.action for s in steps}["/opt/cni/bin/bridge"] != "refused"
    assert (host / "opt/cni/bin/bridge").read_bytes().startswith(b"#!/usr/bin/python3 -IS\n")
    nodeinstall.install(str(host), plugins=["bridge"], native_launcher=str(program))
    nodeinstall.uninstall(str(host))
    assert snapshot(host) == before


def test_a_native_launcher_that_is_not_a_program_is_refused(host: Path, tmp_path: Path) -> None:
    text = tmp_path / "not-elf"
    text.write_text("#!/bin/sh\n")
    with pytest.raises(nodeinstall.NodeInstallError, match="not an ELF file"):
        nodeinstall.install(str(host), native_launcher=str(text))
    installed = tmp_path / "installed"
    installed.write_bytes(b"\x7fELF" + launchers.native_trailer("bridge", "/usr/bin/python3"))
    with pytest.raises(nodeinstall.NodeInstallError, match="an installed launcher"):
        nodeinstall.install(str(host), native_launcher=str(installed))
    with pytest.raises(nodeinstall.NodeInstallError, match="cannot read"):
        nodeinstall.install(str(host), native_launcher=str(tmp_path / "missing"))
    assert not (host / "opt/pycni").exists()  # refused before anything was written


def test_the_cli_takes_the_native_launcher_from_the_environment(host: Path, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "cnitool.cli", "node", "install", "--host-root", str(host)]
    env = {**os.environ, "PYCNI_NATIVE_LAUNCHER": str(tmp_path / "missing")}
    p = subprocess.run([*argv, "loopback"], capture_output=True, text=True, env=env, check=False)
    assert p.returncode != 0
    assert "cannot read the native launcher program" in p.stdout + p.stderr
    assert not (host / "opt/cni/bin/loopback").exists()
