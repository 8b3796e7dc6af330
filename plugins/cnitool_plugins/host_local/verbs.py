"""The host-local verbs: ADD, DEL, CHECK, GC and STATUS."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from cnitool.skel import CmdArgs
from cnitool.spec.errors import CNIError, ErrorList, InvalidConfigError, PluginNotAvailableError

from . import config
from .allocator import Allocation, Allocator
from .config import IP, ip_str
from .store import Store, lease_content

RESULT_VERSION = "1.1.0"


def _load(cmd: CmdArgs) -> config.IPAMConfig:
    return config.load(cmd.config(), cmd.args)


def cmd_add(cmd: CmdArgs) -> dict[str, Any]:
    conf = _load(cmd)
    result: dict[str, Any] = {"cniVersion": RESULT_VERSION}
    dns: dict[str, Any] = {}
    if conf.resolv_conf:
        from .dns import parse_resolv_conf

        dns = parse_resolv_conf(conf.resolv_conf)

    cid, ifname = cmd.container_id, cmd.ifname
    requested = list(dict.fromkeys(conf.requested))  # de-duplicated, request order kept
    allocations: list[Allocation] = []
    with Store(conf.name, conf.data_dir) as store:
        owned: list[str] | None = None
        live: set[str] = set()  # lease contents seen by the scan, when there is one
        try:
            for idx, rangeset in enumerate(conf.ranges):
                want: IP | None = None
                for ip in requested:
                    if rangeset.contains(ip):
                        want = ip
                        requested.remove(ip)
                        break
                if want is None and owned is None:
                    owned = store.get_by_id(cid, ifname, live)
                alloc = Allocator(rangeset, store, idx)
                try:
                    allocations.append(alloc.get(cid, ifname, want, owned or []))
                except CNIError as exc:
                    raise CNIError(f"failed to allocate for range {idx}: {exc}") from None
            if requested:
                raise CNIError(
                    "failed to allocate all requested IPs: "
                    + " ".join(ip_str(ip) for ip in requested)
                )
        except BaseException:
            for a in allocations:
                with contextlib.suppress(CNIError):  # the first failure is the one to report
                    store.release(ip_str(a.ip))
            raise
        match = lease_content(cid, ifname)
        hint = [ip for ip in store.read_hint(cid, ifname) or [] if store.read_lease(ip) == match]
        new = [ip_str(a.ip) for a in allocations]
        store.write_hint(cid, ifname, list(dict.fromkeys(hint + new)))
        if owned is not None:  # a full scan was paid for: drop hints no lease backs
            live.add(match)
            store.prune_hints(live)

    result["ips"] = [a.to_result() for a in allocations]
    if conf.routes:
        result["routes"] = conf.routes
    if dns:
        result["dns"] = dns
    return result


def _release(store: Store, cid: str, ifname: str) -> list[str]:
    """Release the attachment's leases: through its hint when it checks out, else a scan."""
    match = lease_content(cid, ifname)
    hint = store.read_hint(cid, ifname)
    released: list[str] = []
    stale = not hint
    for ip in hint or []:
        if store.read_lease(ip) == match and store.release(ip):
            released.append(ip)
        else:
            stale = True
    if stale:
        released += store.release_by_id(cid, ifname, legacy=not released)
    store.drop_hint(cid, ifname)
    return released


def cmd_del(cmd: CmdArgs) -> None:
    conf = _load(cmd)
    if not os.path.isdir(os.path.join(conf.data_dir, conf.name)):
        return  # nothing was ever leased here: nothing to release, and nothing to create
    with Store(conf.name, conf.data_dir) as store:
        _release(store, cmd.container_id, cmd.ifname)


def _owns_any(store: Store, cid: str, ifname: str) -> bool:
    match = lease_content(cid, ifname)
    hint = store.read_hint(cid, ifname) or []
    if any(store.read_lease(ip) == match for ip in hint):
        return True
    return bool(store.get_by_id(cid, ifname))


def cmd_check(cmd: CmdArgs) -> None:
    conf = _load(cmd)
    with Store(conf.name, conf.data_dir) as store:
        found = _owns_any(store, cmd.container_id, cmd.ifname)
    if not found:
        raise CNIError(f"host-local: Failed to find address added by container {cmd.container_id}")


def _valid_attachments(raw: dict[str, Any]) -> set[tuple[str, str]] | None:
    """The attachments to keep; None when the request names none at all."""
    key = "cni.dev/valid-attachments"
    items = raw.get(key)
    if items is None:
        key = "cni.dev/attachments"
        items = raw.get(key)
    if items is None:
        return None
    if not isinstance(items, list):
        raise InvalidConfigError(f'"{key}" must be a list of attachments')
    out: set[tuple[str, str]] = set()
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("containerID"), str):
            raise InvalidConfigError(f'"{key}": invalid attachment {item!r}')
        ifname = item.get("ifname", "")
        out.add((item["containerID"].strip(), ifname if isinstance(ifname, str) else ""))
    return out


def cmd_gc(cmd: CmdArgs) -> None:
    """Release every lease whose attachment is not in the valid list (a full scan)."""
    raw = cmd.config()
    conf = config.load(raw, cmd.args)
    valid = _valid_attachments(raw)
    if valid is None:
        # libcni sends no list when its caller gives none (cnitool gc does so after DELing
        # every cached attachment). Releasing every lease then would also take those of
        # other runtimes sharing the data dir, so nothing is released.
        print(
            'host-local: GC request without "cni.dev/valid-attachments": nothing released',
            file=cmd.stderr,
        )
        return
    valid_ids = {cid for cid, _ in valid}
    errors = ErrorList()
    with Store(conf.name, conf.data_dir) as store:
        for ip, content in list(store.scan()):
            cid, sep, ifname = content.partition("\r\n")
            keep = (cid, ifname) in valid if sep else cid in valid_ids
            if keep:
                continue
            try:
                store.release(ip)
            except CNIError as exc:
                errors.add(CNIError(exc.msg, code=exc.code))
        for cid, ifname in list(store.hints()):
            if (cid, ifname) not in valid:
                store.drop_hint(cid, ifname)
    if errors:
        raise CNIError("host-local: GC could not release leases: " + errors.text())


def cmd_status(cmd: CmdArgs) -> None:
    """Ready when the configuration is valid and the lease directory is writable."""
    conf = _load(cmd)
    directory = os.path.join(conf.data_dir, conf.name)
    try:
        store = Store(conf.name, conf.data_dir)
    except CNIError as exc:
        raise PluginNotAvailableError(f"host-local: lease directory unusable: {exc.msg}") from None
    store.close()
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PluginNotAvailableError(f"host-local: lease directory {directory} is not writable")
