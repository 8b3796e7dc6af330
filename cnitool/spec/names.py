"""Validation of the names that become file names and link names (container ID,
network name, interface name), with the reference's codes and messages."""

from __future__ import annotations

import re

from .errors import InvalidConfigError, InvalidEnvironmentError, UnknownContainerError

_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")
IFNAME_MAX = 15


def valid_name(value: str) -> bool:
    return _NAME_RE.fullmatch(value) is not None


def validate_container_id(container_id: str) -> None:
    if container_id == "":
        raise UnknownContainerError("missing containerID")
    if not valid_name(container_id):
        raise InvalidEnvironmentError("invalid characters in containerID", container_id)


def validate_network_name(name: str) -> None:
    if name == "":
        raise InvalidConfigError("missing network name:")
    if not valid_name(name):
        raise InvalidConfigError("invalid characters found in network name", name)


def validate_interface_name(ifname: str) -> None:
    if ifname == "":
        raise InvalidEnvironmentError("interface name is empty")
    # the length in bytes as the kernel sees it (undecodable bytes arrive as surrogates)
    if len(ifname.encode(errors="surrogateescape")) > IFNAME_MAX:
        raise InvalidEnvironmentError(
            "interface name is too long",
            f"interface name should be less than {IFNAME_MAX + 1} characters",
        )
    if ifname in (".", ".."):
        raise InvalidEnvironmentError("interface name is . or ..")
    for ch in ifname:
        if ch in "/:" or ch.isspace():
            raise InvalidEnvironmentError(
                "interface name contains / or : or whitespace characters", ifname
            )


def validate_new_interface_name(ifname: str) -> None:
    """A name for the interface an ADD creates: a valid name without ``%``.

    The kernel takes a name holding ``%`` for a template (``eth%d`` becomes ``eth0``), so
    the interface made could not be found under the requested name: the ADD failed and
    left it behind (the reference plugins leave the veth pair). DEL and CHECK still
    accept such a name, as they must to clean up after the reference.
    """
    validate_interface_name(ifname)
    if "%" in ifname:
        raise InvalidEnvironmentError(
            "interface name contains %, which the kernel takes for a name template", ifname
        )
