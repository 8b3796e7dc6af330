"""Shared plugin internals: network namespaces, netlink, sysctls, IPAM delegation, the veth
plugins' common steps (``attach``), firewall; and ``lazy_verb`` for the plugins' entries.

The plugins reach the kernel (rtnetlink sockets, iptables, /proc/sys) through this package;
the bridge's nft spoof check is its one exception. Heavy dependencies are imported lazily
inside the functions that need them so that cheap verbs (VERSION, STATUS) never pay for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnitool.skel import CmdArgs


def lazy_verb(module: str, name: str) -> Callable[[CmdArgs], Any]:
    """A verb for ``skel.Plugin`` that imports ``module`` (absolute name) only when it runs
    and calls its ``name``: a plugin's ``__main__`` stays cheap to import."""

    def verb(cmd: CmdArgs) -> Any:
        from importlib import import_module

        return getattr(import_module(module), name)(cmd)

    verb.__name__ = name
    return verb
