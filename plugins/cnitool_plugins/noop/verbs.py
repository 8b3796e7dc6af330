"""The noop test plugin's behaviour: record each call in a debug file, then do what the
debug file says (report a result, an error, stderr text, an exit status).

The debug file is the JSON the Go test plugin reads and writes, with Go field names as
keys (matched case-insensitively on input, as Go's decoder does)::

    {"ReportResult": "", "ReportError": "", "ReportErrorCode": 0, "ReportStderr": "",
     "ReportVersionSupport": null, "ExitWithCode": 0, "Command": "ADD",
     "CmdArgs": {"ContainerID": "", "Netns": "", "IfName": "", "Args": "", "Path": "",
                 "NetnsOverride": "", "StdinData": "<base64 of stdin>"}}

Its path comes from ``DEBUG=<path>`` in CNI_ARGS, else from the config key ``debugFile``.
``ReportResult`` is printed verbatim, except ``PASSTHROUGH`` (print ``prevResult``
converted to the config version) and ``INJECT-DNS`` (the same with nameservers
``["1.2.3.4"]``). The optional config key ``commandLog`` names an existing file holding a
JSON array to which every recorded call is appended.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from typing import Any

from cnitool.skel import CmdArgs, RawOutput
from cnitool.spec import keys
from cnitool.spec.errors import CNIError
from cnitool.spec.jsonfmt import dumps_compact, loads
from cnitool.spec.version import CURRENT

from . import DEFAULT_VERSIONS

NO_DEBUG_MESSAGE = "CNI_ARGS or config empty, no debug behavior\n"
INJECTED_NAMESERVERS = ["1.2.3.4"]

# Debug fields in the order Go writes them, with their defaults
_DEBUG_FIELDS: tuple[tuple[str, Any], ...] = (
    ("ReportResult", ""),
    ("ReportError", ""),
    ("ReportErrorCode", 0),
    ("ReportStderr", ""),
    ("ReportVersionSupport", None),
    ("ExitWithCode", 0),
    ("Command", ""),
    ("CmdArgs", None),
)


def _extra_args(cni_args: str) -> dict[str, str]:
    """noop's own CNI_ARGS parser: every pair must split into exactly two parts."""
    out: dict[str, str] = {}
    if cni_args == "":
        return out
    for item in cni_args.split(";"):
        parts = item.split("=")
        if len(parts) != 2:
            raise CNIError(f"CNI_ARGS invalid key/value pair: [{' '.join(parts)}]")
        out[parts[0]] = parts[1]
    return out


def _load_conf(stdin: bytes) -> dict[str, Any]:
    try:
        conf = loads(stdin) if stdin.strip() else {}
    except ValueError as exc:
        raise CNIError(f"failed to load netconf: {exc}") from None
    if conf is None:
        conf = {}
    if not isinstance(conf, dict):
        raise CNIError("failed to load netconf: the config is not a JSON object")
    for key in ("debugFile", "commandLog"):
        if conf.get(key) is not None and not isinstance(conf[key], str):
            raise CNIError(f'failed to load netconf: "{key}" must be a string')
    return conf


def _debug_path(conf: Mapping[str, Any], cni_args: str) -> str:
    extra = _extra_args(cni_args)
    if "DEBUG" in extra:
        return extra["DEBUG"]
    return str(conf.get("debugFile") or "")


def _lookup(obj: Mapping[str, Any], name: str) -> Any:
    """A key the way Go's decoder finds a field: exact name first, then any case."""
    if name in obj:
        return obj[name]
    low = name.lower()
    for key, value in obj.items():
        if key.lower() == low:
            return value
    return None


