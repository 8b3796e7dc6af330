"""Chain names derived from (network, container ID), as the reference plugins hash them."""

from __future__ import annotations

import hashlib

MAX_CHAIN_LEN = 28


def format_chain_name(name: str, container_id: str, prefix: str = "CNI-") -> str:
    """``(prefix + hex(sha512(name + id)))[:28]``: ``CNI-`` for ipMasq, ``CNI-DN-`` for
    portmap DNAT, ``CNI-SN-`` for the old portmap SNAT chains."""
    digest = hashlib.sha512((name + container_id).encode()).hexdigest()
    return (prefix + digest)[:MAX_CHAIN_LEN]


def format_hash(length: int, prefix: str, s: str) -> str:
    """``(prefix + hex(sha512(s)))[:length]``."""
    return (prefix + hashlib.sha512(s.encode()).hexdigest())[:length]
