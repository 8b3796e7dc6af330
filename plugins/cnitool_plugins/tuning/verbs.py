"""tuning ADD, CHECK and DEL: sysctls and link attributes of the container interface.

ADD writes the sysctls inside the container's netns, saves the attributes it is about to
change to ``<dataDir>/<containerID>_<ifname>.json`` and changes them; DEL puts the saved
values back and removes the file (sysctls are not reverted); CHECK compares what is in
the kernel with the configuration.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from cnitool import skel
from cnitool.spec import keys, results
from cnitool.spec.errors import CNIError, ErrorList

from .._lib import netns, statefile
from .._lib.netconf import required_prev_result
from . import config
from .config import TuningConf

MISSING_PREV = "Required prevResult missing"


def _request(cmd: skel.CmdArgs, strict: bool) -> TuningConf:
    raw = keys.decode(config.decode(cmd.stdin_data), cmd.shape) if strict else cmd.config()
    return config.load(raw, cmd.args)


def _sysctl_paths(conf: TuningConf, ifname: str) -> list[tuple[str, str, str]]:
    """(key, file, value) for every sysctl, all checked before anything is written."""
    return [(k, config.sysctl_path(k, ifname), v) for k, v in conf.sysctl.items()]


def _link(nl: Any, ifname: str) -> Any:
    link = nl.link(ifname)
    if link is None:
        raise CNIError(f'failed to get "{ifname}": Link not found')
    return link


def _promisc(link: Any) -> bool:
    from .._lib.netlink import IFF_PROMISC

    return bool(link.flags & IFF_PROMISC)


def backup_bytes(conf: TuningConf, link: Any) -> bytes:
    """The saved attributes, in the reference's field order and single-space indent."""
    saved: dict[str, Any] = {}
    if conf.mac and link.mac:
        saved["mac"] = link.mac
    if conf.promisc:
        saved["promisc"] = _promisc(link)
    if conf.mtu and link.mtu:
        saved["mtu"] = link.mtu
    if conf.allmulti is not None:
        saved["allmulti"] = bool(link.allmulti)
    if conf.txqlen is not None:
        saved["txQLen"] = link.txqlen
    return json.dumps(saved, indent=1).encode()


def _make_dirs(directory: str) -> None:
    """Create ``directory`` and its missing parents with mode 0600, as the reference does
    (root still enters them)."""
    if os.path.isdir(directory):
        return
    parent = os.path.dirname(directory)
    if parent and parent != directory:
        _make_dirs(parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o600)


def _write_backup(path: str, data: bytes) -> None:
    try:
        _make_dirs(os.path.dirname(path))
        statefile.write(path, data)
    except OSError as exc:
        raise CNIError(f'failed to save backup "{path}": {exc.strerror}') from None


def _apply(cmd: skel.CmdArgs, conf: TuningConf, sysctls: list[tuple[str, str, str]]) -> None:
    """Runs inside the container's netns."""
    for key, path, value in sysctls:
        try:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(value)
        except OSError as exc:
            raise CNIError(
                f'failed to set sysctl "{key}" ({path}) to "{value}": {exc.strerror}'
            ) from None
    if not conf.changes_link:
        return
    from .._lib.netlink import Netlink, NetlinkError

    with Netlink() as nl:
        link = _link(nl, cmd.ifname)
        backup = config.backup_file(conf.data_dir, cmd.container_id, cmd.ifname)
        saved = backup_bytes(conf, link)
        _write_backup(backup, saved)
        try:
            if conf.mac:
                nl.set_mac(link.index, config.parse_mac(conf.mac))
            if conf.promisc:
                nl.set_promisc(link.index, True)
            if conf.mtu:
                nl.set_mtu(link.index, conf.mtu)
            if conf.allmulti is not None:
                nl.set_allmulti(link.index, conf.allmulti)
            if conf.txqlen is not None:
                nl.set_txqlen(link.index, conf.txqlen)
        except NetlinkError as exc:
            _undo_tuning(cmd, backup, saved)
            raise CNIError(f'failed to tune "{cmd.ifname}": {exc}') from None


def _undo_tuning(cmd: skel.CmdArgs, backup: str, saved: bytes) -> None:
    """After a change failed part-way: put back what was saved and drop the backup, so the
    failed ADD leaves neither (the reference leaves both for the runtime's DEL). When
    restoring fails, the backup stays: that DEL retries it."""
    from .._lib.netlink import NetlinkError

    try:
        _restore(cmd, json.loads(saved))
    except (CNIError, NetlinkError) as exc:
        _log(cmd, f"undoing the failed ADD: {exc}; backup {backup!r} kept for DEL")
        return
    _remove(cmd, backup)


def cmd_add(cmd: skel.CmdArgs) -> results.Result:
    conf = _request(cmd, strict=True)
    config.check_allowlist(conf.sysctl)
    if "/" in cmd.ifname:  # refused even when there are no sysctls
        config.sysctl_path("net", cmd.ifname)
    result = required_prev_result(conf.raw, MISSING_PREV)
    sysctls = _sysctl_paths(conf, cmd.ifname)
    with netns.NetNS(cmd.netns) as ns:
        ns.run(_apply, cmd, conf, sysctls)
    if conf.mac:
        # the echoed result shows the new address on the tuned interface
        result = results.convert(result, "1.1.0")
        for iface in result.get("interfaces", []):
            if iface.get("name") == cmd.ifname:
                iface["mac"] = conf.mac
    return result


