"""CNI errors: one exception type per well-known code, rendered as the spec's error JSON.

A plugin reports failure as ``{"code": N, "msg": "...", "details": "..."}`` on stdout
(4-space indent, no ``cniVersion``, as the reference plugins print it). The runtime side
adds the plugin and the verb that failed so the CLI can render one clear line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .jsonfmt import dumps_indent

# Well-known codes (SPEC.md "Error codes", plus the Go-only 8 and 999).
UNKNOWN = 0
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODING_FAILURE = 6
INVALID_NETWORK_CONFIG = 7
INVALID_NETNS = 8
TRY_AGAIN_LATER = 11
PLUGIN_NOT_AVAILABLE = 50
LIMITED_CONNECTIVITY = 51
INTERNAL = 999

CODE_NAMES = {
    UNKNOWN: "unknown",
    INCOMPATIBLE_VERSION: "incompatible CNI version",
    UNSUPPORTED_FIELD: "unsupported field",
    UNKNOWN_CONTAINER: "unknown container",
    INVALID_ENVIRONMENT: "invalid environment",
    IO_FAILURE: "I/O failure",
    DECODING_FAILURE: "decoding failure",
    INVALID_NETWORK_CONFIG: "invalid network config",
    INVALID_NETNS: "invalid netns",
    TRY_AGAIN_LATER: "try again later",
    PLUGIN_NOT_AVAILABLE: "plugin not available",
    LIMITED_CONNECTIVITY: "limited connectivity",
    INTERNAL: "internal error",
}


class CNIError(Exception):
    """An error with a CNI code; ``str()`` is ``msg`` or ``msg; details`` like the Go type."""

    code: int = INTERNAL

    def __init__(self, msg: str, details: str = "", *, code: int | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.msg}; {self.details}" if self.details else self.msg

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out

    def to_json(self) -> str:
        """The error as a plugin prints it: 4-space indent, no trailing newline."""
        return dumps_indent(self.to_dict())

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> CNIError:
        """An error object a plugin printed; a null or missing field reads as empty."""
        from .keys import get  # matched as the Go decoder matches types.Error's fields

        code = get(obj, "code")
        msg = get(obj, "msg")
        details = get(obj, "details")
        return CNIError(
            "" if msg is None else str(msg),
            "" if details is None else str(details),
            code=code if isinstance(code, int) and not isinstance(code, bool) else UNKNOWN,
        )


class IncompatibleVersionError(CNIError):
    code = INCOMPATIBLE_VERSION


class UnsupportedFieldError(CNIError):
    code = UNSUPPORTED_FIELD


class UnknownContainerError(CNIError):
    code = UNKNOWN_CONTAINER


class InvalidEnvironmentError(CNIError):
    code = INVALID_ENVIRONMENT


class IOFailureError(CNIError):
    code = IO_FAILURE


class DecodingError(CNIError):
    code = DECODING_FAILURE


class InvalidConfigError(CNIError):
    code = INVALID_NETWORK_CONFIG


class InvalidNetNSError(CNIError):
    code = INVALID_NETNS


class TryAgainLaterError(CNIError):
    code = TRY_AGAIN_LATER


class PluginNotAvailableError(CNIError):
    code = PLUGIN_NOT_AVAILABLE


class LimitedConnectivityError(CNIError):
    code = LIMITED_CONNECTIVITY


class InternalError(CNIError):
    code = INTERNAL


T = TypeVar("T")


class ErrorList:
    """The failures of an operation that keeps going past them: a DEL's teardown, an ADD's
    rollback, GC, validation. Nested lists are flattened, so a step that itself collected
    errors adds each of them.

    ``run(fn, ...)`` calls a step and keeps what it raises; ``text()`` joins the messages
    in the order they happened; ``raise_if_any()`` raises one error as it is, several as
    one CNI error with the code of the first CNI error among them.
    """

    def __init__(self) -> None:
        self.errors: list[Exception] = []

    def add(self, exc: Exception) -> None:
        nested = getattr(exc, "error_list", None)
        if isinstance(nested, ErrorList):
            self.errors.extend(nested.errors)
        else:
            self.errors.append(exc)

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``fn(*args, **kwargs)``; None when it failed (the error is kept)."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - kept, and raised by raise_if_any()
            self.add(exc)
            return None

    def __len__(self) -> int:
        return len(self.errors)

    def __iter__(self) -> Iterator[Exception]:
        return iter(self.errors)

    def text(self, sep: str = "; ") -> str:
        return sep.join(str(e) or type(e).__name__ for e in self.errors)

    def code(self) -> int | None:
        """The code of the first CNI error, None when there is none."""
        return next((e.code for e in self.errors if isinstance(e, CNIError)), None)

    def raise_if_any(self, what: str = "") -> None:
        """Nothing failed: return. One CNI error: raise it. Otherwise one
        :class:`MultipleErrors` (``"<n> errors during <what>: ..."`` when there are
        several and ``what`` names the operation)."""
        if not self.errors:
            return
        if len(self.errors) == 1 and isinstance(self.errors[0], CNIError):
            raise self.errors[0]
        raise MultipleErrors(self, what)


class MultipleErrors(CNIError):
    """Several failures of one operation as one CNI error; ``error_list`` keeps them."""

    def __init__(self, errors: ErrorList, what: str = "") -> None:
        msg = errors.text()
        if what and len(errors) > 1:
            msg = f"{len(errors)} errors during {what}: {msg}"
        super().__init__(msg, code=errors.code())
        self.error_list = errors
