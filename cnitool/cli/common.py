"""What the commands share: option definitions, environment parsing (Go cnitool's
variables), the container ID, netns resolution, the error boundary and completion."""

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

from ..spec.errors import CODE_NAMES, CNIError, InvalidEnvironmentError

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
    return "cnitool-" + hashlib.sha512(os.fsencode(os.path.abspath(netns_path))).hexdigest()[:20]


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
# options (one definition each, shared by every command that takes them)

OUTPUT_HELP = "auto: a table on a terminal, JSON otherwise."
NOTE_OUTPUT_HELP = "auto: a one-line note on stderr when stdout is a terminal; json: none."
DRY_RUN_OUTPUT_HELP = NOTE_OUTPUT_HELP + " Also the format of --dry-run (table or JSON)."


def output_option(
    help: str = OUTPUT_HELP, choices: Sequence[str] = ("auto", "json", "table")
) -> Callable[[F], F]:
    return click.option(
        "--output",
        "-o",
        type=click.Choice(list(choices)),
        default="auto",
        show_default=True,
        help=help,
    )


def wants_json(output: str) -> bool:
    """--output auto means JSON unless stdout is a terminal."""
    if output == "auto":
        return not sys.stdout.isatty()
    return output == "json"


def debug_option(help: str = "Show tracebacks.") -> Callable[[F], F]:
    return click.option("--debug", is_flag=True, help=help)


def conf_dir_option(
    help: str = "Directory of network configurations [env NETCONFPATH].",
) -> Callable[[F], F]:
    return click.option(
        "--cni-conf-dir",
        "conf_dir",
        envvar="NETCONFPATH",
        default=DEFAULT_CONF_DIR,
        show_default=True,
        metavar="DIR",
        help=help,
    )


def bin_dirs_option(
    help: str = "Plugin directories [env CNI_PATH, else /opt/cni/bin].",
) -> Callable[[F], F]:
    """--cni-bin-dir, repeatable; resolve the values with split_bin_dirs()."""
    return click.option(
        "--cni-bin-dir", "bin_dirs", multiple=True, metavar="DIR[:DIR...]", help=help
    )


def cache_dir_option(help: str = "Result cache directory.") -> Callable[[F], F]:
    return click.option(
        "--cache-dir", default=DEFAULT_CACHE_DIR, show_default=True, metavar="DIR", help=help
    )


def timeout_option(default: float | None, help: str) -> Callable[[F], F]:
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=default,
        show_default=default is not None,
        metavar="SECONDS",
        help=help,
    )


def ifname_option(
    help: str = "Interface name inside the netns [env CNI_IFNAME].",
) -> Callable[[F], F]:
    return click.option(
        "--ifname",
        "-i",
        envvar="CNI_IFNAME",
        default=DEFAULT_IFNAME,
        show_default=True,
        metavar="NAME",
        help=help,
    )


def stack_options(func: F, decorators: Sequence[Callable[[F], F]]) -> F:
    """Apply decorators so that --help lists their options in the order given."""
    for deco in reversed(decorators):
        func = deco(func)
    return func


def attachment_arguments() -> list[Callable[[F], F]]:
    """NETWORK and NETNS, completed from the conf dir and the named netns."""
    return [
        click.argument("network", shell_complete=complete_network),
        click.argument("netns", shell_complete=complete_netns),
    ]


def container_id_option(
    help: str = "Container ID (default: cnitool- + 20 hex chars of sha512 of the netns path).",
) -> Callable[[F], F]:
    return click.option("--container-id", metavar="ID", help=help)


def common_options(output_help: str) -> Callable[[F], F]:
    """Options every CNI verb accepts; ``output_help`` says what --output changes."""

    def wrap(func: F) -> F:
        return stack_options(
            func,
            [
                conf_dir_option(),
                bin_dirs_option(
                    "Plugin directories, repeatable or ':'-separated [env CNI_PATH]; when "
                    "neither is given, /opt/cni/bin is used (the Go tool fails instead)."
                ),
                cache_dir_option("Result cache directory (results/ lives below it)."),
                timeout_option(
                    None, "Kill a plugin that runs longer than this (default: no limit)."
                ),
                output_option(output_help),
                debug_option("Show tracebacks and let pycni plugins print theirs (PYCNI_DEBUG=1)."),
            ],
        )

    return wrap


def attachment_options(func: F) -> F:
    """NETWORK and NETNS arguments and the options naming one attachment."""
    return stack_options(
        func,
        [
            *attachment_arguments(),
            ifname_option(),
            container_id_option(),
            click.option(
                "--args",
                "cni_args",
                envvar="CNI_ARGS",
                default="",
                metavar="K=V;K=V",
                help="CNI_ARGS passed to the plugins [env CNI_ARGS].",
            ),
            click.option(
                "--cap-args",
                envvar="CAP_ARGS",
                default="",
                metavar="JSON|@FILE",
                help="Capability args as a JSON object, or @file holding one [env CAP_ARGS].",
            ),
        ],
    )


dry_run_option = click.option(
    "--dry-run",
    is_flag=True,
    help="Show what each plugin would get (path, CNI_* variables, stdin); run nothing.",
)


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
        return wants_json(self.output)

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


def load_attachment(
    settings: Settings, network: str, netns: str, verb: str
) -> tuple[str, RuntimeConf, NetworkConfigList] | None:
    """The netns path, RuntimeConf and network of an add/check/del call, all validated
    before any plugin runs. With --dry-run, show what each plugin would get and return
    None: the caller then runs nothing."""
    path = resolve_netns(netns)
    rt = runtime_conf(path, settings.extra)
    net = settings.load_network(network)
    if verb == "DEL" and not rt.capability_args:
        # as GC does: the capability args of the ADD (portmap needs its mappings to find
        # and remove its rules; the Go one does nothing without them)
        from ..libcni.cache import ResultCache

        try:
            cached = ResultCache(settings.cache_dir).load(net.name, rt.container_id, rt.ifname)
        except CNIError:  # a corrupt entry: DEL reports it and goes on without it
            cached = None
        if cached is not None and cached.capability_args:
            rt.capability_args = dict(cached.capability_args)
    if settings.extra.get("dry_run"):
        from .dryrun import plan, show

        show(plan(settings.cni_config(), net, rt, verb), settings.json_output())
        return None
    return path, rt, net


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
