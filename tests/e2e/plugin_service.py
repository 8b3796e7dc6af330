"""Helpers of the e2e tests with real runtimes: run a runtime's plugin calls cold (a fresh interpreter per exec) or warm (through a
``cnitool serve`` plugin service): the e2e tests with real runtimes take either path."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from cnitool.warm import service

SAFETY = 60  # seconds: a service that never answers fails the test instead of hanging it


@contextlib.contextmanager
def plugin_path(path: str, tmp: Path, python: str) -> Iterator[dict[str, str]]:
    """The environment a runtime passes on to its plugins for ``path`` (``cold`` or
    ``warm``); for ``warm`` a service runs meanwhile and must have served calls by the end.
    ``cold`` names a socket that does not exist, so no service elsewhere is used."""
    sock = tmp / "pycni-run" / "plugins.sock"
    if path == "cold":
        yield {"PYCNI_SOCKET": str(sock)}
        return
    argv = [python, "-m", "cnitool.cli", "serve", "--socket", str(sock)]
    with open(tmp / "serve.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log)
    try:
        end = time.monotonic() + SAFETY
        while not _answers(sock):
            assert proc.poll() is None, (tmp / "serve.log").read_text()
            assert time.monotonic() < end, "the plugin service did not come up"
            time.sleep(0.05)
        yield {"PYCNI_SOCKET": str(sock)}
        served = service.query_status(str(sock))["requests"]
        assert served > 0, "no plugin call went through the service"
    finally:
        proc.terminate()
        proc.wait(SAFETY)


def _answers(sock: Path) -> bool:
    try:
        service.query_status(str(sock))
    except OSError:
        return False
    return True


def run(*argv: str, netns: str | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    """``argv`` (inside ``netns`` when given), its output as text; never raises on failure."""
    full = [*(["nsenter", f"--net={netns}"] if netns else []), *argv]
    done: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
        full, capture_output=True, text=True, check=False, **kw
    )
    return done


def link(node: str, client: str, net: int) -> str:
    """A veth between ``node`` (192.168.<net>.1, lo up too) and ``client`` (.2): the outside
    of the node. Returns the node's address."""
    n_node, n_client = os.path.basename(node), os.path.basename(client)
    for argv in (
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
            "up1",
            "netns",
            n_client,
        ],
        ["ip", "-n", n_node, "addr", "add", f"192.168.{net}.1/24", "dev", "up0"],
        ["ip", "-n", n_client, "addr", "add", f"192.168.{net}.2/24", "dev", "up1"],
        ["ip", "-n", n_node, "link", "set", "up0", "up"],
        ["ip", "-n", n_client, "link", "set", "up1", "up"],
        ["ip", "-n", n_node, "link", "set", "lo", "up"],
    ):
        subprocess.run(argv, check=True)
    return f"192.168.{net}.1"
