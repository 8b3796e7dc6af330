"""A plugin's declaration from its verb modules, loaded only when a verb runs.

Each plugin's ``__main__`` hands :func:`declare` small loaders that import and return its
``verbs`` module (and, for the plugins whose STATUS and GC need no netlink, its ``config``
module). The loaders are typed against the protocols below, so a type checker follows
every verb from the declaration to its function, and VERSION imports neither module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from cnitool import __version__, skel
from cnitool.spec.keys import NETCONF, Shape
from cnitool.spec.version import ALL

if TYPE_CHECKING:
    from cnitool.spec.results import Result


class Verbs(Protocol):
    """A plugin's ``verbs`` module."""

    def cmd_add(self, cmd: skel.CmdArgs) -> Result: ...

    def cmd_check(self, cmd: skel.CmdArgs) -> None: ...

    def cmd_del(self, cmd: skel.CmdArgs) -> None: ...


class StatusGC(Protocol):
    """The module holding a plugin's STATUS and GC."""

    def cmd_status(self, cmd: skel.CmdArgs) -> None: ...

    def cmd_gc(self, cmd: skel.CmdArgs) -> None: ...


def declare(
    name: str,
    verbs: Callable[[], Verbs],
    shape: Shape = NETCONF,
    status_gc: Callable[[], StatusGC] | None = None,
) -> skel.Plugin:
    """The ``skel.Plugin`` of plugin ``name``: ADD, CHECK and DEL from ``verbs()``, STATUS
    and GC from ``status_gc()`` when given (they then succeed doing nothing otherwise)."""

    def add(cmd: skel.CmdArgs) -> Result:
        return verbs().cmd_add(cmd)

    def check(cmd: skel.CmdArgs) -> None:
        verbs().cmd_check(cmd)

    def delete(cmd: skel.CmdArgs) -> None:
        verbs().cmd_del(cmd)

    status = gc = None
    if status_gc is not None:
        load = status_gc

        def status(cmd: skel.CmdArgs) -> None:
            load().cmd_status(cmd)

        def gc(cmd: skel.CmdArgs) -> None:
            load().cmd_gc(cmd)

    return skel.Plugin(
        name=name,
        versions=ALL,
        about=f"CNI {name} plugin pycni {__version__}",
        shape=shape,
        add=add,
        check=check,
        delete=delete,
        status=status,
        gc=gc,
    )
