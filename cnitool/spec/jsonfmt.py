"""JSON spelled the way the Go encoder spells it, so output matches the reference tools.

Go's encoder escapes ``<``, ``>``, ``&``, U+2028 and U+2029, writes invalid UTF-8 as
``\\ufffd`` and keeps other non-ASCII text as UTF-8. Those characters can only occur
inside JSON strings, so replacing them in the encoded text is safe.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, BinaryIO

_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
# those, plus lone surrogates: bytes that were not UTF-8 (an environment value read with
# surrogateescape), which Go's encoder writes as the replacement character
_NEEDS_ESCAPE = re.compile("[<>&\u2028\u2029\ud800-\udfff]")

# The most JSON text read at once: a plugin's stdin, a config file, a plugin's output.
# Parsed JSON takes up to ~60 times its text in memory (a 64 MiB array of empty arrays
# peaks at 3 GiB), so a bound on the text is the bound on memory; real configs and
# results are a few KiB.
MAX_JSON_BYTES = 1 << 20


def read_bounded(stream: BinaryIO, what: str) -> bytes:
    """All of ``stream`` when it holds at most :data:`MAX_JSON_BYTES`; a ``ValueError``
    naming ``what`` (without reading the rest) when it holds more."""
    data = stream.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"{what} is larger than {MAX_JSON_BYTES} bytes")
    return data


def _escape_one(match: re.Match[str]) -> str:
    return _GO_ESCAPES.get(match.group(), "\\ufffd")


def _go_escape(text: str) -> str:
    return _NEEDS_ESCAPE.sub(_escape_one, text)


def dumps_compact(obj: Any, *, sort_keys: bool = False) -> str:
    """Like ``json.Marshal``; ``sort_keys`` mimics marshalling a Go map."""
    return _go_escape(
        json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)
    )


def dumps_indent(obj: Any, *, sort_keys: bool = False) -> str:
    """Like ``json.MarshalIndent(v, "", "    ")``: 4 spaces, no trailing newline."""
    return _go_escape(json.dumps(obj, ensure_ascii=False, indent=4, sort_keys=sort_keys))


def loads(data: bytes | str) -> Any:
    """Parse JSON text as strictly as Go's decoder; every failure is a ``ValueError``.

    Python's decoder accepts ``NaN``/``Infinity`` and reads ``1e999`` as infinity, and
    runs out of stack on deeply nested input; all of these are decoding errors here.
    """
    try:
        return json.loads(data, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"number {text} is out of range")
    return value


def type_name(value: Any) -> str:
    """The JSON type of a decoded value, for error messages (``number``, ``object``, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def go_numbers(value: Any, *, sort_keys: bool = False) -> Any:
    """Integral floats as ints, as Go prints a float64 read from JSON (``1e3`` -> 1000);
    ``sort_keys`` also orders every object's keys, as Go marshals a map."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        items = sorted(value.items()) if sort_keys else value.items()
        return {k: go_numbers(v, sort_keys=sort_keys) for k, v in items}
    if isinstance(value, list):
        return [go_numbers(v, sort_keys=sort_keys) for v in value]
    return value
