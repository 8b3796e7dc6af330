"""JSON object keys matched to fields the way Go's ``encoding/json`` matches them.

The Go tools decode every configuration, result and cache file into structs, and the Go
decoder matches an object key to a struct field by its exact JSON name first and then
case-insensitively. So ``{"HostPort": 8080}`` fills ``hostPort``: containerd's CRI sends
its port mappings, bandwidth, IP ranges and DNS that way (go-cni's structs carry no JSON
tags), and the Go plugins accept them. Keys of map-typed values (``capabilities``,
``sysctl``, flannel's ``delegate``) stay exact, as a Go map keeps them.

A :class:`Shape` describes the struct fields of one kind of object, nested where a field
is itself a struct or a list of structs. :func:`decode` returns a copy of a JSON value in
which every key that matches a field is spelled as the field; unknown keys are kept as
they are, so code further on reads plain ``dict`` keys. When several keys match one field,
the last one wins, as with the Go decoder (it assigns the field once per key, in document
order), except that a ``null`` does not undo a value set by an earlier key.

Folding is Go's: ASCII letters ignore case, and ``K`` (Kelvin sign) and ``ſ`` (long s)
fold to ``k`` and ``s``. No other non-ASCII letter matches an ASCII field name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_FOLD = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_FOLD.update({0x212A: ord("k"), 0x017F: ord("s")})


def fold(key: str) -> str:
    """The key as the Go decoder compares it with a field name."""
    return key.translate(_FOLD)


class ListOf:
    """A JSON list whose items have ``item``'s shape (a Go slice of structs)."""

    __slots__ = ("item",)

    def __init__(self, item: Shape | ListOf) -> None:
        self.item = item


class Shape:
    """The fields of one struct: name -> the field's own shape, or None for a value
    whose keys are kept as they are (scalars, maps, raw JSON)."""

    __slots__ = ("fields", "_index")

    def __init__(self, fields: Mapping[str, Shape | ListOf | None]) -> None:
        self.fields: dict[str, Shape | ListOf | None] = dict(fields)
        self._index: dict[str, str] = {}
        for name in self.fields:
            folded = fold(name)
            if folded in self._index:
                raise ValueError(f"fields {self._index[folded]!r} and {name!r} fold alike")
            self._index[folded] = name

    def extend(self, fields: Mapping[str, Shape | ListOf | None]) -> Shape:
        """This shape with more fields (a Go struct that embeds this one); a field
        given again replaces the embedded one, as the outer struct's field does in Go."""
        merged = dict(self.fields)
        for name in fields:
            old = self._index.get(fold(name))
            if old is not None:
                del merged[old]
        merged.update(fields)
        return Shape(merged)

    def field(self, key: str) -> str | None:
        """The field a key fills, or None for a key the struct does not have."""
        if key in self.fields:
            return key
        return self._index.get(fold(key))


Kind = Shape | ListOf | None


def decode(value: Any, shape: Kind) -> Any:
    """A copy of ``value`` with keys spelled as ``shape``'s fields (see the module doc).

    A value of another JSON type than the shape expects is returned unchanged: type
    checks further on report it with the key's name.
    """
    if shape is None:
        return value
    if isinstance(shape, ListOf):
        if not isinstance(value, list):
            return value
        return [decode(item, shape.item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = shape.field(key)
        if name is None:
            out[key] = item
        elif item is None and out.get(name) is not None:
            continue  # null leaves a field that an earlier key set
        else:
            out[name] = decode(item, shape.fields[name])
    return out


def get(obj: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """``obj``'s value for the field ``name``, matched as the Go decoder matches it."""
    found = default
    folded = fold(name)
    for key, value in obj.items():
        if (key == name or fold(key) == folded) and not (value is None and found is not default):
            found = value
    return found


# -- the shapes of the spec's own objects ----------------------------------------------

ROUTE = Shape(
    {
        "dst": None,
        "gw": None,
        "mtu": None,
        "advmss": None,
        "priority": None,
        "table": None,
        "scope": None,
    }
)
DNS = Shape({"nameservers": None, "domain": None, "search": None, "options": None})
INTERFACE = Shape(
    {"name": None, "mac": None, "mtu": None, "sandbox": None, "socketPath": None, "pciID": None}
)
IP_CONFIG = Shape({"version": None, "interface": None, "address": None, "gateway": None})
LEGACY_IP = Shape({"ip": None, "gateway": None, "routes": ListOf(ROUTE)})
# every era's result fields at once: no name means two things in two eras
RESULT = Shape(
    {
        "cniVersion": None,
        "interfaces": ListOf(INTERFACE),
        "ips": ListOf(IP_CONFIG),
        "routes": ListOf(ROUTE),
        "dns": DNS,
        "ip4": LEGACY_IP,
        "ip6": LEGACY_IP,
    }
)
ERROR = Shape({"cniVersion": None, "code": None, "msg": None, "details": None})
VERSION_INFO = Shape({"cniVersion": None, "supportedVersions": None})
ATTACHMENT = Shape({"containerID": None, "ifname": None})
# types.NetConf, which every plugin's config embeds
NETCONF = Shape(
    {
        "cniVersion": None,
        "name": None,
        "type": None,
        "capabilities": None,
        "ipam": Shape({"type": None}),
        "dns": DNS,
        "prevResult": RESULT,
        "cni.dev/valid-attachments": ListOf(ATTACHMENT),
    }
)
# libcni's cache record (cniCacheV1)
CACHE_ENTRY = Shape(
    {
        "kind": None,
        "containerId": None,
        "config": None,
        "ifName": None,
        "networkName": None,
        "netns": None,
        "cniArgs": None,
        "capabilityArgs": None,
        "result": RESULT,
    }
)
