"""Address allocation from one range set: requested addresses and the round-robin walk.

The walk starts after ``last_reserved_ip.N`` (or at the first range's start when that file
is missing or names an address outside the set), goes through the ranges in order,
wraps around, skips each range's gateway and gives up when it is back where it started.
"""

from __future__ import annotations

from collections.abc import Iterator

from cnitool.spec.errors import CNIError

from .config import IP, Range, RangeSet, ip_str, parse_ip
from .store import Store


class Allocation:
    __slots__ = ("ip", "range")

    def __init__(self, ip: IP, range_: Range) -> None:
        self.ip = ip
        self.range = range_

    def to_result(self) -> dict[str, str]:
        out = {"address": f"{ip_str(self.ip)}/{self.range.subnet.prefix}"}
        if self.range.gateway is not None:
            out["gateway"] = ip_str(self.range.gateway)
        return out


def walk(rangeset: RangeSet, last_reserved: IP | None) -> Iterator[tuple[IP, Range]]:
    """Candidate addresses in round-robin order (each address of the set at most once)."""
    ranges = rangeset.ranges
    idx = 0
    cur: IP | None = None
    if last_reserved is not None:
        for i, r in enumerate(ranges):
            if r.contains(last_reserved):
                idx, cur = i, last_reserved
                break
    start: IP | None = None
    while True:
        r = ranges[idx]
        if cur is None:
            cur = r.range_start
        elif cur == r.range_end:
            idx = (idx + 1) % len(ranges)
            r = ranges[idx]
            cur = r.range_start
        else:
            cur = (cur[0], cur[1] + 1)
        if start is None:
            start = cur
        elif cur == start:
            return
        if cur == r.gateway:
            continue
        yield cur, r


class Allocator:
    def __init__(self, rangeset: RangeSet, store: Store, range_id: int) -> None:
        self.rangeset = rangeset
        self.store = store
        self.range_id = range_id

    def get(
        self,
        container_id: str,
        ifname: str,
        requested: IP | None,
        owned: list[str],
    ) -> Allocation:
        """Reserve one address of the set. ``owned``: the attachment's existing leases.

        The caller holds the store lock.
        """
        if requested is not None:
            r = self.rangeset.range_for(requested)
            if r is None:
                raise CNIError(f"{ip_str(requested)} not in range set {self.rangeset}")
            if requested == r.gateway:
                raise CNIError(f"requested ip {ip_str(requested)} is subnet's gateway")
            if not self.store.reserve(container_id, ifname, ip_str(requested), self.range_id):
                raise CNIError(
                    f"requested IP address {ip_str(requested)} is not available in "
                    f"range set {self.rangeset}"
                )
            return Allocation(requested, r)

        for text in owned:
            ip = parse_ip(text)
            if ip is not None and self.rangeset.contains(ip):
                raise CNIError(
                    f"{ip_str(ip)} has been allocated to {container_id}, "
                    "duplicate allocation is not allowed"
                )
        last_text = self.store.last_reserved_ip(self.range_id)
        last = parse_ip(last_text) if last_text else None
        for ip, r in walk(self.rangeset, last):
            if self.store.reserve(container_id, ifname, ip_str(ip), self.range_id):
                return Allocation(ip, r)
        raise CNIError(f"no IP addresses available in range set: {self.rangeset}")
