"""The dhcp plugin's entry: ``dhcp daemon [flags]`` runs the daemon, anything else is the
plugin (ADD, CHECK and DEL forwarded to the daemon)."""

from __future__ import annotations

import sys

from cnitool import skel

from .._lib import entry
from . import config


def _verbs() -> entry.Verbs:
    from . import verbs

    return verbs


PLUGIN = entry.declare("dhcp", _verbs, config.SHAPE)


def main() -> int:
    if sys.argv[1:2] == ["daemon"]:
        from . import daemon

        return daemon.main(sys.argv[2:])
    return skel.main(PLUGIN)


if __name__ == "__main__":
    raise SystemExit(main())
