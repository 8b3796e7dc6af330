"""What the fault suites (crash, concurrency, disk, firewall, bounds) share: their figures,
our launchers in a temp bin dir, one plugin call, and the scan for what a plugin left.

Figures: each suite counts its attempts, failures and leaks (and what else it saw) in
``FIGURES[suite][case]``; tests/conftest.py prints them at the end of the run. A failure
is an outcome the protocol or the suite forbids; a leak is state left after the
attachment was deleted.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from cnitool import launchers

# suite -> case -> counts ("attempts", "failures", "leaks", then suite-specific ones)
FIGURES: dict[str, dict[str, Counter[str]]] = {}
BASE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# host-local keeps its lock and round-robin position after the last DEL, as Go's does
KEPT = ("lock", "last_reserved_ip.0", "last_reserved_ip.1")


def figures(suite: str, case: str) -> Counter[str]:
    """The counters of one case of a suite (made on first use, in print order)."""
    counts = FIGURES.setdefault(suite, {}).setdefault(case, Counter())
    for key in ("attempts", "failures", "leaks"):
        counts.setdefault(key, 0)
    return counts


def scale(var: str, default: int) -> int:
    """How many rounds a suite runs: ``default`` in CI, the env var's value by hand."""
    return int(os.environ.get(var, "") or default)


def install(bin_dir: Path, *names: str) -> Path:
    """Our launchers for ``names`` in ``bin_dir`` (made if missing)."""
    actions = launchers.install(str(bin_dir), list(names), compile_bytecode=False)
    assert all(a.action == "installed" for a in actions if a.kind == "launcher"), actions
    return bin_dir


def plugin_env(
    cmd: str, cid: str, netns: str, cni_path: str, ifname: str = "eth0", **extra: str
) -> dict[str, str]:
    """The environment a runtime gives a plugin."""
    return {
        "PATH": BASE_PATH,
        "CNI_COMMAND": cmd,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_PATH": cni_path,
        "CNI_ARGS": "",
        **extra,
    }


def call(binary: str, env: dict[str, str], conf: dict[str, Any] | bytes) -> tuple[int, Any, str]:
    """Exec one plugin; (exit code, parsed stdout or None, stderr)."""
    data = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    p = subprocess.run([binary], input=data, env=env, capture_output=True, timeout=120)
    out = json.loads(p.stdout) if p.stdout.strip() else None
    return p.returncode, out, p.stderr.decode(errors="replace")


def protocol_problem(code: int, out: Any, err: str) -> str:
    """'' when a plugin's exit is what CNI allows (0, or 1 with one error object)."""
    if "Traceback" in err:
        return f"traceback: {err[-500:]}"
    if code == 0:
        return ""
    if code != 1:
        return f"exit {code}: {err[-300:]}"
    if not (isinstance(out, dict) and isinstance(out.get("code"), int) and out.get("msg")):
        return f"exit 1 without a CNI error: {out!r}"
    return ""


def state_files(*roots: Path) -> list[str]:
    """Every file under ``roots`` but host-local's kept ones: leases, hints, scratch
    files, backups, cache entries and temporary files."""
    found = []
    for root in roots:
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if not path.is_dir() and path.name not in KEPT:
                found.append(str(path))
    return found


def host_links() -> list[str]:
    """Names of the links in the current netns, but loopback and bridges."""
    out = subprocess.run(
        ["ip", "-j", "-d", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    links = json.loads(out or "[]")
    return sorted(
        link["ifname"]
        for link in links
        if link["ifname"] != "lo"
        and link.get("linkinfo", {}).get("info_kind") not in ("bridge", "dummy")
    )
