"""The bridge plugin's configuration, checked key by key, and STATUS (which needs nothing
else, so it loads no netlink code)."""

from __future__ import annotations

from typing import Any

from cnitool import skel
from cnitool.spec import names
from cnitool.spec.errors import CNIError

from .._lib import ipam
from .._lib.netconf import dns_override, ipam_type, mac_from_args, masq_backend, typed

DEFAULT_BRIDGE = "cni0"


class BridgeConf:
    """The checked configuration (a plain class: ``dataclasses`` costs ~6 ms to import)."""

    def __init__(self, raw: dict[str, Any], network: str) -> None:
        self.raw = raw
        self.network = network
        self.bridge = DEFAULT_BRIDGE
        self.is_gw = False
        self.is_default_gw = False
        self.force_address = False
        self.ip_masq = False
        self.ip_masq_backend: str | None = None
        self.mtu = 0
        self.hairpin = False
        self.promisc = False
        self.vlan = 0
        self.vlan_trunk: list[tuple[int, int]] = []
        self.preserve_default_vlan = False
        self.macspoofchk = False
        self.enable_dad = False
        self.disable_container_interface = False
        self.port_isolation = False
        self.ipam_type = ""
        self.mac = ""
        self.dns: dict[str, Any] | None = None

    @property
    def uses_vlan(self) -> bool:
        return self.vlan != 0 or bool(self.vlan_trunk)


def _trunk(raw: Any) -> list[tuple[int, int]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise CNIError(f'failed to load netconf: "vlanTrunk" must be a list, got {raw!r}')
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise CNIError(f"failed to load netconf: vlanTrunk entry {item!r} is not an object")
        vid = typed(item, "id", int, None)
        lo = typed(item, "minID", int, None)
        hi = typed(item, "maxID", int, None)
        if vid is not None:
            if not 0 < vid <= 4094:
                raise CNIError(f"incorrect trunk id parameter: {vid}")
            out.append((vid, vid))
        elif lo is not None and hi is not None:
            if not (0 < lo <= 4094 and 0 < hi <= 4094):
                raise CNIError(f"incorrect trunk minID/maxID parameter: {lo}-{hi}")
            if lo > hi:
                raise CNIError(f"minID {lo} is greater than maxID {hi}")
            out.append((lo, hi))
        else:
            raise CNIError(f"incorrect vlanTrunk entry {item!r}: needs id or minID and maxID")
    return out


def load(cmd: skel.CmdArgs) -> BridgeConf:
    raw = cmd.config()
    conf = BridgeConf(raw=raw, network=str(raw.get("name", "")))
    conf.bridge = typed(raw, "bridge", str, DEFAULT_BRIDGE) or DEFAULT_BRIDGE
    try:
        names.validate_interface_name(conf.bridge)
    except CNIError as exc:
        raise CNIError(f'invalid "bridge" name "{conf.bridge}": {exc.msg}') from None
    conf.is_gw = typed(raw, "isGateway", bool, False)
    conf.is_default_gw = typed(raw, "isDefaultGateway", bool, False)
    if conf.is_default_gw:
        conf.is_gw = True
    conf.force_address = typed(raw, "forceAddress", bool, False)
    conf.ip_masq = typed(raw, "ipMasq", bool, False)
    conf.ip_masq_backend = masq_backend(raw)
    conf.mtu = typed(raw, "mtu", int, 0)
    if conf.mtu < 0:
        raise CNIError(f'invalid "mtu" {conf.mtu}: must not be negative')
    conf.hairpin = typed(raw, "hairpinMode", bool, False)
    conf.promisc = typed(raw, "promiscMode", bool, False)
    if conf.hairpin and conf.promisc:
        raise CNIError("cannot set hairpin mode and promiscuous mode at the same time")
    conf.vlan = typed(raw, "vlan", int, 0)
    if not 0 <= conf.vlan <= 4094:
        raise CNIError(f"invalid VLAN ID {conf.vlan} (must be between 0 and 4094)")
    conf.vlan_trunk = _trunk(raw.get("vlanTrunk"))
    conf.preserve_default_vlan = typed(raw, "preserveDefaultVlan", bool, False)
    conf.macspoofchk = typed(raw, "macspoofchk", bool, False)
    conf.enable_dad = typed(raw, "enabledad", bool, False)
    conf.disable_container_interface = typed(raw, "disableContainerInterface", bool, False)
    conf.port_isolation = typed(raw, "portIsolation", bool, False)
    conf.ipam_type = ipam_type(raw)
    if conf.disable_container_interface and conf.ipam_type:
        raise CNIError("cannot use IPAM when disableContainerInterface flag is set")
    conf.mac = mac_from_args(raw, cmd.args)
    conf.dns = dns_override(raw)
    return conf


# STATUS and GC: the config is valid, and the IPAM plugin, if any, is asked
cmd_status, cmd_gc = ipam.forwarded_verbs(load)
