"""The forker on its own: the spares it forks are its parent's children (CLONE_PARENT),
each serves one request or ends at EOF, and the forker ends when its parent hangs up."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from cnitool import __version__
from cnitool.warm import forker, wire

needs_clone = pytest.mark.skipif(
    forker.clone_number() is None or os.geteuid() != 0,
    reason="needs root and a machine whose clone(2) arguments this module knows",
)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def take_spares(fk: forker.Forker, count: int) -> list[tuple[int, socket.socket]]:
    fk.sock.setblocking(True)
    fk.sock.settimeout(30)
    fk.sock.send(forker.WANT * count)
    spares = []
    for _ in range(count):
        data, fds, _, _ = socket.recv_fds(fk.sock, 64, 1)
        kind, pid = forker.SPARE_MSG.unpack(data)
        assert kind == forker.SPARE and pid > 0 and len(fds) == 1
        spares.append((pid, socket.socket(fileno=fds[0])))
    return spares


@needs_clone
def test_spares_are_the_parents_children_and_serve_one_request() -> None:
    fk = forker.start(os.getpid())
    assert fk is not None
    try:
        (serving, channel), (idle, idle_channel) = take_spares(fk, 2)
        assert parent_of(serving) == parent_of(idle) == os.getpid() == parent_of(fk.pid)

        req = wire.Request(
            op=wire.OP_RUN, plugin="noop", env={b"CNI_COMMAND": b"VERSION"}, tag=__version__
        )
        out = os.memfd_create("out")
        err = os.memfd_create("err")
        body = os.memfd_create("req")
        os.write(body, wire.encode_request(req))
        caller = [os.open(p, os.O_RDONLY) for p in ("/proc/self/ns/mnt", "/proc/self/ns/net", "/")]
        socket.send_fds(channel, [b"r"], [*caller, out, err, body])
        for fd in [*caller, body]:
            os.close(fd)
        channel.close()
        _, status = os.waitpid(serving, 0)  # ours to reap, not the forker's
        assert os.waitstatus_to_exitcode(status) == 0
        answer = json.loads(os.pread(out, 1 << 16, 0))
        assert "1.0.0" in answer["supportedVersions"]

        idle_channel.close()  # EOF: it ends without running anything
        _, status = os.waitpid(idle, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        forker.stop(fk)
    assert not Path(f"/proc/{fk.pid}").exists()  # reaped at hang-up


def test_preload_leaves_out_what_only_a_plugins_daemon_runs() -> None:
    """dhcp's daemon modules (and logging, which only they import) stay out of the heap
    every plugin worker is forked from; the dhcp plugin's own verbs are in it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from cnitool.warm import service\n"
        "assert 'dhcp' in service.preload(print)\n"
        "print(sorted(m for m in sys.modules if m.startswith('cnitool_plugins.dhcp')))\n"
        "print('logging' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[-2] == str(
        [
            "cnitool_plugins.dhcp",
            "cnitool_plugins.dhcp.__main__",
            "cnitool_plugins.dhcp.config",
            "cnitool_plugins.dhcp.verbs",
            "cnitool_plugins.dhcp.wire",
        ]
    )
    assert out[-1] == "False"
