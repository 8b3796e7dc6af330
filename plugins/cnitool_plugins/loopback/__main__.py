"""Launcher entry for the loopback plugin (kept import-light)."""

from __future__ import annotations

from cnitool import __version__, skel
from cnitool.spec.version import ALL

from .._lib import lazy_verb

PLUGIN = skel.Plugin(
    name="loopback",
    versions=ALL,
    about=f"CNI loopback plugin pycni {__version__}",
    add=lazy_verb(f"{__package__}.plugin", "cmd_add"),
    check=lazy_verb(f"{__package__}.plugin", "cmd_check"),
    delete=lazy_verb(f"{__package__}.plugin", "cmd_del"),
)


def main() -> int:
    return skel.main(PLUGIN)


if __name__ == "__main__":
    raise SystemExit(main())
