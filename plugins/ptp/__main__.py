"""Launcher entry for the ptp plugin (kept import-light: logic loads per verb)."""

from __future__ import annotations

from typing import Any

from cnitool import __version__, skel
from cnitool.spec.version import ALL


def _add(cmd: skel.CmdArgs) -> dict[str, Any]:
    from .plugin import cmd_add

    return cmd_add(cmd)


def _check(cmd: skel.CmdArgs) -> None:
    from .plugin import cmd_check

    cmd_check(cmd)


def _del(cmd: skel.CmdArgs) -> None:
    from .plugin import cmd_del

    cmd_del(cmd)


def _status(cmd: skel.CmdArgs) -> None:
    from .plugin import cmd_status

    cmd_status(cmd)


PLUGIN = skel.Plugin(
    name="ptp",
    versions=ALL,
    about=f"CNI ptp plugin pycni {__version__}",
    add=_add,
    check=_check,
    delete=_del,
    status=_status,
)


def main() -> int:
    return skel.main(PLUGIN)


if __name__ == "__main__":
    raise SystemExit(main())
