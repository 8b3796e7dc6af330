"""The host-local plugin's entry: its declaration, with verbs loaded when they run."""

from __future__ import annotations

from cnitool import skel

from .._lib import entry, shapes


def _verbs() -> entry.Verbs:
    from . import verbs

    return verbs


def _status_gc() -> entry.StatusGC:
    from . import (
        verbs,  # host-local's STATUS and GC are verbs of its own (the reference's lack them)
    )

    return verbs


PLUGIN = entry.declare("host-local", _verbs, shapes.HOST_LOCAL, status_gc=_status_gc)


def main() -> int:
    return skel.main(PLUGIN)


if __name__ == "__main__":
    raise SystemExit(main())
