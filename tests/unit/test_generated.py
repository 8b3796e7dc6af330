"""The committed completions and man pages match what the click commands generate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cnitool.cli import gen
from cnitool.cli.main import COMMANDS

ROOT = Path(__file__).resolve().parents[2]


def test_completions_and_man_pages_are_fresh() -> None:
    stale = gen.stale(ROOT)
    assert stale == [], f"regenerate with `python -m cnitool.cli.gen`: {stale}"


def test_every_loaded_command_has_a_man_page() -> None:
    pages = gen.man_pages()
    assert "cnitool.1" in pages
    for name in COMMANDS:
        page = pages[f"cnitool-{name}.1"]
        assert page.startswith(f".TH CNITOOL-{name.upper()} 1")
        assert ".SH SYNOPSIS" in page and ".SH EXIT STATUS" in page
    assert "NETCONFPATH" in pages["cnitool-add.1"]
    # every exit status the tool uses is documented on each page
    for page in pages.values():
        for code in ("0", "1", "2", "130"):
            assert ".SH EXIT STATUS" in page and f"\n.B {code}\n" in page


def test_completion_callback_offers_subcommands(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "_CNITOOL_COMPLETE": "bash_complete",
        "COMP_WORDS": "cnitool ne",
        "COMP_CWORD": "1",
    }
    code = "import sys; from cnitool.cli.main import cli; cli(prog_name='cnitool')"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert proc.stdout.split() == ["plain,networks", "plain,netns"]


def test_completion_offers_network_names(tmp_path: Path) -> None:
    (tmp_path / "10-blue.conflist").write_text(
        '{"cniVersion": "1.0.0", "name": "blue", "plugins": [{"type": "bridge"}]}'
    )
    env = {
        **os.environ,
        "_CNITOOL_COMPLETE": "bash_complete",
        "COMP_WORDS": "cnitool add b",
        "COMP_CWORD": "2",
        "NETCONFPATH": str(tmp_path),
    }
    code = "from cnitool.cli.main import cli; cli(prog_name='cnitool')"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert proc.stdout.split() == ["plain,blue"]


def test_exit_statuses_agree_in_readme_help_and_man() -> None:
    """The README table, `cnitool --help` and the man pages list the same exit statuses."""
    import re

    from cnitool.cli.main import HELP

    codes = [code for code, _text in gen.EXIT_STATUS]
    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Errors and exit status", 1)[1].split("\n\n")[1]
    assert re.findall(r"^\| (\d+) \|", table, re.M) == codes
    exit_line = " ".join(HELP.split("Exit status:", 1)[1].split())
    assert re.findall(r"(?:^|; )(\d+) ", exit_line) == codes
