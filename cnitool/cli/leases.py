"""``cnitool leases [NETWORK]``: the host-local leases on this node, and which are stale.

Reads ``<data-dir>/<network>/<ip>`` lease files (written by our host-local or the Go one),
and those of the conf dir's networks whose IPAM names a ``dataDir`` of its own,
tells which range set of the network's configuration each address belongs to, and
whether a cached attachment (libcni's result cache) still owns it. A lease no cached
attachment owns is *stale*: its container was torn down without a DEL reaching IPAM.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

from .errors import reporting
from .options import cache_dir_option, conf_dir_option, debug_option, output_option
from .output import Cell, note, write_json
from .settings import DEFAULT_CACHE_DIR, DEFAULT_CONF_DIR, wants_json

DEFAULT_DATA_DIR = "/var/lib/cni/networks"


def _ipam_of(raw: Any) -> dict[str, Any] | None:
    """The host-local ``ipam`` object of a conflist (or single plugin) document; for a
    flannel plugin, the one it hands its delegate (ranges from its subnet.env)."""
    from cnitool_plugins import inspect

    from ..spec.errors import CNIError

    if not isinstance(raw, dict):
        return None
    plugins = raw.get("plugins")
    for plugin in plugins if isinstance(plugins, list) else [raw]:
        if not isinstance(plugin, dict):
            continue
        if plugin.get("type") == "flannel":
            try:
                return inspect.flannel_ipam(plugin)
            except CNIError:  # no readable subnet.env: the range set shows as unknown
                return None
        ipam = plugin.get("ipam")
        if isinstance(ipam, dict) and ipam.get("type") == "host-local":
            return ipam
    return None


def _data_dirs(conf_dir: str, default: str) -> dict[str, str]:
    """Network name -> its lease root, for the networks of the conf dir whose host-local
    IPAM names a ``dataDir`` of its own (the others use ``default``)."""
    from ..libcni.config import scan_dir

    out: dict[str, str] = {}
    try:
        entries = scan_dir(conf_dir)
    except OSError:
        return out
    for entry in entries:
        net = entry.network
        if net is None or net.name in out:
            continue
        try:
            ipam = _ipam_of(json.loads(net.raw_bytes))
        except ValueError:
            continue
        root = ipam.get("dataDir") if ipam else None
        if isinstance(root, str) and root and root != default:
            out[net.name] = root
    return out


def _range_sets(
    network: str, conf_dir: str, cached_configs: list[bytes]
) -> tuple[list[Any] | None, str]:
    """The network's host-local range sets (and where they came from), if findable."""
    from cnitool_plugins import inspect

    from ..libcni.config import load_conf_list
    from ..spec.errors import CNIError

    docs: list[tuple[Any, str]] = []
    try:
        net = load_conf_list(conf_dir, network)
    except CNIError:  # no usable configuration (any more): the cached ones may still say
        pass
    else:
        docs.append((json.loads(net.raw_bytes), net.path or conf_dir))
    for data in cached_configs:
        try:
            docs.append((json.loads(data), "result cache"))
        except ValueError:
            continue
    for doc, source in docs:
        ipam = _ipam_of(doc)
        if ipam is None:
            continue
        version = doc.get("cniVersion", "") if isinstance(doc, dict) else ""
        try:
            ranges = inspect.host_local_ranges(network, version, ipam)
        except CNIError:  # an invalid IPAM config: the range set shows as unknown ("?")
            continue
        return ranges, source
    return None, ""


def _networks(data_dir: str, conf_dir: str, only: str | None) -> list[tuple[str, str]]:
    """(network, its lease directory): every network directory under ``data_dir``, and
    those the conf dir's networks keep under a ``dataDir`` of their own."""
    try:
        names = sorted(os.listdir(data_dir))
    except FileNotFoundError:
        names = []
    found = {
        n: os.path.join(data_dir, n)
        for n in names
        if not n.startswith(".") and os.path.isdir(os.path.join(data_dir, n))
    }
    for name, root in _data_dirs(conf_dir, data_dir).items():
        if os.path.isdir(os.path.join(root, name)):
            found[name] = os.path.join(root, name)
    if only is not None:
        return [(only, found[only])] if only in found else []
    return sorted(found.items())


