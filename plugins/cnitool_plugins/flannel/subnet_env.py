"""Parsing flannel's ``subnet.env`` (``KEY=VALUE`` lines written by flanneld)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from cnitool.spec.errors import CNIError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SubnetEnvError(CNIError):
    """subnet.env is unreadable, malformed or incomplete."""


@dataclass
class SubnetEnv:
    networks: list[Network] = field(default_factory=list)
    subnet: Network | None = None
    ip6_networks: list[Network] = field(default_factory=list)
    ip6_subnet: Network | None = None
    mtu: int | None = None
    ipmasq: bool | None = None

    def missing_fields(self) -> list[str]:
        out: list[str] = []
        if not self.networks and not self.ip6_networks:
            out += ["FLANNEL_NETWORK", "FLANNEL_IPV6_NETWORK"]
        if self.subnet is None and self.ip6_subnet is None:
            out += ["FLANNEL_SUBNET", "FLANNEL_IPV6_SUBNET"]
        if self.mtu is None:
            out.append("FLANNEL_MTU")
        if self.ipmasq is None:
            out.append("FLANNEL_IPMASQ")
        return out


def _cidr(path: str, key: str, text: str) -> Network:
    try:
        # like a CIDR parse that keeps the network part: 10.1.17.1/24 -> 10.1.17.0/24
        if "/" not in text:
            raise ValueError
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise SubnetEnvError(f"{path}: {key}: invalid CIDR address: {text}") from None


def _cidrs(path: str, key: str, text: str) -> list[Network]:
    out: list[Network] = []
    for part in text.split(","):
        net = _cidr(path, key, part)
        if net not in out:
            out.append(net)
    return out


def parse(text: str, path: str = "subnet.env") -> SubnetEnv:
    env = SubnetEnv()
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "FLANNEL_NETWORK":
            env.networks = _cidrs(path, key, value)
        elif key == "FLANNEL_SUBNET":
            env.subnet = _cidr(path, key, value)
        elif key == "FLANNEL_IPV6_NETWORK":
            env.ip6_networks = _cidrs(path, key, value)
        elif key == "FLANNEL_IPV6_SUBNET":
            env.ip6_subnet = _cidr(path, key, value)
        elif key == "FLANNEL_MTU":
            if not value.isascii() or not value.isdigit():
                raise SubnetEnvError(
                    f'{path}: FLANNEL_MTU: strconv.ParseUint: parsing "{value}": invalid syntax'
                )
            if int(value) > 0xFFFFFFFF:
                raise SubnetEnvError(
                    f'{path}: FLANNEL_MTU: strconv.ParseUint: parsing "{value}": value out of range'
                )
            env.mtu = int(value)
        elif key == "FLANNEL_IPMASQ":
            env.ipmasq = value == "true"
    missing = env.missing_fields()
    if missing:
        raise SubnetEnvError(f"{path} is missing {', '.join(missing)}")
    return env


def load(path: str) -> SubnetEnv:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise SubnetEnvError(f"open {path}: no such file or directory") from None
    except OSError as e:
        raise SubnetEnvError(f"open {path}: {e.strerror or e}") from None
    return parse(text, path)
