"""The portmap plugin's entry: its declaration, with verbs loaded when they run."""

from __future__ import annotations

from cnitool import skel

from .._lib import entry, shapes


def _verbs() -> entry.Verbs:
    from . import verbs

    return verbs


PLUGIN = entry.declare("portmap", _verbs, shapes.PORTMAP)


def main() -> int:
    return skel.main(PLUGIN)


if __name__ == "__main__":
    raise SystemExit(main())
