"""The plugin <-> daemon protocol: one request and one answer per Unix-socket connection.

This is pycni's own protocol, not the reference's (Go ``net/rpc`` over HTTP): our plugin
talks to our daemon only, and a Go ``dhcp`` plugin cannot use our daemon (nor ours the
Go daemon). Both ends use this module, which stays stdlib-only and cheap to import
because the plugin side runs on every exec.

A message is ``b"PDHC"``, a big-endian u16 format version (1), a big-endian u32 length
and that many bytes of UTF-8 JSON. A request is ``{"method": "ADD"|"CHECK"|"DEL",
"args": {...}}`` where ``args`` are the plugin's CNI_* values and ``stdinData`` (base64),
like the reference's CmdArgs. An answer is ``{"result": {...}}`` (ADD and CHECK: a CNI
1.1.0 result; DEL: ``{}``) or ``{"error": {"code": N, "msg": "...", "details": "..."}}``.
A request is at most :data:`MAX_REQUEST` bytes (the 1 MiB a plugin reads from stdin, in
base64, plus the rest), an answer at most :data:`MAX_ANSWER`.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

MAGIC = b"PDHC"
VERSION = 1
HEADER_SIZE = 10
MAX_REQUEST = 2 * 1024 * 1024
MAX_ANSWER = 256 * 1024
METHODS = ("ADD", "CHECK", "DEL")
ARG_KEYS = ("containerID", "netns", "ifName", "args", "path")


class WireError(Exception):
    """A message that is not one of ours, too large, or cut short."""


def header(length: int) -> bytes:
    return MAGIC + VERSION.to_bytes(2, "big") + length.to_bytes(4, "big")


def parse_header(head: bytes, limit: int) -> int:
    """The payload length announced by a message header; WireError when it is not ours
    or exceeds ``limit``."""
    if len(head) != HEADER_SIZE or head[:4] != MAGIC:
        raise WireError("not a pycni dhcp message")
    version = int.from_bytes(head[4:6], "big")
    if version != VERSION:
        raise WireError(f"unsupported pycni dhcp message version {version}")
    length = int.from_bytes(head[6:10], "big")
    if length > limit:
        raise WireError(f"message of {length} bytes exceeds the limit of {limit}")
    return length


def encode(obj: Any) -> bytes:
    payload = json.dumps(obj, separators=(",", ":")).encode()
    return header(len(payload)) + payload


def decode_payload(payload: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(payload)
    except ValueError as exc:
        raise WireError(f"malformed message: {exc}") from None
    if not isinstance(obj, dict):
        raise WireError("malformed message: not a JSON object")
    return obj


def request(method: str, args: dict[str, str], stdin: bytes) -> bytes:
    body = dict(args)
    body["stdinData"] = binascii.b2a_base64(stdin, newline=False).decode()
    return encode({"method": method, "args": body})


def parse_request(obj: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    """(method, args, stdin) of a decoded request; WireError when malformed."""
    method = obj.get("method")
    args = obj.get("args")
    if method not in METHODS:
        raise WireError(f"unknown method {method!r}")
    if not isinstance(args, dict):
        raise WireError("malformed request: no args")
    out: dict[str, str] = {}
    for key in ARG_KEYS:
        value = args.get(key, "")
        if not isinstance(value, str):
            raise WireError(f"malformed request: {key} must be a string")
        out[key] = value
    data = args.get("stdinData", "")
    if not isinstance(data, str):
        raise WireError("malformed request: stdinData must be a string")
    try:
        stdin = binascii.a2b_base64(data.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError):
        raise WireError("malformed request: stdinData is not base64") from None
    return str(method), out, stdin
