"""The dhcp plugin's configuration (its ``ipam`` section), read by the plugin and the daemon.

The plugin checks it before it dials the daemon, so a bad config is a clear error even
when no daemon runs; the daemon reads it again from the request's stdin. Import-light:
the plugin's entry loads the shape on every exec.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cnitool.spec.errors import CNIError, InvalidConfigError
from cnitool.spec.keys import NETCONF, ListOf, Shape
from cnitool.spec.record import Record

DEFAULT_SOCKET = "/run/cni/dhcp.sock"
MAX_CLIENT_ID = 254  # option 61 holds 255 bytes: a type byte (0) and the ID
# what the reference asks for unless a request entry says skipDefault: routers, subnet mask
DEFAULT_REQUEST = (3, 1)
# option names the reference accepts (dhcp-options(5)); anything else is a decimal code
OPTION_NAMES = {
    "dhcp-client-identifier": 61,
    "subnet-mask": 1,
    "routers": 3,
    "host-name": 12,
    "user-class": 77,
    "vendor-class-identifier": 60,
}

# the Go plugin's NetConf with its IPAMConfig
SHAPE = NETCONF.extend(
    {
        "ipam": Shape(
            {
                "type": None,
                "daemonSocketPath": None,
                "provide": ListOf(Shape({"option": None, "value": None, "fromArg": None})),
                "request": ListOf(Shape({"skipDefault": None, "option": None})),
                "priority": None,
            }
        )
    }
)


class DhcpConf(Record):
    name: str
    socket_path: str
    request: tuple[int, ...]  # the parameter request list (option 55), in order
    provide: tuple[tuple[int, bytes], ...]  # options sent with every request
    priority: int  # the metric of every route of the result (0: none)


def client_id(container_id: str, network: str, ifname: str) -> str:
    """The reference's client ID: ``<containerID>/<network>/<ifname>``, cut to 254 bytes."""
    return f"{container_id}/{network}/{ifname}".encode()[:MAX_CLIENT_ID].decode("utf-8", "ignore")


def option_code(name: str) -> int:
    """An option named as in dhcp-options(5) (the reference's few) or by its code."""
    if name in OPTION_NAMES:
        return OPTION_NAMES[name]
    if not (name.isascii() and name.isdigit()) or not 0 < int(name) < 255:
        raise CNIError(f"Can not parse option {json.dumps(name)}: not a known name or 1-254")
    return int(name)


def cni_args_map(cni_args: str) -> dict[str, str]:
    """CNI_ARGS as the reference dhcp reads it for ``fromArg``: pairs split on the first
    ``=``, pairs without one ignored, the last of a repeated key winning."""
    out: dict[str, str] = {}
    for pair in cni_args.split(";"):
        key, sep, value = pair.partition("=")
        if sep:
            out[key] = value
    return out


def _typed(obj: Mapping[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = {str: "a string", bool: "a boolean", int: "an integer", list: "a list"}
        raise InvalidConfigError(
            f'failed to load netconf: "{where}{key}" must be {names.get(kind, "an object")}, '
            f"got {json.dumps(value)}"
        )
    return value


def _entries(ipam: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    items: list[Mapping[str, Any]] = _typed(ipam, key, list, [], "ipam.")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidConfigError(
                f'failed to load netconf: "ipam.{key}[{i}]" must be an object, '
                f"got {json.dumps(item)}"
            )
    return items


def load(conf: Mapping[str, Any], cni_args: str) -> DhcpConf:
    """The dhcp settings of a request config (keys already spelled as ``SHAPE``)."""
    ipam = conf.get("ipam")
    if not isinstance(ipam, dict):
        raise InvalidConfigError('failed to load netconf: "ipam" must be an object')
    socket_path = _typed(ipam, "daemonSocketPath", str, "", "ipam.") or DEFAULT_SOCKET
    priority = _typed(ipam, "priority", int, 0, "ipam.")

    args = cni_args_map(cni_args)
    provide: dict[int, bytes] = {}  # by code: a later entry (and fromArg) replaces
    for i, entry in enumerate(_entries(ipam, "provide")):
        where = f"ipam.provide[{i}]."
        code = option_code(_typed(entry, "option", str, "", where))
        value = _typed(entry, "value", str, "", where)
        from_arg = _typed(entry, "fromArg", str, "", where)
        if value:
            if len(value.encode()) > 255:
                raise CNIError(f"value too long for option {json.dumps(entry['option'])}")
            provide[code] = value.encode()
        if from_arg in args:
            arg_value = args[from_arg].encode()
            if len(arg_value) > 255:
                raise CNIError(
                    f"value too long for option {json.dumps(entry['option'])} "
                    f"from CNI_ARGS {json.dumps(from_arg)}"
                )
            provide[code] = arg_value

    request: list[int] = []
    skip_default = False
    for i, entry in enumerate(_entries(ipam, "request")):
        where = f"ipam.request[{i}]."
        skip_default = _typed(entry, "skipDefault", bool, False, where) or skip_default
        name = _typed(entry, "option", str, "", where)
        if name and option_code(name) not in request:
            request.append(option_code(name))
    if not skip_default:
        request.extend(code for code in DEFAULT_REQUEST if code not in request)

    return DhcpConf(
        name=str(conf.get("name", "")),
        socket_path=socket_path,
        request=tuple(request),
        provide=tuple(provide.items()),
        priority=priority,
    )
