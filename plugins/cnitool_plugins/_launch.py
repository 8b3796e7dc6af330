"""What an installed plugin launcher calls: run one plugin package's ``main()``.

A launcher (written by ``cnitool.launchers.install``) is three lines: it imports this
module and calls ``run("<package>")``. Keeping the launcher that small means upgrading
the package never requires rewriting the launchers.
"""

from __future__ import annotations

import sys
from importlib import import_module

TYPE_CHECKING = False  # the cold path of every plugin imports this module: not typing
if TYPE_CHECKING:  # type checkers read the name as True
    from collections.abc import Callable
    from typing import NoReturn


def run(package: str) -> None:
    """Import ``cnitool_plugins.<package>.__main__`` and exit with its ``main()``.

    A plugin that cannot even be imported (a broken or partial installation) still
    answers with a CNI error on stdout rather than a bare traceback.
    """
    name = f"{__package__}.{package}.__main__"
    try:
        module = import_module(name)
    except Exception as exc:  # report any import failure in the protocol's terms
        import json

        msg = f"cannot load plugin module {name}: {exc}"
        sys.stdout.write(json.dumps({"code": 999, "msg": msg}, indent=4))
        sys.stdout.flush()
        raise SystemExit(1) from None
    raise SystemExit(module.main())


def prepare_worker(stranded: Callable[[BaseException], NoReturn]) -> None:
    """What a warm worker of the plugin service (one thread, one call, then it exits)
    sets before it runs a plugin: network namespace switches happen in its own thread
    (``_lib.netns.switch_calling_thread``); ``stranded`` ends the worker when it cannot
    switch back."""
    from ._lib import netns

    netns.switch_calling_thread(stranded)


def warm_up(log: Callable[[str], None]) -> None:
    """What the plugin service runs once after preloading, before its first fork: the
    common call (bridge + host-local ADD and DEL) a few times in namespaces of its own,
    so that workers inherit code CPython has already adapted (``_warmup``)."""
    from ._warmup import warm_up as run

    run(log)
