"""The warm worker's own pieces that run without a service: what it reports when it is
stranded in a container's network namespace, and which descriptors it keeps."""

from __future__ import annotations

import errno
import json
import os
import subprocess

from cnitool.warm import worker


def _in_child(body: object) -> tuple[int, bytes]:
    """Run ``body()`` in a forked child with stdout on a pipe; its exit code and output."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        try:
            os.dup2(w, 1)
            body()  # type: ignore[operator]
        finally:
            os._exit(42)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks)


def test_stranded_worker_reports_a_cni_error_and_ends() -> None:
    code, out = _in_child(lambda: worker._stranded(OSError(errno.EPERM, "Operation not permitted")))
    assert code == 1
    err = json.loads(out)
    assert err["code"] == worker.SETUP_FAILED
    assert err["msg"] == (
        "pycni plugin service: cannot return to the caller's network namespace: "
        "Operation not permitted"
    )


def test_close_except_keeps_only_what_it_is_told() -> None:
    def body() -> None:
        fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(6)]
        keep = [fds[4], fds[1]]
        worker.close_except(keep)
        left = []
        for fd in range(3, 256):
            try:
                os.fstat(fd)
            except OSError:
                continue
            left.append(fd)
        os.write(1, json.dumps({"left": left, "keep": sorted(keep)}).encode())
        os._exit(0)

    code, out = _in_child(body)
    assert code == 0
    got = json.loads(out)
    assert got["left"] == got["keep"]


def test_worker_takes_the_callers_environment_exactly() -> None:
    """os.environ, os.environb and the C library's environment (what a program the
    plugin runs gets) all become the caller's: its variables, bytes and order only."""
    caller = {
        b"CNI_COMMAND": b"ADD",
        b"PATH": b"/usr/sbin:/usr/bin:/sbin:/bin",
        b"A_LAST_IN_ABC": b"x=y",  # '=' in a value
        b"EMPTY": b"",
        b"RAW": b"\xff\xfe not utf-8",
    }

    def body() -> None:
        os.environ["ONLY_IN_THE_SERVICE"] = "1"
        worker.take_environ(caller)
        exec_env = subprocess.run(["/usr/bin/env", "-0"], capture_output=True, check=True).stdout
        report = {
            "environb": [[k.hex(), v.hex()] for k, v in os.environb.items()],
            "environ": dict(os.environ),
            "exec": exec_env.hex(),
        }
        os.write(1, json.dumps(report).encode())
        os._exit(0)

    code, out = _in_child(body)
    assert code == 0
    report = json.loads(out)
    assert [(bytes.fromhex(k), bytes.fromhex(v)) for k, v in report["environb"]] == list(
        caller.items()
    )
    assert report["environ"] == {os.fsdecode(k): os.fsdecode(v) for k, v in caller.items()}
    assert bytes.fromhex(report["exec"]) == b"".join(
        k + b"=" + v + b"\0" for k, v in caller.items()
    )