# -- DEL ------------------------------------------------------------------------------------
def _log(cmd: skel.CmdArgs, msg: str) -> None:
    cmd.stderr.write(f"tuning: {msg}\n")


def _remove(cmd: skel.CmdArgs, path: str) -> None:
    try:
        statefile.remove(path)
    except OSError as exc:
        _log(cmd, f'cannot remove backup "{path}": {exc.strerror}')


def _restore(cmd: skel.CmdArgs, saved: dict[str, Any]) -> bool:
    """Put the saved attributes back (inside the netns). False when the link is gone."""
    from .._lib.netlink import Netlink, NetlinkError

    with Netlink() as nl:
        link = nl.link(cmd.ifname)
        if link is None:
            return False
        errors = ErrorList()
        steps: list[tuple[str, Any, Any]] = [
            ("MTU", saved.get("mtu"), nl.set_mtu),
            ("MAC address", saved.get("mac"), nl.set_mac),
            ("promiscuous mode", saved.get("promisc"), nl.set_promisc),
            ("all-multicast mode", saved.get("allmulti"), nl.set_allmulti),
            ("transmit queue length", saved.get("txQLen"), nl.set_txqlen),
        ]
        for what, value, setter in steps:
            if value is None or value == "" or (what == "MTU" and value == 0):
                continue
            try:
                if what == "MAC address":
                    value = config.parse_mac(value)
                setter(link.index, value)
            except (NetlinkError, CNIError, TypeError, ValueError) as exc:
                errors.add(CNIError(f"failed to restore {what}: {exc}"))
        errors.raise_if_any()
        return True


def _load_backup(path: str) -> dict[str, Any] | None:
    with open(path, "rb") as fh:
        data = json.loads(fh.read())
    return data if isinstance(data, dict) else None


def cmd_del(cmd: skel.CmdArgs) -> None:
    """Restore from the backup and remove it. Never fails once the config is readable."""
    conf = _request(cmd, strict=False)
    path = config.backup_file(conf.data_dir, cmd.container_id, cmd.ifname)
    if "/" in cmd.ifname:
        return
    if not os.path.exists(path):
        statefile.discard_temp(path)  # a crash may have left it while writing the backup
        return
    try:
        saved = _load_backup(path)
    except (OSError, ValueError) as exc:
        _log(cmd, f'unreadable backup "{path}" removed: {exc}')
        _remove(cmd, path)
        return
    try:
        with netns.NetNS(cmd.netns) as ns:
            restored = ns.run(_restore, cmd, saved or {})
    except netns.NetNSNotFoundError:
        restored = False  # the container is gone: nothing left to restore
    except Exception as exc:  # DEL is best effort; the backup stays for a retry
        _log(cmd, f"restoring {cmd.ifname} failed: {exc}")
        return
    if not restored:
        _log(cmd, f'"{cmd.ifname}" no longer exists: backup "{path}" removed')
    _remove(cmd, path)


# -- CHECK ----------------------------------------------------------------------------------
def _verify(cmd: skel.CmdArgs, conf: TuningConf, sysctls: list[tuple[str, str, str]]) -> None:
    for _key, path, want in sysctls:
        try:
            with open(path, encoding="utf-8") as fh:
                have = fh.read().rstrip("\n")
        except OSError as exc:
            raise CNIError(f'failed to read sysctl "{path}": {exc.strerror}') from None
        if have.split() != want.split():
            raise CNIError(
                f"Error: Tuning configured value of {path} is {want}, current value is {have}"
            )
    from .._lib.netlink import Netlink

    with Netlink() as nl:
        link = nl.link(cmd.ifname)
    if link is None:
        raise CNIError(f"Cannot find container link {cmd.ifname}")
    name = cmd.ifname
    if conf.mac and config.parse_mac(conf.mac) != link.mac:
        raise CNIError(
            f"Error: Tuning configured Ethernet of {name} is {conf.mac}, current value is {link.mac}"
        )
    if conf.promisc != _promisc(link):
        raise CNIError(
            f"Error: Tuning link {name} configured promisc is {str(conf.promisc).lower()}, "
            f"current value is {int(_promisc(link))}"
        )
    if conf.mtu and conf.mtu != link.mtu:
        raise CNIError(
            f"Error: Tuning configured MTU of {name} is {conf.mtu}, current value is {link.mtu}"
        )
    if conf.allmulti is not None and conf.allmulti != link.allmulti:
        raise CNIError(
            f"Error: Tuning configured all-multicast mode of {name} is "
            f"{str(conf.allmulti).lower()}, current value is {str(link.allmulti).lower()}"
        )
    if conf.txqlen is not None and conf.txqlen != link.txqlen:
        raise CNIError(
            f"Error: Tuning configured transmit queue length of {name} is {conf.txqlen}, "
            f"current value is {link.txqlen}"
        )


def cmd_check(cmd: skel.CmdArgs) -> None:
    conf = _request(cmd, strict=True)
    required_prev_result(conf.raw, MISSING_PREV)
    sysctls = _sysctl_paths(conf, cmd.ifname)
    with netns.NetNS(cmd.netns) as ns:
        ns.run(_verify, cmd, conf, sysctls)
