"""Entry of the host-local IPAM plugin (``host-local`` launcher).

Kept light: the verbs import their logic on first use, and nothing here (or there) loads
pyroute2 or any firewall code.
"""

from __future__ import annotations

from typing import Any

from cnitool import __version__, skel
from cnitool.spec.version import ALL


def _add(args: skel.CmdArgs) -> dict[str, Any]:
    from .commands import cmd_add

    return cmd_add(args)


def _del(args: skel.CmdArgs) -> None:
    from .commands import cmd_del

    cmd_del(args)


def _check(args: skel.CmdArgs) -> None:
    from .commands import cmd_check

    cmd_check(args)


def _gc(args: skel.CmdArgs) -> None:
    from .commands import cmd_gc

    cmd_gc(args)


def _status(args: skel.CmdArgs) -> None:
    from .commands import cmd_status

    cmd_status(args)


PLUGIN = skel.Plugin(
    name="host-local",
    versions=ALL,
    about=f"CNI host-local plugin pycni {__version__}",
    add=_add,
    check=_check,
    delete=_del,
    gc=_gc,
    status=_status,
)


def main() -> int:
    return skel.main(PLUGIN)


if __name__ == "__main__":
    raise SystemExit(main())
