"""Shared plugin internals: network namespaces, netlink, sysctls, IPAM delegation, firewall.

This package is the only place that talks to the kernel (rtnetlink sockets, iptables, nft,
/proc/sys). Heavy dependencies are imported lazily inside the functions that need them so
that cheap verbs (VERSION, STATUS) never pay for them.
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
