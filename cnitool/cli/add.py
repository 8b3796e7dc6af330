"""``cnitool add <network> <netns>``: run ADD over the network's plugin chain."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from .dryrun import show_plan
from .errors import UsageError, describe_error, fail, reporting
from .options import attachment_options, common_options, dry_run_option
from .output import note, render_result, write_json_result
from .settings import Attachment, Settings, is_named_netns_path, load_attachment

if TYPE_CHECKING:
    from ..libcni.api import CNIConfig
    from ..libcni.config import NetworkConfigList
    from ..libcni.runtime import RuntimeConf


@contextlib.contextmanager
def _attach_lock(cache_dir: str) -> Iterator[None]:
    """Hold an exclusive lock on the cache dir from the already-attached check to the end
    of the ADD (and its rollback), so two concurrent ADDs of one attachment cannot both
    pass the check: the loser's rollback DEL would tear down the winner's interface."""
    import fcntl

    try:
        os.makedirs(cache_dir, exist_ok=True)
        fd = os.open(cache_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # no usable cache dir: saving the result fails later, with its rollback
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _ensure_netns(netns: str) -> bool:
    """Create a missing *named* netns (and say so); a missing plain path is an error.
    Returns True when the netns was created here."""
    from .. import netns as nsmod
    from ..spec.errors import InvalidNetNSError

    if os.path.lexists(netns):
        return False
    if is_named_netns_path(netns):
        nsmod.create(os.path.basename(netns), os.path.dirname(netns))
        note(f"cnitool: created network namespace {netns}")
        return True
    raise InvalidNetNSError(f"netns {netns} does not exist")


def _drop_created(path: str) -> None:
    """Remove the netns this ADD created, once the rollback left nothing in it."""
    from .. import netns as nsmod

    try:
        nsmod.delete(os.path.basename(path), os.path.dirname(path), missing_ok=True)
    except Exception as err:  # noqa: BLE001 - the ADD error matters more
        note(f"cnitool: could not remove the network namespace {path} it created: {err}")
    else:
        note(f"cnitool: removed network namespace {path} again")


def _refuse_second_add(cni: CNIConfig, net: NetworkConfigList, rt: RuntimeConf) -> None:
    """Refuse an ADD whose interface is already cached as attached in this container.

    The spec forbids a second ADD of one attachment before its DEL, and an interface name
    held by another network's attachment makes the ADD fail: either way the rollback DEL
    would then tear down the interface that already works."""
    from ..spec.errors import IOFailureError

    path = cni.cache.file_path(net.name, rt.container_id, rt.ifname)
    if os.path.lexists(path):
        raise UsageError(
            f'network "{net.name}" is already attached to container {rt.container_id} '
            f"as {rt.ifname} (cached in {path}); run del first, or cache rm for a stale entry"
        )
    try:
        cached = cni.cache.attachments(rt.container_id)
    except IOFailureError:
        return  # an unreadable cache fails the ADD when the result is saved (and rolls back)
    taken = [a for a in cached if a.ifname == rt.ifname]
    if taken:
        raise UsageError(
            f"interface {rt.ifname} of container {rt.container_id} already belongs to "
            f'network "{taken[0].network}" (cached in {taken[0].path}); choose another '
            "--ifname, or del that attachment first"
        )


_STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGHUP})


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived during the ADD: roll back as for Ctrl-C, then exit.

    A BaseException, as KeyboardInterrupt is, so no ``except Exception`` on the way
    swallows it; the plugin running then has its process group killed on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(signum)


def _ignore_repeated(signum: int, _frame: object) -> None:
    note(f"cnitool: {signal.Signals(signum).name} ignored while rolling back")


@contextlib.contextmanager
def _stop_signals(handler: Any) -> Iterator[None]:
    """Run the block with ``handler`` for SIGTERM and SIGHUP; the previous ones after."""
    previous = {sig: signal.signal(sig, handler) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _rollback(
    cni: CNIConfig, net: NetworkConfigList, rt: RuntimeConf, created: bool
) -> list[Exception]:
    """libcni's rollback of the ADD (DEL of every plugin, past failures), then removal of
    the netns when this ADD ``created`` it and every DEL succeeded. SIGTERM and SIGHUP
    are ignored meanwhile (and said so): the rollback is what they asked for."""
    with _stop_signals(_ignore_repeated):  # a runtime stopping us wants the cleanup done
        problems = cni.rollback_add(net, rt)
    if created and not problems:
        _drop_created(rt.netns)
    return problems.errors


def _add_or_roll_back(
    cni: CNIConfig,
    net: NetworkConfigList,
    rt: RuntimeConf,
    path: str,
    settings: Settings,
    *,
    rollback: bool,
) -> Any:
    """Run ADD over the chain; when it fails, is interrupted (SIGINT) or stopped (SIGTERM,
    SIGHUP), DEL the chain again (unless --no-rollback) and report. A stop signal kills
    the running plugin's process group (as SIGINT does), then exits with 128 + signal."""
    from ..spec.errors import CNIError

    # a stop signal is held while the netns is made, so `created` is always known
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        created = _ensure_netns(path)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise
    try:
        with _stop_signals(_raise_terminated):
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a held one lands here
            result = cni.add_network_list(net, rt)
        if created:  # del removes it again once nothing uses it
            from . import made_netns

            made_netns.mark(settings.cache_dir, path)
        return result
    except Terminated as stop:  # the running plugin's process group is already killed
        if rollback:
            note(f"cnitool: {stop.name} received; running DEL for the chain")
            for problem in _rollback(cni, net, rt, created):
                note("cnitool: rollback " + describe_error(problem, "del"))
        note(f"cnitool: terminated by {stop.name}")
        raise SystemExit(128 + stop.signum) from None
    except KeyboardInterrupt:  # the running plugin's process group is already killed
        if rollback:
            note("cnitool: interrupted; running DEL for the chain")
            for problem in _rollback(cni, net, rt, created):
                note("cnitool: rollback " + describe_error(problem, "del"))
        raise
    except CNIError as err:  # a plugin failed, or the result could not be cached
        if not rollback:
            raise
        problems = _rollback(cni, net, rt, created)
        if problems:
            fail(
                [describe_error(err, "add")]
                + ["rollback " + describe_error(p, "del") for p in problems],
                debug=settings.debug,
                exc=problems[-1],
            )
        raise


