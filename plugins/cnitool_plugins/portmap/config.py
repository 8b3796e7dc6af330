"""portmap configuration: parsing and validation (errors name the key and value)."""

from __future__ import annotations

import ipaddress
from typing import Any

from cnitool.spec.errors import InvalidConfigError
from cnitool.spec.record import Record

from .._lib.netconf import typed

DEFAULT_MARK_BIT = 13
PROTOCOLS = ("tcp", "udp", "sctp")


class PortMapping(Record):
    host_port: int
    container_port: int
    protocol: str
    host_ip: str = ""


class PortMapConf:
    """The checked configuration; the verbs fill in the backend and the container nets."""

    def __init__(
        self,
        name: str,
        container_id: str,
        snat: bool = True,
        masq_all: bool = False,
        mark_masq_bit: int = DEFAULT_MARK_BIT,
        external_set_mark_chain: str | None = None,
        conditions_v4: list[str] | None = None,
        conditions_v6: list[str] | None = None,
        mappings: list[PortMapping] | None = None,
    ) -> None:
        self.name = name
        self.container_id = container_id
        self.snat = snat
        self.masq_all = masq_all
        self.mark_masq_bit = mark_masq_bit
        self.external_set_mark_chain = external_set_mark_chain
        self.conditions_v4 = conditions_v4
        self.conditions_v6 = conditions_v6
        self.backend: str | None = None  # "iptablesBackend" after the env override
        self.mappings: list[PortMapping] = [] if mappings is None else mappings
        self.prev_result: dict[str, Any] | None = None
        self.cont_net4: ipaddress.IPv4Interface | None = None
        self.cont_net6: ipaddress.IPv6Interface | None = None


def _bool(conf: dict[str, Any], key: str, default: bool) -> bool:
    return bool(typed(conf, key, bool, default, error=InvalidConfigError))


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v:
        raise InvalidConfigError(f"portmap: {what} must be an integer, got {v!r}")
    return int(v)


def _conditions(conf: dict[str, Any], key: str) -> list[str] | None:
    v = conf.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
        raise InvalidConfigError(f'portmap: "{key}" must be a list of strings, got {v!r}')
    if v and not (v[0].startswith("-") or v[0].startswith("!")):
        raise InvalidConfigError(
            f'portmap: "{key}" {v!r} is in nftables syntax, but the iptables backend is used'
        )
    return list(v)


def parse_mappings(raw: Any, strict: bool = True) -> list[PortMapping]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidConfigError(
            f'portmap: "runtimeConfig.portMappings" must be a list, got {raw!r}'
        )
    out: list[PortMapping] = []
    for i, pm in enumerate(raw):
        where = f"runtimeConfig.portMappings[{i}]"
        if not isinstance(pm, dict):
            raise InvalidConfigError(f"portmap: {where} must be an object, got {pm!r}")
        cport = _int(pm.get("containerPort", 0), f"{where}.containerPort")
        hport = _int(pm.get("hostPort", 0), f"{where}.hostPort")
        if strict:
            if cport <= 0 or cport > 65535:
                raise InvalidConfigError(
                    f"Invalid container port number: {cport} ({where}.containerPort, must be 1..65535)"
                )
            if hport <= 0 or hport > 65535:
                raise InvalidConfigError(
                    f"Invalid host port number: {hport} ({where}.hostPort, must be 1..65535)"
                )
        proto = pm.get("protocol") or "tcp"
        if not isinstance(proto, str) or proto.lower() not in PROTOCOLS:
            raise InvalidConfigError(
                f"portmap: {where}.protocol {proto!r} is not one of {', '.join(PROTOCOLS)}"
            )
        host_ip = pm.get("hostIP") or ""
        if not isinstance(host_ip, str):
            raise InvalidConfigError(f"portmap: {where}.hostIP must be a string, got {host_ip!r}")
        if host_ip:
            try:
                host_ip = str(ipaddress.ip_address(host_ip))
            except ValueError:
                raise InvalidConfigError(
                    f"portmap: {where}.hostIP {host_ip!r} is not an IP address"
                ) from None
        out.append(PortMapping(hport, cport, proto.lower(), host_ip))
    return out


