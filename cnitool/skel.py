"""The plugin side of the CNI protocol: environment, stdin, version checks, output.

A plugin declares a :class:`Plugin` (its name, spec versions, about text and one
callable per verb). :func:`run` does everything the Go ``pkg/skel`` does around those
callables and returns ``(stdout bytes, exit code)`` without touching process state, so
the same plugin can be driven in-process (tests, a future warm path) or by the launcher
through :func:`main`, the only function here that reads ``os.environ``/stdin and writes
stdout.

What :func:`run` enforces, in order (cni-reference.md §1.2):

1. environment presence per verb (code 4, names in table order), with CNI_CONTAINERID and
   CNI_IFNAME validated when the verb requires them; an empty CNI_COMMAND prints the about
   text and the supported versions to stderr and succeeds;
2. for every verb but VERSION, stdin must be a JSON object with a valid ``name``
   (code 6 / code 7);
3. version reconciliation: ADD/DEL need the config ``cniVersion`` listed exactly; CHECK
   needs >= 0.4.0, GC and STATUS >= 1.1.0, and then the exact listing too (code 1);
4. ADD and DEL refuse a CNI_NETNS that is the plugin's own network namespace (code 8)
   unless CNI_NETNS_OVERRIDE is ``1``/``true``. The Go skel runs this check after the
   callback; here it runs before, so nothing is configured in the wrong namespace;
5. the ADD result is converted to the config's ``cniVersion`` and printed 4-space
   indented without a trailing newline;
6. errors: a :class:`CNIError` prints its JSON and exits 1; a JSON decode error becomes
   code 6; anything else code 999 with its message (traceback on stderr only when the
   plugin's environment has ``PYCNI_DEBUG=1``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from cnitool.spec import keys, names, netconf
from cnitool.spec import version as versions
from cnitool.spec.errors import (
    CNIError,
    DecodingError,
    InternalError,
    InvalidConfigError,
    InvalidEnvironmentError,
    InvalidNetNSError,
    IOFailureError,
)
from cnitool.spec.jsonfmt import dumps_compact, loads, read_bounded, type_name
from cnitool.spec.record import Record

if TYPE_CHECKING:
    from cnitool.spec.results import Result  # only ADD loads the result types


VERBS = ("ADD", "CHECK", "DEL", "GC", "STATUS", "VERSION")

# (variable, verbs that require it, validator applied when required and non-empty)
_ENV_TABLE: tuple[tuple[str, frozenset[str], Callable[[str], None] | None], ...] = (
    ("CNI_COMMAND", frozenset({"ADD", "CHECK", "DEL", "GC", "STATUS"}), None),
    ("CNI_CONTAINERID", frozenset({"ADD", "CHECK", "DEL"}), names.validate_container_id),
    ("CNI_NETNS", frozenset({"ADD", "CHECK"}), None),
    ("CNI_IFNAME", frozenset({"ADD", "CHECK", "DEL"}), names.validate_interface_name),
    ("CNI_ARGS", frozenset(), None),
    ("CNI_PATH", frozenset({"ADD", "CHECK", "DEL", "GC", "STATUS"}), None),
    ("CNI_NETNS_OVERRIDE", frozenset(), None),
)

# minimum config version per gated verb, and the verb's name in messages
_GATES = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}


class CmdArgs(Record):
    """Everything a verb callable gets: the CNI_* values, stdin and where to log.

    ``env`` is the whole environment of the call (for delegation), ``stderr`` where the
    plugin writes log lines, ``shape`` the fields of the plugin's configuration (keys are
    matched to them as the Go decoder matches struct fields).
    """

    command: str
    container_id: str
    netns: str
    ifname: str
    args: str
    path: str
    netns_override: bool
    stdin_data: bytes
    env: Mapping[str, str]
    stderr: TextIO
    shape: keys.Shape = keys.NETCONF

    def __hash__(self) -> int:
        return hash(self._values()[:8])  # env, stderr and shape are not hashable

    def config(self) -> dict[str, Any]:
        """The request configuration (stdin) as a dict, its keys spelled as the plugin's
        fields (``{"MTU": 1400}`` reads as ``mtu``); skel has already checked it."""
        obj = loads(self.stdin_data)
        if not isinstance(obj, dict):
            raise DecodingError("error unmarshall network config: not a JSON object")
        decoded: dict[str, Any] = keys.decode(obj, self.shape)
        return decoded

    @property
    def cni_version(self) -> str:
        """The config's ``cniVersion``; empty means 0.1.0."""
        value = self.config().get("cniVersion", "")
        return versions.normalize(value if isinstance(value, str) else "")


