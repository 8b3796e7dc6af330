"""Launcher entry for the portmap plugin (kept import-light)."""

from __future__ import annotations

from cnitool import __version__, skel
from cnitool.spec.version import ALL

from .._lib import lazy_verb, shapes

_COMMANDS = f"{__package__}.commands"

PLUGIN = skel.Plugin(
    shape=shapes.PORTMAP,
    name="portmap",
    versions=ALL,
    about=f"CNI portmap plugin pycni {__version__}",
    add=lazy_verb(_COMMANDS, "cmd_add"),
    check=lazy_verb(_COMMANDS, "cmd_check"),
    delete=lazy_verb(_COMMANDS, "cmd_del"),
)


def main() -> int:
    return skel.main(PLUGIN)


if __name__ == "__main__":
    raise SystemExit(main())
