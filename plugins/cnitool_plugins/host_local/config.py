"""host-local configuration: range sets, requested IPs and their validation.

Addresses are kept as ``(family, int)`` pairs (``family`` 4 or 6) so that range walks are
plain integer arithmetic; text is produced the way Go's ``net.IP.String()`` prints it, since
lease file names and ``last_reserved_ip.N`` contents must match the Go plugin's.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from cnitool.spec import args as cni_args
from cnitool.spec.errors import CNIError
from cnitool.spec.version import gte

from .._lib.netconf import typed

DEFAULT_DATA_DIR = "/var/lib/cni/networks"

IP = tuple[int, int]  # (family, integer value)


class ConfigError(CNIError):
    """A bad IPAM configuration.

    The reference host-local reports these as plain errors (code 999), not as code 7, and
    so does this one: a runtime sees the same code from either implementation.
    """


_BITS = {4: 32, 6: 128}


def parse_ip(text: str) -> IP | None:
    """An address as ``(family, int)``; IPv4-mapped IPv6 counts as IPv4 (like Go's To4)."""
    if not isinstance(text, str):
        return None
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped
        if mapped is not None:
            return (4, int(mapped))
        if addr.scope_id:
            return None
        return (6, int(addr))
    return (4, int(addr))


def parse_ip_maybe_cidr(text: str) -> IP | None:
    """``ip`` or ``ip/prefix`` (the prefix is accepted and ignored)."""
    if not isinstance(text, str):
        return None
    head, sep, tail = text.strip().partition("/")
    if sep and not (tail.isdigit() and int(tail) <= 128):
        return None
    return parse_ip(head)


def ip_str(ip: IP) -> str:
    """Go's ``net.IP.String()`` text for an address."""
    fam, value = ip
    if fam == 4:
        return str(ipaddress.IPv4Address(value))
    return str(ipaddress.IPv6Address(value))


class Subnet:
    __slots__ = ("family", "network", "prefix")

    def __init__(self, family: int, network: int, prefix: int) -> None:
        self.family = family
        self.network = network
        self.prefix = prefix

    @property
    def bits(self) -> int:
        return _BITS[self.family]

    @property
    def mask(self) -> int:
        return ((1 << self.prefix) - 1) << (self.bits - self.prefix)

    def contains(self, ip: IP) -> bool:
        return ip[0] == self.family and (ip[1] & self.mask) == self.network

    def __str__(self) -> str:
        return f"{ip_str((self.family, self.network))}/{self.prefix}"


def parse_cidr(text: Any, where: str) -> tuple[IP, int]:
    """``ip/prefix`` -> (address as written, prefix length)."""
    if not isinstance(text, str):
        raise ConfigError(f"{where}: expected a CIDR string, got {_show(text)}")
    head, sep, tail = text.partition("/")
    ip = parse_ip(head) if sep else None
    if ip is None or not tail.isdigit() or int(tail) > _BITS[ip[0]] or (ip[0] == 4 and ":" in head):
        raise ConfigError(f"{where}: invalid CIDR address: {text}")
    return ip, int(tail)


class Range:
    __slots__ = ("subnet", "range_start", "range_end", "gateway")

    def __init__(self, subnet: Subnet, range_start: IP, range_end: IP, gateway: IP | None) -> None:
        self.subnet = subnet
        self.range_start = range_start
        self.range_end = range_end
        self.gateway = gateway

    def contains(self, ip: IP) -> bool:
        return self.subnet.contains(ip) and self.range_start[1] <= ip[1] <= self.range_end[1]

    def overlaps(self, other: Range) -> bool:
        if self.subnet.family != other.subnet.family:
            return False
        return (
            self.contains(other.range_start)
            or self.contains(other.range_end)
            or other.contains(self.range_start)
            or other.contains(self.range_end)
        )

    def __str__(self) -> str:
        return f"{ip_str(self.range_start)}-{ip_str(self.range_end)}"


class RangeSet:
    __slots__ = ("ranges",)

    def __init__(self, ranges: list[Range]) -> None:
        self.ranges = ranges

    @property
    def family(self) -> int:
        return self.ranges[0].subnet.family

    def range_for(self, ip: IP) -> Range | None:
        for r in self.ranges:
            if r.contains(ip):
                return r
        return None

    def contains(self, ip: IP) -> bool:
        return self.range_for(ip) is not None

    def overlaps(self, other: RangeSet) -> bool:
        return any(a.overlaps(b) for a in self.ranges for b in other.ranges)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.ranges)


