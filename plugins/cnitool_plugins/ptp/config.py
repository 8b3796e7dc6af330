"""The ptp plugin's configuration, and STATUS (which needs nothing else, so it loads no
netlink code)."""

from __future__ import annotations

from typing import Any

from cnitool import skel
from cnitool.spec.errors import CNIError
from cnitool.spec.record import Record

from .._lib import ipam
from .._lib.netconf import dns_override, ipam_type, masq_backend, typed


class PtpConf(Record):
    raw: dict[str, Any]
    network: str
    ip_masq: bool
    mtu: int
    ipam_type: str
    dns: dict[str, Any] | None
    ip_masq_backend: str | None


def load(cmd: skel.CmdArgs) -> PtpConf:
    raw = cmd.config()
    mtu = typed(raw, "mtu", int, 0)
    if mtu < 0:
        raise CNIError(f'invalid "mtu" {mtu}: must not be negative')
    conf = PtpConf(
        raw=raw,
        network=str(raw.get("name", "")),
        ip_masq=typed(raw, "ipMasq", bool, False),
        mtu=mtu,
        ipam_type=ipam_type(raw),
        dns=dns_override(raw),
        ip_masq_backend=masq_backend(raw),
    )
    if not conf.ipam_type:
        raise CNIError('ptp needs an IPAM plugin: "ipam.type" is missing')
    return conf


# STATUS and GC: the config is valid, and the IPAM plugin is asked
cmd_status, cmd_gc = ipam.forwarded_verbs(load)
