"""The CLI's error boundary: any failure below a command becomes one line on stderr
naming who failed, doing what, with which CNI code, and exit status 1 (tracebacks only
with --debug)."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import click

from ..spec.errors import CODE_NAMES, CNIError


class UsageError(CNIError):
    """Bad command-line input detected before any plugin runs (exit 1, like Go)."""

    code = 4


def describe_error(err: BaseException, verb: str) -> str:
    """One line: who failed, doing what, with which CNI code, and the message."""
    if isinstance(err, CNIError):
        code = err.code
        tag = (
            f"[code {code} {CODE_NAMES.get(code, 'plugin-specific' if code >= 100 else 'unknown')}]"
        )
        plugin = getattr(err, "plugin", "")
        pverb = getattr(err, "verb", "") or verb
        who = f"{plugin} {pverb}" if plugin else pverb
        msg = str(getattr(err, "reason", None) or err).strip().replace("\n", " ")
        return f"{who} failed {tag}: {msg}"
    if isinstance(err, OSError):
        return f"{verb} failed: {err}"
    return f"{verb} failed: {type(err).__name__}: {err}"


def fail(lines: Sequence[str], *, debug: bool, exc: BaseException | None = None) -> None:
    if debug and exc is not None:
        traceback.print_exception(exc, file=sys.stderr)
    for line in lines:
        sys.stderr.write(f"cnitool: {line}\n")
    sys.stderr.flush()
    raise SystemExit(1)


@contextmanager
def reporting(verb: str, debug: bool) -> Iterator[None]:
    """Turn any error below into one stderr line and exit status 1."""
    try:
        yield
    except (
        click.exceptions.ClickException,
        click.exceptions.Exit,
        click.exceptions.Abort,
        SystemExit,
        KeyboardInterrupt,
    ):
        raise
    except Exception as err:  # noqa: BLE001 - the CLI's single error boundary
        fail([describe_error(err, verb)], debug=debug, exc=err)
