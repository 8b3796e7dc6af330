"""Fault suite, bounds: huge and deeply nested input, exec'd as a runtime would send it.

Each plugin launcher gets a 64 MiB config on stdin (one long string; an array of empty
arrays, the shape that costs Python most: ~50 bytes of objects per 3 bytes of text), an
array just under the stdin limit, and 400,000 levels of nesting; ``cnitool add`` gets
the same as a conflist file, and a plugin that writes 300 MiB. Every call must end in
one clear error, leave nothing in the state dirs, and peak below ``RSS_LIMIT_KIB`` (the
child's own peak RSS, as GNU time reports it). Before the limits on what is read, the 64 MiB
array peaked at 3 GiB.

``PYCNI_BOUNDS_MIB=512`` raises the size of the huge inputs for a longer run by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fault_helpers import figures, install, plugin_env, protocol_problem, scale, state_files

from cnitool.spec.jsonfmt import MAX_JSON_BYTES

pytestmark = pytest.mark.root

MIB = 1 << 20
TIME = "/usr/bin/time"  # GNU time (Debian package time)
RSS_LIMIT_KIB = 128 * 1024  # an idle plugin is ~15 MiB; the worst input within the limit ~65
PLUGINS = ("host-local", "bridge", "portmap", "tuning", "flannel")
HEAD = '{"cniVersion":"1.0.0","name":"big","type":"x","ipam":{"type":"host-local"},"x":'


def huge_string(size: int) -> Iterator[bytes]:
    yield HEAD.encode() + b'"'
    for _ in range(size // MIB):
        yield b"a" * MIB
    yield b'"}'


def empty_arrays(size: int) -> Iterator[bytes]:
    head = HEAD.encode() + b"["
    yield head
    left = max(0, (size - len(head) - 8) // 3)
    while left:
        n = min(left, MIB // 3)
        yield b"[]," * n
        left -= n
    yield b"[]]}"


def deep(levels: int) -> Iterator[bytes]:
    yield HEAD.encode() + b"[" * levels + b"]" * levels + b"}"


def inputs() -> dict[str, Callable[[], Iterator[bytes]]]:
    size = scale("PYCNI_BOUNDS_MIB", 64) * MIB
    return {
        "string": lambda: huge_string(size),
        "arrays": lambda: empty_arrays(size),
        "arrays-at-limit": lambda: empty_arrays(MAX_JSON_BYTES),
        "deep": lambda: deep(400_000),
    }


def write_input(path: Path, parts: Iterator[bytes]) -> Path:
    with open(path, "wb") as f:
        for part in parts:
            f.write(part)
    return path


def run_measured(
    argv: list[str], env: dict[str, str], stdin: Path | None = None
) -> tuple[int, bytes, str, int]:
    """Run ``argv`` (stdin from a file, or none); (exit code, stdout, stderr, peak RSS in
    KiB). GNU time starts it: a child's peak RSS counts the memory of the process it was
    forked from, so measured straight from pytest it could never read below pytest's own
    size; forked from time it starts at a few MiB."""
    with tempfile.NamedTemporaryFile("r") as rss_file, open(stdin or os.devnull, "rb") as src:
        timed = [TIME, "-f", "%M", "-o", rss_file.name, *argv]
        proc = subprocess.run(timed, stdin=src, capture_output=True, env=env, timeout=300)
        rss = int(rss_file.read().split()[-1])
    return proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"), rss


@pytest.fixture(scope="module")
def big_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("bounds")
    return {name: write_input(tmp / f"{name}.json", make()) for name, make in inputs().items()}


@pytest.mark.parametrize("plugin", PLUGINS)
def test_huge_config_on_stdin(plugin: str, tmp_path: Path, big_inputs: dict[str, Path]) -> None:
    """A clear error, bounded memory, nothing written, for every huge input."""
    bin_dir = install(tmp_path / "bin", plugin, "host-local")
    counts = figures("bounds", plugin)
    problems = []
    for name, path in big_inputs.items():
        env = plugin_env("ADD", "c1", "/nonexistent/netns", str(bin_dir))
        code, out, _, rss = run_measured([str(bin_dir / plugin)], env, path)
        counts["attempts"] += 1
        counts["peak RSS KiB"] = max(counts["peak RSS KiB"], rss)
        obj = json.loads(out) if out.strip() else None
        problem = protocol_problem(code, obj, "") or ("succeeded" if code == 0 else "")
        if rss > RSS_LIMIT_KIB:
            problem = f"peak RSS {rss} KiB"
        leaks = state_files(Path("/var/lib/cni"))
        counts["leaks"] += bool(leaks)
        if problem or leaks:
            counts["failures"] += 1
            problems.append(f"{name}: {problem} {leaks}")
    assert problems == []


def test_cnitool_huge_conflist(tmp_path: Path, big_inputs: dict[str, Path]) -> None:
    """``cnitool add`` refuses a huge conflist file with a clear error, in bounded memory."""
    counts = figures("bounds", "cnitool add")
    problems = []
    for name, path in big_inputs.items():
        conf_dir = tmp_path / name
        conf_dir.mkdir()
        (conf_dir / "10-big.conflist").symlink_to(path)
        env = {**os.environ, "NETCONFPATH": str(conf_dir), "CNI_PATH": str(tmp_path)}
        argv = [sys.executable, "-m", "cnitool.cli", "add", "big", "/nonexistent/netns"]
        argv += ["--cache-dir", str(tmp_path / "cache")]
        code, _, err, rss = run_measured(argv, env)
        counts["attempts"] += 1
        counts["peak RSS KiB"] = max(counts["peak RSS KiB"], rss)
        problem = ""
        if code == 0 or "Traceback" in err or "cnitool:" not in err:
            problem = f"exit {code}: {err[-300:]}"
        if rss > RSS_LIMIT_KIB:
            problem = f"peak RSS {rss} KiB"
        if problem:
            counts["failures"] += 1
            problems.append(f"{name}: {problem}")
    assert problems == []


def test_cnitool_huge_plugin_output(tmp_path: Path, netns_factory: Callable[[], str]) -> None:
    """A plugin that writes 300 MiB is killed; cnitool fails clearly, in bounded memory
    (before the bound it held all the output)."""
    counts = figures("bounds", "cnitool add, 300 MiB plugin stdout")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    flood = bin_dir / "flood"
    flood.write_text("#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\nyes '[[],' | head -c 300M\n")
    flood.chmod(0o755)
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    conflist = {"cniVersion": "1.0.0", "name": "flood", "plugins": [{"type": "flood"}]}
    (conf_dir / "10-flood.conflist").write_text(json.dumps(conflist))
    env = {**os.environ, "NETCONFPATH": str(conf_dir), "CNI_PATH": str(bin_dir)}
    argv = [sys.executable, "-m", "cnitool.cli", "add", "flood", netns_factory()]
    argv += ["--cache-dir", str(tmp_path / "cache")]
    code, _, err, rss = run_measured(argv, env)
    counts["attempts"] += 1
    counts["peak RSS KiB"] = rss
    ok = code == 1 and f"more than {MAX_JSON_BYTES} bytes" in err and rss < RSS_LIMIT_KIB
    counts["failures"] += not ok
    assert ok, (code, rss, err[-500:])
