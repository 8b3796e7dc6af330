"""Locate a plugin executable on the CNI search path (the reference ``FindInPath``).

The plugin type comes from a config file, so it must be a bare name: a type with a
path separator is refused, which is what stops ``../../bin/sh`` from being run.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from ..spec.errors import CNIError


class PluginNotFoundError(CNIError):
    """No usable plugin of that name (or no name / no search path at all)."""


def go_quote(text: str) -> str:
    """A string quoted the way Go's ``%q`` does for printable text."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def split_path(value: str) -> list[str]:
    """A ``CNI_PATH`` value as a list of directories (empty entries dropped)."""
    return [p for p in value.split(os.pathsep) if p]


def _is_regular_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def find_in_path(plugin: str, paths: Sequence[str]) -> str:
    """The first ``<dir>/<plugin>`` that is a regular file (the exec bit is not checked)."""
    if plugin == "":
        raise PluginNotFoundError("no plugin name provided")
    if os.sep in plugin or (os.altsep is not None and os.altsep in plugin):
        raise PluginNotFoundError(f"invalid plugin name: {plugin}")
    dirs = [d for d in paths if d]
    if not dirs:
        raise PluginNotFoundError("no paths provided")
    for directory in dirs:
        candidate = os.path.join(directory, plugin)
        if _is_regular_file(candidate):
            return candidate
    raise PluginNotFoundError(
        f"failed to find plugin {go_quote(plugin)} in path [{' '.join(paths)}]"
    )
