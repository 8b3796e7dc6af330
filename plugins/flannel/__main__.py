"""Launcher entry for the flannel plugin (kept import-light: no netlink, no iptables)."""

from __future__ import annotations

from cnitool import __version__, skel
from cnitool.spec.version import ALL


def _add(cmd: skel.CmdArgs) -> dict[str, object]:
    from .commands import cmd_add

    return cmd_add(cmd)


def _check(cmd: skel.CmdArgs) -> None:
    return None  # like the reference plugin: nothing to check


def _del(cmd: skel.CmdArgs) -> None:
    from .commands import cmd_del

    cmd_del(cmd)


PLUGIN = skel.Plugin(
    name="flannel",
    versions=ALL,
    about=f"CNI flannel plugin pycni {__version__}",
    add=_add,
    check=_check,
    delete=_del,
)


def main() -> int:
    return skel.main(PLUGIN)


if __name__ == "__main__":
    raise SystemExit(main())
