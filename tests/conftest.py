"""Test-wide isolation and fixtures.

When the suite runs as root it first moves itself into a private mount namespace and a
private network namespace (as ``unshare --mount --net --propagation private`` would),
with fresh tmpfs mounts on the directories CNI tools write to. Every bridge, iptables
rule, sysctl, named netns and lease a test makes therefore lives and dies with the test
process: nothing reaches the host. Tests that need root are marked ``root`` and are
skipped, with the reason, when the suite cannot isolate itself.

The checkout is the code under test (``pythonpath`` in pyproject.toml, and an editable
install for what the tests exec), and the tests never write into it: as root the tree is
seen through an overlay whose upper layer is a private tmpfs, so the byte code that exec'd
plugins (``python -I``, which ignores PYTHONDONTWRITEBYTECODE) write, and anything else,
vanishes with the run; as any user, this process and its children write no byte code.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
REFERENCE_BIN = Path("/usr/lib/cni")
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
PRIVATE_DIRS = ("/run/netns", "/var/lib/cni", "/run/cni", "/run/flannel", "/etc/cni", "/run/pycni")
OVERLAY_DIR = "/run/pycni-test"  # a private tmpfs holding the checkout's overlay layers

sys.dont_write_bytecode = True
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"

_isolation_error: str | None = None


def _isolate() -> str | None:
    """Enter private mount+net namespaces; return why not, or None when done."""
    if os.geteuid() != 0:
        return "needs root"
    if os.environ.get("PYCNI_TEST_ISOLATED") == "1":
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS | CLONE_NEWNET) != 0:
        return f"unshare(mount, net) failed: {os.strerror(ctypes.get_errno())}"
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return f"making / private failed: {os.strerror(ctypes.get_errno())}"
    for d in PRIVATE_DIRS:
        # the mount points may have to be created on the host; they stay empty there
        os.makedirs(d, exist_ok=True)
        if libc.mount(b"tmpfs", d.encode(), b"tmpfs", 0, b"mode=0755") != 0:
            return f"mounting a private tmpfs on {d} failed: {os.strerror(ctypes.get_errno())}"
    _overlay_checkout(libc)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # children (plugins, cnitool) inherit both namespaces; mark so nested runs don't redo it
    os.environ["PYCNI_TEST_ISOLATED"] = "1"
    return None


def _overlay_checkout(libc: ctypes.CDLL) -> None:
    """Put the checkout under an overlay whose writes land in a private tmpfs."""
    os.makedirs(OVERLAY_DIR, exist_ok=True)
    if libc.mount(b"tmpfs", OVERLAY_DIR.encode(), b"tmpfs", 0, b"mode=0700") != 0:
        err = os.strerror(ctypes.get_errno())
        print(f"conftest: no private tmpfs on {OVERLAY_DIR} ({err})", file=sys.stderr)
        return
    upper, work = f"{OVERLAY_DIR}/upper", f"{OVERLAY_DIR}/work"
    os.mkdir(upper)
    os.mkdir(work)
    opts = f"lowerdir={REPO},upperdir={upper},workdir={work}".encode()
    if libc.mount(b"overlay", str(REPO).encode(), b"overlay", 0, opts) != 0:
        err = os.strerror(ctypes.get_errno())
        print(f"conftest: the checkout stays writable: overlay failed ({err})", file=sys.stderr)
        return
    os.chdir(os.path.realpath(os.getcwd()))  # resolve the working directory anew


_isolation_error = _isolate()


def _start_warm_service() -> subprocess.Popen[bytes] | None:
    """With PYCNI_TEST_WARM=1 (root, isolated): a plugin service on the default socket in
    the private /run/pycni for the whole run, so every launcher the tests exec takes the
    warm path (the suite then checks the warm path as it checks the cold one)."""
    if os.environ.get("PYCNI_TEST_WARM") != "1" or _isolation_error is not None:
        return None
    socket_path = "/run/pycni/plugins.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnitool.cli", "serve", "--socket", socket_path],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(600):
        if os.path.exists(socket_path):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("PYCNI_TEST_WARM: the plugin service did not come up")


_warm_service = _start_warm_service()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _warm_service is not None:
        from cnitool.warm import service

        info = service.query_status("/run/pycni/plugins.sock")
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"PYCNI_TEST_WARM: the plugin service ran {info['requests']} calls "
                f"({info['failed']} failed, {info['crashed']} crashed, "
                f"{info['ranCold']} sent back), {info['commands']} of them cnitool commands"
            )
        _warm_service.terminate()
        _warm_service.wait(60)
        if info["requests"] == 0 and session.testscollected:
            # the warm run proved nothing about the warm path: fail it
            if reporter is not None:
                reporter.write_line("PYCNI_TEST_WARM: no call reached the plugin service")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        # .ci/run's kernel VM collects only tests/netns: a kernel test elsewhere would
        # never run for real there
        if item.get_closest_marker("kernel") and KERNEL_TESTS not in item.path.parents:
            raise pytest.UsageError(f"{item.nodeid}: kernel-feature tests belong in tests/netns")
    if _isolation_error is None:
        return
    skip = pytest.mark.skip(reason=f"root test skipped: {_isolation_error}")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


# -- kernel features ----------------------------------------------------------------------
# ``@pytest.mark.kernel("ipvlan", ...)``: the test needs these kernel features. Each is
# probed once, by making such a link in the test's private netns; a kernel without one
# skips the test with the reason. PYCNI_KERNEL_REQUIRED=1 (the kernel VM of .ci/run) turns
# that skip into a failure, so a VM kernel that lacks a feature cannot pass by skipping.
KERNEL_TESTS = REPO / "tests" / "netns"
_PROBES: dict[str, list[list[str]]] = {
    "ipvlan": [["link", "add", "kprobe.i", "link", "kprobe0", "type", "ipvlan", "mode", "l2"]],
    "vlan": [["link", "add", "kprobe.v", "link", "kprobe0", "type", "vlan", "id", "7"]],
    "dummy": [["link", "add", "kprobe.d", "type", "dummy"]],
    "bridge_vlan_filtering": [["link", "add", "kprobe.b", "type", "bridge", "vlan_filtering", "1"]],
}
_probed: dict[str, str | None] = {}


def _probe(feature: str) -> str | None:
    """None when the kernel has ``feature``, else why not."""
    if feature not in _PROBES:
        raise pytest.UsageError(f"unknown kernel feature {feature!r} (known: {sorted(_PROBES)})")
    if feature in _probed:
        return _probed[feature]

    def ip(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", *args], capture_output=True, text=True)

    ip("link", "add", "kprobe0", "type", "veth", "peer", "name", "kprobe1")
    why = None
    try:
        for cmd in _PROBES[feature]:
            res = ip(*cmd)
            if res.returncode != 0:
                why = f"`ip {' '.join(cmd)}`: {res.stderr.strip()}"
                break
        if why is None and feature == "bridge_vlan_filtering":
            shown = ip("-d", "link", "show", "kprobe.b").stdout
            if "vlan_filtering 1" not in shown:
                why = "a bridge made with vlan_filtering 1 does not filter"
    finally:
        for name in ("kprobe.i", "kprobe.v", "kprobe.d", "kprobe.b", "kprobe0"):
            ip("link", "del", name)
    _probed[feature] = why
    return why


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("kernel")
    if marker is None or _isolation_error is not None:
        return  # (without isolation the root marker skips it already)
    for feature in marker.args:
        why = _probe(feature)
        if why is None:
            continue
        msg = f"this kernel lacks {feature} ({why})"
        if os.environ.get("PYCNI_KERNEL_REQUIRED") == "1":
            pytest.fail(f"{msg}; PYCNI_KERNEL_REQUIRED=1: a kernel-feature run must not skip")
        pytest.skip(msg)


@pytest.fixture
def python() -> str:
    """The interpreter the tests run under (used for launchers and subprocess CLIs)."""
    return sys.executable


@pytest.fixture
def netns_factory() -> Iterator[Callable[[], str]]:
    """Create named network namespaces (in the private /run/netns); delete them after."""
    made: list[str] = []

    def make() -> str:
        name = "t" + secrets.token_hex(4)
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        made.append(name)
        return f"/run/netns/{name}"

    yield make
    for name in made:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


@pytest.fixture
def reference_bin() -> Path:
    """Debian's Go reference plugins; tests that need them skip without them."""
    if not (REFERENCE_BIN / "bridge").is_file():
        pytest.skip("reference plugins not installed (apt-get install containernetworking-plugins)")
    return REFERENCE_BIN


def which_or_skip(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed")
    return path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fault suites' figures (attempts, outcomes, failures, leaks), when they ran."""
    _fuzz_figures(terminalreporter)
    suites = getattr(sys.modules.get("fault_helpers"), "FIGURES", None) or {}
    for suite, cases in sorted(suites.items()):
        terminalreporter.section(f"{suite} figures")
        for case, counts in sorted(cases.items()):
            shown = ", ".join(f"{value} {key}" for key, value in counts.items())
            terminalreporter.write_line(f"{case}: {shown}")


def _fuzz_figures(terminalreporter: Any) -> None:
    fuzz = sys.modules.get("test_fuzz_plugins")
    figures = getattr(fuzz, "FIGURES", None)
    if not figures:
        return
    terminalreporter.section("fuzz figures")
    for plugin, counts in sorted(figures.items()):
        terminalreporter.write_line(
            f"{plugin}: {counts['cases']} cases (attempts), {counts['exit 0']} exit 0 "
            f"({counts['ADD ok']} ADD then DEL), "
            f"{counts['CNI error']} CNI errors, {counts['failures']} failures, "
            f"{counts['leaks']} leaks"
        )
