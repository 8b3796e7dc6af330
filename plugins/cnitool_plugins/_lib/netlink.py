"""rtnetlink for the plugins: links, veths, bridges, bridge ports, addresses, routes.

A small codec over a raw ``NETLINK_ROUTE`` socket, covering exactly what the plugins do.
It costs nothing to import (pyroute2 takes ~100 ms to import, and every plugin call is a
new process). A ``Netlink`` belongs to the network namespace of the thread that opened it:
open one inside a ``netns.run_in_netns`` worker to act on a container, and in the calling
thread to act on the node.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import struct
import time

from cnitool.spec.record import Record

AF_UNSPEC = 0
AF_INET = 2
AF_BRIDGE = 7
AF_INET6 = 10
IFF_UP = 0x1
IFF_PROMISC = 0x100
IFF_ALLMULTI = 0x200
IFA_F_TENTATIVE = 0x40
IFA_F_DADFAILED = 0x08
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
RT_SCOPE_NOWHERE = 255
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RTPROT_BOOT = 3
BRIDGE_VLAN_INFO_PVID = 0x2
BRIDGE_VLAN_INFO_UNTAGGED = 0x4
BRIDGE_VLAN_INFO_RANGE_BEGIN = 0x8
BRIDGE_VLAN_INFO_RANGE_END = 0x10

# netlink header
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200  # flags of an NLMSG_ERROR reply
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND = 0x300, 0x200, 0x400, 0x800
NLA_F_NESTED = 0x8000
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
# link attributes
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_PROTINFO, IFLA_TXQLEN, IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_NET_NS_FD = 12, 13, 16, 18, 28
IFLA_AF_SPEC, IFLA_PROMISCUITY, IFLA_EXT_MASK = 26, 30, 29
RTEXT_FILTER_BRVLAN = 1 << 1
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_BR_VLAN_FILTERING = 7
IFLA_MACVLAN_MODE, IFLA_MACVLAN_BC_QUEUE_LEN = 1, 7
IFLA_IPVLAN_MODE = 1  # u16: IPVLAN_MODE_L2 (0), _L3 (1), _L3S (2)
IFLA_VLAN_ID = 1  # u16
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE, IFLA_BRPORT_ISOLATED = 4, 33
IFLA_BRIDGE_VLAN_INFO = 2
# address / route attributes
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 4, 8
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC = 1, 4, 5, 6, 7
RTA_METRICS, RTA_MULTIPATH, RTA_TABLE = 8, 9, 15
RTAX_MTU, RTAX_ADVMSS = 2, 8

OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NLA = struct.Struct("=HH")
_RTNH = struct.Struct("=HBBi")  # struct rtnexthop: len, flags, hops, ifindex


class NetlinkError(Exception):
    """A netlink request failed; ``errno`` is the kernel's error number."""

    def __init__(self, errno_: int, msg: str) -> None:
        super().__init__(msg)
        self.errno = errno_


def random_veth_name() -> str:
    """``veth`` + 8 lowercase hex characters, like the reference's host-side names."""
    return "veth" + os.urandom(4).hex()


# -- attribute codec ---------------------------------------------------------------------
def _align(n: int) -> int:
    return (n + 3) & ~3


def nla(kind: int, payload: bytes) -> bytes:
    raw = _NLA.pack(_NLA.size + len(payload), kind) + payload
    return raw + b"\0" * (_align(len(raw)) - len(raw))


def nla_nested(kind: int, *children: bytes) -> bytes:
    return nla(kind | NLA_F_NESTED, b"".join(children))


def nla_str(kind: int, value: str) -> bytes:
    return nla(kind, value.encode() + b"\0")


def nla_u8(kind: int, value: int) -> bytes:
    return nla(kind, struct.pack("=B", value))


def nla_u16(kind: int, value: int) -> bytes:
    return nla(kind, struct.pack("=H", value))


def nla_u32(kind: int, value: int) -> bytes:
    return nla(kind, struct.pack("=I", value))


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """Attributes (type without flag bits -> payload); later duplicates win."""
    # a link message carries some forty attributes and a call reads several links: the
    # loop keeps to locals (header size 4, alignment 4 written out)
    out: dict[int, bytes] = {}
    end = len(data)
    unpack = _NLA.unpack_from
    while offset + 4 <= end:
        length, kind = unpack(data, offset)
        if length < 4:
            break
        out[kind & 0x3FFF] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return out


