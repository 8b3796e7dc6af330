"""deploy/kubernetes/pycni.yaml: its install step is run, as written, against a temp dir
as the host root (twice: the second run changes nothing), with the conflist of its
ConfigMap; its service and probe commands parse as cnitool commands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "kubernetes" / "pycni.yaml"


def block_list(text: str, after: str) -> list[str]:
    """The ``- item`` lines of the YAML list that starts below the line ``after``."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == after) + 1
    items = []
    for ln in lines[start:]:
        s = ln.strip()
        if s.startswith("#"):
            continue
        if not s.startswith("- "):
            break
        items.append(s[2:])
    return items


def install_command() -> list[str]:
    text = MANIFEST.read_text()
    section = text[text.index("- name: install-cni") :]
    return block_list(section, "command:")


def configmap_conflist() -> str:
    lines = MANIFEST.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == "10-pycni.conflist: |") + 1
    indent = len(lines[start]) - len(lines[start].lstrip())
    body = []
    for ln in lines[start:]:
        if ln.strip() and len(ln) - len(ln.lstrip()) < indent:
            break
        body.append(ln[indent:])
    return "\n".join(body)


def test_the_install_step_runs_against_a_fake_host_root(tmp_path: Path) -> None:
    argv = install_command()
    assert argv[:5] == ["cnitool", "node", "install", "--host-root", "/host"]
    host = tmp_path / "host"
    (host / "usr" / "bin").mkdir(parents=True)
    os.symlink(os.path.realpath(sys.executable), host / "usr" / "bin" / "python3")
    conf_dir = tmp_path / "etc-pycni"
    conf_dir.mkdir()
    conflist = configmap_conflist()
    assert json.loads(conflist)["name"] == "pycni"
    (conf_dir / "10-pycni.conflist").write_text(conflist)
    args = [
        str(host)
        if a == "/host"
        else str(conf_dir / "10-pycni.conflist")
        if a.startswith("/etc/pycni/")
        else a
        for a in argv[1:]
    ]
    run = [sys.executable, "-m", "cnitool.cli", *args, "-o", "json"]
    first = subprocess.run(run, capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 0, first.stderr
    assert (host / "opt/cni/bin/bridge").is_file()
    assert json.loads((host / "etc/cni/net.d/10-pycni.conflist").read_text())["name"] == "pycni"
    again = subprocess.run(run, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert {row["action"] for row in json.loads(again.stdout)} == {"unchanged"}
    # the volumes the install step mounts are the host paths it writes
    text = MANIFEST.read_text()
    for path in ("/opt/cni/bin", "/opt/pycni", "/etc/cni/net.d", "/usr/bin"):
        assert re.search(rf"mountPath: /host{re.escape(path)}\b", text), path
        assert f"path: {path}," in text, path


def test_the_service_and_probe_commands_parse(tmp_path: Path) -> None:
    text = MANIFEST.read_text()
    service = re.search(r"command: \[cnitool, (serve, --[^\]]*)\]", text)
    probe = re.search(r"command: \[cnitool, (serve, status, [^\]]*)\]", text)
    assert service and probe
    cnitool = [sys.executable, "-m", "cnitool.cli"]
    args = [a.strip() for a in service.group(1).split(",")]
    assert "/run/pycni/plugins.sock" in args
    # the service's options parse (--help stops before it would start serving)
    p = subprocess.run([*cnitool, *args, "--help"], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    # the probe, with nothing listening: not ready (exit 1), and says so in JSON
    args = [a.strip() for a in probe.group(1).split(",")]
    sock = str(tmp_path / "plugins.sock")
    args = [sock if a == "/run/pycni/plugins.sock" else a for a in args]
    p = subprocess.run([*cnitool, *args], capture_output=True, text=True, check=False)
    assert p.returncode == 1
    assert json.loads(p.stdout)["up"] is False
