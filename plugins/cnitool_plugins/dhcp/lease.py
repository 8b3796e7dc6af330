"""One lease of the daemon: acquire, re-check, renew, rebind, expire and release.

A lease belongs to a client ID (``<containerID>/<network>/<ifname>``) and lives in the
pod's interface. After the first ACK a maintenance thread keeps it: at T1 it renews with
the server that granted it (unicast), from T2 it rebinds with any server (broadcast), and
when the lease runs out it sets the interface down and stops, as the reference does.
Maintenance also stops, quietly, when the pod's netns or interface has gone (a pod
deleted without DEL); the lease is kept until it would have expired, so that the DEL
that follows still sends DHCPRELEASE, from the node.

An ADD or CHECK of a lease the daemon holds re-checks it with the server (a renewing
DHCPREQUEST, one try): an ACK refreshes it, a NAK makes the daemon acquire it anew, and
silence keeps the lease while it is unexpired. A lease the daemon does not hold (a
daemon restarted without its lease files, see ``state.py``) is acquired, asking for the
address the interface already has.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import random
import socket
import threading
import time
from typing import Any

from cnitool.spec.errors import CNIError

from . import packet
from .client import Channel, LinkGone, NoAnswer, Stopped, Timing, addr_ok, exchange
from .config import DhcpConf
from .state import Store, decode_bytes, encode_bytes

LOG = logging.getLogger("dhcp")
DEFAULT_LEASE_TIME = 3600.0

BOUND, RENEWING, REBINDING, EXPIRED, GONE, RELEASED = (
    "bound",
    "renewing",
    "rebinding",
    "expired",
    "gone",
    "released",
)


class LeaseError(CNIError):
    """An exchange that failed for the caller (ADD/CHECK), with a message saying why."""


class Lease:
    """A lease and the thread that maintains it (see the module docstring)."""

    def __init__(
        self, client_id: str, netns: str, ifname: str, conf: DhcpConf, timing: Timing
    ) -> None:
        self.client_id = client_id
        self.netns = netns
        self.ifname = ifname
        self.conf = conf
        self.timing = timing
        self.state = ""
        self.ack: packet.Message | None = None
        self.server_id = ""
        self.server_mac = packet.BROADCAST_MAC
        self.renew_at = self.rebind_at = self.expire_at = 0.0
        self.renewals = 0  # successful renewals and rebinds (for status and tests)
        self.lock = threading.Lock()  # one exchange at a time
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.store: Store | None = None  # where the daemon keeps its leases on disk

    # -- messages ----------------------------------------------------------------------
    def _options(self, *extra: tuple[int, bytes]) -> list[tuple[int, bytes]]:
        provided = dict(self.conf.provide)
        cid = provided.pop(packet.OPT_CLIENT_ID, b"\0" + self.client_id.encode())
        opts = [(packet.OPT_CLIENT_ID, cid), *extra]
        if self.conf.request:
            opts.append((packet.OPT_PARAMETER_LIST, bytes(self.conf.request)))
        opts.extend(provided.items())
        return opts

    def _build(
        self,
        ch: Channel,
        msg_type: int,
        opts: list[tuple[int, bytes]],
        *,
        ciaddr: str = "0.0.0.0",
        unicast: bool = False,
    ) -> Any:
        def build(xid: int, secs: int) -> bytes:
            payload = packet.encode(
                msg_type,
                xid,
                ch.mac,
                opts,
                ciaddr=ciaddr,
                broadcast=self.timing.broadcast and ciaddr == "0.0.0.0",
                secs=secs,
            )
            if unicast:
                return packet.frame(payload, ch.mac, self.server_mac, ciaddr, self.server_id)
            return packet.frame(payload, ch.mac, packet.BROADCAST_MAC, ciaddr, "255.255.255.255")

        return build

    def _from_server(self, server_id: str) -> Any:
        def accept(msg: packet.Message, _mac: bytes) -> bool:
            return msg.type in (packet.ACK, packet.NAK) and msg.ip_option(packet.OPT_SERVER_ID) in (
                server_id,
                None,
            )

        return accept

    # -- exchanges (the caller holds self.lock) ----------------------------------------
    def _acquire(self, ch: Channel, deadline: float, hint: str | None) -> None:
        """DISCOVER, OFFER, REQUEST, ACK; a NAK or silence after the OFFER starts over."""
        ch.ensure_up()
        while True:
            extra = [(packet.OPT_REQUESTED_IP, ipaddress.IPv4Address(hint).packed)] if hint else []
            offer, _ = exchange(
                ch,
                self._build(ch, packet.DISCOVER, self._options(*extra)),
                lambda m, _mac: (
                    m.type == packet.OFFER
                    and addr_ok(m.yiaddr)
                    and addr_ok(m.ip_option(packet.OPT_SERVER_ID))
                ),
                self.timing,
                deadline,
                self.stop,
            )
            server = offer.ip_option(packet.OPT_SERVER_ID) or ""
            opts = self._options(
                (packet.OPT_REQUESTED_IP, ipaddress.IPv4Address(offer.yiaddr).packed),
                (packet.OPT_SERVER_ID, ipaddress.IPv4Address(server).packed),
            )
            try:
                answer, mac = exchange(
                    ch,
                    self._build(ch, packet.REQUEST, opts),
                    self._from_server(server),
                    self.timing,
                    min(deadline, time.monotonic() + 4 * self.timing.timeout),
                    self.stop,
                )
            except NoAnswer:
                LOG.info(
                    "%s: no DHCPACK for the offer of %s; starting over", self.client_id, server
                )
                continue
            if answer.type == packet.NAK:
                LOG.info("%s: %s refused its own offer (DHCPNAK)", self.client_id, server)
                hint = None
                continue
            self._commit(answer, mac)
            return

    def _request_again(self, ch: Channel, deadline: float, *, unicast: bool, once: bool) -> bool:
        """A DHCPREQUEST for the address held (renew: unicast to its server; rebind:
        broadcast); True on ACK, False on NAK, NoAnswer on silence."""
        assert self.ack is not None
        ip = self.ack.yiaddr
        answer, mac = exchange(
            ch,
            self._build(ch, packet.REQUEST, self._options(), ciaddr=ip, unicast=unicast),
            self._from_server(self.server_id) if unicast else self._any_server(),
            self.timing,
            deadline,
            self.stop,
            once=once,
        )
        if answer.type == packet.NAK:
            return False
        self._commit(answer, mac)
        return True

    @staticmethod
    def _any_server() -> Any:
        return lambda m, _mac: m.type in (packet.ACK, packet.NAK)

    def _release_options(self) -> list[tuple[int, bytes]]:
        return [
            (packet.OPT_CLIENT_ID, dict(self._options())[packet.OPT_CLIENT_ID]),
            (packet.OPT_SERVER_ID, ipaddress.IPv4Address(self.server_id).packed),
        ]

    def _release(self, ch: Channel) -> None:
        assert self.ack is not None
        opts = self._release_options()
        build = self._build(ch, packet.RELEASE, opts, ciaddr=self.ack.yiaddr, unicast=True)
        ch.send(build(random.getrandbits(32), 0))

    def _release_from_node(self) -> None:
        """DHCPRELEASE as a UDP datagram from the daemon's own netns, for when the pod's
        interface is already gone: the reference bridge and ours delete the interface
        before they call IPAM DEL. A release is a unicast to the server (RFC 2131 4.4.6)
        that names the lease by client ID and address, so any route to the server
        carries it; without one it is lost and the lease ends at its expiry."""
        assert self.ack is not None
        payload = packet.encode(
            packet.RELEASE,
            random.getrandbits(32),
            self.ack.chaddr[:6],
            self._release_options(),
            ciaddr=self.ack.yiaddr,
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with contextlib.suppress(OSError):  # port 68 taken: any port does
                sock.bind(("0.0.0.0", packet.CLIENT_PORT))
            sock.sendto(payload, (self.server_id, packet.SERVER_PORT))

    def _commit(self, ack: packet.Message, server_mac: bytes) -> None:
        lease_time = float(ack.u32_option(packet.OPT_LEASE_TIME) or DEFAULT_LEASE_TIME)
        t2 = ack.u32_option(packet.OPT_REBINDING_TIME)
        rebind = float(t2) if t2 is not None and t2 <= lease_time else lease_time * 0.85
        t1 = ack.u32_option(packet.OPT_RENEWAL_TIME)
        renew = float(t1) if t1 is not None and t1 <= rebind else lease_time / 2
        now = time.monotonic()
        self.ack = ack
        self.server_id = ack.ip_option(packet.OPT_SERVER_ID) or self.server_id
        self.server_mac = server_mac
        self.renew_at, self.rebind_at, self.expire_at = now + renew, now + rebind, now + lease_time
        self.state = BOUND
        self.wake.set()
        if self.store is not None:
            self.store.save(self.client_id, self.to_record())

    def forget(self) -> None:
        """Remove the lease's file (released, expired, or dropped by the daemon)."""
        if self.store is not None:
            self.store.delete(self.client_id)

    # -- on disk (state.py) ------------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        assert self.ack is not None
        wall = time.time() - time.monotonic()  # monotonic -> wall clock
        return {
            "clientID": self.client_id,
            "netns": self.netns,
            "ifName": self.ifname,
            "network": self.conf.name,
            "request": list(self.conf.request),
            "provide": [[code, encode_bytes(value)] for code, value in self.conf.provide],
            "priority": self.conf.priority,
            "ack": encode_bytes(self.ack.raw),
            "serverMAC": self.server_mac.hex(),
            "renewAt": self.renew_at + wall,
            "rebindAt": self.rebind_at + wall,
            "expireAt": self.expire_at + wall,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], timing: Timing) -> Lease:
        """A lease from its file; ValueError (or KeyError, TypeError) when malformed."""
        conf = DhcpConf(
            name=str(record["network"]),
            socket_path="",
            request=tuple(int(code) for code in record["request"]),
            provide=tuple((int(code), decode_bytes(value)) for code, value in record["provide"]),
            priority=int(record["priority"]),
        )
        lease = cls(
            str(record["clientID"]), str(record["netns"]), str(record["ifName"]), conf, timing
        )
        lease.ack = packet.decode(decode_bytes(record["ack"]))
        lease.server_id = lease.ack.ip_option(packet.OPT_SERVER_ID) or ""
        lease.server_mac = bytes.fromhex(str(record["serverMAC"]))
        mono = time.monotonic() - time.time()  # wall clock -> monotonic
        lease.renew_at = float(record["renewAt"]) + mono
        lease.rebind_at = float(record["rebindAt"]) + mono
        lease.expire_at = float(record["expireAt"]) + mono
        lease.state = BOUND
        return lease

    def resume(self) -> None:
        """Maintain a lease read back from disk (a restarted daemon)."""
        LOG.info("%s: lease taken up again: %s", self.client_id, self.describe())
        self.thread = threading.Thread(
            target=self._maintain, name=f"lease {self.client_id}", daemon=True
        )
        self.thread.start()

    # -- what the daemon calls ------------------------------------------------------------
    def acquire(self) -> None:
        """Acquire the lease (ADD of an unknown client ID) and start maintaining it."""
        deadline = time.monotonic() + self.timing.resend_timeout
        with self.lock:
            try:
                with Channel(self.netns, self.ifname) as ch:
                    hint = ch.ipv4_address()
                    LOG.info("%s: acquiring lease", self.client_id)
                    self._acquire(ch, deadline, hint)
            except NoAnswer:
                raise LeaseError(
                    f"no DHCP answer on {self.ifname} within {self.timing.resend_timeout:g}s "
                    f"(client ID {self.client_id})"
                ) from None
            except LinkGone as exc:
                raise LeaseError(f"error looking up {self.ifname!r}: {exc}") from None
            except Stopped:
                raise LeaseError(f"{self.client_id}: released while being acquired") from None
        LOG.info("%s: lease acquired: %s", self.client_id, self.describe())
        self.thread = threading.Thread(
            target=self._maintain, name=f"lease {self.client_id}", daemon=True
        )
        self.thread.start()

    def recheck(self) -> None:
        """ADD or CHECK of a lease the daemon holds (see the module docstring). While a
        renewal or rebinding is under way (it may last until T2 or expiry when the server
        is away), an unexpired lease is taken as it is rather than waited for."""
        if not self.lock.acquire(timeout=self.timing.timeout):
            if self.alive and time.monotonic() < self.expire_at:
                LOG.info("%s: lease being renewed; unexpired, taken as it is", self.client_id)
                return
            raise LeaseError(f"{self.client_id}: the lease is busy and expired; try again")
        try:
            if self._check_with_server():
                return
        finally:
            self.lock.release()
        # expired, refused, or maintenance stopped: acquire anew
        self.abort()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join()
        self.stop.clear()
        self.acquire()

    def _check_with_server(self) -> bool:
        """True when the lease holds (an ACK, or silence while it is unexpired)."""
        if not self.alive or self.ack is None:
            return False
        try:
            with Channel(self.netns, self.ifname) as ch:
                deadline = time.monotonic() + self.timing.timeout
                unicast = self.state != REBINDING
                try:
                    if self._request_again(ch, deadline, unicast=unicast, once=True):
                        LOG.info("%s: lease checked: %s", self.client_id, self.describe())
                        return True
                    LOG.info("%s: lease refused on check (DHCPNAK)", self.client_id)
                    return False
                except NoAnswer:
                    if time.monotonic() < self.expire_at:
                        LOG.info("%s: no answer on check; lease unexpired", self.client_id)
                        return True
                    return False
        except LinkGone as exc:
            raise LeaseError(f"error looking up {self.ifname!r}: {exc}") from None
        except Stopped:
            raise LeaseError(f"{self.client_id}: released while being checked") from None

    def abort(self) -> None:
        """Stop maintenance and any exchange under way (DEL, shutdown)."""
        self.stop.set()
        self.wake.set()

    def release(self) -> None:
        """Stop maintenance and send DHCPRELEASE (DEL)."""
        self.abort()
        with self.lock:
            # a lease whose pod went away under maintenance is still released: its
            # interface may have gone a moment before this DEL (the plugin removed it)
            holds = self.alive or (self.state == GONE and time.monotonic() < self.expire_at)
            if holds and self.ack is not None:
                try:
                    try:
                        with Channel(self.netns, self.ifname) as ch:
                            self._release(ch)
                        how = f"on {self.ifname}"
                    except LinkGone:
                        self._release_from_node()
                        how = "from the node (the pod's interface is gone)"
                    LOG.info("%s: lease released (%s) %s", self.client_id, self.ack.yiaddr, how)
                except OSError as exc:
                    LOG.info("%s: no DHCPRELEASE sent: %s", self.client_id, exc)
            self.state = RELEASED
            self.forget()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join()

    def shutdown(self) -> None:
        """Stop maintenance without releasing (the daemon is stopping)."""
        self.abort()

    @property
    def alive(self) -> bool:
        return self.state in (BOUND, RENEWING, REBINDING)

    def describe(self) -> str:
        if self.ack is None:
            return "no lease"
        left = self.expire_at - time.monotonic()
        return f"{self.ack.yiaddr} from {self.server_id}, expires in {left:.0f}s"

    # -- maintenance ----------------------------------------------------------------------
    def _maintain(self) -> None:
        try:
            self._maintain_loop()
        except (LinkGone, Stopped) as exc:
            if not self.stop.is_set():
                LOG.info("%s: maintenance stops: %s", self.client_id, exc)
                self.state = GONE
        except Exception:  # a maintenance thread must never take the daemon down
            LOG.exception("%s: maintenance failed", self.client_id)
            self.state = GONE

    def _maintain_loop(self) -> None:
        while not self.stop.is_set():
            now = time.monotonic()
            due = {BOUND: self.renew_at, RENEWING: now, REBINDING: now}.get(self.state)
            if due is None:
                return
            if due > now:
                self.wake.clear()
                self.wake.wait(due - now)
                continue
            with self.lock:
                if self.stop.is_set() or not self.alive:
                    return
                self._step()

    def _step(self) -> None:
        """One maintenance step at or after T1 (the caller holds the lock)."""
        now = time.monotonic()
        with Channel(self.netns, self.ifname) as ch:
            if now >= self.expire_at:
                LOG.info("%s: lease expired, bringing interface down", self.client_id)
                self.state = EXPIRED
                self.forget()
                try:
                    ch.set_down()
                except OSError as exc:
                    LOG.info("%s: could not set %s down: %s", self.client_id, self.ifname, exc)
                return
            rebinding = now >= self.rebind_at
            self.state = REBINDING if rebinding else RENEWING
            LOG.info("%s: %s lease", self.client_id, "rebinding" if rebinding else "renewing")
            end = self.expire_at if rebinding else self.rebind_at
            try:
                ok = self._request_again(ch, end, unicast=not rebinding, once=False)
            except NoAnswer:
                return  # the loop comes back in the next state (rebinding, then expiry)
            if not ok:
                LOG.info("%s: lease refused (DHCPNAK), acquiring again", self.client_id)
                held = self.ack.yiaddr if self.ack else None
                try:
                    self._acquire(ch, self.expire_at, held)
                except NoAnswer:
                    self.expire_at = time.monotonic()  # refused: it is over
                    return
            self.renewals += 1
            LOG.info("%s: lease renewed: %s", self.client_id, self.describe())

    # -- the result ------------------------------------------------------------------------
    def result(self) -> dict[str, Any]:
        """The CNI 1.1.0 result of the lease: one address with the router as gateway, and
        routes from option 121, else option 33 plus a default route via the router."""
        ack = self.ack
        assert ack is not None
        mask = ack.options.get(packet.OPT_SUBNET_MASK)
        if mask is None:
            raise LeaseError("DHCP option Subnet Mask not found in DHCPACK")
        try:
            prefix = packet.prefix_length(mask)
        except ValueError as exc:
            raise LeaseError(f"DHCPACK: {exc}") from None
        ip: dict[str, Any] = {"address": f"{ack.yiaddr}/{prefix}"}
        routers = ack.options.get(packet.OPT_ROUTER, b"")
        gateway = ipaddress.IPv4Address(routers[:4]) if len(routers) >= 4 else None
        if gateway is not None:
            ip["gateway"] = str(gateway)
        routes: list[dict[str, Any]] = []
        try:
            classless = packet.classless_routes(ack.options.get(packet.OPT_CLASSLESS_ROUTES, b""))
        except ValueError as exc:
            raise LeaseError(f"DHCPACK option 121: {exc}") from None
        if classless:
            for dst, gw in classless:
                route: dict[str, Any] = {"dst": dst}
                if addr_ok(gw):
                    route["gw"] = gw
                else:
                    route["scope"] = 253  # on-link (RT_SCOPE_LINK)
                routes.append(route)
        else:
            for dst, gw in packet.static_routes(ack.options.get(packet.OPT_STATIC_ROUTES, b"")):
                routes.append({"dst": dst, "gw": gw})
            if gateway is not None:
                routes.append({"dst": "0.0.0.0/0", "gw": str(gateway)})
        if self.conf.priority:
            for route in routes:
                route["priority"] = self.conf.priority
        return {"cniVersion": "1.1.0", "ips": [ip], "routes": routes}