def _u32(b: bytes | None) -> int:
    return struct.unpack("=I", b[:4])[0] if b and len(b) >= 4 else 0


def _u16(b: bytes | None) -> int:
    return struct.unpack_from("=H", b)[0] if b and len(b) >= 2 else 0


def _cstr(b: bytes | None) -> str:
    return b.split(b"\0", 1)[0].decode() if b else ""


def _mac(b: bytes | None) -> str:
    return ":".join(f"{x:02x}" for x in b) if b else ""


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(p, 16) for p in mac.replace("-", ":").split(":"))


def _ip(b: bytes | None) -> str:
    if not b:
        return ""
    return str(ipaddress.ip_address(b))


def _ext_ack_msg(body: bytes, flags: int) -> str:
    """The kernel's error text from an extended ACK (``""`` when there is none)."""
    if not flags & NLM_F_ACK_TLVS or len(body) < 4 + _HDR.size:
        return ""
    offset = 4 + _HDR.size
    if not flags & NLM_F_CAPPED:  # the whole request is echoed before the TLVs
        offset = 4 + _align(_HDR.unpack_from(body, 4)[0])
    return _cstr(parse_attrs(body, offset).get(NLMSGERR_ATTR_MSG))


def _paths(attrs: dict[int, bytes]) -> list[tuple[int, str]]:
    """(oif, gateway) of each path of a route."""
    multi = attrs.get(RTA_MULTIPATH)
    if not multi:
        return [(_u32(attrs.get(RTA_OIF)), _ip(attrs.get(RTA_GATEWAY)))]
    out = []
    offset = 0
    while offset + _RTNH.size <= len(multi):
        length, _flags, _hops, ifindex = _RTNH.unpack_from(multi, offset)
        if length < _RTNH.size:
            break
        sub = parse_attrs(multi[offset : offset + length], _RTNH.size)
        out.append((ifindex, _ip(sub.get(RTA_GATEWAY))))
        offset += _align(length)
    return out


# -- data types ---------------------------------------------------------------------------
class Link(Record):
    index: int
    name: str
    mac: str
    mtu: int
    kind: str
    flags: int
    master: int
    oper: str
    peer_index: int  # IFLA_LINK (veth peer index in its own netns), 0 if none
    promisc: bool
    vlan_filtering: bool | None
    macvlan_mode: int | None  # IFLA_MACVLAN_MODE (MACVLAN_MODE_*) of a macvlan link
    ipvlan_mode: int | None  # IFLA_IPVLAN_MODE (IPVLAN_MODE_*) of an ipvlan link
    vlan_id: int | None  # IFLA_VLAN_ID of an 802.1q vlan link
    allmulti: bool  # IFF_ALLMULTI as requested by userspace
    txqlen: int

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


class Addr(Record):
    address: str
    prefixlen: int
    family: int
    scope: int
    flags: int
    index: int

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"

    @property
    def interface(self) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        return ipaddress.ip_interface(self.cidr)


class Route(Record):
    dst: str  # CIDR; "0.0.0.0/0" / "::/0" for defaults
    gateway: str
    oif: int
    scope: int
    table: int
    priority: int
    src: str
    family: int


