"""The committed completions and man pages match what the click commands generate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cnitool.cli import gen

ROOT = Path(__file__).resolve().parents[2]


def test_completions_and_man_pages_are_fresh() -> None:
    stale = gen.stale(ROOT)
    assert stale == [], f"regenerate with `python -m cnitool.cli.gen`: {stale}"


def test_every_loaded_command_has_a_man_page() -> None:
    pages = gen.man_pages()
    assert "cnitool.1" in pages
    for name in ("add", "check", "del", "status", "gc", "networks", "version", "cache", "netns"):
        page = pages[f"cnitool-{name}.1"]
        assert page.startswith(f".TH CNITOOL-{name.upper()} 1")
        assert ".SH SYNOPSIS" in page and ".SH EXIT STATUS" in page
    assert "NETCONFPATH" in pages["cnitool-add.1"]


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
