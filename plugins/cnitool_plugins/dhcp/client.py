"""The DHCP exchanges of one lease, run inside the pod's netns on the pod's interface.

Why not pyroute2's client: ``pyroute2.dhcp.client.AsyncDHCPClient`` (0.9.7) is one
client per interface in its own asyncio loop that owns the interface: it configures
addresses through hooks, writes its own lease files and pidfile, installs process-wide
signal handlers, and its socket looks the interface up with an ``AsyncIPRoute`` of the
calling thread's netns. A daemon serving many pods, each in another netns, needs the
exchanges as plain calls it can run from any thread, for an interface it must not
configure, with the reference's client ID, DHCPRELEASE on demand and its retry timing.
So the exchanges are written here; pyroute2 provides the BPF program that keeps the
packet socket to DHCP client traffic (``listen_udp_port``, ``bpf.compile``).

Sockets: a :class:`Channel` opens an ``AF_PACKET`` socket bound to the interface and a
netlink socket, both created by a worker thread switched into the pod's netns (a socket
stays in the netns it was made in), and closed after the exchange. The daemon therefore
holds nothing that keeps a pod's netns alive between exchanges: when the pod's netns is
deleted, the next exchange finds it gone and the lease's maintenance stops.

Timing (the reference's): after each send the answer is awaited ``timeout`` seconds; then
the message is sent again after a back-off of 2 s (± 1 s) four times, then 4 s doubling
up to ``resend_max`` (± 1 s); the whole exchange gives up at its deadline.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import random
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .._lib import netns
from .._lib.netlink import AF_INET, Link, Netlink, NetlinkError
from . import packet

LOG = logging.getLogger("dhcp")
SO_ATTACH_FILTER = 26
FAST_DELAY, FAST_TRIES, FIRST_DELAY, JITTER = 2.0, 4, 4.0, 1.0
POLL_SLICE = 0.25  # how often a wait looks at the stop flag
_LINK_GONE = (errno.ENODEV, errno.ENXIO)


class LinkGone(Exception):
    """The pod's netns or its interface is no longer there."""


class NoAnswer(Exception):
    """No server answered before the deadline."""


class Stopped(Exception):
    """The exchange was abandoned because the lease is being released or shut down."""


_FILTER: list[Any] = []  # (sock_fprog bytes, the program it points into), made once


def preload() -> None:
    """Import pyroute2 and build the packet filter now (the daemon calls it at start), so
    the first ADD does not pay for the import."""
    if not _FILTER:
        from pyroute2.dhcp.dhcp4socket import listen_udp_port  # type: ignore[import-untyped]
        from pyroute2.ext import bpf  # type: ignore[import-untyped]

        # the fprog bytes point into the program: both are kept for the daemon's life
        _FILTER.extend(bpf.compile(listen_udp_port(packet.CLIENT_PORT)))


def _attach_filter(sock: socket.socket) -> None:
    preload()
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, _FILTER[0])


