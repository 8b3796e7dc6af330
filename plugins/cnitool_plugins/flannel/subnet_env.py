"""Parsing flannel's ``subnet.env`` (``KEY=VALUE`` lines written by flanneld)."""

from __future__ import annotations

import ipaddress
import os
import stat

from cnitool.spec.errors import CNIError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SubnetEnvError(CNIError):
    """subnet.env is unreadable, malformed or incomplete."""


class SubnetEnv:
    """What subnet.env says; filled in line by line by :func:`parse`."""

    def __init__(self) -> None:
        self.networks: list[Network] = []
        self.subnet: Network | None = None
        self.ip6_networks: list[Network] = []
        self.ip6_subnet: Network | None = None
        self.mtu: int | None = None
        self.ipmasq: bool | None = None

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


# flanneld writes a few hundred bytes; anything this large is not a subnet.env
MAX_BYTES = 64 * 1024


def load(path: str) -> SubnetEnv:
    """Parse the file at ``path``: a regular file of at most ``MAX_BYTES``, else an error
    at once (a FIFO would block the ADD, ``/dev/zero`` would fill the memory)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SubnetEnvError(f"open {path}: no such file or directory") from None
    except OSError as e:
        raise SubnetEnvError(f"open {path}: {e.strerror or e}") from None
    try:
        data = _read_bounded(path, fd)
    finally:
        os.close(fd)
    return parse(data.decode("utf-8", errors="replace"), path)


def _read_bounded(path: str, fd: int) -> bytes:
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SubnetEnvError(f"read {path}: not a regular file")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, MAX_BYTES + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BYTES:
                raise SubnetEnvError(f"read {path}: larger than {MAX_BYTES} bytes")
    except OSError as e:
        raise SubnetEnvError(f"read {path}: {e.strerror or e}") from None
    return b"".join(chunks)
