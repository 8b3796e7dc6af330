"""DHCPv4 messages (RFC 2131/2132) and their Ethernet/IPv4/UDP framing, for the daemon.

Written here rather than taken from pyroute2 0.9.7's ``pyroute2.dhcp.dhcp4msg``, whose
codec does not fit what the reference plugin sends and reads:

- its encoder silently drops every option it has no name for, so a ``provide`` entry
  given as a decimal code (``{"option": "224", ...}``) would never reach the server;
- its decoder turns string options into text (UTF-8, trailing NULs stripped), so option
  bytes do not survive a round trip, and it has no codec for the static routes (33) and
  classless static routes (121) that become the result's routes.

Here an option is a code and raw bytes, in the order given; the daemon decides what they
mean. The packet socket's BPF filter comes from pyroute2 (see ``client.py``).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable

# message types (option 53)
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
TYPE_NAMES = {
    DISCOVER: "DHCPDISCOVER",
    OFFER: "DHCPOFFER",
    REQUEST: "DHCPREQUEST",
    DECLINE: "DHCPDECLINE",
    ACK: "DHCPACK",
    NAK: "DHCPNAK",
    RELEASE: "DHCPRELEASE",
    INFORM: "DHCPINFORM",
}

# option codes
OPT_PAD = 0
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_HOST_NAME = 12
OPT_STATIC_ROUTES = 33
OPT_REQUESTED_IP = 50
OPT_LEASE_TIME = 51
OPT_OVERLOAD = 52
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAMETER_LIST = 55
OPT_MESSAGE = 56
OPT_MAX_SIZE = 57
OPT_RENEWAL_TIME = 58
OPT_REBINDING_TIME = 59
OPT_VENDOR_CLASS = 60
OPT_CLIENT_ID = 61
OPT_USER_CLASS = 77
OPT_CLASSLESS_ROUTES = 121
OPT_END = 255

BOOTREQUEST, BOOTREPLY = 1, 2
FLAG_BROADCAST = 0x8000
MAGIC_COOKIE = b"\x63\x82\x53\x63"
CLIENT_PORT, SERVER_PORT = 68, 67
BROADCAST_MAC = b"\xff" * 6
_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")  # the fixed BOOTP part: 236 bytes
MIN_SIZE = _HEADER.size + len(MAGIC_COOKIE)
ETH_HLEN, IP_HLEN, UDP_HLEN = 14, 20, 8
ETH_P_IP = 0x0800

Options = list[tuple[int, bytes]]


class Message:
    """A decoded DHCP message: the BOOTP fields the client uses, and its options (each
    code once, its parts joined as RFC 3396 says)."""

    __slots__ = ("op", "xid", "flags", "ciaddr", "yiaddr", "siaddr", "chaddr", "options", "raw")

    def __init__(
        self,
        op: int,
        xid: int,
        flags: int,
        ciaddr: str,
        yiaddr: str,
        siaddr: str,
        chaddr: bytes,
        options: dict[int, bytes],
        raw: bytes = b"",
    ) -> None:
        self.op = op
        self.xid = xid
        self.flags = flags
        self.ciaddr = ciaddr
        self.yiaddr = yiaddr
        self.siaddr = siaddr
        self.chaddr = chaddr
        self.options = options
        self.raw = raw  # the message as received (the daemon's state file keeps it)

    @property
    def type(self) -> int:
        value = self.options.get(OPT_MESSAGE_TYPE, b"")
        return value[0] if len(value) == 1 else 0

    def ip_option(self, code: int) -> str | None:
        """The first address of an address option, or None when absent or malformed."""
        value = self.options.get(code, b"")
        return str(ipaddress.IPv4Address(value[:4])) if len(value) >= 4 else None

    def u32_option(self, code: int) -> int | None:
        value = self.options.get(code, b"")
        return int.from_bytes(value, "big") if len(value) == 4 else None


def _ip(addr: str) -> bytes:
    return ipaddress.IPv4Address(addr).packed


def encode(
    msg_type: int,
    xid: int,
    mac: bytes,
    options: Iterable[tuple[int, bytes]],
    *,
    ciaddr: str = "0.0.0.0",
    broadcast: bool = False,
    secs: int = 0,
) -> bytes:
    """A client message (BOOTREQUEST); option 53 goes first, then ``options`` in order.
    An option longer than 255 bytes is split into several (RFC 3396)."""
    head = _HEADER.pack(
        BOOTREQUEST,
        1,  # htype: Ethernet
        len(mac),
        0,
        xid,
        min(secs, 0xFFFF),
        FLAG_BROADCAST if broadcast else 0,
        _ip(ciaddr),
        bytes(4),
        bytes(4),
        bytes(4),
        mac.ljust(16, b"\0"),
        bytes(64),
        bytes(128),
    )
    out = bytearray(head + MAGIC_COOKIE)
    out += bytes((OPT_MESSAGE_TYPE, 1, msg_type))
    for code, value in options:
        chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [b""]
        for chunk in chunks:
            out += bytes((code, len(chunk))) + chunk
    out.append(OPT_END)
    if len(out) < 300:  # the BOOTP minimum some relays and servers insist on
        out += bytes(300 - len(out))
    return bytes(out)


def _read_options(data: bytes, into: dict[int, bytes]) -> None:
    i = 0
    while i < len(data):
        code = data[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            return
        if i + 1 >= len(data):
            raise ValueError("truncated option")
        length = data[i + 1]
        value = data[i + 2 : i + 2 + length]
        if len(value) != length:
            raise ValueError(f"truncated option {code}")
        into[code] = into.get(code, b"") + value
        i += 2 + length


def decode(data: bytes) -> Message:
    """Decode a DHCP message; ValueError when it is not one."""
    if len(data) < MIN_SIZE or data[_HEADER.size : MIN_SIZE] != MAGIC_COOKIE:
        raise ValueError("not a DHCP message")
    (op, _htype, hlen, _hops, xid, _secs, flags, ci, yi, si, _gi, ch, sname, file) = (
        _HEADER.unpack_from(data)
    )
    options: dict[int, bytes] = {}
    _read_options(data[MIN_SIZE:], options)
    overload = options.get(OPT_OVERLOAD, b"\0")[0]
    if overload & 1:
        _read_options(file, options)
    if overload & 2:
        _read_options(sname, options)
    return Message(
        op,
        xid,
        flags,
        str(ipaddress.IPv4Address(ci)),
        str(ipaddress.IPv4Address(yi)),
        str(ipaddress.IPv4Address(si)),
        ch[: min(hlen, 16)],
        options,
        bytes(data),
    )


# -- framing ------------------------------------------------------------------------------
def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(payload: bytes, src_mac: bytes, dst_mac: bytes, src_ip: str, dst_ip: str) -> bytes:
    """``payload`` in a UDP datagram from port 68 to 67, in an IPv4 packet, in an
    Ethernet frame: what a client without a configured address must send itself."""
    src, dst = _ip(src_ip), _ip(dst_ip)
    udp_len = UDP_HLEN + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", CLIENT_PORT, SERVER_PORT, udp_len, 0)
    udp_sum = checksum(pseudo + udp + payload) or 0xFFFF
    udp = struct.pack("!HHHH", CLIENT_PORT, SERVER_PORT, udp_len, udp_sum)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0x10, IP_HLEN + udp_len, 0, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = dst_mac + src_mac + struct.pack("!H", ETH_P_IP)
    return eth + ip + udp + payload


def unframe(data: bytes) -> tuple[bytes, bytes] | None:
    """(source MAC, DHCP payload) of an Ethernet frame carrying UDP to port 68, or None."""
    if len(data) < ETH_HLEN + IP_HLEN + UDP_HLEN:
        return None
    if struct.unpack_from("!H", data, 12)[0] != ETH_P_IP:
        return None
    ip = data[ETH_HLEN:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[0] >> 4 != 4 or ihl < IP_HLEN or ip[9] != 17 or len(ip) < ihl + UDP_HLEN:
        return None
    if struct.unpack_from("!H", ip, 6)[0] & 0x3FFF:  # a fragment
        return None
    total = struct.unpack_from("!H", ip, 2)[0]
    _sport, dport, ulen = struct.unpack_from("!HHH", ip, ihl)
    if dport != CLIENT_PORT or ulen < UDP_HLEN:
        return None
    end = min(ihl + ulen, total, len(ip))
    return data[6:12], bytes(ip[ihl + UDP_HLEN : end])


# -- what the options mean ------------------------------------------------------------------
def prefix_length(mask: bytes) -> int:
    """The prefix length of a subnet mask; ValueError for a non-contiguous one."""
    bits = int.from_bytes(mask, "big")
    length = bin(bits).count("1")
    if len(mask) != 4 or bits != (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF:
        raise ValueError(f"invalid subnet mask {mask.hex()}")
    return length


def classless_routes(data: bytes) -> list[tuple[str, str]]:
    """Option 121 (RFC 3442): ``[(destination CIDR, router)]``; ValueError if malformed."""
    routes: list[tuple[str, str]] = []
    i = 0
    while i < len(data):
        width = data[i]
        if width > 32:
            raise ValueError(f"classless route with prefix length {width}")
        size = (width + 7) // 8
        if i + 1 + size + 4 > len(data):
            raise ValueError("truncated classless route")
        dest = data[i + 1 : i + 1 + size].ljust(4, b"\0")
        router = data[i + 1 + size : i + 5 + size]
        net = ipaddress.IPv4Network((dest, width), strict=False)
        routes.append((str(net), str(ipaddress.IPv4Address(router))))
        i += 5 + size
    return routes


def static_routes(data: bytes) -> list[tuple[str, str]]:
    """Option 33 (RFC 2132 5.8): ``[(classful destination, router)]``."""
    routes: list[tuple[str, str]] = []
    for i in range(0, len(data) - 7, 8):
        dest = ipaddress.IPv4Address(data[i : i + 4])
        first = data[i]
        width = 8 if first < 128 else 16 if first < 192 else 24
        net = ipaddress.IPv4Network((dest.packed, width), strict=False)
        routes.append((str(net), str(ipaddress.IPv4Address(data[i + 4 : i + 8]))))
    return routes
