"""Entry point: a click group that imports a command's module only when it is invoked.

Start-up time matters (``cnitool add`` is often called in loops by scripts), so the group
knows its commands by name and module path and imports nothing else up front.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from .. import __version__

# name -> (module, short help shown in the command list without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "add": ("cnitool.cli.add", "Attach a container netns to a network (runs ADD)."),
    "check": ("cnitool.cli.check", "Verify an attachment (runs CHECK)."),
    "del": ("cnitool.cli.delete", "Detach a container netns from a network (runs DEL)."),
    "status": ("cnitool.cli.status", "Ask the plugins whether a network is ready (STATUS)."),
    "gc": ("cnitool.cli.gc", "Delete stale cached attachments of a network (GC)."),
    "networks": ("cnitool.cli.networks", "List the network configurations in the conf dir."),
    "version": ("cnitool.cli.version", "Show the tool version and the plugins' spec versions."),
    "plugins": ("cnitool.cli.plugins", "Install, list or remove plugin launchers."),
    "cache": ("cnitool.cli.cache", "Inspect the result cache of attachments."),
    "netns": ("cnitool.cli.netns", "Create, list and delete named network namespaces."),
    "leases": ("cnitool.cli.leases", "Inspect host-local IPAM leases."),
    "chains": ("cnitool.cli.chains", "Inspect the iptables chains the plugins wrote."),
    "serve": ("cnitool.cli.serve", "Run the plugin service (the launchers' warm path)."),
    "inspect": ("cnitool.cli.attachment", "Everything about one attachment: result, links, rules."),
    "node": ("cnitool.cli.node", "Install onto a node from a container, or uninstall."),
    "doctor": ("cnitool.cli.doctor", "Check this node's CNI set-up; --fix repairs what it can."),
}

HELP = """\
Run CNI plugins by hand, the way a container runtime would.

\b
  cnitool add <network> <netns>     attach (netns: a path or a name under /var/run/netns)
  cnitool del <network> <netns>     detach
  cnitool check|status|gc ...       the other CNI verbs

Compatible with the Go cnitool: the same arguments and environment variables
(NETCONFPATH, CNI_PATH, CNI_IFNAME, CNI_ARGS, CAP_ARGS) and the same container IDs,
cache files and output bytes. When neither --cni-bin-dir nor CNI_PATH is given,
plugins are looked up in /opt/cni/bin (the Go tool fails with "no paths provided").

With the plugin service up (cnitool serve), add, check and del run in one of its
preloaded workers, with this process's namespaces, environment and terminal.

\b
Exit status: 0 success; 1 a CNI or plugin error (one line on stderr naming the
plugin, verb, code and message); 2 a usage error; 130 interrupted.
"""


class LazyGroup(click.Group):
    """A group whose subcommands are imported on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        command: click.Command = importlib.import_module(entry[0]).command
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # as Abort, so click does not print a blank line of its own
            raise click.exceptions.Abort() from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # short help from the table: listing commands must not import them all
        rows = [(name, help_) for name, (_mod, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    help=HELP,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "-V", "--version", prog_name="cnitool")
@click.pass_context
def cli(ctx: click.Context) -> None:
    if ctx.invoked_subcommand is None:  # plain `cnitool`: the help, as other tools do
        click.echo(ctx.get_help())


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: runs the command and exits with its status (see HELP)."""
    try:
        rv = cli.main(args=argv, prog_name="cnitool", standalone_mode=False)
    except click.exceptions.Abort:
        # after the terminal's ^C, start on a fresh line; in a log, no blank line
        sys.stderr.write(("\n" if sys.stderr.isatty() else "") + "cnitool: interrupted\n")
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except BrokenPipeError:
        # the reader went away (cnitool ... | head): not an error worth a traceback
        sys.stderr.close()
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