class RawOutput(Record):
    """A verb's output printed verbatim instead of a converted result (test plugins),
    optionally with a non-zero exit status after a successful run."""

    data: bytes = b""
    exit_code: int = 0


AddFunc = Callable[[CmdArgs], "Result | RawOutput | None"]
VerbFunc = Callable[[CmdArgs], RawOutput | None]
VersionsFunc = Callable[[Mapping[str, str], bytes], Sequence[str]]


class Plugin(Record):
    """A plugin's declaration: identity, supported versions and one callable per verb.

    A verb left as None succeeds without doing anything. ``dynamic_versions``
    (optional) computes the supported versions from the environment and stdin of the
    call, for test plugins whose version list is configurable. ``shape`` lists the fields
    of the plugin's configuration (its Go ``NetConf`` struct); the common ``NetConf``
    fields when not given.
    """

    name: str
    versions: tuple[str, ...]
    about: str
    add: AddFunc | None = None
    check: VerbFunc | None = None
    delete: VerbFunc | None = None
    status: VerbFunc | None = None
    gc: VerbFunc | None = None
    dynamic_versions: VersionsFunc | None = None
    shape: keys.Shape = keys.NETCONF


def _supported(plugin: Plugin, env: Mapping[str, str], stdin: bytes) -> list[str]:
    if plugin.dynamic_versions is not None:
        return list(plugin.dynamic_versions(env, stdin))
    return list(plugin.versions)


def _read_env(env: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The verb and the CNI_* values, after the presence table and name validation."""
    cmd = env.get("CNI_COMMAND", "")
    values: dict[str, str] = {}
    missing: list[str] = []
    for var, required_for, validate in _ENV_TABLE:
        value = env.get(var, "")
        values[var] = value
        if value == "":
            if cmd in required_for or var == "CNI_COMMAND":
                missing.append(var)
        elif validate is not None and cmd in required_for:
            validate(value)
    if missing:
        raise InvalidEnvironmentError(f"required env variables [{','.join(missing)}] missing")
    if cmd == "ADD":  # no kernel name template: the ADD would leave what it made
        names.validate_new_interface_name(values["CNI_IFNAME"])
    return cmd, values


def _validate_stdin(stdin: bytes, shape: keys.Shape) -> dict[str, Any]:
    """What skel checks on every request config before dispatch; returns the config,
    its keys spelled as ``shape``'s fields."""
    if not stdin.strip():
        # the Go decoder's wording, for the most common case (nothing on stdin)
        raise DecodingError("error unmarshall network config: unexpected end of JSON input")
    try:
        obj = loads(stdin)
    except ValueError as exc:
        raise DecodingError(f"error unmarshall network config: {exc}") from None
    if obj is None:
        obj = {}
    if not isinstance(obj, dict):
        raise DecodingError(
            f"error unmarshall network config: expected a JSON object, got {type_name(obj)}"
        )
    config: dict[str, Any] = keys.decode(obj, shape)
    name = config.get("name", "")
    if name is None:
        name = ""
    if not isinstance(name, str):
        raise DecodingError(
            f'error unmarshall network config: "name" must be a string, got {json.dumps(name)}'
        )
    if name == "":
        raise InvalidConfigError("missing network name")
    names.validate_network_name(name)
    return config


def _config_version(config: Mapping[str, Any]) -> str:
    """The config's ``cniVersion`` as the Go config decoder reads it (empty -> 0.1.0)."""
    value = config.get("cniVersion")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise DecodingError(f'"cniVersion" must be a string, got {json.dumps(value)}')
    return versions.normalize(value)


def _check_gate(verb: str, config_version: str, supported: list[str]) -> None:
    try:
        versions.parse(config_version)
    except CNIError as exc:
        raise DecodingError(exc.msg) from None
    versions.check_at_least(config_version, supported, _GATES[verb], verb)
    versions.check_supported(config_version, supported)


def _same_netns_as_self(netns: str) -> bool:
    """True when ``netns`` names the namespace this process runs in."""
    if netns == "":
        return False
    try:
        theirs = os.stat(netns)
        ours = os.stat("/proc/thread-self/ns/net")
    except OSError:
        return False  # a missing or unreadable path is the plugin's business
    return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)


def _version_output(supported: list[str]) -> bytes:
    info = {"cniVersion": versions.CURRENT, "supportedVersions": supported}
    return (dumps_compact(info) + "\n").encode()


