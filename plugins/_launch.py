"""What an installed plugin launcher calls: run one plugin package's ``main()``.

A launcher (written by ``cnitool.launchers.install``) is three lines: it imports this
module and calls ``run("<package>")``. Keeping the launcher that small means upgrading
the package never requires rewriting the launchers.
"""

from __future__ import annotations

import importlib


def run(package: str) -> None:
    """Import ``cnitool_plugins.<package>.__main__`` and exit with its ``main()``."""
    module = importlib.import_module(f"{__package__}.{package}.__main__")
    raise SystemExit(module.main())
