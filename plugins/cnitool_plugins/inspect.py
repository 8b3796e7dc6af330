"""Read-only views of what the plugins leave on a node, for tools that show or check it
(``cnitool leases``, ``cnitool chains``): host-local leases and range sets, and the CNI
nat chains of both iptables backends. The only module of this package that tools import.

Nothing here takes a lock or creates a file, a chain or a table: listing legacy tables
where none exist would create them, so they are read only where the kernel lists them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from cnitool.spec.record import Record

if TYPE_CHECKING:
    from ._lib.firewall.model import TableState


class Lease(Record):
    """One host-local lease file: the address, and the attachment recorded in it (an
    empty ``ifname`` for the older id-only format)."""

    ip: str
    container_id: str
    ifname: str


def host_local_ranges(network: str, cni_version: str, ipam: dict[str, Any]) -> list[Any]:
    """The range sets of a host-local ``ipam`` object, checked as the plugin checks them
    (a CNI error for an invalid one)."""
    from .host_local import config

    conf = config.load({"cniVersion": cni_version, "name": network, "ipam": ipam}, "")
    return list(conf.ranges)


def flannel_ipam(conf: dict[str, Any]) -> dict[str, Any]:
    """The host-local ``ipam`` that a flannel plugin object hands its delegate: its own
    ``ipam`` map with the range sets of its subnet.env (a CNI error when unreadable)."""
    from .flannel import subnet_env
    from .flannel.verbs import DEFAULT_SUBNET_FILE

    path = conf.get("subnetFile") or DEFAULT_SUBNET_FILE
    env = subnet_env.load(str(path))
    ipam = dict(conf["ipam"]) if isinstance(conf.get("ipam"), dict) else {}
    ipam.setdefault("type", "host-local")
    subnets = [s for s in (env.subnet, env.ip6_subnet) if s is not None]
    ipam["ranges"] = [[{"subnet": str(s)}] for s in subnets]
    return ipam


def leases(directory: str) -> list[Lease]:
    """The lease files of one network's directory, in address order."""
    from .host_local.config import parse_ip
    from .host_local.store import scan_dir

    found = sorted(scan_dir(directory), key=lambda kv: parse_ip(kv[0]) or (0, 0))
    out = []
    for ip_text, content in found:
        cid, _, ifname = content.partition("\r\n")
        out.append(Lease(ip_text, cid, ifname))
    return out


def range_set_of(ranges: Sequence[Any], ip_text: str) -> int | None:
    """The index of the range set that holds ``ip_text``, None when none does."""
    from .host_local.config import parse_ip

    ip = parse_ip(ip_text)
    if ip is None:
        return None
    return next((i for i, rs in enumerate(ranges) if rs.contains(ip)), None)


def nat_tables(families: Iterable[int] = (4, 6)) -> list[tuple[int, str, TableState]]:
    """Table ``nat`` of each family, with counters, from nf_tables and, where the kernel
    lists it, legacy x_tables: ``(family, backend name, table)``."""
    from ._lib import firewall as fw

    out: list[tuple[int, str, TableState]] = []
    for fam in families:
        nft = fw.RestoreBackend(fam, "nft")
        if shutil.which(nft.save_cmd):
            out.append((fam, "nft", nft.load("nat", counters=True)))
        if "nat" in fw.tables_present(fam):
            legacy = fw.RestoreBackend(fam, "legacy")
            if shutil.which(legacy.save_cmd):
                out.append((fam, "legacy", legacy.load("nat", counters=True)))
    return out


def chain_name(network: str, container_id: str, prefix: str) -> str:
    """The name the plugins give a container's chain (``CNI-``, ``CNI-DN-``, ...)."""
    from ._lib.firewall.names import format_chain_name

    return str(format_chain_name(network, container_id, prefix))
