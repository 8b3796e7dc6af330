"""Views of what the plugins leave on a node, for tools that show or check it
(``cnitool leases``, ``chains``, ``inspect``, ``doctor``): host-local leases and range
sets, the CNI nat chains of both iptables backends, and the links, addresses and routes
of a netns. The only module of this package that tools import.

The views take no lock and create no file, chain or table: listing legacy tables where
none exist would create them, so they are read only where the kernel lists them. Two
repairs (for ``cnitool doctor --fix``) sit at the end, each re-checking under the lock
its owner uses that it removes exactly what it was shown: :func:`release_lease` and
:func:`remove_chains`.
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


def host_backend(family: int) -> str:
    """The iptables backend the plugins write to on this node in ``auto`` mode (the
    mode of the host's ``iptables``, unless only legacy tables hold rules): ``nft`` or
    ``legacy``; empty when the family has no iptables."""
    from ._lib import firewall as fw
    from ._lib.firewall.detect import host_mode

    if not host_mode(family):
        return ""
    return str(fw.choose(family, "auto").name)


class LinkView(Record):
    """One link of a netns: ``master`` is the name of its bridge ("" when none), and
    ``peer_index`` the ifindex of a veth's peer (in the peer's netns)."""

    index: int
    name: str
    kind: str
    mac: str
    mtu: int
    up: bool
    oper: str
    master: str
    peer_index: int


class AddrView(Record):
    ifname: str
    address: str  # CIDR
    family: int  # 4 or 6


class RouteView(Record):
    dst: str
    gateway: str
    ifname: str
    family: int


class NetnsView(Record):
    """What a netns holds: its links, their addresses, and its main-table routes."""

    links: list[LinkView]
    addresses: list[AddrView]
    routes: list[RouteView]


def _read_netns() -> NetnsView:
    from ._lib.netlink import AF_INET, AF_INET6, Netlink

    with Netlink() as nl:
        raw = nl.links()
        names = {lk.index: lk.name for lk in raw}
        links = [
            LinkView(
                lk.index,
                lk.name,
                lk.kind,
                lk.mac,
                lk.mtu,
                lk.up,
                lk.oper,
                names.get(lk.master, "") if lk.master else "",
                lk.peer_index if lk.kind == "veth" else 0,
            )
            for lk in raw
        ]
        addrs = [
            AddrView(names.get(a.index, str(a.index)), a.cidr, 6 if a.family == AF_INET6 else 4)
            for a in nl.addrs()
        ]
        routes = [
            RouteView(r.dst, r.gateway, names.get(r.oif, ""), 6 if fam == AF_INET6 else 4)
            for fam in (AF_INET, AF_INET6)
            for r in nl.routes(fam)
        ]
    return NetnsView(links, addrs, routes)


def netns_view(path: str | None = None) -> NetnsView:
    """The links, addresses and routes of the netns at ``path`` (None: this one). A
    missing or non-netns path raises the plugins' netns error (a CNI error)."""
    if path is None:
        return _read_netns()
    from ._lib.netns import NetNS

    with NetNS(path) as ns:
        return ns.run(_read_netns)


# -- repairs (cnitool doctor --fix) --------------------------------------------------------


def release_lease(network: str, data_dir: str, ip: str, content: str) -> bool:
    """Remove the lease file ``<data_dir>/<network>/<ip>`` under host-local's lock, but
    only while it still holds ``content`` (the owner it was reported with); False when
    it is gone or now names another owner."""
    from .host_local.store import Store

    with Store(network, data_dir) as store:
        if store.read_lease(ip) != content.strip():
            return False
        return store.release(ip)


def remove_chains(family: int, backend: str, chains: Sequence[str]) -> list[str]:
    """Delete the nat ``chains`` of one backend (``nft`` or ``legacy``) in one
    transaction, with every rule that jumps to them; returns those that existed."""
    from ._lib import firewall as fw

    gone: list[str] = []

    def plan(p: Any) -> None:
        gone.clear()  # a lost race plans again from a new snapshot
        for chain in chains:
            if p.state.has_chain(chain):
                p.delete_chain(chain)
                gone.append(chain)

    fw.transact(fw.RestoreBackend(family, backend), "nat", plan)
    return gone
