"""systemd units for the plugin service, shipped in ``systemd/`` beside this module.

``pycni-plugins.service`` runs ``cnitool serve``; ``pycni-plugins.socket`` is the socket
activated variant (systemd owns the socket and passes it with ``LISTEN_FDS``). The files
hold ``@CNITOOL@`` where the absolute path of the ``cnitool`` command goes.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from ..files import write_atomic
from ..spec.errors import CNIError

UNIT_NAMES = ("pycni-plugins.service", "pycni-plugins.socket")
DEFAULT_UNIT_DIR = "/etc/systemd/system"
PLACEHOLDER = "@CNITOOL@"


class UnitError(CNIError):
    """A unit file could not be written."""


@dataclass(frozen=True)
class UnitAction:
    """What :func:`install_units` did with one file: ``installed``, ``updated`` or
    ``unchanged``."""

    name: str
    path: str
    action: str


def default_cnitool() -> str:
    """The ``cnitool`` command of this installation (beside its interpreter)."""
    candidate = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "cnitool")
    if os.access(candidate, os.X_OK):
        return candidate
    return os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else candidate


def unit_text(name: str, cnitool: str) -> str:
    """The unit file ``name`` with the ``cnitool`` path filled in."""
    if name not in UNIT_NAMES:
        raise UnitError(f"unknown unit {name}")
    if not os.path.isabs(cnitool) or any(ch.isspace() for ch in cnitool):
        raise UnitError(f"cnitool path must be absolute and without whitespace: {cnitool!r}")
    here = os.path.join(os.path.dirname(__file__), "systemd", name)
    with open(here, encoding="utf-8") as fh:
        return fh.read().replace(PLACEHOLDER, cnitool)


def install_units(directory: str, cnitool: str) -> list[UnitAction]:
    """Write both unit files into ``directory`` (atomically, mode 0644)."""
    actions: list[UnitAction] = []
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise UnitError(f"cannot create {directory}: {exc.strerror or exc}") from None
    for name in UNIT_NAMES:
        path = os.path.join(directory, name)
        text = unit_text(name, cnitool)
        try:
            with open(path, encoding="utf-8") as fh:
                old: str | None = fh.read()
        except OSError:
            old = None
        if old == text:
            actions.append(UnitAction(name, path, "unchanged"))
            continue
        try:
            write_atomic(path, text.encode(), 0o644)
        except OSError as exc:
            raise UnitError(f"cannot write {path}: {exc.strerror or exc}") from None
        actions.append(UnitAction(name, path, "installed" if old is None else "updated"))
    return actions
