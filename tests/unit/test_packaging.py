"""What a ``pip install`` puts on a node besides the packages: every man page and the
three shells' completion files, under the environment's ``share/`` (built here as a wheel
from the checkout, without network: the test extras bring the build backend)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_man_pages_and_completions(tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="the wheel build needs hatchling (test extras)")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", str(ROOT), "-w", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("pycni-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = next(n.split("/data/")[0] for n in names if "/data/" in n) + "/data/share/"
    pages = sorted(p.name for p in (ROOT / "man").glob("*.1"))
    assert pages and all(data + "man/man1/" + page in names for page in pages)
    assert {
        data + "bash-completion/completions/cnitool",
        data + "zsh/site-functions/_cnitool",
        data + "fish/vendor_completions.d/cnitool.fish",
    } <= names
    # the native launcher is built on the node from its source
    assert "cnitool/warm/native.c" in names
