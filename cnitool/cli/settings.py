"""What a command runs with: the defaults and environment variables of Go's cnitool, the
container ID and netns rules, and the typed settings of the CNI verbs (the shared ones in
:class:`Settings`, those naming one attachment in :class:`Attachment`)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..spec.errors import CNIError, InvalidEnvironmentError
from .errors import UsageError

if TYPE_CHECKING:
    from ..libcni.api import CNIConfig
    from ..libcni.config import NetworkConfigList
    from ..libcni.runtime import RuntimeConf

DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_BIN_DIR = "/opt/cni/bin"
DEFAULT_CACHE_DIR = "/var/lib/cni"
DEFAULT_IFNAME = "eth0"
NETNS_DIR = "/var/run/netns"


def container_id_for(netns_path: str) -> str:
    """Go cnitool's container ID: ``cnitool-`` + 20 hex chars of sha512(abs path)."""
    return "cnitool-" + hashlib.sha512(os.fsencode(os.path.abspath(netns_path))).hexdigest()[:20]


def parse_cni_args(value: str) -> list[tuple[str, str]]:
    """``K=V;K=V`` the way Go cnitool splits CNI_ARGS: every pair exactly two non-empty parts."""
    if value == "":
        return []
    pairs: list[tuple[str, str]] = []
    for pair in value.split(";"):
        kv = pair.split("=")
        if len(kv) != 2 or kv[0] == "" or kv[1] == "":
            raise InvalidEnvironmentError(f'invalid CNI_ARGS pair "{pair}"')
        pairs.append((kv[0], kv[1]))
    return pairs


def parse_cap_args(value: str) -> dict[str, Any]:
    """CAP_ARGS / --cap-args: a JSON object, or ``@file`` holding one."""
    if value == "":
        return {}
    source = "CAP_ARGS"
    if value.startswith("@"):
        source = value[1:]
        try:
            with open(source, "rb") as fh:
                data: str | bytes = fh.read()
        except OSError as err:
            raise InvalidEnvironmentError(
                f"cannot read capability args {source}: {err.strerror}"
            ) from None
    else:
        data = value
    try:
        obj = json.loads(data)
    except ValueError as err:
        raise InvalidEnvironmentError(
            f"capability args from {source} are not valid JSON: {err}"
        ) from None
    if not isinstance(obj, dict):
        raise InvalidEnvironmentError(f"capability args from {source} must be a JSON object")
    return obj


def split_bin_dirs(values: Sequence[str], env: str | None) -> list[str]:
    """--cni-bin-dir values (each may be a ':'-list), else CNI_PATH, else /opt/cni/bin."""
    dirs = [d for v in values for d in v.split(os.pathsep) if d]
    if not dirs and env:
        dirs = [d for d in env.split(os.pathsep) if d]
    return dirs or [DEFAULT_BIN_DIR]


def is_named_netns_path(path: str) -> bool:
    parent = os.path.dirname(path)
    return parent in (NETNS_DIR, "/run/netns")


def resolve_netns(arg: str) -> str:
    """A bare name (no '/') means /var/run/netns/NAME; anything else is made absolute."""
    if arg == "":
        raise UsageError("netns argument is empty")
    if "/" not in arg:
        from ..netns import validate_name

        validate_name(arg)
        return os.path.join(NETNS_DIR, arg)
    return os.path.abspath(arg)


def wants_json(output: str) -> bool:
    """--output auto means JSON unless stdout is a terminal."""
    if output == "auto":
        return not sys.stdout.isatty()
    return output == "json"


@dataclass(frozen=True)
class Settings:
    """The options every CNI verb takes (``common_options``)."""

    conf_dir: str
    bin_dirs: list[str]
    cache_dir: str
    timeout: float | None
    output: str
    debug: bool

    @classmethod
    def from_options(
        cls,
        *,
        conf_dir: str,
        bin_dirs: Sequence[str],
        cache_dir: str,
        timeout: float | None,
        output: str,
        debug: bool,
    ) -> Settings:
        """From the parsed options (``bin_dirs`` as given; CNI_PATH and the default fill in)."""
        return cls(
            conf_dir=conf_dir,
            bin_dirs=split_bin_dirs(bin_dirs, os.environ.get("CNI_PATH")),
            cache_dir=cache_dir,
            timeout=timeout,
            output=output,
            debug=debug,
        )

    def json_output(self) -> bool:
        return wants_json(self.output)

    def cni_config(self) -> CNIConfig:
        from ..libcni.api import CNIConfig

        env = None
        if self.debug:
            env = dict(os.environ)
            env["PYCNI_DEBUG"] = "1"
        return CNIConfig(self.bin_dirs, self.cache_dir, timeout=self.timeout, env=env)

    def load_network(self, name: str) -> NetworkConfigList:
        from ..libcni.config import load_conf_list
        from ..spec.names import validate_network_name

        validate_network_name(name)
        return load_conf_list(self.conf_dir, name)


@dataclass(frozen=True)
class Attachment:
    """The options naming one attachment (``attachment_options``), as given."""

    ifname: str
    container_id: str | None
    cni_args: str
    cap_args: str

    def runtime_conf(self, netns: str) -> RuntimeConf:
        """The RuntimeConf for the attachment in ``netns``, validated before any plugin runs."""
        from ..libcni.runtime import RuntimeConf
        from ..spec.names import validate_container_id, validate_interface_name

        container_id = self.container_id or container_id_for(netns)
        validate_container_id(container_id)
        ifname = self.ifname or DEFAULT_IFNAME
        validate_interface_name(ifname)
        return RuntimeConf(
            container_id=container_id,
            netns=netns,
            ifname=ifname,
            args=parse_cni_args(self.cni_args or ""),
            capability_args=parse_cap_args(self.cap_args or ""),
        )


def load_attachment(
    settings: Settings, attachment: Attachment, network: str, netns: str, verb: str
) -> tuple[str, RuntimeConf, NetworkConfigList]:
    """The netns path, RuntimeConf and network of an add/check/del call, all validated
    before any plugin runs."""
    path = resolve_netns(netns)
    rt = attachment.runtime_conf(path)
    net = settings.load_network(network)
    if verb == "DEL" and not rt.capability_args:
        # as GC does: the capability args of the ADD (portmap needs its mappings to find
        # and remove its rules; the Go one does nothing without them)
        from ..libcni.cache import ResultCache

        try:
            cached = ResultCache(settings.cache_dir).load(net.name, rt.container_id, rt.ifname)
        except CNIError:  # a corrupt entry: DEL reports it and goes on without it
            cached = None
        if cached is not None and cached.capability_args:
            rt.capability_args = dict(cached.capability_args)
    return path, rt, net
