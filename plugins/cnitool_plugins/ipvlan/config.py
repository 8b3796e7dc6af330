"""The ipvlan plugin's configuration, and STATUS (which needs nothing else, so it loads
no netlink code).

``load`` checks what can be checked without the kernel: JSON types, the mode, the MTU's
sign, and, chained, the previous result. The master (named, the default route's, or the
previous result's single interface) is resolved by the verbs, in the right namespace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnitool import skel
from cnitool.spec.errors import CNIError
from cnitool.spec.record import Record

from .._lib import ipam
from .._lib.netconf import dns_override, ipam_type, typed

if TYPE_CHECKING:
    from cnitool.spec.results import Result

# the kernel's IPVLAN_MODE_* values of the modes a config may name ("" = l2)
MODES = {"l2": 0, "l3": 1, "l3s": 2}
MODE_NAMES = {v: k for k, v in MODES.items()}


class IpvlanConf(Record):
    raw: dict[str, Any]
    master: str  # "" = the default route's interface, or the previous result's one
    mode: str  # one of MODES
    mtu: int  # 0 = the kernel's choice (the master's)
    link_in_container: bool
    ipam_type: str  # "" = the previous result's addresses (chained)
    dns: dict[str, Any] | None
    prev: Result | None  # the previous result, in the 1.1.0 shape


def mode_value(mode: str) -> int:
    """The kernel value of a config ``mode``; the reference's error for an unknown one."""
    value = MODES.get(mode or "l2")
    if value is None:
        raise CNIError(f'unknown ipvlan mode: "{mode}"')
    return value


def mode_name(value: int | None) -> str:
    return MODE_NAMES.get(value or 0, f"unknown({value})")


def decode(raw: dict[str, Any]) -> IpvlanConf:
    """The config's keys with their JSON types checked (what any verb needs)."""
    mtu = typed(raw, "mtu", int, 0)
    if mtu < 0:
        raise CNIError(f'invalid "mtu" {mtu}: must not be negative')
    return IpvlanConf(
        raw=raw,
        master=str(typed(raw, "master", str, "")),
        mode=str(typed(raw, "mode", str, "")) or "l2",
        mtu=mtu,
        link_in_container=typed(raw, "linkInContainer", bool, False),
        ipam_type=ipam_type(raw),
        dns=dns_override(raw),
        prev=None,
    )


def load(cmd: skel.CmdArgs) -> IpvlanConf:
    """The whole config of an ADD or CHECK: types, the mode, the previous result."""
    conf = decode(cmd.config())
    mode_value(conf.mode)
    try:
        prev = ipam.prev_result(conf.raw)
    except CNIError as exc:
        raise CNIError(f"could not parse prevResult: {exc.msg}") from None
    return conf._replace(prev=prev)


def load_for_del(cmd: skel.CmdArgs) -> IpvlanConf:
    """DEL and STATUS decode the config but, unlike the reference, neither look the master
    up nor judge the mode: a DEL must work with what ADD was given, master gone or not."""
    return decode(cmd.config())


# STATUS and GC: the IPAM plugin, if any, is asked; like DEL, they judge neither the
# master nor the mode
cmd_status, cmd_gc = ipam.forwarded_verbs(load_for_del)
