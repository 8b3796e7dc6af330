"""What the CNI verb commands share: options, environment parsing (Go cnitool's
variables), the container ID, netns resolution and error rendering."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..spec.errors import CODE_NAMES, CNIError, InvalidConfigError, InvalidEnvironmentError

if TYPE_CHECKING:
    from ..libcni.api import CNIConfig
    from ..libcni.config import NetworkConfigList
    from ..libcni.runtime import RuntimeConf

DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_BIN_DIR = "/opt/cni/bin"
DEFAULT_CACHE_DIR = "/var/lib/cni"
DEFAULT_IFNAME = "eth0"
NETNS_DIR = "/var/run/netns"

F = TypeVar("F", bound=Callable[..., Any])


class UsageError(CNIError):
    """Bad command-line input detected before any plugin runs (exit 1, like Go)."""

    code = 4


# ---------------------------------------------------------------------------
# pure helpers (unit-tested without click)


def container_id_for(netns_path: str) -> str:
    """Go cnitool's container ID: ``cnitool-`` + 20 hex chars of sha512(abs path)."""
    return "cnitool-" + hashlib.sha512(os.path.abspath(netns_path).encode()).hexdigest()[:20]


def parse_cni_args(value: str) -> list[tuple[str, str]]:
    """``K=V;K=V`` the way Go cnitool splits CNI_ARGS: every pair exactly two non-empty parts."""
    if value == "":
        return []
    pairs: list[tuple[str, str]] = []
    for pair in value.split(";"):
        kv = pair.split("=")
        if len(kv) != 2 or kv[0] == "" or kv[1] == "":
            raise InvalidEnvironmentError(f'invalid CNI_ARGS pair "{pair}"')
        pairs.append((kv[0], kv[1]))
    return pairs


def parse_cap_args(value: str) -> dict[str, Any]:
    """CAP_ARGS / --cap-args: a JSON object, or ``@file`` holding one."""
    if value == "":
        return {}
    source = "CAP_ARGS"
    if value.startswith("@"):
        source = value[1:]
        try:
            with open(source, "rb") as fh:
                data: str | bytes = fh.read()
        except OSError as err:
            raise InvalidEnvironmentError(
                f"cannot read capability args {source}: {err.strerror}"
            ) from None
    else:
        data = value
    try:
        obj = json.loads(data)
    except ValueError as err:
        raise InvalidEnvironmentError(
            f"capability args from {source} are not valid JSON: {err}"
        ) from None
    if not isinstance(obj, dict):
        raise InvalidEnvironmentError(f"capability args from {source} must be a JSON object")
    return obj


def split_bin_dirs(values: Sequence[str], env: str | None) -> list[str]:
    """--cni-bin-dir values (each may be a ':'-list), else CNI_PATH, else /opt/cni/bin."""
    dirs = [d for v in values for d in v.split(os.pathsep) if d]
    if not dirs and env:
        dirs = [d for d in env.split(os.pathsep) if d]
    return dirs or [DEFAULT_BIN_DIR]


def is_named_netns_path(path: str) -> bool:
    parent = os.path.dirname(path)
    return parent in (NETNS_DIR, "/run/netns")


def resolve_netns(arg: str) -> str:
    """A bare name (no '/') means /var/run/netns/NAME; anything else is made absolute."""
    if arg == "":
        raise UsageError("netns argument is empty")
    if "/" not in arg:
        from ..netns import validate_name

        validate_name(arg)
        return os.path.join(NETNS_DIR, arg)
    return os.path.abspath(arg)


# ---------------------------------------------------------------------------
# options


def _opt(*decls: str, **kw: Any) -> Callable[[F], F]:
    return click.option(*decls, **kw)


def common_options(func: F) -> F:
    """Options every CNI verb accepts (added last-to-first so --help lists them in order)."""
    decorators = [
        _opt(
            "--cni-conf-dir",
            "conf_dir",
            envvar="NETCONFPATH",
            default=DEFAULT_CONF_DIR,
            show_default=True,
            metavar="DIR",
            help="Directory of network configurations [env NETCONFPATH].",
        ),
        _opt(
            "--cni-bin-dir",
            "bin_dirs",
            multiple=True,
            metavar="DIR[:DIR...]",
            help="Plugin directories, repeatable or ':'-separated [env CNI_PATH]; when "
            "neither is given, /opt/cni/bin is used (the Go tool fails instead).",
        ),
        _opt(
            "--cache-dir",
            default=DEFAULT_CACHE_DIR,
            show_default=True,
            metavar="DIR",
            help="Result cache directory (results/ lives below it).",
        ),
        _opt(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            metavar="SECONDS",
            help="Kill a plugin that runs longer than this (default: no limit).",
        ),
        _opt(
            "--output",
            "-o",
            type=click.Choice(["auto", "json", "table"]),
            default="auto",
            show_default=True,
            help="auto: a table on a terminal, the result JSON (Go's bytes) otherwise.",
        ),
        _opt(
            "--debug",
            is_flag=True,
            help="Show tracebacks and let pycni plugins print theirs (PYCNI_DEBUG=1).",
        ),
    ]
    for deco in reversed(decorators):
        func = deco(func)
    return func


