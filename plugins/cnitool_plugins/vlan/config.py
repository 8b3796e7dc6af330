"""The vlan plugin's configuration, and STATUS (which needs nothing else, so it loads
no netlink code).

``load`` checks what can be checked without the kernel: JSON types, the master's
presence, the VLAN ID's range, the MTU's sign, the IPAM plugin's presence. The master
and the MTU limit it sets are looked up by the verbs, in the right namespace.
"""

from __future__ import annotations

from typing import Any

from cnitool import skel
from cnitool.spec.errors import CNIError
from cnitool.spec.record import Record

from .._lib import ipam
from .._lib.netconf import dns_override, ipam_type, typed

MAX_VLAN_ID = 4094


class VlanConf(Record):
    raw: dict[str, Any]
    master: str
    vlan_id: int
    mtu: int  # 0 = the kernel's choice (the master's)
    link_in_container: bool
    ipam_type: str
    dns: dict[str, Any] | None


def decode(raw: dict[str, Any]) -> VlanConf:
    """The config's keys with their JSON types checked (what any verb needs)."""
    return VlanConf(
        raw=raw,
        master=str(typed(raw, "master", str, "")),
        vlan_id=typed(raw, "vlanId", int, 0),
        mtu=typed(raw, "mtu", int, 0),
        link_in_container=typed(raw, "linkInContainer", bool, False),
        ipam_type=ipam_type(raw),
        dns=dns_override(raw),
    )


def load(cmd: skel.CmdArgs) -> VlanConf:
    """The whole config of an ADD or CHECK: the reference's checks, in its order."""
    conf = decode(cmd.config())
    if not conf.master:
        raise CNIError(
            '"master" field is required. It specifies the host interface name to create '
            "the VLAN for."
        )
    if not 0 <= conf.vlan_id <= MAX_VLAN_ID:
        raise CNIError(
            f"invalid VLAN ID {conf.vlan_id} (must be between 0 and {MAX_VLAN_ID} inclusive)"
        )
    if conf.mtu < 0:
        raise CNIError(f"invalid MTU {conf.mtu}, must be [0, master MTU]")
    if not conf.ipam_type:
        raise CNIError('vlan needs "ipam" with a "type": the IPAM plugin to run')
    return conf


def load_for_del(cmd: skel.CmdArgs) -> VlanConf:
    """DEL and STATUS decode the config but, unlike the reference, do not look the master
    up: a DEL must work with what ADD was given, master gone or not."""
    return decode(cmd.config())


# STATUS and GC: the IPAM plugin, if any, is asked; like DEL, they do not judge the master
cmd_status, cmd_gc = ipam.forwarded_verbs(load_for_del)