def container_nets(
    result: dict[str, Any], ifname: str
) -> tuple[ipaddress.IPv4Interface | None, ipaddress.IPv6Interface | None]:
    """The first IPv4 and first IPv6 address of the sandbox interface ``ifname``.

    Addresses whose ``interface`` index names a host-side interface (another name, or no
    sandbox) are skipped; addresses without an index count.
    """
    ifaces = result.get("interfaces") or []
    v4: ipaddress.IPv4Interface | None = None
    v6: ipaddress.IPv6Interface | None = None
    for ipc in result.get("ips") or []:
        if not isinstance(ipc, dict):
            continue
        idx = ipc.get("interface")
        if isinstance(idx, int) and 0 <= idx < len(ifaces):
            itf = ifaces[idx] if isinstance(ifaces[idx], dict) else {}
            if itf.get("name") != ifname or not itf.get("sandbox"):
                continue
        try:
            addr = ipaddress.ip_interface(ipc.get("address", ""))
        except ValueError:
            continue
        if isinstance(addr, ipaddress.IPv4Interface) and v4 is None:
            v4 = addr
        elif isinstance(addr, ipaddress.IPv6Interface) and v6 is None:
            v6 = addr
    return v4, v6


def _legacy_result(prev: dict[str, Any]) -> dict[str, Any]:
    """Pre-0.3 results (ip4/ip6) as a 0.3+-shaped dict for address selection."""
    if "ips" in prev or ("ip4" not in prev and "ip6" not in prev):
        return prev
    ips = [{"address": prev[k]["ip"]} for k in ("ip4", "ip6") if isinstance(prev.get(k), dict)]
    return {"ips": ips}


def parse_config(conf: dict[str, Any], container_id: str, ifname: str, verb: str) -> PortMapConf:
    strict = verb != "DEL"
    if conf.get("markMasqBit") is not None and conf.get("externalSetMarkChain") is not None:
        raise InvalidConfigError("Cannot specify externalSetMarkChain and markMasqBit")
    bit = conf.get("markMasqBit")
    bit = DEFAULT_MARK_BIT if bit is None else _int(bit, '"markMasqBit"')
    if strict and not 0 <= bit <= 31:
        raise InvalidConfigError(f"MasqMarkBit must be between 0 and 31 (markMasqBit={bit})")
    ext = conf.get("externalSetMarkChain")
    if ext is not None and (not isinstance(ext, str) or not ext):
        raise InvalidConfigError(
            f'portmap: "externalSetMarkChain" must be a chain name, got {ext!r}'
        )
    if conf.get("backend") not in (None, "iptables"):
        raise InvalidConfigError(
            f'portmap: backend {conf.get("backend")!r} is not supported (only "iptables")'
        )
    rc = conf.get("runtimeConfig") or {}
    if not isinstance(rc, dict):
        raise InvalidConfigError(f'portmap: "runtimeConfig" must be an object, got {rc!r}')
    pc = PortMapConf(
        name=str(conf.get("name", "")),
        container_id=container_id,
        snat=_bool(conf, "snat", True),
        masq_all=_bool(conf, "masqAll", False),
        mark_masq_bit=bit,
        external_set_mark_chain=ext,
        conditions_v4=_conditions(conf, "conditionsV4"),
        conditions_v6=_conditions(conf, "conditionsV6"),
        mappings=parse_mappings(rc.get("portMappings"), strict=strict),
    )
    prev = conf.get("prevResult")
    if isinstance(prev, dict):
        pc.prev_result = prev
        pc.cont_net4, pc.cont_net6 = container_nets(_legacy_result(prev), ifname)
    return pc