def read_debug(path: str) -> dict[str, Any]:
    """The debug file as an ordered dict of the known fields (others are dropped)."""
    try:
        with open(path, "rb") as fh:
            raw = loads(fh.read())
    except OSError as exc:
        raise CNIError(f"reading debug file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CNIError(f"decoding debug file {path}: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise CNIError(f"decoding debug file {path}: not a JSON object")
    debug: dict[str, Any] = {}
    for name, default in _DEBUG_FIELDS:
        value = _lookup(raw, name)
        if value is None:
            value = default
        debug[name] = value
    for name in ("ReportResult", "ReportError", "ReportStderr", "Command"):
        if not isinstance(debug[name], str):
            raise CNIError(f'decoding debug file {path}: "{name}" must be a string')
    for name in ("ReportErrorCode", "ExitWithCode"):
        value = debug[name]
        if not isinstance(value, int) or isinstance(value, bool):
            raise CNIError(f'decoding debug file {path}: "{name}" must be an integer')
    if debug["ReportErrorCode"] < 0:
        raise CNIError(f'decoding debug file {path}: "ReportErrorCode" must not be negative')
    support = debug["ReportVersionSupport"]
    if support is not None and (
        not isinstance(support, list) or not all(isinstance(v, str) for v in support)
    ):
        raise CNIError(
            f'decoding debug file {path}: "ReportVersionSupport" must be a list of strings'
        )
    return debug


def _write_file(path: str, data: bytes, mode: int) -> None:
    """Truncate-and-write like Go's os.WriteFile (the mode applies to a new file only)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def record_args(args: CmdArgs) -> dict[str, Any]:
    """The call's arguments under Go's skel.CmdArgs field names (stdin base64)."""
    return {
        "ContainerID": args.container_id,
        "Netns": args.netns,
        "IfName": args.ifname,
        "Args": args.args,
        "Path": args.path,
        "NetnsOverride": args.env.get("CNI_NETNS_OVERRIDE", ""),
        "StdinData": base64.b64encode(args.stdin_data).decode(),
    }


def _append_command_log(path: str, entry: dict[str, Any]) -> None:
    try:
        with open(path, "rb") as fh:
            buf = fh.read()
    except OSError as exc:
        raise CNIError(f"reading command log {path}: {exc.strerror or exc}") from None
    entries: Any = []
    if buf:
        try:
            entries = loads(buf)
        except ValueError as exc:
            raise CNIError(f"decoding command log {path}: {exc}") from None
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise CNIError(f"decoding command log {path}: not a JSON array")
    entries.append(entry)
    _write_file(path, dumps_compact(entries).encode(), 0o644)


def _passthrough(conf: Mapping[str, Any], inject_dns: bool) -> bytes:
    from cnitool.spec import results

    version = conf.get("cniVersion") or ""
    if not isinstance(version, str):
        raise CNIError('"cniVersion" must be a string')
    prev = conf.get("prevResult")
    if prev is None:
        raise CNIError("ReportResult PASSTHROUGH/INJECT-DNS needs a prevResult in the config")
    try:
        result = results.new_result(prev, version)
    except CNIError as exc:
        raise CNIError(f"could not parse prevResult: {exc}") from None
    if inject_dns:
        result = results.convert(result, CURRENT)
        dns = dict(result.get("dns") or {})
        result["dns"] = {"nameservers": list(INJECTED_NAMESERVERS)}
        result["dns"].update((k, v) for k, v in dns.items() if k != "nameservers")
    try:
        out = results.convert(result, version or "0.1.0")
    except CNIError as exc:
        raise CNIError(f'failed to convert result to config "{version}": {exc}') from None
    return dumps_compact(out).encode()


def behave(args: CmdArgs, command: str) -> RawOutput:
    """Record the call and answer as the debug file says (every verb but VERSION)."""
    conf = keys.decode(_load_conf(args.stdin_data), args.shape)
    path = _debug_path(conf, args.args)
    if path == "":
        args.stderr.write(NO_DEBUG_MESSAGE)
        return RawOutput(b"{}")

    debug = read_debug(path)
    recorded = record_args(args)
    debug["Command"] = command
    debug["CmdArgs"] = recorded
    _write_file(path, dumps_compact(debug).encode(), 0o600)

    log_path = conf.get("commandLog") or ""
    if log_path:
        _append_command_log(log_path, {"Command": command, "CmdArgs": recorded})

    if debug["ReportStderr"]:
        args.stderr.write(debug["ReportStderr"])
        args.stderr.flush()

    report = debug["ReportResult"]
    if debug["ReportError"]:
        raise CNIError(debug["ReportError"], code=debug["ReportErrorCode"] or 999)
    if report in ("PASSTHROUGH", "INJECT-DNS"):
        data = _passthrough(conf, report == "INJECT-DNS")
    else:
        data = report.encode()
    exit_code = debug["ExitWithCode"] if debug["ExitWithCode"] > 0 else 0
    return RawOutput(data, exit_code)


def supported_versions(env: Mapping[str, str], stdin: bytes) -> tuple[str, ...]:
    """The version list: ``ReportVersionSupport`` of the debug file named by the call
    (only looked at when CNI_ARGS is set, as in the reference), else the default list."""
    cni_args = env.get("CNI_ARGS", "")
    if cni_args == "":
        return DEFAULT_VERSIONS
    path = _debug_path(_load_conf(stdin), cni_args)
    if path == "":
        return DEFAULT_VERSIONS
    support = read_debug(path)["ReportVersionSupport"]
    if support is None:
        return DEFAULT_VERSIONS
    if not support:
        raise CNIError(f'debug file {path}: "ReportVersionSupport" must list at least one version')
    return tuple(support)
