"""Entry of the host-local IPAM plugin (``host-local`` launcher).

Kept light: the verbs import their logic on first use, and nothing here (or there) loads
pyroute2 or any firewall code.
"""

from __future__ import annotations

from cnitool import __version__, skel
from cnitool.spec.version import ALL

from .._lib import lazy_verb, shapes

_COMMANDS = f"{__package__}.commands"

PLUGIN = skel.Plugin(
    shape=shapes.HOST_LOCAL,
    name="host-local",
    versions=ALL,
    about=f"CNI host-local plugin pycni {__version__}",
    add=lazy_verb(_COMMANDS, "cmd_add"),
    check=lazy_verb(_COMMANDS, "cmd_check"),
    delete=lazy_verb(_COMMANDS, "cmd_del"),
    gc=lazy_verb(_COMMANDS, "cmd_gc"),
    status=lazy_verb(_COMMANDS, "cmd_status"),
)


def main() -> int:
    return skel.main(PLUGIN)


if __name__ == "__main__":
    raise SystemExit(main())
