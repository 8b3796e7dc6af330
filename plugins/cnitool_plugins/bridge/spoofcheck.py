"""MAC spoof check on a bridge port: nftables ``bridge nat`` rules, one transaction per call.

Frames entering the bridge from the host veth must carry the container's MAC; all others
are dropped. Layout and comments follow the reference so either implementation can tear
down what the other set up: base chain ``PREROUTING`` (prerouting hook, priority -300),
``iifname <veth> jump cni-br-iface-<cid>-<if>`` -> ``...-mac``: ``ether saddr <mac> return``,
``drop``; every rule commented ``macspoofchk-<cid>-<if>``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from cnitool.spec.errors import CNIError

TABLE = "nat"
BASE = "PREROUTING"


def _names(container_id: str, ifname: str) -> tuple[str, str, str]:
    chain = f"cni-br-iface-{container_id}-{ifname}"
    return chain, chain + "-mac", f"macspoofchk-{container_id}-{ifname}"


def _nft(script: str | None, *args: str) -> str:
    exe = shutil.which("nft")
    if exe is None:
        raise CNIError("macspoofchk needs nftables: the nft command was not found")
    argv = [exe, *args] + (["-f", "-"] if script is not None else [])
    proc = subprocess.run(argv, input=script, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CNIError(f"nft {' '.join(args) or '-f -'} failed: {proc.stderr.strip()}")
    return proc.stdout


def setup(container_id: str, ifname: str, host_veth: str, mac: str) -> None:
    chain, mac_chain, comment = _names(container_id, ifname)
    script = "\n".join(
        [
            f"add table bridge {TABLE}",
            f"add chain bridge {TABLE} {BASE} "
            "{ type filter hook prerouting priority -300 ; policy accept ; }",
            f"add chain bridge {TABLE} {chain}",
            f"add chain bridge {TABLE} {mac_chain}",
            f"flush chain bridge {TABLE} {chain}",
            f"flush chain bridge {TABLE} {mac_chain}",
            f'add rule bridge {TABLE} {BASE} iifname "{host_veth}" jump {chain} '
            f'comment "{comment}"',
            f'add rule bridge {TABLE} {chain} jump {mac_chain} comment "{comment}"',
            f'add rule bridge {TABLE} {mac_chain} ether saddr {mac} return comment "{comment}"',
            f'add rule bridge {TABLE} {mac_chain} drop comment "{comment}"',
            "",
        ]
    )
    _nft(script)


def _table() -> list[dict[str, Any]] | None:
    try:
        out = _nft(None, "-j", "list", "table", "bridge", TABLE)
    except CNIError as exc:
        if "No such file or directory" in exc.msg or "does not exist" in exc.msg:
            return None
        raise
    items: list[dict[str, Any]] = json.loads(out).get("nftables", [])
    return items


def teardown(container_id: str, ifname: str) -> None:
    """Remove this attachment's rules and chains; nothing there is not an error."""
    chain, mac_chain, comment = _names(container_id, ifname)
    items = _table()
    if items is None:
        return
    lines = []
    chains = {i["chain"]["name"] for i in items if "chain" in i}
    for item in items:
        rule = item.get("rule")
        if rule and rule.get("chain") == BASE and rule.get("comment") == comment:
            lines.append(f"delete rule bridge {TABLE} {BASE} handle {rule['handle']}")
    for name in (chain, mac_chain):
        if name in chains:
            lines.append(f"flush chain bridge {TABLE} {name}")
    for name in (chain, mac_chain):
        if name in chains:
            lines.append(f"delete chain bridge {TABLE} {name}")
    if lines:
        _nft("\n".join(lines) + "\n")