@click.command("add", short_help="Attach a container netns to a network (runs ADD).")
@attachment_options
@click.option(
    "--no-rollback",
    is_flag=True,
    help="When ADD fails part-way, leave it; by default DEL runs for the whole chain.",
)
@dry_run_option
@common_options("auto: tables on a terminal, the result JSON (Go's bytes) otherwise.")
def command(
    network: str,
    netns: str,
    ifname: str,
    container_id: str | None,
    cni_args: str,
    cap_args: str,
    dry_run: bool,
    no_rollback: bool,
    **common: Any,
) -> None:
    """Attach NETNS to NETWORK: run ADD for each plugin of the network's configuration
    and print the final result.

    NETNS is a path, or the name of a netns under /var/run/netns (created when missing).
    When a plugin fails, or the result cannot be cached, DEL runs over the whole chain so
    nothing is left half made (the spec asks runtimes to do so), and a netns this
    command created is removed again once that DEL succeeded; --no-rollback skips both.
    Ctrl-C, SIGTERM and SIGHUP stop the running plugin's process group and roll back the
    same way (then exit 130, 143 and 129). An attachment that is already cached is not added a second time (the spec
    forbids it): del it first.
    """
    settings = Settings.from_options(**common)
    attachment = Attachment(ifname, container_id, cni_args, cap_args)
    with reporting("add", settings.debug):
        path, rt, net = load_attachment(settings, attachment, network, netns, "ADD")
        if dry_run:
            show_plan(settings, net, rt, "ADD")
            return
        from ..spec.names import validate_new_interface_name

        validate_new_interface_name(rt.ifname)  # the Go plugins would leave their veth
        cni = settings.cni_config()
        with _attach_lock(settings.cache_dir):
            _refuse_second_add(cni, net, rt)
            cni.find_plugins(net, "add")  # a missing plugin fails before anything runs
            result = _add_or_roll_back(cni, net, rt, path, settings, rollback=not no_rollback)
    if result is None:  # every plugin answered with an empty result; Go prints nothing too
        return
    if settings.json_output():
        write_json_result(result)
    else:
        render_result(
            result, network=network, netns=path, ifname=rt.ifname, container_id=rt.container_id
        )
