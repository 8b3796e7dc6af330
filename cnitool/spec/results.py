"""Plugin results of every spec era, and conversion between any two spec versions.

A result is a plain dict in the shape of its own ``cniVersion``:

- 0.1.0 / 0.2.0: ``{cniVersion, ip4: {ip, gateway, routes}, ip6: {...}, dns}``
- 0.3.0 / 0.3.1 / 0.4.0: ``{cniVersion, interfaces: [{name, mac, sandbox}],
  ips: [{version, interface, address, gateway}], routes, dns}``
- 1.0.0 / 1.1.0: ``{cniVersion, interfaces: [{name, mac, mtu, sandbox, socketPath, pciID}],
  ips: [{interface, address, gateway}], routes: [{dst, gw, mtu, advmss, priority, table,
  scope}], dns: {nameservers, domain, search, options}}``

Normalised results keep the key order the Go encoder writes and leave out empty or zero
fields, except ``interfaces[].name``, ``ips[].address`` and ``routes[].dst``. An
``interface`` index (and a route's ``table``/``scope``) is written when it is 0 and left
out only when absent. An empty ``dns`` object is dropped. Addresses are re-spelled the way
Go prints them (compressed IPv6, IPv4-mapped IPv6 as dotted IPv4).

Conversions follow the reference converters: 0.1<->0.2, 0.1/0.2<->0.3.x/0.4 (lossy),
0.3.x<->0.4<->1.x (lossless apart from the 1.1-only fields), 1.0<->1.1 (same shape),
legacy<->1.x through 0.4.0. Converting to the version a result already has returns it
unchanged, which is how a 1.x-shaped result labelled 0.3.1 (the reference loopback plugin
does this) reaches the output without ``version`` keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import keys
from .errors import CNIError, DecodingError, IncompatibleVersionError
from .jsonfmt import dumps_indent, loads, type_name
from .version import ALL, CURRENT

Result = dict[str, Any]

LEGACY_VERSIONS = ("0.1.0", "0.2.0")
V04_VERSIONS = ("0.3.0", "0.3.1", "0.4.0")
V1_VERSIONS = ("1.0.0", "1.1.0")

__all__ = [
    "LEGACY_VERSIONS",
    "V04_VERSIONS",
    "V1_VERSIONS",
    "Result",
    "convert",
    "format_result",
    "new_result",
    "parse_result",
]


# --------------------------------------------------------------------------- helpers


def _bad(path: str, problem: str) -> DecodingError:
    return DecodingError(f'failed to decode result: field "{path}": {problem}')


def _wrong_type(path: str, want: str, value: Any) -> DecodingError:
    return _bad(path, f"expected {want}, got {type_name(value)}")


def _get_str(obj: dict[str, Any], key: str, path: str) -> str:
    """A string field; absent or null reads as "" (Go's zero value)."""
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _wrong_type(f"{path}{key}", "a string", value)
    return value


def _get_int(obj: dict[str, Any], key: str, path: str) -> int | None:
    """An integer field; None when absent or null. Floats are refused as Go refuses them."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(f"{path}{key}", "an integer", value)
    return value


def _get_obj(value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _wrong_type(path, "an object", value)
    return value


def _get_list(obj: dict[str, Any], key: str, path: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _wrong_type(f"{path}{key}", "an array", value)
    return value


def _get_str_list(obj: dict[str, Any], key: str, path: str) -> list[str]:
    items = _get_list(obj, key, path)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise _wrong_type(f"{path}{key}[{i}]", "a string", item)
    return list(items)


_ipaddress: Any = None


def _ipmod() -> Any:
    # ipaddress costs a few ms to import; only results with addresses need it.
    global _ipaddress
    if _ipaddress is None:
        import ipaddress

        _ipaddress = ipaddress
    return _ipaddress


def _go_ip(addr: Any) -> str:
    """An address spelled like Go's ``net.IP.String``."""
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def _parse_ip(text: str, path: str) -> Any:
    ipaddress = _ipmod()
    if "%" in text or "/" in text:
        raise _bad(path, f"invalid IP address: {text}")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise _bad(path, f"invalid IP address: {text}") from None


def _norm_ip(text: str, path: str) -> str:
    return _go_ip(_parse_ip(text, path))


def _norm_cidr(text: str, path: str) -> str:
    """A CIDR with its host bits kept (like Go's ``types.ParseCIDR``), re-spelled."""
    addr_text, sep, prefix_text = text.partition("/")
    if not sep or not prefix_text.isdigit() or not prefix_text.isascii():
        raise _bad(path, f"invalid CIDR address: {text}")
    try:
        addr = _parse_ip(addr_text, path)
    except DecodingError:
        raise _bad(path, f"invalid CIDR address: {text}") from None
    prefix = int(prefix_text)
    if len(prefix_text) > 3 or prefix > addr.max_prefixlen:
        raise _bad(path, f"invalid CIDR address: {text}")
    if addr.version == 6 and addr.ipv4_mapped is not None:
        # Go prints such an address as IPv4 with the low 32 bits of the mask.
        return f"{addr.ipv4_mapped}/{max(0, prefix - 96)}"
    return f"{addr}/{prefix}"


def _is_ipv4(text: str) -> bool:
    """Family of an already-normalised address or CIDR (IPv4-mapped counts as IPv4)."""
    return ":" not in text.partition("/")[0]


# --------------------------------------------------------------------------- normalisers


def _norm_route(value: Any, path: str) -> dict[str, Any]:
    obj = _get_obj(value, path)
    if obj is None:
        raise _wrong_type(path, "an object", value)
    out: dict[str, Any] = {}
    dst = _get_str(obj, "dst", f"{path}.")
    if dst == "":
        raise _bad(f"{path}.dst", "missing destination")
    out["dst"] = _norm_cidr(dst, f"{path}.dst")
    gw = _get_str(obj, "gw", f"{path}.")
    if gw:
        out["gw"] = _norm_ip(gw, f"{path}.gw")
    for key in ("mtu", "advmss", "priority"):
        num = _get_int(obj, key, f"{path}.")
        if num:
            out[key] = num
    for key in ("table", "scope"):
        num = _get_int(obj, key, f"{path}.")
        if num is not None:
            out[key] = num
    return out


def _norm_routes(obj: dict[str, Any], key: str, path: str) -> list[dict[str, Any]]:
    return [
        _norm_route(item, f"{path}{key}[{i}]") for i, item in enumerate(_get_list(obj, key, path))
    ]


def _norm_dns(value: Any, path: str) -> dict[str, Any]:
    obj = _get_obj(value, path)
    out: dict[str, Any] = {}
    if obj is None:
        return out
    prefix = f"{path}."
    nameservers = _get_str_list(obj, "nameservers", prefix)
    if nameservers:
        out["nameservers"] = nameservers
    domain = _get_str(obj, "domain", prefix)
    if domain:
        out["domain"] = domain
    for key in ("search", "options"):
        items = _get_str_list(obj, key, prefix)
        if items:
            out[key] = items
    return out


def _norm_legacy_ip(value: Any, path: str) -> dict[str, Any] | None:
    obj = _get_obj(value, path)
    if obj is None:
        return None
    out: dict[str, Any] = {}
    ip = _get_str(obj, "ip", f"{path}.")
    if ip == "":
        raise _bad(f"{path}.ip", "missing address")
    out["ip"] = _norm_cidr(ip, f"{path}.ip")
    gateway = _get_str(obj, "gateway", f"{path}.")
    if gateway:
        out["gateway"] = _norm_ip(gateway, f"{path}.gateway")
    routes = _norm_routes(obj, "routes", f"{path}.")
    if routes:
        out["routes"] = routes
    return out


def _norm_legacy(obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("ip4", "ip6"):
        ipc = _norm_legacy_ip(obj.get(key), key)
        if ipc is not None:
            out[key] = ipc
    dns = _norm_dns(obj.get("dns"), "dns")
    if dns:
        out["dns"] = dns
    return out


_IFACE_V04 = ("name", "mac", "sandbox")
_IFACE_V1 = ("name", "mac", "mtu", "sandbox", "socketPath", "pciID")


def _norm_interfaces(obj: dict[str, Any], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(_get_list(obj, "interfaces", "")):
        path = f"interfaces[{i}]"
        iface = _get_obj(item, path)
        if iface is None:
            raise _wrong_type(path, "an object", item)
        norm: dict[str, Any] = {}
        for key in fields:
            if key == "mtu":
                mtu = _get_int(iface, key, f"{path}.")
                if mtu:
                    norm[key] = mtu
                continue
            text = _get_str(iface, key, f"{path}.")
            if text or key == "name":
                norm[key] = text
        out.append(norm)
    return out


def _norm_ips(obj: dict[str, Any], with_version: bool) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(_get_list(obj, "ips", "")):
        path = f"ips[{i}]"
        ipc = _get_obj(item, path)
        if ipc is None:
            raise _wrong_type(path, "an object", item)
        norm: dict[str, Any] = {}
        if with_version and "version" in ipc and ipc["version"] is not None:
            # Kept as given (the reference always writes it; a missing one stays missing).
            norm["version"] = _get_str(ipc, "version", f"{path}.")
        index = _get_int(ipc, "interface", f"{path}.")
        if index is not None:
            norm["interface"] = index
        address = _get_str(ipc, "address", f"{path}.")
        if address == "":
            raise _bad(f"{path}.address", "missing address")
        norm["address"] = _norm_cidr(address, f"{path}.address")
        gateway = _get_str(ipc, "gateway", f"{path}.")
        if gateway:
            norm["gateway"] = _norm_ip(gateway, f"{path}.gateway")
        out.append(norm)
    return out


def _norm_modern(
    obj: dict[str, Any], v1: bool, *, ip_version: bool | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    interfaces = _norm_interfaces(obj, _IFACE_V1 if v1 else _IFACE_V04)
    if interfaces:
        out["interfaces"] = interfaces
    ips = _norm_ips(obj, with_version=not v1 if ip_version is None else ip_version)
    if ips:
        out["ips"] = ips
    routes = _norm_routes(obj, "routes", "")
    if routes:
        out["routes"] = routes
    dns = _norm_dns(obj.get("dns"), "dns")
    if dns:
        out["dns"] = dns
    return out


def _normalise(obj: dict[str, Any], version: str) -> Result:
    """The body of ``obj`` in the shape of ``version``, with ``cniVersion`` set to it."""
    out: Result = {"cniVersion": version}
    if version in LEGACY_VERSIONS:
        out.update(_norm_legacy(obj))
    elif version in V04_VERSIONS:
        out.update(_norm_modern(obj, v1=False))
    elif version in V1_VERSIONS:
        out.update(_norm_modern(obj, v1=True))
    else:
        raise DecodingError(f'unsupported CNI result version "{version}"')
    return out


# --------------------------------------------------------------------------- public API


def new_result(obj: Any, version: str = "") -> Result:
    """Validate a decoded result object and return it normalised.

    A missing, empty or non-string ``cniVersion`` is replaced by ``version`` (the
    request's version, as libcni does), and by 0.1.0 when that is empty too. Keys are
    matched to the result's fields as Go's decoder matches them (``"IPs"`` is ``ips``).
    """
    if not isinstance(obj, dict):
        raise DecodingError(
            f"failed to decode result: expected a JSON object, got {type_name(obj)}"
        )
    obj = keys.decode(obj, keys.RESULT)
    declared = obj.get("cniVersion")
    if not isinstance(declared, str) or declared == "":
        declared = version or "0.1.0"
    return _normalise(obj, declared)


def parse_result(data: bytes | str, version: str = "") -> Result | None:
    """A result from a plugin's stdout; None when the output is empty or ``null``."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DecodingError(
                "failed to decode result: output is not valid UTF-8", str(err)
            ) from None
    else:
        text = data
    if text.strip() == "":
        return None
    try:
        obj = loads(text)
    except ValueError as err:
        raise DecodingError("failed to decode result: invalid JSON", str(err)) from None
    if obj is None:
        return None
    return new_result(obj, version)


def _legacy_to_04(src: Result, to_version: str) -> Result:
    out: Result = {"cniVersion": to_version}
    ips: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    for key, family in (("ip4", "4"), ("ip6", "6")):
        ipc = src.get(key)
        if ipc is None:
            continue
        entry: dict[str, Any] = {"version": family, "address": ipc["ip"]}
        if "gateway" in ipc:
            entry["gateway"] = ipc["gateway"]
        ips.append(entry)
        routes.extend(dict(r) for r in ipc.get("routes", ()))
    if ips:
        out["ips"] = ips
    if routes:
        out["routes"] = routes
    if "dns" in src:
        out["dns"] = _copy_dns(src["dns"])
    return out


def _04_to_legacy(src: Result, to_version: str) -> Result:
    first: dict[str, dict[str, Any]] = {}
    for ipc in src.get("ips", ()):
        family = ipc.get("version")
        if family not in ("4", "6"):
            # The reference skips an IP without a usable version; the address says it.
            family = "4" if _is_ipv4(ipc["address"]) else "6"
        key = "ip4" if family == "4" else "ip6"
        if key not in first:
            entry: dict[str, Any] = {"ip": ipc["address"]}
            if "gateway" in ipc:
                entry["gateway"] = ipc["gateway"]
            first[key] = entry
        if len(first) == 2:
            break
    for route in src.get("routes", ()):
        key = "ip4" if _is_ipv4(route["dst"]) else "ip6"
        if key in first:
            slim = {"dst": route["dst"]}
            if "gw" in route:
                slim["gw"] = route["gw"]
            first[key].setdefault("routes", []).append(slim)
    if not first:
        raise CNIError("cannot convert: no valid IP addresses")
    out: Result = {"cniVersion": to_version}
    for key in ("ip4", "ip6"):
        if key in first:
            out[key] = first[key]
    if "dns" in src:
        out["dns"] = _copy_dns(src["dns"])
    return out


def _04_to_1(src: Result, to_version: str) -> Result:
    out: Result = {"cniVersion": to_version}
    if "interfaces" in src:
        out["interfaces"] = [
            {k: iface[k] for k in _IFACE_V04 if k in iface} for iface in src["interfaces"]
        ]
    if "ips" in src:
        out["ips"] = [{k: v for k, v in ipc.items() if k != "version"} for ipc in src["ips"]]
    return _copy_tail(src, out)


def _1_to_04(src: Result, to_version: str) -> Result:
    out: Result = {"cniVersion": to_version}
    if "interfaces" in src:
        out["interfaces"] = [
            {k: iface[k] for k in _IFACE_V04 if k in iface} for iface in src["interfaces"]
        ]
    if "ips" in src:
        ips = []
        for ipc in src["ips"]:
            entry: dict[str, Any] = {"version": "4" if _is_ipv4(ipc["address"]) else "6"}
            entry.update((k, v) for k, v in ipc.items() if k != "version")
            ips.append(entry)
        out["ips"] = ips
    return _copy_tail(src, out)


def _relabel(src: Result, to_version: str) -> Result:
    out: Result = {"cniVersion": to_version}
    for key, value in src.items():
        if key == "cniVersion":
            continue
        if key in ("ip4", "ip6"):
            ipc = dict(value)
            if "routes" in ipc:
                ipc["routes"] = [dict(r) for r in ipc["routes"]]
            out[key] = ipc
        elif key == "dns":
            out[key] = _copy_dns(value)
        else:
            out[key] = [dict(item) for item in value]
    return out


def _copy_tail(src: Result, out: Result) -> Result:
    if "routes" in src:
        out["routes"] = [dict(r) for r in src["routes"]]
    if "dns" in src:
        out["dns"] = _copy_dns(src["dns"])
    return out


def _copy_dns(dns: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, list) else v for k, v in dns.items()}


def _era(version: str) -> int:
    if version in LEGACY_VERSIONS:
        return 0
    if version in V04_VERSIONS:
        return 1
    return 2


_Step = Callable[[Result, str], Result]
# (from era, to era) -> steps; each step takes the target version it should stamp.
_PATHS: dict[tuple[int, int], tuple[_Step, ...]] = {
    (0, 0): (_relabel,),
    (1, 1): (_relabel,),
    (2, 2): (_relabel,),
    (0, 1): (_legacy_to_04,),
    (1, 0): (_04_to_legacy,),
    (1, 2): (_04_to_1,),
    (2, 1): (_1_to_04,),
    (0, 2): (_legacy_to_04, _04_to_1),
    (2, 0): (_1_to_04, _04_to_legacy),
}


def convert(result: Result, to_version: str) -> Result:
    """``result`` expressed in ``to_version`` (empty means 0.1.0).

    The same version returns ``result`` itself, untouched. Otherwise the result is
    validated in the shape of its own version and a new normalised dict is returned.
    A result without ``cniVersion`` is taken to be in the current (1.1.0) shape and
    always comes back labelled.
    """
    target = to_version or "0.1.0"
    declared = result.get("cniVersion")
    if declared == target:
        return result
    source = declared if isinstance(declared, str) and declared else CURRENT
    if target not in ALL:
        raise IncompatibleVersionError(
            f"no converter for CNI result version {source} to {target}",
            f"known versions: {', '.join(ALL)}",
        )
    current = _normalise(result, source)
    steps = _PATHS[(_era(source), _era(target))]
    for i, step in enumerate(steps):
        current = step(current, target if i == len(steps) - 1 else "0.4.0")
    return current


def _printable(result: Result) -> Result:
    """``result`` cleaned and Go-ordered for printing, keeping the shape it was built in.

    A plugin prints the structure it built, whatever its label says: the reference
    loopback plugin labels a 1.x-shaped result with the request's version, 0.2.0
    included, and that is what appears on stdout. So a 0.x label with 1.x-style keys is
    printed in the 1.x layout (``version`` kept where given) rather than stripped.
    """
    declared = result.get("cniVersion")
    if not isinstance(declared, str) or declared == "":
        return _norm_modern(result, v1=True)
    if declared in V1_VERSIONS:
        return {"cniVersion": declared, **_norm_modern(result, v1=True)}
    if declared in V04_VERSIONS or (
        declared in LEGACY_VERSIONS and ("ips" in result or "interfaces" in result)
    ):
        return {"cniVersion": declared, **_norm_modern(result, v1=True, ip_version=True)}
    return _normalise(result, declared)  # legacy layout, or DecodingError for a bad version


def format_result(result: Result) -> str:
    """What a plugin or cnitool prints: Go-ordered, 4-space indented, no trailing newline.

    Empty fields are left out and keys put in the Go encoder's order; the layout is
    the one the result was built in (see ``_printable``). A result without
    ``cniVersion`` is printed in the 1.x layout without that key. Raises
    DecodingError for malformed fields or an unknown version.
    """
    return dumps_indent(_printable(result))
