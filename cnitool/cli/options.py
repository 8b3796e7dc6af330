"""The command-line options and arguments the commands share (one definition each), and
the shell completion of network and netns names."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from .settings import DEFAULT_CACHE_DIR, DEFAULT_CONF_DIR, DEFAULT_IFNAME

F = TypeVar("F", bound=Callable[..., Any])

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


# -- shell completion of arguments (runs inside the completion callback) -------------


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