def _link_from_msg(body: bytes) -> Link:
    _family, _type, index, flags, _change = _IFINFO.unpack_from(body)
    attrs = parse_attrs(body, _IFINFO.size)
    kind = ""
    vlan_filtering: bool | None = None
    macvlan_mode: int | None = None
    ipvlan_mode: int | None = None
    vlan_id: int | None = None
    if IFLA_LINKINFO in attrs:
        info = parse_attrs(attrs[IFLA_LINKINFO])
        kind = _cstr(info.get(IFLA_INFO_KIND))
        if kind == "bridge" and IFLA_INFO_DATA in info:
            data = parse_attrs(info[IFLA_INFO_DATA])
            if IFLA_BR_VLAN_FILTERING in data:
                vlan_filtering = bool(data[IFLA_BR_VLAN_FILTERING][0])
        if kind == "macvlan" and IFLA_INFO_DATA in info:
            data = parse_attrs(info[IFLA_INFO_DATA])
            if IFLA_MACVLAN_MODE in data:
                macvlan_mode = _u32(data[IFLA_MACVLAN_MODE])
        if kind == "ipvlan" and IFLA_INFO_DATA in info:
            data = parse_attrs(info[IFLA_INFO_DATA])
            if IFLA_IPVLAN_MODE in data:
                ipvlan_mode = _u16(data[IFLA_IPVLAN_MODE])
        if kind == "vlan" and IFLA_INFO_DATA in info:
            data = parse_attrs(info[IFLA_INFO_DATA])
            if IFLA_VLAN_ID in data:
                vlan_id = _u16(data[IFLA_VLAN_ID])
    oper = attrs.get(IFLA_OPERSTATE)
    state = OPERSTATES[oper[0]] if oper and oper[0] < len(OPERSTATES) else "UNKNOWN"
    return Link(
        index=index,
        name=_cstr(attrs.get(IFLA_IFNAME)),
        mac=_mac(attrs.get(IFLA_ADDRESS)),
        mtu=_u32(attrs.get(IFLA_MTU)),
        kind=kind,
        flags=flags,
        master=_u32(attrs.get(IFLA_MASTER)),
        oper=state,
        peer_index=_u32(attrs.get(IFLA_LINK)),
        promisc=bool(flags & IFF_PROMISC) or bool(_u32(attrs.get(IFLA_PROMISCUITY))),
        vlan_filtering=vlan_filtering,
        macvlan_mode=macvlan_mode,
        ipvlan_mode=ipvlan_mode,
        vlan_id=vlan_id,
        allmulti=bool(flags & IFF_ALLMULTI),
        txqlen=_u32(attrs.get(IFLA_TXQLEN)),
    )