class IPAMConfig:
    """The validated IPAM part of a request (plain class: dataclasses cost ~5 ms to import)."""

    def __init__(
        self,
        name: str,
        cni_version: str,
        ranges: list[RangeSet],
        data_dir: str = DEFAULT_DATA_DIR,
        resolv_conf: str = "",
        routes: list[dict[str, Any]] | None = None,
        requested: list[IP] | None = None,
    ) -> None:
        self.name = name
        self.cni_version = cni_version
        self.ranges = ranges
        self.data_dir = data_dir
        self.resolv_conf = resolv_conf
        self.routes = routes if routes is not None else []
        self.requested = requested if requested is not None else []


def _show(value: Any) -> str:
    import json

    return json.dumps(value)


def _canon_range(raw: Any, where: str) -> Range:
    """Validate one range object and fill the defaults (the reference's Canonicalize)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a range object, got {_show(raw)}")
    if raw.get("subnet") in (None, ""):
        raise ConfigError(f'{where}: missing "subnet"')
    ip, prefix = parse_cidr(raw["subnet"], f"{where}: subnet")
    fam = ip[0]
    bits = _BITS[fam]
    sub_text = f"{ip_str(ip)}/{prefix}"
    if prefix > bits - 2:
        raise CNIError(f"Network {sub_text} too small to allocate from")
    subnet = Subnet(fam, ip[1] & (((1 << prefix) - 1) << (bits - prefix)), prefix)
    if subnet.network != ip[1]:
        raise CNIError(
            f"Network has host bits set. For a subnet mask of length {prefix} "
            f"the network address is {ip_str((fam, subnet.network))}"
        )
    gateway: IP | None
    gw_raw = raw.get("gateway")
    if gw_raw in (None, ""):
        gateway = (fam, subnet.network + 1)
    else:
        gateway = _ip_field(gw_raw, f"{where}: gateway")
    start_raw = raw.get("rangeStart")
    end_raw = raw.get("rangeEnd")
    host_max = subnet.network | ((1 << (bits - prefix)) - 1)
    if start_raw not in (None, ""):
        start = _ip_field(start_raw, f"{where}: rangeStart")
        if not subnet.contains(start):
            raise CNIError(f"RangeStart {ip_str(start)} not in network {subnet}")
    else:
        start = (fam, subnet.network + 1)
    if end_raw not in (None, ""):
        end = _ip_field(end_raw, f"{where}: rangeEnd")
        if not subnet.contains(end) or end[1] < start[1]:  # as the reference checks it
            raise CNIError(f"RangeEnd {ip_str(end)} not in network {subnet}")
    else:
        end = (fam, host_max - 1 if fam == 4 else host_max)
    return Range(subnet, start, end, gateway)


def _ip_field(value: Any, where: str) -> IP:
    ip = parse_ip(value) if isinstance(value, str) else None
    if ip is None:
        raise ConfigError(f"{where}: invalid IP address: {_show(value)}")
    return ip


def _canon_set(raw: Any, where: str) -> RangeSet:
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: expected a list of ranges, got {_show(raw)}")
    if not raw:
        raise CNIError("empty range set")
    ranges: list[Range] = []
    for i, item in enumerate(raw):
        r = _canon_range(item, f"{where} range {i}")
        if ranges and r.subnet.family != ranges[0].subnet.family:
            raise CNIError("mixed address families")
        ranges.append(r)
    for i, r1 in enumerate(ranges):
        for r2 in ranges[i + 1 :]:
            if r1.overlaps(r2):
                raise CNIError(f"subnets {r1} and {r2} overlap")
    return RangeSet(ranges)


def _ip_list(raw: Any, where: str) -> list[IP]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: expected a list of IP addresses, got {_show(raw)}")
    out = []
    for item in raw:
        ip = parse_ip_maybe_cidr(item)
        if ip is None:
            raise ConfigError(f"{where}: invalid IP address: {_show(item)}")
        out.append(ip)
    return out


def _routes(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"ipam.routes: expected a list, got {_show(raw)}")
    out = []
    for i, route in enumerate(raw):
        if not isinstance(route, dict):
            raise ConfigError(f"ipam.routes[{i}]: expected an object, got {_show(route)}")
        r = dict(route)
        ip, prefix = parse_cidr(route.get("dst"), f"ipam.routes[{i}].dst")
        r["dst"] = f"{ip_str(ip)}/{prefix}"
        if route.get("gw") not in (None, ""):
            r["gw"] = ip_str(_ip_field(route["gw"], f"ipam.routes[{i}].gw"))
        else:
            r.pop("gw", None)
        out.append(r)
    return out


def load(conf: dict[str, Any], env_args: str) -> IPAMConfig:
    """The IPAM configuration of a request, validated like the reference's LoadIPAMConfig."""
    ipam = conf.get("ipam")
    if ipam is None:
        raise ConfigError("IPAM config missing 'ipam' key")
    if not isinstance(ipam, dict):
        raise ConfigError(f"ipam: expected an object, got {_show(ipam)}")
    cni_version = conf.get("cniVersion") or ""
    if not isinstance(cni_version, str):
        raise ConfigError(f"cniVersion: expected a string, got {_show(cni_version)}")

    # requested addresses, accumulated: CNI_ARGS IP, args.cni.ips, runtimeConfig.ips
    requested: list[IP] = []
    if env_args:
        fields = cni_args.load_args(env_args, ("IP",))
        if "IP" in fields and fields["IP"] != "":
            for item in fields["IP"].split(","):
                ip = parse_ip_maybe_cidr(item)
                if ip is None:
                    raise CNIError(
                        f'ARGS: error parsing value of pair "IP={fields["IP"]}": '
                        f"invalid IP address: {item.strip()}"
                    )
                requested.append(ip)
    a = conf.get("args")
    if isinstance(a, dict) and isinstance(a.get("cni"), dict):
        requested += _ip_list(a["cni"].get("ips"), "args.cni.ips")
    rc = conf.get("runtimeConfig")
    if rc is not None and not isinstance(rc, dict):
        raise ConfigError(f"runtimeConfig: expected an object, got {_show(rc)}")
    rc = rc or {}
    requested += _ip_list(rc.get("ips"), "runtimeConfig.ips")

    raw_sets: list[tuple[Any, str]] = []
    rt_ranges = rc.get("ipRanges")
    if rt_ranges is not None:
        if not isinstance(rt_ranges, list):
            raise ConfigError(
                f"runtimeConfig.ipRanges: expected a list of range sets, got {_show(rt_ranges)}"
            )
        raw_sets += [(s, f"runtimeConfig.ipRanges[{i}]") for i, s in enumerate(rt_ranges)]
    if ipam.get("subnet") not in (None, ""):
        legacy = {k: ipam.get(k) for k in ("subnet", "rangeStart", "rangeEnd", "gateway")}
        raw_sets.append(([legacy], "ipam"))
    cfg_ranges = ipam.get("ranges")
    if cfg_ranges is not None:
        if not isinstance(cfg_ranges, list):
            raise ConfigError(
                f"ipam.ranges: expected a list of range sets, got {_show(cfg_ranges)}"
            )
        raw_sets += [(s, f"ipam.ranges[{i}]") for i, s in enumerate(cfg_ranges)]
    if not raw_sets:
        raise ConfigError("no IP ranges specified")

    sets: list[RangeSet] = []
    counts = {4: 0, 6: 0}
    for i, (raw, where) in enumerate(raw_sets):
        try:
            rs = _canon_set(raw, where)
        except CNIError as e:
            raise ConfigError(f"invalid range set {i}: {e.msg}") from None
        counts[rs.family] += 1
        sets.append(rs)
    if (counts[4] > 1 or counts[6] > 1) and not gte(cni_version or "0.1.0", "0.3.0"):
        raise ConfigError(
            f"CNI version {cni_version} does not support more than 1 address per family"
        )
    for i, s1 in enumerate(sets):
        for j in range(i + 1, len(sets)):
            if s1.overlaps(sets[j]):
                raise ConfigError(f"range set {i} overlaps with {j}")

    data_dir = typed(ipam, "dataDir", str, "", "ipam.", error=ConfigError) or DEFAULT_DATA_DIR
    return IPAMConfig(
        name=str(conf.get("name", "")),
        cni_version=cni_version,
        ranges=sets,
        data_dir=data_dir,
        resolv_conf=typed(ipam, "resolvConf", str, "", "ipam.", error=ConfigError),
        routes=_routes(ipam.get("routes")),
        requested=requested,
    )
