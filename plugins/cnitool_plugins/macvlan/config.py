"""The macvlan plugin's configuration, and STATUS (which needs nothing else, so it loads
no netlink code).

``load`` checks everything that can be checked without the kernel: JSON types, the mode,
the MAC and its sources. The master (named or found through the default route) and the
MTU limit it sets are resolved by the verbs, in the right namespace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnitool import skel
from cnitool.spec.errors import CNIError
from cnitool.spec.record import Record

from .._lib import ipam
from .._lib.netconf import dns_override, ethernet_mac, ipam_type, mac_from_config, typed

# the kernel's MACVLAN_MODE_* values of the modes a config may name ("" = bridge)
MODES = {"bridge": 4, "private": 1, "vepa": 2, "passthru": 8}
MODE_NAMES = {v: k for k, v in MODES.items()}
_U32_MAX = 0xFFFFFFFF


class MacvlanConf(Record):
    raw: dict[str, Any]
    master: str  # "" = the interface of the default route
    mode: str  # one of MODES
    mtu: int  # 0 = the master's
    mac: str  # "" = a kernel-chosen address; else normalised aa:bb:...
    bcqueuelen: int | None
    link_in_container: bool
    ipam_type: str  # "" = layer 2 only
    dns: dict[str, Any] | None


def mode_value(mode: str) -> int:
    """The kernel value of a config ``mode``; the reference's error for an unknown one."""
    value = MODES.get(mode or "bridge")
    if value is None:
        raise CNIError(f'unknown macvlan mode: "{mode}"')
    return value


def mode_name(value: int | None) -> str:
    return MODE_NAMES.get(value or 0, f"unknown({value})")


def requested_mac(raw: Mapping[str, Any], cni_args: str) -> str:
    """The MAC asked for (``mac`` < CNI_ARGS ``MAC`` < ``runtimeConfig.mac``), normalised;
    the reference's error for one a macvlan link cannot take."""
    mac = mac_from_config(raw, cni_args)
    if not mac:
        return ""
    try:
        return ethernet_mac(mac, "mac")
    except CNIError:
        raise CNIError(
            f"invalid args {mac} for MAC addr: address {mac}: invalid MAC address"
        ) from None


def decode(raw: dict[str, Any]) -> MacvlanConf:
    """The config's keys with their JSON types checked (what any verb needs)."""
    bcq = typed(raw, "bcqueuelen", int, None)
    if bcq is not None and not 0 <= bcq <= _U32_MAX:
        raise CNIError(f'invalid "bcqueuelen" {bcq}: must be in [0, {_U32_MAX}]')
    typed(raw, "mac", str, "")
    typed(typed(raw, "runtimeConfig", dict, {}), "mac", str, "")
    return MacvlanConf(
        raw=raw,
        master=str(typed(raw, "master", str, "")),
        mode=str(typed(raw, "mode", str, "")) or "bridge",
        mtu=typed(raw, "mtu", int, 0),
        mac="",
        bcqueuelen=bcq,
        link_in_container=typed(raw, "linkInContainer", bool, False),
        ipam_type=ipam_type(raw),
        dns=dns_override(raw),
    )


def load(cmd: skel.CmdArgs) -> MacvlanConf:
    """The whole config of an ADD or CHECK: types, the mode, the MAC asked for."""
    conf = decode(cmd.config())
    mode_value(conf.mode)
    return conf._replace(mac=requested_mac(conf.raw, cmd.args))


def load_for_del(cmd: skel.CmdArgs) -> MacvlanConf:
    """DEL and STATUS decode the config but, like the reference, neither look the master
    up nor judge the mode or the MAC: a DEL must work with what ADD was given."""
    return decode(cmd.config())


# STATUS and GC: the IPAM plugin, if any, is asked; like DEL, they judge neither the
# master nor the mode
cmd_status, cmd_gc = ipam.forwarded_verbs(load_for_del)