def collect(
    data_dir: str = DEFAULT_DATA_DIR,
    cache_dir: str = DEFAULT_CACHE_DIR,
    conf_dir: str = DEFAULT_CONF_DIR,
    network: str | None = None,
) -> list[dict[str, Any]]:
    """One record per lease: network, ip, containerID, ifname, rangeSet, cached, stale."""
    from cnitool_plugins import inspect

    from ..libcni.cache import ResultCache
    from ..spec.names import validate_network_name
    from .cache import result_addresses

    if network is not None:
        validate_network_name(network)  # never a path out of the data dir
    attachments = ResultCache(cache_dir).attachments()
    records: list[dict[str, Any]] = []
    for name, lease_dir in _networks(data_dir, conf_dir, network):
        mine = [a for a in attachments if a.network == name]
        sets, _source = _range_sets(name, conf_dir, [a.config for a in mine])
        # (container, ifname) -> the IPs its cached result holds (None: no result cached)
        owners: dict[tuple[str, str], set[str] | None] = {
            (a.container_id, a.ifname): None
            if a.result is None
            else {addr.split("/")[0] for addr in result_addresses(a.result)}
            for a in mine
        }
        # read-only view: no lock is taken or created
        for lease in inspect.leases(lease_dir):
            ip_text, cid, ifname = lease.ip, lease.container_id, lease.ifname
            set_index = None if sets is None else inspect.range_set_of(sets, ip_text)
            if ifname:
                key = (cid, ifname)
                cached_ips = owners.get(key)
                cached = key in owners and (cached_ips is None or ip_text in cached_ips)
            else:  # id-only lease (older format): any attachment of that container
                cached = any(k[0] == cid for k in owners)
            records.append(
                {
                    "network": name,
                    "dataDir": os.path.dirname(lease_dir),
                    "ip": ip_text,
                    "containerID": cid,
                    "ifname": ifname,
                    "rangeSet": set_index,
                    "cached": cached,
                    "stale": not cached,
                }
            )
    return records


def _table(records: list[dict[str, Any]]) -> None:
    from .output import console, print_table, short_ids

    ids = short_ids([r["containerID"] for r in records])
    rows: list[list[Cell]] = [
        [
            r["network"],
            r["ip"],
            ids[r["containerID"]],
            r["ifname"] or ("(legacy)", "dim"),
            "?" if r["rangeSet"] is None else str(r["rangeSet"]),
            "cached" if r["cached"] else ("STALE", "bold red"),
        ]
        for r in records
    ]
    # the network name and container ID give way; addresses stay whole
    columns = ["network", "IP", "container ID", "ifname", "set", "owner"]
    print_table("host-local leases", columns, rows, squeeze={0: 8, 2: 12, 3: 6})
    stale = sum(1 for r in records if r["stale"])
    if stale:
        console().print(
            f"{stale} stale lease(s), no cached attachment owns them: "
            "`cnitool doctor --fix` or a DEL of the attachment releases them."
        )


@click.command("leases", short_help="Inspect host-local IPAM leases.")
@click.argument("network", required=False)
@click.option(
    "--data-dir",
    default=DEFAULT_DATA_DIR,
    show_default=True,
    metavar="DIR",
    help="host-local dataDir holding one directory per network.",
)
@cache_dir_option("Result cache directory (to tell which leases are still owned).")
@conf_dir_option("Network configurations, to number the range sets [env NETCONFPATH].")
@output_option()
@debug_option()
def command(
    network: str | None, data_dir: str, cache_dir: str, conf_dir: str, output: str, debug: bool
) -> None:
    """List the host-local leases of NETWORK (default: every network in --data-dir, and
    every network of the conf dir whose IPAM keeps its leases in a dataDir of its own).

    For each lease: the address, container ID, interface, the index of the range set it
    belongs to (from the network's configuration, "?" when unknown) and whether a cached
    attachment still owns it. Leases nobody owns are marked stale.
    """
    with reporting("leases", debug):
        records = collect(data_dir, cache_dir, conf_dir, network)
    if wants_json(output):
        write_json(records)
    elif records:
        _table(records)
    else:
        note(f"no leases under {data_dir}" + (f" for network {network}" if network else ""))
