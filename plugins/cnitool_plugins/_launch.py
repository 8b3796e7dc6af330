"""What an installed plugin launcher calls: run one plugin package's ``main()``.

A launcher (written by ``cnitool.launchers.install``) is three lines: it imports this
module and calls ``run("<package>")``. Keeping the launcher that small means upgrading
the package never requires rewriting the launchers.
"""

from __future__ import annotations

import sys
from importlib import import_module


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
