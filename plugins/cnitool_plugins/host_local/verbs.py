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
from .store import INDEX_MIN_LEASES, ForeignIndex, Store, lease_content

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
        index = store.read_index()
        walked: list[tuple[str, str]] | None = None  # every lease, when a walk was paid for
        try:
            for idx, rangeset in enumerate(conf.ranges):
                want: IP | None = None
                for ip in requested:
                    if rangeset.contains(ip):
                        want = ip
                        requested.remove(ip)
                        break
                if want is None and owned is None:
                    if index is not None:
                        owned = _owned(store, cid, ifname, index)
                    else:
                        walked = list(store.scan())
                        owned = _owned_in(walked, cid, ifname)
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
            if index is None and walked is not None and len(walked) >= INDEX_MIN_LEASES:
                index = store.foreign_of(walked)  # the walk is paid for: keep its answer
            if index is not None:
                store.write_index(index)
            raise
        match = lease_content(cid, ifname)
        hint = [ip for ip in store.read_hint(cid, ifname) or [] if store.read_lease(ip) == match]
        new = [ip_str(a.ip) for a in allocations]
        hinted = store.write_hint(cid, ifname, list(dict.fromkeys(hint + new)))
        if walked is not None:  # a full scan was paid for: drop hints no lease backs
            store.prune_hints({content for _, content in walked} | {match})
        if index is None and walked is not None and len(walked) >= INDEX_MIN_LEASES:
            index = store.foreign_of(walked)
        if index is not None:
            if not hinted:
                index.add(match, new)
            store.write_index(index)

    result["ips"] = [a.to_result() for a in allocations]
    if conf.routes:
        result["routes"] = conf.routes
    if dns:
        result["dns"] = dns
    return result


def _owned_in(leases: list[tuple[str, str]], cid: str, ifname: str) -> list[str]:
    """The attachment's leases (either content format) among a walk's."""
    wanted = (lease_content(cid, ifname), cid.strip())
    return [ip for ip, content in leases if content in wanted]


def _owned(store: Store, cid: str, ifname: str, index: ForeignIndex) -> list[str]:
    """The attachment's leases without a walk: its hint and the index, each lease file
    read back (either content format)."""
    match = lease_content(cid, ifname)
    old = cid.strip()
    out = [ip for ip in store.read_hint(cid, ifname) or [] if store.read_lease(ip) == match]
    for content in (match, old):
        out += [ip for ip in index.get(content) if store.read_lease(ip) == content]
    return list(dict.fromkeys(out))


def _release(store: Store, cid: str, ifname: str) -> list[str]:
    """Release the attachment's leases: through its hint (and the index of the leases no
    hint lists) when they check out, else after a walk."""
    match = lease_content(cid, ifname)
    hint = store.read_hint(cid, ifname)
    index = store.read_index()
    released: list[str] = []
    stale = not hint
    for ip in hint or []:
        if store.read_lease(ip) == match and store.release(ip):
            released.append(ip)
        else:
            stale = True
    if index is not None:
        old = cid.strip()
        for content in (match, old):
            if content == old and released:
                break  # id-only leases only count when the attachment has no other
            for ip in index.pop(content):
                if store.read_lease(ip) == content and store.release(ip):
                    released.append(ip)
    elif stale:
        released += store.release_by_id(cid, ifname, legacy=not released)
    store.drop_hint(cid, ifname)
    if index is not None:
        store.write_index(index)
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
    index = store.read_index()
    if index is not None:
        return bool(_owned(store, cid, ifname, index))
    walked = list(store.scan())
    if len(walked) >= INDEX_MIN_LEASES:
        store.write_index(store.foreign_of(walked))
    return bool(_owned_in(walked, cid, ifname))


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
