"""The tuning plugin's configuration: parsed from stdin (duplicate ``sysctl`` keys refused),
merged with CNI_ARGS, ``runtimeConfig`` and ``args.cni``, and the sysctl keys mapped to
their files under /proc/sys/net."""

from __future__ import annotations

import json
import os
import posixpath
import re
from typing import Any

from cnitool.spec import args as cni_args
from cnitool.spec.errors import CNIError
from cnitool.spec.keys import fold

from .._lib import netconf
from .._lib.netconf import typed

DEFAULT_DATA_DIR = "/run/cni/tuning"
# Private: tests point this elsewhere; there is deliberately no environment override.
_ALLOWLIST_PATH = "/etc/cni/tuning/allowlist.conf"
PROC_SYS = "/proc/sys"
NET_PREFIX = "/proc/sys/net/"


class TuningConf:
    """The merged settings (a plain class: ``dataclasses`` costs imports on every exec)."""

    def __init__(self) -> None:
        self.raw: dict[str, Any] = {}
        self.data_dir = DEFAULT_DATA_DIR
        self.sysctl: dict[str, str] = {}
        self.mac = ""  # as given (echoed into the result)
        self.promisc = False
        self.mtu = 0
        self.allmulti: bool | None = None
        self.txqlen: int | None = None
        self.prev_result: Any = None

    @property
    def changes_link(self) -> bool:
        return bool(self.mac or self.mtu or self.promisc) or (
            self.allmulti is not None or self.txqlen is not None
        )


def parse_mac(value: str) -> str:
    """A hardware address in any spelling Go's ``net.ParseMAC`` takes, in lower-case colon
    form; the reference's error otherwise."""
    try:
        return netconf.parse_mac(value)
    except CNIError as exc:
        raise CNIError(f"invalid args {value} for MAC addr: {exc}") from None


def decode(stdin: bytes) -> dict[str, Any]:
    """The config object; a key repeated inside the top-level ``sysctl`` map is refused."""
    pairs_of: dict[int, list[tuple[str, Any]]] = {}  # every decoded object's own key order

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        pairs_of[id(obj)] = pairs  # the pairs keep every object alive: ids stay unique
        return obj

    try:
        raw = json.loads(stdin, object_pairs_hook=hook)
    except (ValueError, RecursionError) as exc:
        raise CNIError(f"failed to load netconf: {exc}") from None
    if not isinstance(raw, dict):
        raise CNIError("failed to load netconf: the configuration is not a JSON object")
    top = pairs_of.get(id(raw), [])
    keys: set[str] = set()
    # a repeated top-level "sysctl" (in any case) is one map to the reference: keys count
    # across repeats
    for key, value in top:
        if fold(key) != "sysctl" or not isinstance(value, dict):
            continue
        for sk, _ in pairs_of.get(id(value), []):
            if sk in keys:
                raise CNIError(f'duplicated sysctl keys are not allowed: "{sk}"')
            keys.add(sk)
    return raw


def _sysctl_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CNIError(f'failed to load netconf: "{where}" must be an object of strings')
    for key, item in value.items():
        if not isinstance(item, str):
            raise CNIError(
                f'failed to load netconf: "{where}" value of "{key}" must be a string,'
                f" got {json.dumps(item)}"
            )
    return dict(value)


def load(raw: dict[str, Any], env_args: str) -> TuningConf:
    """Merge the settings: config < CNI_ARGS ``MAC`` < ``runtimeConfig.mac`` < ``args.cni``."""
    conf = TuningConf()
    conf.raw = raw
    conf.data_dir = typed(raw, "dataDir", str, None) or DEFAULT_DATA_DIR
    conf.sysctl = _sysctl_map(raw.get("sysctl"), "sysctl")
    conf.mac = typed(raw, "mac", str, None) or ""
    conf.promisc = bool(typed(raw, "promisc", bool, None))
    conf.mtu = typed(raw, "mtu", int, None) or 0
    conf.allmulti = typed(raw, "allmulti", bool, None)
    conf.txqlen = typed(raw, "txQLen", int, None)

    if env_args:
        mac = cni_args.load_args(env_args, ("MAC",)).get("MAC", "")
        if mac:
            conf.mac = mac

    rc = raw.get("runtimeConfig")
    if isinstance(rc, dict):
        conf.mac = typed(rc, "mac", str, None, "runtimeConfig.") or conf.mac

    a = raw.get("args")
    cni = a.get("cni") if isinstance(a, dict) else None
    if cni is not None:
        if not isinstance(cni, dict):
            raise CNIError('failed to load netconf: "args.cni" must be an object')
        conf.sysctl.update(_sysctl_map(cni.get("sysctl"), "args.cni.sysctl"))
        mac = typed(cni, "mac", str, None, "args.cni.")
        if mac is not None:
            conf.mac = mac
        promisc = typed(cni, "promisc", bool, None, "args.cni.")
        if promisc is not None:
            conf.promisc = promisc
        mtu = typed(cni, "mtu", int, None, "args.cni.")
        if mtu is not None:
            conf.mtu = mtu
        allmulti = typed(cni, "allmulti", bool, None, "args.cni.")
        if allmulti is not None:
            conf.allmulti = allmulti
        txqlen = typed(cni, "txQLen", int, None, "args.cni.")
        if txqlen is not None:
            conf.txqlen = txqlen

    if conf.mtu < 0:
        raise CNIError(f'invalid "mtu" {conf.mtu}: must not be negative')
    if conf.txqlen is not None and not 0 <= conf.txqlen <= 0xFFFFFFFF:
        raise CNIError(f'invalid "txQLen" {conf.txqlen}: must be between 0 and 4294967295')
    if conf.mac:
        parse_mac(conf.mac)
    conf.prev_result = raw.get("prevResult")
    return conf


def sysctl_path(key: str, ifname: str) -> str:
    """The /proc/sys file for a sysctl key: every ``.`` becomes ``/``, then the first
    ``IFNAME`` becomes the interface name; the cleaned path must stay under /proc/sys/net/."""
    if "/" in ifname:
        raise CNIError(f"Interface name ({ifname}) contains an invalid character /")
    name = key.replace(".", "/").replace("IFNAME", ifname, 1)
    path = posixpath.normpath(f"{PROC_SYS}/{name}")
    if not path.startswith(NET_PREFIX):
        raise CNIError(f"invalid net sysctl key: {json.dumps(key)}")
    return path


def read_allowlist(path: str | None = None) -> list[str] | None:
    """The allow-list patterns, or None when the file does not exist (everything allowed)."""
    path = path or _ALLOWLIST_PATH
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CNIError(f'failed to read sysctl allow-list "{path}": {exc.strerror}') from None
    return [line.strip() for line in text.split("\n") if line.strip()]


def check_allowlist(sysctls: dict[str, str], path: str | None = None) -> None:
    """Refuse any sysctl key that no allow-list pattern matches (anywhere in the key)."""
    patterns = read_allowlist(path)
    if patterns is None:
        return
    compiled = []
    for pat in patterns:
        try:
            compiled.append(re.compile(pat))
        except re.error as exc:
            where = path or _ALLOWLIST_PATH
            raise CNIError(
                f'invalid pattern "{pat}" in sysctl allow-list "{where}": {exc}'
            ) from None
    for key in sysctls:
        if not any(c.search(key) for c in compiled):
            raise CNIError(
                f"Sysctl {key} is not allowed. Only the following sysctls are allowed: "
                f"[{' '.join(patterns)}]"
            )


def backup_file(data_dir: str, container_id: str, ifname: str) -> str:
    return os.path.join(data_dir, f"{container_id}_{ifname}.json")
