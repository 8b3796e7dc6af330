"""Launcher entry for the flannel plugin (kept import-light: no netlink, no iptables)."""

from __future__ import annotations

from cnitool import __version__, skel
from cnitool.spec.version import ALL

from .._lib import lazy_verb, shapes

_COMMANDS = f"{__package__}.commands"


def _check(cmd: skel.CmdArgs) -> None:
    return None  # like the reference plugin: nothing to check


PLUGIN = skel.Plugin(
    shape=shapes.FLANNEL,
    name="flannel",
    versions=ALL,
    about=f"CNI flannel plugin pycni {__version__}",
    add=lazy_verb(_COMMANDS, "cmd_add"),
    check=_check,
    delete=lazy_verb(_COMMANDS, "cmd_del"),
)


def main() -> int:
    return skel.main(PLUGIN)


if __name__ == "__main__":
    raise SystemExit(main())
