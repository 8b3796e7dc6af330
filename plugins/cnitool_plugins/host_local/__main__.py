"""The host-local plugin's entry: its declaration (name, spec versions, config fields) and
its verbs, each of which loads its module only when it runs (VERSION loads neither)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnitool import __version__, skel
from cnitool.spec.version import ALL

from .._lib import shapes

if TYPE_CHECKING:
    from cnitool.spec.results import Result


def cmd_add(cmd: skel.CmdArgs) -> Result:
    from . import verbs

    return verbs.cmd_add(cmd)


def cmd_check(cmd: skel.CmdArgs) -> None:
    from . import verbs

    return verbs.cmd_check(cmd)


def cmd_del(cmd: skel.CmdArgs) -> None:
    from . import verbs

    return verbs.cmd_del(cmd)


def cmd_status(cmd: skel.CmdArgs) -> None:
    from . import verbs

    return verbs.cmd_status(cmd)


def cmd_gc(cmd: skel.CmdArgs) -> None:
    from . import verbs

    return verbs.cmd_gc(cmd)


PLUGIN = skel.Plugin(
    name="host-local",
    versions=ALL,
    about=f"CNI host-local plugin pycni {__version__}",
    shape=shapes.HOST_LOCAL,
    add=cmd_add,
    check=cmd_check,
    delete=cmd_del,
    status=cmd_status,
    gc=cmd_gc,
)


def main() -> int:
    return skel.main(PLUGIN)


if __name__ == "__main__":
    raise SystemExit(main())