def attachment_options(func: F) -> F:
    """Options naming one attachment (container ID, interface, args)."""
    decorators = [
        _opt(
            "--ifname",
            "-i",
            envvar="CNI_IFNAME",
            default=DEFAULT_IFNAME,
            show_default=True,
            help="Interface name inside the netns [env CNI_IFNAME].",
        ),
        _opt(
            "--container-id",
            metavar="ID",
            help="Container ID (default: cnitool- + 20 hex chars of sha512 of the netns path).",
        ),
        _opt(
            "--args",
            "cni_args",
            envvar="CNI_ARGS",
            default="",
            metavar="K=V;K=V",
            help="CNI_ARGS passed to the plugins [env CNI_ARGS].",
        ),
        _opt(
            "--cap-args",
            envvar="CAP_ARGS",
            default="",
            metavar="JSON|@FILE",
            help="Capability args as a JSON object, or @file holding one [env CAP_ARGS].",
        ),
    ]
    for deco in reversed(decorators):
        func = deco(func)
    return func


# ---------------------------------------------------------------------------
# running a verb


@dataclass
class Settings:
    conf_dir: str
    bin_dirs: list[str]
    cache_dir: str
    timeout: float | None
    output: str
    debug: bool
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_kwargs(cls, kw: dict[str, Any]) -> Settings:
        return cls(
            conf_dir=kw.pop("conf_dir"),
            bin_dirs=split_bin_dirs(kw.pop("bin_dirs"), os.environ.get("CNI_PATH")),
            cache_dir=kw.pop("cache_dir"),
            timeout=kw.pop("timeout"),
            output=kw.pop("output"),
            debug=kw.pop("debug"),
            extra=kw,
        )

    def json_output(self) -> bool:
        if self.output == "auto":
            return not sys.stdout.isatty()
        return self.output == "json"

    def cni_config(self) -> CNIConfig:
        from ..libcni.api import CNIConfig

        env = None
        if self.debug:
            env = dict(os.environ)
            env["PYCNI_DEBUG"] = "1"
        return CNIConfig(self.bin_dirs, self.cache_dir, timeout=self.timeout, env=env)

    def load_network(self, name: str) -> NetworkConfigList:
        from ..libcni.config import load_conf_list
        from ..spec.names import validate_network_name

        validate_network_name(name)
        return load_conf_list(self.conf_dir, name)


def runtime_conf(netns: str, kw: dict[str, Any]) -> RuntimeConf:
    """The RuntimeConf for one attachment, validated before any plugin runs."""
    from ..libcni.runtime import RuntimeConf
    from ..spec.names import validate_container_id, validate_interface_name

    container_id = kw.get("container_id") or container_id_for(netns)
    validate_container_id(container_id)
    ifname = kw.get("ifname") or DEFAULT_IFNAME
    validate_interface_name(ifname)
    return RuntimeConf(
        container_id=container_id,
        netns=netns,
        ifname=ifname,
        args=parse_cni_args(kw.get("cni_args") or ""),
        capability_args=parse_cap_args(kw.get("cap_args") or ""),
    )


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


__all__ = [
    "CNIError",
    "InvalidConfigError",
    "Settings",
    "attachment_options",
    "common_options",
    "container_id_for",
    "describe_error",
    "fail",
    "parse_cap_args",
    "parse_cni_args",
    "reporting",
    "resolve_netns",
    "runtime_conf",
]


# ---------------------------------------------------------------------------
# shell completion of arguments (runs inside the completion callback)


def complete_network(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Network names found in the conf dir (the --cni-conf-dir given so far, else env)."""
    from ..libcni.config import scan_dir

    conf_dir = ctx.params.get("conf_dir") or os.environ.get("NETCONFPATH") or DEFAULT_CONF_DIR
    try:
        names = {e.network.name for e in scan_dir(conf_dir) if e.network is not None}
    except Exception:  # noqa: BLE001 - completion must never fail loudly
        return []
    return sorted(n for n in names if n.startswith(incomplete))


def complete_netns(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Named network namespaces (paths complete as files in the shell)."""
    from ..netns import list_names

    return [n for n in list_names() if n.startswith(incomplete)]
