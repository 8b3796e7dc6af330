"""``cnitool serve``: the plugin service (the launchers' warm path), its status and units."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .errors import reporting
from .options import debug_option, output_option
from .output import print_table, write_json
from .settings import wants_json

DEFAULT_SOCKET = "/run/pycni/plugins.sock"
_SOCKET_HELP = "Unix socket of the service (the launchers read PYCNI_SOCKET)."
F = TypeVar("F", bound=Callable[..., Any])


def _socket_option() -> Callable[[F], F]:
    return click.option(
        "--socket",
        "socket_path",
        default=DEFAULT_SOCKET,
        show_default=True,
        envvar="PYCNI_SOCKET",
        metavar="PATH",
        help=_SOCKET_HELP,
    )


def _log(line: str) -> None:
    sys.stderr.write(f"cnitool serve: {line}\n")
    sys.stderr.flush()


@click.group("serve", invoke_without_command=True, short_help="Run the plugin service.")
@_socket_option()
@click.option(
    "--workers",
    default=16,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Plugin calls run at the same time; more wait in the queue.",
)
@click.option(
    "--queue",
    default=256,
    show_default=True,
    type=click.IntRange(0, 65536),
    help="Calls that may wait for a worker; beyond, the launcher runs the plugin itself.",
)
@click.option(
    "--timeout",
    default=120.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="Kill a call's worker (and its process group) after this long.",
)
@click.option(
    "--spare/--no-spare",
    default=True,
    show_default=True,
    help="Have a forker process keep workers forked ahead of the calls, so that a call "
    "neither waits for a fork nor has the service's loop pay for one (--no-spare: the "
    "service forks each worker itself).",
)
@debug_option()
@click.pass_context
def command(
    ctx: click.Context,
    socket_path: str,
    workers: int,
    queue: int,
    timeout: float,
    spare: bool,
    debug: bool,
) -> None:
    """Run the plugin service in the foreground, until SIGTERM or SIGINT.

    The service imports every plugin once and runs each call of a launcher (written
    by `cnitool plugins install`) in a fresh worker forked from that preloaded heap,
    ahead of the call, by a forker process (the workers are the service's children
    all the same: it reaps them, and they die with it). The worker
    joins the caller's mount and network namespaces and working directory and takes
    its environment, stdin and umask, so it sees what the exec'd plugin would have
    seen; delegates that are our own launchers (bridge to host-local) run in the same
    worker. A crashing or hanging plugin costs its worker only.

    `cnitool add`, `check` and `del` run here too when the service is up: a worker
    takes the caller's place (namespaces, directory, environment, stdin, stdout and
    stderr), runs the command, and forks the command's plugins of ours from itself
    instead of exec'ing them; SIGINT, SIGTERM and SIGHUP sent to the caller reach the
    command, and a stop (^Z) stops it until the caller is continued. Commands use at most
    half the workers, so plugin calls always find one; --timeout applies to a whole
    command as to a plugin call (not counting the time it is stopped).

    Without the service, or when it cannot take a call, the launchers run the plugin
    themselves (the cold path). If the service goes away during a call, the launcher
    reports a CNI error (code 999) and does not run the call again.

    The socket's directory is created root-only (0700) and the socket is 0600; only
    root may call. Under systemd (`cnitool serve install-units`), socket activation
    passes the socket instead (LISTEN_FDS).

    \b
    On a node:
      cnitool plugins install --bin-dir /opt/cni/bin
      cnitool serve install-units && systemctl daemon-reload
      systemctl enable --now pycni-plugins.socket   # or pycni-plugins.service
      cnitool serve status
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..warm import service

    config = service.Config(
        socket_path=socket_path, workers=workers, queue=queue, timeout=timeout, spare=spare
    )
    with reporting("serve", debug):
        if os.geteuid() != 0:
            raise service.ServiceError("cnitool serve must run as root")
        service.serve(config, _log)


@command.command("status", short_help="Show whether the service is up, and its numbers.")
@_socket_option()
@output_option()
def status(socket_path: str, output: str) -> None:
    """Show whether the service answers on the socket, its pid, uptime, requests
    served (plugin calls and cnitool commands), failures and latency percentiles.
    Exit status 1 when it is not up."""
    from ..warm import service

    try:
        info: dict[str, Any] = service.query_status(socket_path)
    except (OSError, ValueError) as exc:
        info = {"up": False, "socket": socket_path, "reason": str(exc) or type(exc).__name__}
    else:
        info = {"up": True, **info}
    if wants_json(output):
        write_json(info)
    else:
        print_table(f"Plugin service on {socket_path}", ["", ""], _status_rows(info))
    if not info["up"]:
        raise SystemExit(1)


def _status_rows(info: dict[str, Any]) -> list[list[str]]:
    if not info["up"]:
        return [["up", "no"], ["reason", str(info["reason"])]]
    lat = info["latencyMs"]
    return [
        ["up", "yes"],
        ["pid", str(info["pid"])],
        ["version", str(info["version"])],
        ["uptime", f"{info['uptimeSeconds']} s (since {info['startedAt']})"],
        ["requests", f"{info['requests']} (of which cnitool commands: {info['commands']})"],
        ["failed (plugin error)", str(info["failed"])],
        ["crashed (worker killed)", f"{info['crashed']} ({info['timedOut']} timed out)"],
        ["rejected (bad requests)", str(info["rejected"])],
        ["sent back to run cold", str(info["ranCold"])],
        ["running / queued", f"{info['running']} / {info['queued']} ({info['workers']} workers)"],
        ["latency p50 / p99", f"{lat['p50']} / {lat['p99']} ms ({lat['samples']} samples)"],
        ["plugins", ", ".join(info["plugins"])],
    ]


@command.command("install-units", short_help="Write the systemd units for the service.")
@click.option(
    "--unit-dir",
    default="/etc/systemd/system",
    show_default=True,
    metavar="DIR",
    help="Directory for pycni-plugins.service and pycni-plugins.socket.",
)
@click.option(
    "--cnitool",
    "cnitool_path",
    default=None,
    metavar="PATH",
    help="The cnitool the service runs (default: this installation's).",
)
@output_option()
@debug_option()
def install_units(unit_dir: str, cnitool_path: str | None, output: str, debug: bool) -> None:
    """Write pycni-plugins.service (runs `cnitool serve`) and pycni-plugins.socket
    (its socket-activated variant) into the unit dir; then run `systemctl
    daemon-reload` and enable one of them."""
    from ..warm import units

    with reporting("serve install-units", debug):
        actions = units.install_units(unit_dir, cnitool_path or units.default_cnitool())
    rows = [{"name": a.name, "path": a.path, "action": a.action} for a in actions]
    if wants_json(output):
        write_json(rows)
    else:
        print_table(
            f"Units in {unit_dir}", ["unit", "action"], [[a.name, a.action] for a in actions]
        )