class Channel:
    """A packet socket and a netlink socket in the pod's netns, for one exchange."""

    def __init__(self, netns_path: str, ifname: str) -> None:
        try:
            fd = netns.open_netns(netns_path)
        except netns.NetNSNotFoundError:
            raise LinkGone(f"netns {netns_path} is gone") from None
        try:
            self.nl, self.sock, self.link = netns.run_in_netns(fd, self._open, ifname)
        finally:
            os.close(fd)
        self.ifname = ifname
        self.mac = bytes.fromhex(self.link.mac.replace(":", ""))

    @staticmethod
    def _open(ifname: str) -> tuple[Netlink, socket.socket, Link]:
        nl = Netlink()
        try:
            link = nl.link(ifname)
            if link is None:
                raise LinkGone(f"interface {ifname} is gone")
            sock = socket.socket(
                socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.htons(0x0800)
            )
        except BaseException:
            nl.close()
            raise
        try:
            _attach_filter(sock)
            sock.bind((ifname, 0x0800))
            sock.setblocking(False)
            while True:  # what arrived before the filter was in place
                try:
                    sock.recv(65536)
                except (BlockingIOError, OSError):
                    break
        except BaseException:
            sock.close()
            nl.close()
            raise
        return nl, sock, link

    def close(self) -> None:
        self.nl.close()
        # closing a packet socket waits for an RCU grace period (~10 ms): not on the
        # caller's time
        threading.Thread(target=self.sock.close, name="close packet socket", daemon=True).start()

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ensure_up(self) -> None:
        """Set the interface up when it is down (a bridge plugin may call its IPAM before
        it sets the container side up) and give the link a moment to come up: frames sent
        before a bridge port forwards are lost."""
        if not self.link.up:
            self.nl.set_up(self.link.index)
        self.nl.wait_oper_up(self.link.index, (0, 20, 50, 100, 200, 400, 800, 1000))

    def set_down(self) -> None:
        self.nl.set_down(self.link.index)

    def ipv4_address(self) -> str | None:
        """The first IPv4 address on the interface (a hint for a lease the daemon lost)."""
        try:
            addrs = self.nl.addrs(self.link.index, AF_INET)
        except NetlinkError:
            return None
        return addrs[0].address if addrs else None

    def send(self, data: bytes) -> None:
        """Send a frame; a link that is down loses it (the exchange sends again)."""
        try:
            self.sock.send(data)
        except OSError as exc:
            if exc.errno in _LINK_GONE:
                raise LinkGone(f"interface {self.ifname}: {exc.strerror}") from None
            LOG.info("%s: send failed: %s", self.ifname, exc.strerror or exc)

    def receive(self, until: float, stop: threading.Event) -> Iterator[tuple[bytes, bytes]]:
        """(source MAC, DHCP payload) of each client-bound datagram until ``until``."""
        while True:
            if stop.is_set():
                raise Stopped()
            left = until - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select([self.sock], [], [], min(left, POLL_SLICE))
            if not ready:
                continue
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno in _LINK_GONE:
                    raise LinkGone(f"interface {self.ifname}: {exc.strerror}") from None
                continue  # ENETDOWN (the link went down, maybe for a moment) and the like
            found = packet.unframe(data)
            if found is not None:
                yield found


class Timing:
    """The daemon's client settings (``-timeout``, ``-resendmax``, ``-resendtimeout``,
    ``-broadcast``)."""

    def __init__(
        self, timeout: float, resend_max: float, resend_timeout: float, broadcast: bool
    ) -> None:
        self.timeout = timeout
        self.resend_max = resend_max
        self.resend_timeout = resend_timeout
        self.broadcast = broadcast

    def delays(self) -> Iterator[float]:
        for _ in range(FAST_TRIES):
            yield max(0.0, FAST_DELAY + random.uniform(-JITTER, JITTER))
        delay = FIRST_DELAY
        while True:
            yield max(0.0, delay + random.uniform(-JITTER, JITTER))
            if delay < self.resend_max:
                delay = min(delay * 2, self.resend_max)


Accept = Callable[[packet.Message, bytes], bool]


def exchange(
    ch: Channel,
    build: Callable[[int, int], bytes],
    accept: Accept,
    timing: Timing,
    deadline: float,
    stop: threading.Event,
    *,
    once: bool = False,
) -> tuple[packet.Message, bytes]:
    """Send ``build(xid, secs)`` and resend it until an answer passes ``accept``; returns
    (answer, the server's MAC). ``once``: a single send, awaited ``timeout`` seconds."""
    xid = random.getrandbits(32)
    started = time.monotonic()
    delays = timing.delays()
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise NoAnswer()
        ch.send(build(xid, int(now - started)))
        LOG.debug("sent xid %08x on %s", xid, ch.ifname)
        until = min(deadline, now + timing.timeout)
        if not once:
            until = min(deadline, until + next(delays))
        for src_mac, payload in ch.receive(until, stop):
            try:
                msg = packet.decode(payload)
            except ValueError:
                continue
            if msg.op != packet.BOOTREPLY or msg.xid != xid or msg.chaddr[:6] != ch.mac:
                continue
            if accept(msg, src_mac):
                return msg, src_mac
        if once:
            raise NoAnswer()


def addr_ok(value: str | None) -> bool:
    return value is not None and ipaddress.IPv4Address(value) != ipaddress.IPv4Address(0)
