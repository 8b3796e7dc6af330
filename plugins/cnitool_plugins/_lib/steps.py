"""Undo and teardown steps: ``Rollback`` for a failing ADD, ``DelSteps`` for a DEL.

An ADD pushes the undo of each thing it makes as soon as it exists; if the ADD fails the
steps run, newest first. A DEL runs every step even when an earlier one failed, so all
that can be released is, and reports the failures together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from cnitool.spec.errors import ErrorList


class Rollback:
    """The undo steps of an ADD: ``with Rollback(stderr) as undo: ... undo.add(fn, *args)``.

    When the block fails the steps run, last added first; a step's own failure is logged
    to ``stderr``, not raised, so the error that caused the rollback is the one reported.
    When the block succeeds nothing runs.
    """

    def __init__(self, stderr: TextIO) -> None:
        self._stderr = stderr
        self._steps: list[tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]] = []

    def add(self, fn: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        self._steps.append((fn, args, kwargs))

    def __enter__(self) -> Rollback:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            return
        for fn, args, kwargs in reversed(self._steps):
            try:
                fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - rollback is best effort, and logged
                name = getattr(fn, "__name__", fn)
                self._stderr.write(f"rollback step {name} failed: {exc}\n")


class DelSteps(ErrorList):
    """The steps of a DEL: each runs even when an earlier one failed (so everything that
    can be released is); ``finish()`` then raises what failed, as one CNI error."""

    def finish(self) -> None:
        """Raise the kept errors: one as it is, several joined into one message (in the
        order they happened) with the code of the first CNI error among them."""
        self.raise_if_any("DEL")
