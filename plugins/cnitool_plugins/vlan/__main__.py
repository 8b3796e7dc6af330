"""The vlan plugin's entry: its declaration, with verbs loaded when they run."""

from __future__ import annotations

from cnitool import skel

from .._lib import entry, shapes


def _verbs() -> entry.Verbs:
    from . import verbs

    return verbs


def _config() -> entry.StatusGC:
    from . import config  # STATUS and GC load no netlink code

    return config


PLUGIN = entry.declare("vlan", _verbs, shapes.VLAN, status_gc=_config)


def main() -> int:
    return skel.main(PLUGIN)


if __name__ == "__main__":
    raise SystemExit(main())
