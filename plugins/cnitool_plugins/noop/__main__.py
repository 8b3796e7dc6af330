"""Entry of the noop test plugin (``noop`` launcher, ``python -m cnitool_plugins.noop``)."""

from __future__ import annotations

from collections.abc import Mapping

from cnitool import skel

from .._lib import shapes
from . import ABOUT, DEFAULT_VERSIONS


def _verb(command: str) -> skel.VerbFunc:
    def call(args: skel.CmdArgs) -> skel.RawOutput:
        from .verbs import behave

        return behave(args, command)

    call.__name__ = f"noop_{command.lower()}"
    return call


def _versions(env: Mapping[str, str], stdin: bytes) -> tuple[str, ...]:
    if env.get("CNI_ARGS", "") == "":
        return DEFAULT_VERSIONS
    from .verbs import supported_versions

    return supported_versions(env, stdin)


PLUGIN = skel.Plugin(
    shape=shapes.NOOP,
    name="noop",
    versions=DEFAULT_VERSIONS,
    about=ABOUT,
    add=_verb("ADD"),
    check=_verb("CHECK"),
    delete=_verb("DEL"),
    gc=_verb("GC"),
    status=_verb("STATUS"),
    dynamic_versions=_versions,
)


def main() -> int:
    return skel.main(PLUGIN)


if __name__ == "__main__":
    raise SystemExit(main())
