"""portmap verbs: ADD (rules + route_localnet + UDP conntrack flush), CHECK, DEL."""

from __future__ import annotations

import ipaddress
import shutil
import struct
import subprocess
from typing import Any, TextIO

from cnitool import skel
from cnitool.spec.errors import CNIError, InvalidConfigError

from .._lib import firewall as fw
from .._lib.netconf import required_prev_result
from .config import PortMapConf, parse_config
from .iptables import check_ports, forward_ports, unforward_ports

ROUTE_FILES = ("/proc/thread-self/net/route", "/proc/self/net/route")


def routable_host_if(ip: ipaddress.IPv4Address) -> str:
    """The interface the main routing table sends ``ip`` through (longest prefix, then
    lowest metric), read from /proc/net/route; '' when there is none."""
    for path in ROUTE_FILES:
        try:
            with open(path, encoding="ascii") as fh:
                lines = fh.read().splitlines()[1:]
            break
        except OSError:
            continue
    else:
        return ""
    target = int(ip)
    best: tuple[int, int, str] | None = None
    for ln in lines:
        f = ln.split()
        if len(f) < 8:
            continue
        dest = struct.unpack("<I", bytes.fromhex(f[1]))[0]
        mask = struct.unpack("<I", bytes.fromhex(f[7]))[0]
        if target & mask != dest:
            continue
        plen = bin(mask).count("1")
        key = (plen, -int(f[6]), f[0])
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best else ""


def enable_localnet_routing(ifname: str) -> None:
    path = f"/proc/sys/net/ipv4/conf/{ifname}/route_localnet"
    with open(path, encoding="ascii") as fh:
        if fh.read().strip() == "1":
            return
    with open(path, "w", encoding="ascii") as fh:
        fh.write("1")


def _flush_with_netlink(family: int, ports: list[int]) -> None:
    """Delete UDP conntrack entries whose original destination port is mapped (netlink)."""
    import socket

    # lazily: a heavy import, only without conntrack(8)
    from pyroute2 import Conntrack  # type: ignore[import-untyped]
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple  # type: ignore[import-untyped]

    fam = socket.AF_INET if family == 4 else socket.AF_INET6
    ct = Conntrack()
    try:
        for port in ports:
            match = NFCTAttrTuple(family=fam, proto=socket.IPPROTO_UDP, dport=port)
            for entry in list(ct.dump_entries(tuple_orig=match)):
                ct.delete(entry)
    finally:
        ct.close()


def flush_udp_conntrack(conf: PortMapConf, family: int, log: TextIO) -> None:
    """Forget UDP flows to the mapped host ports so new packets hit the DNAT rules.

    Uses conntrack(8) when installed, netlink otherwise; failures are only logged."""
    ports = sorted({m.host_port for m in conf.mappings if m.protocol == "udp"})
    if not ports:
        return
    exe = shutil.which("conntrack")
    if exe is None:
        try:
            _flush_with_netlink(family, ports)
        except Exception as e:  # noqa: BLE001 - best effort, as in the reference plugin
            print(f"portmap: flushing UDP conntrack entries over netlink: {e}", file=log)
        return
    fam = "ipv4" if family == 4 else "ipv6"
    for port in ports:
        proc = subprocess.run(
            [exe, "-D", "-f", fam, "-p", "udp", "--orig-port-dst", str(port)],
            capture_output=True,
            text=True,
            check=False,
        )
        # exit 1 with "0 flow entries have been deleted" is the normal nothing-to-do case
        if proc.returncode not in (0, 1):
            print(
                f"portmap: flushing UDP conntrack for port {port}: {proc.stderr.strip()}", file=log
            )


def _conf(cmd: skel.CmdArgs) -> tuple[PortMapConf, dict[str, Any]]:
    raw = cmd.config()
    conf = parse_config(raw, cmd.container_id, cmd.ifname, cmd.command)
    # the env override wins over the config key; resolved once, here
    conf.backend = fw.requested(raw.get("iptablesBackend"), cmd.env)
    return conf, raw


def _rollback(conf: PortMapConf, log: TextIO) -> None:
    """Remove what a failed ADD wrote for this container (errors only logged)."""
    try:
        unforward_ports(conf)
    except Exception as e:  # noqa: BLE001 - the ADD error is the one to report
        print(f"portmap: removing the rules of the failed ADD: {e}", file=log)


def cmd_add(cmd: skel.CmdArgs) -> dict[str, Any]:
    conf, raw = _conf(cmd)
    prev = required_prev_result(raw, "must be called as chained plugin", InvalidConfigError)
    if not conf.mappings:
        return prev
    nets = [n for n in (conf.cont_net4, conf.cont_net6) if n is not None]
    try:
        for net in nets:
            forward_ports(conf, net)
            if net.version == 4 and conf.snat:
                host_if = routable_host_if(ipaddress.IPv4Address(net.ip))
                if host_if:
                    try:
                        enable_localnet_routing(host_if)
                    except OSError as e:
                        raise CNIError(f"unable to enable route_localnet on {host_if}: {e}") from e
    except Exception:
        # e.g. the IPv6 rules were refused after the IPv4 ones went in: leave nothing behind
        _rollback(conf, cmd.stderr)
        raise
    for net in nets:
        flush_udp_conntrack(conf, net.version, cmd.stderr)
    return prev


def cmd_check(cmd: skel.CmdArgs) -> None:
    conf, _ = _conf(cmd)
    if conf.prev_result is None:
        raise InvalidConfigError("Required prevResult missing")
    if not conf.mappings:
        return
    for net in (conf.cont_net4, conf.cont_net6):
        if net is not None:
            check_ports(conf, net)


def cmd_del(cmd: skel.CmdArgs) -> None:
    conf, _ = _conf(cmd)
    if not conf.name or not cmd.container_id:
        return
    unforward_ports(conf, cmd.stderr)
