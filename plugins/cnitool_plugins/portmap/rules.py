"""The portmap chains and rules as data (canonical iptables-save tokens).

Layout (table ``nat``, names fixed so the reference plugin and this one interoperate):
``PREROUTING``/``OUTPUT`` -> ``CNI-HOSTPORT-DNAT`` -> per container ``CNI-DN-<hash>``
(hairpin/localhost packets jump to ``CNI-HOSTPORT-SETMARK``, then DNAT), and
``POSTROUTING`` -> ``CNI-HOSTPORT-MASQ`` masquerading marked packets.
"""

from __future__ import annotations

import ipaddress

from .._lib.firewall import Rule, format_chain_name
from .config import PortMapConf, PortMapping

TOP_DNAT = "CNI-HOSTPORT-DNAT"
SETMARK = "CNI-HOSTPORT-SETMARK"
MASQ = "CNI-HOSTPORT-MASQ"
OLD_SNAT = "CNI-HOSTPORT-SNAT"
SETMARK_COMMENT = "CNI portfwd masquerade mark"
MASQ_COMMENT = "CNI portfwd requiring masquerade"
MAX_PORTS_PER_RULE = 15
MAX_COMMENT = 255

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class ChainSpec:
    """A chain, its rules, and the rules in other chains that jump to it."""

    __slots__ = ("name", "rules", "entry_rules", "prepend_entry")

    def __init__(
        self,
        name: str,
        rules: list[Rule] | None = None,
        entry_rules: list[Rule] | None = None,
        prepend_entry: bool = False,
    ) -> None:
        self.name = name
        self.rules: list[Rule] = [] if rules is None else rules
        self.entry_rules: list[Rule] = [] if entry_rules is None else entry_rules
        self.prepend_entry = prepend_entry


def mark_def(bit: int) -> str:
    v = 1 << bit
    return f"{v:#x}/{v:#x}"


def trim_comment(text: str) -> str:
    # iptables refuses comments over 255 characters
    return text if len(text) <= MAX_COMMENT else text[: MAX_COMMENT - 3] + "..."


def dnat_comment(network: str, container_id: str) -> str:
    return trim_comment(f'dnat name: "{network}" id: "{container_id}"')


def dnat_chain_name(network: str, container_id: str) -> str:
    return format_chain_name(network, container_id, "CNI-DN-")


def old_snat_chain_name(network: str, container_id: str) -> str:
    return format_chain_name(network, container_id, "CNI-SN-")


def setmark_chain(bit: int) -> ChainSpec:
    rule = (
        "-m",
        "comment",
        "--comment",
        SETMARK_COMMENT,
        "-j",
        "MARK",
        "--set-xmark",
        mark_def(bit),
    )
    return ChainSpec(SETMARK, [Rule(SETMARK, rule)])


def masq_chain(bit: int) -> ChainSpec:
    return ChainSpec(
        MASQ,
        [Rule(MASQ, ("-m", "mark", "--mark", mark_def(bit), "-j", "MASQUERADE"))],
        [Rule("POSTROUTING", ("-m", "comment", "--comment", MASQ_COMMENT, "-j", MASQ))],
        prepend_entry=True,
    )


def toplevel_dnat_chain() -> ChainSpec:
    entry = ("-m", "addrtype", "--dst-type", "LOCAL", "-j", TOP_DNAT)
    return ChainSpec(TOP_DNAT, [], [Rule("PREROUTING", entry), Rule("OUTPUT", entry)])


def _host(ip: str) -> str:
    addr = ipaddress.ip_address(ip)
    return f"{addr}/{addr.max_prefixlen}"


def _chunks(ports: list[int]) -> list[str]:
    return [
        ",".join(str(p) for p in ports[i : i + MAX_PORTS_PER_RULE])
        for i in range(0, len(ports), MAX_PORTS_PER_RULE)
    ]


def _by_proto(mappings: list[PortMapping]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for m in mappings:
        ports = out.setdefault(m.protocol, [])
        if m.host_port not in ports:
            ports.append(m.host_port)
    return out


def dnat_chain(conf: PortMapConf, net: IPInterface) -> ChainSpec:
    """``CNI-DN-<hash>`` for one family, and its entry rules in ``CNI-HOSTPORT-DNAT``."""
    v6 = net.version == 6
    name = dnat_chain_name(conf.name, conf.container_id)
    comment = dnat_comment(conf.name, conf.container_id)
    conditions = (conf.conditions_v6 if v6 else conf.conditions_v4) or []
    spec = ChainSpec(name)
    by_proto = _by_proto(conf.mappings)
    for proto in sorted(by_proto):
        for ports in _chunks(by_proto[proto]):
            args = (
                "-p",
                proto,
                "-m",
                "comment",
                "--comment",
                comment,
                "-m",
                "multiport",
                "--dports",
                ports,
            )
            spec.entry_rules.append(Rule(TOP_DNAT, (*args, *conditions, "-j", name)))

    setmark = conf.external_set_mark_chain or SETMARK
    hairpin_src = "" if conf.masq_all else str(net.network)
    for m in conf.mappings:
        dst: tuple[str, ...] = ()
        if m.host_ip:
            hip = ipaddress.ip_address(m.host_ip)
            if hip.version != net.version:
                continue
            if not hip.is_unspecified:
                dst = ("-d", _host(m.host_ip))
        match = ("-p", m.protocol, "-m", m.protocol, "--dport", str(m.host_port))
        if conf.snat:
            src = ("-s", hairpin_src) if hairpin_src else ()
            spec.rules.append(Rule(name, (*src, *dst, *match, "-j", setmark)))
            if not v6 and not conf.masq_all:
                spec.rules.append(Rule(name, ("-s", "127.0.0.1/32", *dst, *match, "-j", setmark)))
        to = f"[{net.ip}]:{m.container_port}" if v6 else f"{net.ip}:{m.container_port}"
        spec.rules.append(Rule(name, (*dst, *match, "-j", "DNAT", "--to-destination", to)))
    return spec


def setup_chains(conf: PortMapConf, net: IPInterface) -> list[ChainSpec]:
    """Every chain an ADD needs for one family, in creation order."""
    out: list[ChainSpec] = []
    if conf.snat and conf.external_set_mark_chain is None:
        out += [setmark_chain(conf.mark_masq_bit), masq_chain(conf.mark_masq_bit)]
    out += [toplevel_dnat_chain(), dnat_chain(conf, net)]
    return out