def _ifinfo(index: int = 0, family: int = AF_UNSPEC, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(family, 0, index, flags, change)


class Netlink:
    """Link/address/route operations in the netns of the thread that opened it."""

    def __init__(self) -> None:
        self._sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
        )
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            for opt in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):
                # the kernel's own error text, and errors without the echoed request (older
                # kernels lack them: plain errno only)
                with contextlib.suppress(OSError):
                    self._sock.setsockopt(SOL_NETLINK, opt, 1)
            self._sock.bind((0, 0))
        except BaseException:
            self._sock.close()
            raise
        self._seq = int.from_bytes(os.urandom(2), "little")
        self._peek = bytearray(16)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------
    # One request at a time; replies are matched by sequence number, so anything left over
    # from an earlier request (e.g. after an error mid-dump) is skipped. A datagram is
    # peeked first and read whole, whatever its size. Reads interrupted by a signal are
    # retried by Python itself (PEP 475). Read-only requests (GET/dump) are repeated when
    # the kernel lost replies (ENOBUFS) or flagged the dump as inconsistent
    # (NLM_F_DUMP_INTR: the table changed while it was being read).
    _RETRIES = 3

    def _send(self, msg_type: int, flags: int, body: bytes, what: str) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        hdr = _HDR.pack(_HDR.size + len(body), msg_type, flags | NLM_F_REQUEST, self._seq, 0)
        try:
            self._sock.send(hdr + body)
        except OSError as exc:
            raise NetlinkError(exc.errno or errno.EIO, f"{what}: send: {exc.strerror}") from None
        return self._seq

    def _recv(self, what: str) -> bytes:
        try:
            size = self._sock.recv_into(
                self._peek, len(self._peek), socket.MSG_PEEK | socket.MSG_TRUNC
            )
            return self._sock.recv(max(size, len(self._peek)))
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                raise NetlinkError(
                    errno.ENOBUFS, f"{what}: netlink replies were lost (receive buffer overrun)"
                ) from None
            raise NetlinkError(exc.errno or errno.EIO, f"{what}: receive: {exc.strerror}") from None

    def _replies(self, seq: int, what: str) -> tuple[list[bytes], bool]:
        """The bodies of the replies to ``seq``, up to DONE or the ACK, and whether the
        kernel flagged them as an interrupted dump."""
        bodies: list[bytes] = []
        interrupted = False
        while True:
            data = self._recv(what)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, mtype, flags, mseq, _pid = _HDR.unpack_from(data, offset)
                if length < _HDR.size or offset + length > len(data):
                    raise NetlinkError(errno.EIO, f"{what}: malformed netlink reply")
                body = data[offset + _HDR.size : offset + length]
                offset += _align(length)
                if mseq != seq:
                    continue
                interrupted = interrupted or bool(flags & NLM_F_DUMP_INTR)
                if mtype == NLMSG_DONE:
                    # a dump that failed part-way says so in DONE's payload
                    code = -struct.unpack_from("=i", body)[0] if len(body) >= 4 else 0
                    if code > 0:
                        raise NetlinkError(code, f"{what}: {os.strerror(code)}")
                    return bodies, interrupted
                if mtype == NLMSG_ERROR:
                    if len(body) < 4:
                        raise NetlinkError(errno.EIO, f"{what}: malformed netlink error")
                    code = -struct.unpack_from("=i", body)[0]
                    if code:
                        detail = _ext_ack_msg(body, flags)
                        reason = os.strerror(code) + (f" ({detail})" if detail else "")
                        raise NetlinkError(code, f"{what}: {reason}")
                    return bodies, interrupted  # the ACK
                bodies.append(body)
                if not flags & NLM_F_MULTI:
                    # a single reply to a GET is followed by nothing else
                    return bodies, interrupted

    def _request(self, msg_type: int, flags: int, body: bytes, what: str) -> list[bytes]:
        readonly = msg_type in (RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE)
        attempt = 0
        while True:
            attempt += 1
            may_retry = readonly and attempt <= self._RETRIES
            seq = self._send(msg_type, flags, body, what)
            try:
                bodies, interrupted = self._replies(seq, what)
            except NetlinkError as exc:
                if may_retry and exc.errno == errno.ENOBUFS:
                    continue
                raise
            if interrupted and may_retry:
                continue
            return bodies  # after the last retry: the best answer there is, as ip(8) does

    def _do(self, msg_type: int, flags: int, body: bytes, what: str) -> None:
        self._request(msg_type, flags | NLM_F_ACK, body, what)

    # -- links -------------------------------------------------------------------------
    def links(self) -> list[Link]:
        msgs = self._request(RTM_GETLINK, NLM_F_DUMP, _ifinfo(), "list links")
        return [_link_from_msg(m) for m in msgs]

    def _get_link(self, body: bytes, what: str) -> Link | None:
        try:
            msgs = self._request(RTM_GETLINK, 0, body, what)
        except NetlinkError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return _link_from_msg(msgs[0]) if msgs else None

    def link(self, name: str) -> Link | None:
        """The link called ``name``, or None."""
        return self._get_link(_ifinfo() + nla_str(IFLA_IFNAME, name), f'get link "{name}"')

    def link_by_index(self, index: int) -> Link | None:
        return self._get_link(_ifinfo(index), f"get link #{index}")

    def _setlink(
        self, index: int, what: str, *attrs: bytes, flags: int = 0, change: int = 0
    ) -> None:
        self._do(RTM_NEWLINK, 0, _ifinfo(index, flags=flags, change=change) + b"".join(attrs), what)

    def set_up(self, index: int) -> None:
        self._setlink(index, f"set link #{index} up", flags=IFF_UP, change=IFF_UP)

    def set_down(self, index: int) -> None:
        self._setlink(index, f"set link #{index} down", flags=0, change=IFF_UP)

    def set_promisc(self, index: int, on: bool) -> None:
        self._setlink(
            index, f"set link #{index} promisc", flags=IFF_PROMISC if on else 0, change=IFF_PROMISC
        )

    def set_allmulti(self, index: int, on: bool) -> None:
        self._setlink(
            index,
            f"set link #{index} allmulticast",
            flags=IFF_ALLMULTI if on else 0,
            change=IFF_ALLMULTI,
        )

    def set_mtu(self, index: int, mtu: int) -> None:
        self._setlink(index, f"set mtu of link #{index}", nla_u32(IFLA_MTU, mtu))

    def set_txqlen(self, index: int, qlen: int) -> None:
        self._setlink(index, f"set txqlen of link #{index}", nla_u32(IFLA_TXQLEN, qlen))

    def set_name(self, index: int, name: str) -> None:
        """Rename a link (the kernel refuses while it is up)."""
        self._setlink(index, f'rename link #{index} to "{name}"', nla_str(IFLA_IFNAME, name))

    def set_master(self, index: int, master: int) -> None:
        self._setlink(index, f"set master of link #{index}", nla_u32(IFLA_MASTER, master))

    def set_mac(self, index: int, mac: str) -> None:
        self._setlink(index, f"set mac of link #{index}", nla(IFLA_ADDRESS, _mac_bytes(mac)))

    def set_bridge_vlan_filtering(self, index: int, on: bool) -> None:
        info = nla_nested(
            IFLA_LINKINFO,
            nla_str(IFLA_INFO_KIND, "bridge"),
            nla_nested(IFLA_INFO_DATA, nla_u8(IFLA_BR_VLAN_FILTERING, int(on))),
        )
        self._setlink(index, f"set vlan_filtering on link #{index}", info)

    def delete_link(self, index: int) -> None:
        self._do(RTM_DELLINK, 0, _ifinfo(index), f"delete link #{index}")

    def create_bridge(self, name: str, mtu: int = 0, vlan_filtering: bool = False) -> None:
        data = [nla_u8(IFLA_BR_VLAN_FILTERING, 1)] if vlan_filtering else []
        kind = [nla_str(IFLA_INFO_KIND, "bridge")]
        if data:
            kind.append(nla_nested(IFLA_INFO_DATA, *data))
        attrs = [nla_str(IFLA_IFNAME, name), nla_nested(IFLA_LINKINFO, *kind)]
        if mtu:
            attrs.append(nla_u32(IFLA_MTU, mtu))
        self._do(
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            _ifinfo() + b"".join(attrs),
            f'add bridge "{name}"',
        )

    def create_veth(
        self,
        name: str,
        peer_name: str,
        peer_netns_fd: int,
        *,
        mtu: int = 0,
        mac: str = "",
    ) -> None:
        """Create veth ``name`` here with its peer ``peer_name`` born in ``peer_netns_fd``."""
        peer = [nla_str(IFLA_IFNAME, peer_name), nla_u32(IFLA_NET_NS_FD, peer_netns_fd)]
        attrs = [nla_str(IFLA_IFNAME, name)]
        if mtu:
            peer.append(nla_u32(IFLA_MTU, mtu))
            attrs.append(nla_u32(IFLA_MTU, mtu))
        if mac:
            attrs.append(nla(IFLA_ADDRESS, _mac_bytes(mac)))
        info = nla_nested(
            IFLA_LINKINFO,
            nla_str(IFLA_INFO_KIND, "veth"),
            nla_nested(IFLA_INFO_DATA, nla_nested(VETH_INFO_PEER, _ifinfo() + b"".join(peer))),
        )
        attrs.append(info)
        self._do(
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            _ifinfo() + b"".join(attrs),
            f'add veth "{name}" peer "{peer_name}"',
        )

    def create_macvlan(
        self,
        name: str,
        master_index: int,
        mode: int,
        *,
        netns_fd: int | None = None,
        mtu: int = 0,
        mac: str = "",
        bcqueuelen: int | None = None,
    ) -> None:
        """Create macvlan ``name`` on link ``master_index`` (here) in ``mode``
        (a MACVLAN_MODE_* value); born in netns ``netns_fd`` when given."""
        data = [nla_u32(IFLA_MACVLAN_MODE, mode)]
        if bcqueuelen is not None:
            data.append(nla_u32(IFLA_MACVLAN_BC_QUEUE_LEN, bcqueuelen))
        self._create_on("macvlan", name, master_index, data, netns_fd=netns_fd, mtu=mtu, mac=mac)

    def create_ipvlan(
        self, name: str, master_index: int, mode: int, *, netns_fd: int | None = None, mtu: int = 0
    ) -> None:
        """Create ipvlan ``name`` on link ``master_index`` (here) in ``mode`` (an
        IPVLAN_MODE_* value); born in netns ``netns_fd`` when given."""
        data = [nla_u16(IFLA_IPVLAN_MODE, mode)]
        self._create_on("ipvlan", name, master_index, data, netns_fd=netns_fd, mtu=mtu)

    def create_vlan(
        self,
        name: str,
        master_index: int,
        vlan_id: int,
        *,
        netns_fd: int | None = None,
        mtu: int = 0,
    ) -> None:
        """Create 802.1q vlan ``name`` with ``vlan_id`` on link ``master_index`` (here);
        born in netns ``netns_fd`` when given."""
        data = [nla_u16(IFLA_VLAN_ID, vlan_id)]
        self._create_on("vlan", name, master_index, data, netns_fd=netns_fd, mtu=mtu)

    def _create_on(
        self,
        kind: str,
        name: str,
        master_index: int,
        data: list[bytes],
        *,
        netns_fd: int | None,
        mtu: int,
        mac: str = "",
    ) -> None:
        """Create a ``kind`` link on a lower link (IFLA_LINK) with its IFLA_INFO_DATA."""
        attrs = [nla_str(IFLA_IFNAME, name), nla_u32(IFLA_LINK, master_index)]
        if netns_fd is not None:
            attrs.append(nla_u32(IFLA_NET_NS_FD, netns_fd))
        if mtu:
            attrs.append(nla_u32(IFLA_MTU, mtu))
        if mac:
            attrs.append(nla(IFLA_ADDRESS, _mac_bytes(mac)))
        attrs.append(
            nla_nested(
                IFLA_LINKINFO,
                nla_str(IFLA_INFO_KIND, kind),
                nla_nested(IFLA_INFO_DATA, *data),
            )
        )
        self._do(
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            _ifinfo() + b"".join(attrs),
            f'add {kind} "{name}" on link #{master_index}',
        )

    def brport_set(
        self, index: int, *, hairpin: bool | None = None, isolated: bool | None = None
    ) -> None:
        """Set bridge-port options of an enslaved link."""
        opts = []
        if hairpin is not None:
            opts.append(nla_u8(IFLA_BRPORT_MODE, int(hairpin)))
        if isolated is not None:
            opts.append(nla_u8(IFLA_BRPORT_ISOLATED, int(isolated)))
        if opts:
            self._do(
                RTM_SETLINK,
                0,
                _ifinfo(index, family=AF_BRIDGE) + nla_nested(IFLA_PROTINFO, *opts),
                f"set bridge port options of link #{index}",
            )

    def _vlan(self, msg_type: int, index: int, infos: list[tuple[int, int]], what: str) -> None:
        spec = b"".join(nla(IFLA_BRIDGE_VLAN_INFO, struct.pack("=HH", f, v)) for f, v in infos)
        self._do(
            msg_type, 0, _ifinfo(index, family=AF_BRIDGE) + nla_nested(IFLA_AF_SPEC, spec), what
        )

    def vlan_add(
        self, index: int, vid: int, *, pvid: bool = False, untagged: bool = False, vid_end: int = 0
    ) -> None:
        flags = (BRIDGE_VLAN_INFO_PVID if pvid else 0) | (
            BRIDGE_VLAN_INFO_UNTAGGED if untagged else 0
        )
        if vid_end and vid_end != vid:
            infos = [
                (flags | BRIDGE_VLAN_INFO_RANGE_BEGIN, vid),
                (flags | BRIDGE_VLAN_INFO_RANGE_END, vid_end),
            ]
        else:
            infos = [(flags, vid)]
        self._vlan(RTM_SETLINK, index, infos, f"add vlan {vid} on link #{index}")

    def vlan_del(self, index: int, vid: int) -> None:
        self._vlan(RTM_DELLINK, index, [(0, vid)], f"delete vlan {vid} on link #{index}")

    def port_vlans(self, index: int) -> list[tuple[int, int]]:
        """The (vid, BRIDGE_VLAN_INFO_* flags) of bridge port ``index``, one per VLAN."""
        msgs = self._request(
            RTM_GETLINK,
            NLM_F_DUMP,
            _ifinfo(family=AF_BRIDGE) + nla_u32(IFLA_EXT_MASK, RTEXT_FILTER_BRVLAN),
            f"list vlans of link #{index}",
        )
        out: list[tuple[int, int]] = []
        for body in msgs:
            if _IFINFO.unpack_from(body)[2] != index:
                continue
            spec = parse_attrs(body, _IFINFO.size).get(IFLA_AF_SPEC)
            offset = 0
            start = 0
            while spec and offset + _NLA.size <= len(spec):
                length, kind = _NLA.unpack_from(spec, offset)
                if length < _NLA.size:
                    break
                if kind & ~NLA_F_NESTED == IFLA_BRIDGE_VLAN_INFO and length >= _NLA.size + 4:
                    flags, vid = struct.unpack_from("=HH", spec, offset + _NLA.size)
                    if flags & BRIDGE_VLAN_INFO_RANGE_BEGIN:
                        start = vid
                    elif flags & BRIDGE_VLAN_INFO_RANGE_END:
                        out.extend(
                            (v, flags & ~BRIDGE_VLAN_INFO_RANGE_END) for v in range(start, vid + 1)
                        )
                    else:
                        out.append((vid, flags))
                offset += _align(length)
        return out

    def wait_oper_up(
        self, index: int, delays_ms: tuple[int, ...] = (0, 50, 500, 1000, 1000)
    ) -> str:
        """Wait until the link is oper-up; return the last state seen."""
        state = "UNKNOWN"
        for delay in delays_ms:
            if delay:
                time.sleep(delay / 1000)
            link = self.link_by_index(index)
            if link is None:
                return "gone"
            state = link.oper
            if state == "UP":
                return state
        return state

    # -- addresses ---------------------------------------------------------------------
    def addrs(self, index: int | None = None, family: int | None = None) -> list[Addr]:
        body = _IFADDR.pack(family or AF_UNSPEC, 0, 0, 0, 0)
        out = []
        for m in self._request(RTM_GETADDR, NLM_F_DUMP, body, "list addresses"):
            fam, plen, flags, scope, idx = _IFADDR.unpack_from(m)
            if index is not None and idx != index:
                continue
            if family is not None and fam != family:
                continue
            attrs = parse_attrs(m, _IFADDR.size)
            # IPv4: IFA_LOCAL is our own address (IFA_ADDRESS is the peer's on a
            # point-to-point link); IPv6 has only IFA_ADDRESS
            raw = attrs.get(IFA_LOCAL) if fam == AF_INET else None
            raw = raw or attrs.get(IFA_ADDRESS)
            if IFA_FLAGS in attrs:
                flags = _u32(attrs[IFA_FLAGS])
            out.append(
                Addr(
                    address=_ip(raw),
                    prefixlen=plen,
                    family=fam,
                    scope=scope,
                    flags=flags,
                    index=idx,
                )
            )
        return out

    def _addr(self, msg_type: int, flags: int, index: int, cidr: str, what: str) -> None:
        iface = ipaddress.ip_interface(cidr)
        fam = AF_INET6 if iface.version == 6 else AF_INET
        packed = iface.ip.packed
        body = _IFADDR.pack(fam, iface.network.prefixlen, 0, 0, index)
        body += nla(IFA_LOCAL, packed) + nla(IFA_ADDRESS, packed)
        if fam == AF_INET and msg_type == RTM_NEWADDR and iface.network.prefixlen < 31:
            body += nla(IFA_BROADCAST, iface.network.broadcast_address.packed)
        self._do(msg_type, flags, body, what)

    def add_addr(self, index: int, cidr: str) -> None:
        self._addr(
            RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_EXCL,
            index,
            cidr,
            f"add address {cidr} to link #{index}",
        )

    def del_addr(self, index: int, cidr: str) -> None:
        self._addr(RTM_DELADDR, 0, index, cidr, f"delete address {cidr} from link #{index}")

    def wait_dad(self, index: int, timeout: float = 5.0) -> None:
        """Wait until no IPv6 address on the link is still tentative."""
        deadline = time.monotonic() + timeout
        while True:
            tentative = [
                a
                for a in self.addrs(index, AF_INET6)
                if a.flags & IFA_F_TENTATIVE and not a.flags & IFA_F_DADFAILED
            ]
            if not tentative:
                return
            if time.monotonic() > deadline:
                raise NetlinkError(
                    errno.ETIMEDOUT,
                    f"IPv6 DAD did not finish for {tentative[0].cidr} within {timeout:g}s",
                )
            time.sleep(0.05)

    # -- routes ------------------------------------------------------------------------
    def routes(
        self, family: int = AF_INET, oif: int | None = None, table: int = RT_TABLE_MAIN
    ) -> list[Route]:
        body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
        out = []
        for m in self._request(RTM_GETROUTE, NLM_F_DUMP, body, "list routes"):
            fam, dlen, _slen, _tos, rtable, _proto, scope, rtype, _fl = _RTMSG.unpack_from(m)
            attrs = parse_attrs(m, _RTMSG.size)
            tbl = _u32(attrs.get(RTA_TABLE)) if RTA_TABLE in attrs else rtable
            if tbl != table or rtype != RTN_UNICAST or fam != family:
                continue
            dst = _ip(attrs.get(RTA_DST)) or ("0.0.0.0" if family == AF_INET else "::")
            net = str(ipaddress.ip_network(f"{dst}/{dlen}", strict=False))
            # a route with several paths lists each (oif, gateway) in RTA_MULTIPATH: one
            # Route per path, so a lookup by oif or gateway finds every one of them
            for path_oif, gateway in _paths(attrs):
                if oif is not None and path_oif != oif:
                    continue
                out.append(
                    Route(
                        dst=net,
                        gateway=gateway,
                        oif=path_oif,
                        scope=scope,
                        table=tbl,
                        priority=_u32(attrs.get(RTA_PRIORITY)),
                        src=_ip(attrs.get(RTA_PREFSRC)),
                        family=family,
                    )
                )
        return out

    def _route_msg(
        self,
        dst: str,
        *,
        oif: int | None,
        gateway: str,
        scope: int,
        src: str,
        priority: int,
        table: int,
        mtu: int,
        advmss: int,
        proto: int,
        rtype: int,
    ) -> bytes:
        net = ipaddress.ip_network(dst, strict=False)
        fam = AF_INET6 if net.version == 6 else AF_INET
        tbl = table or RT_TABLE_MAIN
        body = _RTMSG.pack(
            fam, net.prefixlen, 0, 0, tbl if tbl < 256 else 0, proto, scope, rtype, 0
        )
        attrs = [nla_u32(RTA_TABLE, tbl)]
        if net.prefixlen:
            attrs.append(nla(RTA_DST, net.network_address.packed))
        if oif is not None:
            attrs.append(nla_u32(RTA_OIF, oif))
        if gateway:
            attrs.append(nla(RTA_GATEWAY, ipaddress.ip_address(gateway).packed))
        if src:
            attrs.append(nla(RTA_PREFSRC, ipaddress.ip_address(src).packed))
        if priority:
            attrs.append(nla_u32(RTA_PRIORITY, priority))
        metrics = []
        if mtu:
            metrics.append(nla_u32(RTAX_MTU, mtu))
        if advmss:
            metrics.append(nla_u32(RTAX_ADVMSS, advmss))
        if metrics:
            attrs.append(nla(RTA_METRICS, b"".join(metrics)))
        return body + b"".join(attrs)

    def add_route(
        self,
        dst: str,
        *,
        oif: int,
        gateway: str = "",
        scope: int | None = None,
        src: str = "",
        priority: int = 0,
        table: int = 0,
        mtu: int = 0,
        advmss: int = 0,
    ) -> None:
        """Add a route; if one with that destination exists, add this as another path."""
        if scope is None:
            scope = RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK
        body = self._route_msg(
            dst,
            oif=oif,
            gateway=gateway,
            scope=scope,
            src=src,
            priority=priority,
            table=table,
            mtu=mtu,
            advmss=advmss,
            proto=RTPROT_BOOT,
            rtype=RTN_UNICAST,
        )
        what = f"add route {dst}" + (f" via {gateway}" if gateway else "") + f" dev #{oif}"
        try:
            self._do(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, what)
        except NetlinkError as exc:
            if exc.errno != errno.EEXIST:
                raise
            try:  # an equal-cost path next to the existing one
                self._do(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_APPEND, body, what)
            except NetlinkError as exc2:
                if exc2.errno != errno.EEXIST:
                    raise

    def del_route(
        self,
        dst: str,
        *,
        oif: int | None = None,
        gateway: str = "",
        table: int = 0,
        scope: int | None = None,
    ) -> None:
        # RT_SCOPE_NOWHERE and protocol 0 match any route with this destination
        body = self._route_msg(
            dst,
            oif=oif,
            gateway=gateway,
            scope=RT_SCOPE_NOWHERE if scope is None else scope,
            src="",
            priority=0,
            table=table,
            mtu=0,
            advmss=0,
            proto=0,
            rtype=0,
        )
        self._do(RTM_DELROUTE, 0, body, f"delete route {dst}")
