"""Run a runtime's plugin calls cold (a fresh interpreter per exec) or warm (through a
``cnitool serve`` plugin service): the e2e tests with real runtimes take either path."""

from __future__ import annotations

import contextlib
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
