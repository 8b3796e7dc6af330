"""Launcher entry for the ptp plugin (kept import-light: logic loads per verb)."""

from __future__ import annotations

from cnitool import __version__, skel
from cnitool.spec.version import ALL

from .._lib import lazy_verb, shapes

PLUGIN = skel.Plugin(
    shape=shapes.PTP,
    name="ptp",
    versions=ALL,
    about=f"CNI ptp plugin pycni {__version__}",
    add=lazy_verb(f"{__package__}.plugin", "cmd_add"),
    check=lazy_verb(f"{__package__}.plugin", "cmd_check"),
    delete=lazy_verb(f"{__package__}.plugin", "cmd_del"),
    status=lazy_verb(f"{__package__}.config", "cmd_status"),
    gc=lazy_verb(f"{__package__}.config", "cmd_gc"),
)


def main() -> int:
    return skel.main(PLUGIN)


if __name__ == "__main__":
    raise SystemExit(main())