def _result_output(result: Result, config_version: str) -> bytes:
    from cnitool.spec import results  # only ADD pays for the result types

    converted = results.convert(result, config_version)
    return results.format_result(converted).encode()


def _dispatch(
    plugin: Plugin, env: Mapping[str, str], stdin: bytes, stderr: TextIO
) -> tuple[bytes, int]:
    try:
        cmd, values = _read_env(env)
    except InvalidEnvironmentError:
        if env.get("CNI_COMMAND", "") == "" and plugin.about:
            supported = _supported(plugin, env, stdin)
            stderr.write(plugin.about + "\n")
            stderr.write(f"CNI protocol versions supported: {', '.join(supported)}\n")
            stderr.flush()
            return b"", 0
        raise

    if cmd == "VERSION":
        return _version_output(_supported(plugin, env, stdin)), 0

    config = _validate_stdin(stdin, plugin.shape)
    override = values["CNI_NETNS_OVERRIDE"]
    cmd_args = CmdArgs(
        command=cmd,
        container_id=values["CNI_CONTAINERID"],
        netns=values["CNI_NETNS"],
        ifname=values["CNI_IFNAME"],
        args=values["CNI_ARGS"],
        path=values["CNI_PATH"],
        netns_override=override.upper() == "TRUE" or override == "1",
        stdin_data=stdin,
        env=env,
        stderr=stderr,
        shape=plugin.shape,
    )
    if cmd not in VERBS:
        raise InvalidEnvironmentError(f"unknown CNI_COMMAND: {cmd}")

    config_version = _config_version(config)
    supported = _supported(plugin, env, stdin)
    if cmd in _GATES:
        _check_gate(cmd, config_version, supported)
    else:
        versions.check_supported(config_version, supported)
    # what every reference plugin's NetConf decoding refuses, before the verb runs
    netconf.check_types(config)

    if (
        cmd in ("ADD", "DEL")
        and not cmd_args.netns_override
        and _same_netns_as_self(cmd_args.netns)
    ):
        raise InvalidNetNSError("plugin's netns and netns from CNI_NETNS should not be the same")

    if cmd == "ADD":
        if plugin.add is None:
            return b"", 0
        out = plugin.add(cmd_args)
        if isinstance(out, RawOutput):
            return out.data, out.exit_code
        if out is None:
            return b"", 0
        return _result_output(out, config_version), 0

    func = {
        "CHECK": plugin.check,
        "DEL": plugin.delete,
        "GC": plugin.gc,
        "STATUS": plugin.status,
    }[cmd]
    if func is None:
        return b"", 0
    raw = func(cmd_args)
    if isinstance(raw, RawOutput):
        return raw.data, raw.exit_code
    return b"", 0


def error_output(err: CNIError) -> bytes:
    """What a failing plugin prints on stdout."""
    return err.to_json().encode()


def run(
    plugin: Plugin, env: Mapping[str, str], stdin: bytes, stderr: TextIO | None = None
) -> tuple[bytes, int]:
    """Handle one plugin call; returns ``(stdout bytes, exit code)``.

    Never exits, never changes the process environment, keeps no state between calls.
    """
    err_stream = stderr if stderr is not None else sys.stderr
    try:
        return _dispatch(plugin, env, stdin, err_stream)
    except CNIError as exc:
        return error_output(exc), 1
    except json.JSONDecodeError as exc:
        return error_output(DecodingError(str(exc))), 1
    except Exception as exc:  # the one place where any failure becomes a CNI error
        if env.get("PYCNI_DEBUG", "") == "1":
            import traceback

            traceback.print_exc(file=err_stream)
        message = str(exc) or type(exc).__name__
        return error_output(InternalError(message)), 1


def main(plugin: Plugin) -> int:
    """The launcher's entry: real environment, stdin and stdout; returns the exit code."""
    env = dict(os.environ)
    try:
        stdin = (
            b"" if env.get("CNI_COMMAND") == "VERSION" else read_bounded(sys.stdin.buffer, "stdin")
        )
    except OSError as exc:
        out, code = error_output(IOFailureError(f"error reading from stdin: {exc}")), 1
    except ValueError as exc:  # more than MAX_JSON_BYTES: refused before it is parsed
        out, code = error_output(DecodingError(f"error reading from stdin: {exc}")), 1
    else:
        out, code = run(plugin, env, stdin, sys.stderr)
    sys.stderr.flush()
    try:
        sys.stdout.buffer.write(out)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        pass
    return code
