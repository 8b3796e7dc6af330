"""Long work shows progress on a terminal's stderr and nothing on a pipe: gc over many
attachments, networks --validate over many plugins, plugin installs."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from cnitool.libcni.cache import ResultCache
from cnitool.libcni.config import conf_list_from_bytes
from cnitool.libcni.runtime import RuntimeConf

QUIET_PLUGIN = """#!/bin/sh
if [ "$CNI_COMMAND" = VERSION ]; then
  echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'
fi
exit 0
"""


def cnitool(tmp: Path, *args: str, tty: bool) -> tuple[int, str, str]:
    """Run cnitool with stdout on a pipe and stderr on a pipe or a terminal."""
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100", "CNI_PATH": str(tmp / "bin")}
    env["NETCONFPATH"] = str(tmp / "conf")
    argv = [sys.executable, "-m", "cnitool.cli", *args]
    if not tty:
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
        return p.returncode, p.stdout, p.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        err += chunk
    out, _ = proc.communicate(timeout=120)
    os.close(master)
    return proc.returncode, out, err.decode(errors="replace")


@pytest.fixture
def node(tmp_path: Path) -> Path:
    (tmp_path / "bin").mkdir()
    plugin = tmp_path / "bin" / "quiet"
    plugin.write_text(QUIET_PLUGIN)
    plugin.chmod(0o755)
    (tmp_path / "conf").mkdir()
    for i in range(12):
        body = {"cniVersion": "1.0.0", "name": f"net{i}", "plugins": [{"type": "quiet"}]}
        (tmp_path / "conf" / f"{i:02}.conflist").write_text(json.dumps(body))
    return tmp_path


def cache_many(tmp: Path, count: int) -> None:
    net = conf_list_from_bytes((tmp / "conf" / "00.conflist").read_bytes())
    cache = ResultCache(str(tmp / "cache"))
    for i in range(count):
        rt = RuntimeConf(container_id=f"pod{i}", netns=f"/run/netns/gone{i}", ifname="eth0")
        cache.save(net, rt, {"cniVersion": "1.0.0"})


@pytest.mark.parametrize("tty", [False, True])
def test_gc_over_many_attachments(node: Path, tty: bool) -> None:
    cache_many(node, 25)
    code, out, err = cnitool(
        node, "gc", "net0", "--cache-dir", str(node / "cache"), "-o", "json", tty=tty
    )
    assert code == 0, err
    assert out == ""
    assert not list((node / "cache" / "results").iterdir())
    if tty:
        assert "net0: deleting" in err
    else:
        assert err == ""


@pytest.mark.parametrize("tty", [False, True])
def test_networks_validate(node: Path, tty: bool) -> None:
    code, out, err = cnitool(node, "networks", "--validate", "-o", "json", tty=tty)
    assert code == 0, err
    assert len(json.loads(out)) == 12
    if tty:
        assert "validating" in err
    else:
        assert err == ""


@pytest.mark.parametrize("tty", [False, True])
def test_plugins_install(tmp_path: Path, tty: bool) -> None:
    bin_dir = tmp_path / "launchers"
    code, out, err = cnitool(
        tmp_path,
        "plugins",
        "install",
        "--bin-dir",
        str(bin_dir),
        "bridge",
        "ptp",
        "-o",
        "json",
        tty=tty,
    )
    assert code == 0, err
    assert {row["name"] for row in json.loads(out)} >= {"bridge", "ptp"}
    if tty:
        assert "installing" in err
    else:
        assert err == ""
