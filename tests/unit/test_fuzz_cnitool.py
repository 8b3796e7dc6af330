"""Fuzzing cnitool's arguments, environment and configuration files (the plugin side has
``test_fuzz_plugins``): every run must end with exit 0, 1 (a CNI error: one line naming
it) or 2 (usage), never a traceback, and an ADD that succeeded must leave nothing in the
cache once its DEL ran.

The plugin is a shell script that answers like a real one, so no namespace is touched:
the netns arguments are plain files or paths that do not exist (a bare name would make a
named netns). Fixed seed in CI; ``PYCNI_FUZZ_EXAMPLES=N`` for a longer random campaign.
"""

from __future__ import annotations

import json
import os
import string
from collections import Counter
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from test_cli import make_plugin
from test_fuzz_plugins import FIGURES, json_values

from cnitool.cli.main import cli

EXAMPLES = int(os.environ.get("PYCNI_FUZZ_EXAMPLES", "0") or 0)
RANDOM = EXAMPLES > 0
SEED = 20261204

BASE = {
    "cniVersion": "1.0.0",
    "name": "fz",
    "plugins": [{"type": "fz", "capabilities": {"portMappings": True}}],
}
printable = st.text(alphabet=string.printable, max_size=40)
conf_files = st.one_of(
    st.builds(lambda extra: json.dumps({**BASE, **extra}), st.dictionaries(st.text(max_size=12), json_values, max_size=3)),
    st.builds(lambda plugins: json.dumps({**BASE, "plugins": plugins}), json_values),
    st.builds(lambda v: json.dumps({**BASE, "cniVersion": v}), json_values),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.just(json.dumps(BASE)),
    st.just(json.dumps(BASE)),
    st.just(json.dumps(BASE)),
)  # fmt: skip
commands = st.sampled_from(["add", "check", "del", "status", "gc", "networks", "cache", "bogus"])


def netns_arg(existing: Path) -> Any:
    good = [str(existing)] * 4  # most cases get past the arguments
    return st.sampled_from([*good, "/nonexistent/netns", "bad name!", "", "../x/y"])


def test_fuzz_cnitool_inputs(tmp_path: Path) -> None:
    bin_dir, conf, cache = tmp_path / "bin", tmp_path / "conf", tmp_path / "cache"
    for d in (bin_dir, conf, cache):
        d.mkdir()
    make_plugin(bin_dir, "fz", tmp_path / "calls.log")
    existing = tmp_path / "ns"
    existing.write_text("")
    figures = FIGURES.setdefault("cnitool", Counter())
    findings: list[str] = []

    @settings(
        max_examples=EXAMPLES or 150,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        command=commands,
        network=st.one_of(st.just("fz"), st.just("fz"), st.just("fz"), printable),
        netns=netns_arg(existing),
        text=conf_files,
        cni_args=st.one_of(st.just(""), st.just(""), st.just("K=V;A=B"), printable),
        cap_args=st.one_of(st.just(""), st.just(""), st.just('{"portMappings": []}'), printable),
        ifname=st.one_of(st.just("eth0"), st.just("eth0"), st.just("net1"), printable),
        dry_run=st.booleans(),
    )
    def case(
        command: str,
        network: str,
        netns: str,
        text: str,
        cni_args: str,
        cap_args: str,
        ifname: str,
        dry_run: bool,
    ) -> None:
        (conf / "10-fz.conflist").write_text(text)
        env = {"NETCONFPATH": str(conf), "CNI_PATH": str(bin_dir), "CNI_ARGS": cni_args,
               "CAP_ARGS": cap_args}  # fmt: skip
        args = [command, network] if command not in ("networks", "cache", "bogus") else [command]
        if command in ("add", "check", "del"):
            args += [netns, "--ifname", ifname] + (["--dry-run"] if dry_run else [])
        if command != "bogus":
            args += ["--cache-dir", str(cache)] if command != "networks" else []
        res = CliRunner().invoke(cli, args, env=env)
        figures["cases"] += 1
        figures["exit 0" if res.exit_code == 0 else "CNI error"] += 1
        problem = ""
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            problem = f"raised {type(res.exception).__name__}: {res.exception}"
        elif res.exit_code not in (0, 1, 2) or "Traceback" in res.output:
            problem = f"exit {res.exit_code}: {res.output[-300:]!r}"
        if not problem and command == "add" and res.exit_code == 0 and not dry_run:
            figures["ADD ok"] += 1
            done = CliRunner().invoke(cli, ["del", *args[1:]], env=env)
            if done.exit_code != 0:
                problem = f"DEL after ADD failed: {done.output[-300:]!r}"
        results = cache / "results"
        left = sorted(p.name for p in results.iterdir()) if results.exists() else []
        if not problem and left:
            figures["leaks"] += 1
            problem = f"left in the cache: {left}"
            for p in results.iterdir():  # the next case starts clean
                p.unlink()
        if problem:
            figures["failures"] += 1
            findings.append(f"{args} conf={text[:120]!r}: {problem}")

    if not RANDOM:
        case = seed(SEED)(case)
    case()
    assert findings == [], "\n".join(findings[:5])
