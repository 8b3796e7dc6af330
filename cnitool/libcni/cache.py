"""The result cache: one file per attachment, in the format the Go libcni reads and writes.

``<cache_dir>/results/<network>-<containerID>-<ifname>`` holds compact JSON with the keys
``kind`` (``cniCacheV1``), ``containerId``, ``config`` (base64 of the network list's
bytes), ``ifName``, ``networkName``, ``netns``, ``cniArgs`` (``[[k, v], ...]``),
``capabilityArgs`` and ``result`` (keys sorted at every level, as Go marshals a map);
``netns``, ``cniArgs``, ``capabilityArgs`` and ``result`` are left out when empty. A file
of another kind is an older cache holding just the result. Files are written to a
temporary name and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ..spec import keys, names
from ..spec.errors import IO_FAILURE, DecodingError, IOFailureError
from ..spec.jsonfmt import dumps_compact, go_numbers, loads
from ..spec.results import Result
from .config import NetworkConfigList
from .runtime import RuntimeConf

CACHE_KIND = "cniCacheV1"
DEFAULT_CACHE_DIR = "/var/lib/cni"


class CacheCorruptError(DecodingError):
    """A cache file exists but cannot be used (unreadable, not JSON, wrong shape).

    DEL may choose to carry on without the cached result when it meets this error.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"cache file {path} is corrupt: {problem}")
        self.path = path


class CacheUnreadableError(CacheCorruptError):
    """A cache file that exists but cannot be read (permissions, I/O): not corrupt."""

    code = IO_FAILURE

    def __init__(self, path: str, reason: str) -> None:
        DecodingError.__init__(self, f"cannot read cache file {path}: {reason}")
        self.path = path


@dataclass
class CachedAttachment:
    """One cached attachment (a ``cniCacheV1`` file, or a legacy bare-result file)."""

    container_id: str
    network: str
    ifname: str
    config: bytes
    netns: str
    cni_args: list[tuple[str, str]]
    capability_args: dict[str, Any]
    result: Result | None
    path: str
    legacy: bool = field(default=False)


def encode_entry(
    network: str,
    container_id: str,
    ifname: str,
    config: bytes,
    netns: str = "",
    cni_args: list[tuple[str, str]] | None = None,
    capability_args: dict[str, Any] | None = None,
    result: Result | None = None,
) -> bytes:
    """The bytes of a ``cniCacheV1`` file, spelled exactly as the Go libcni spells them."""
    fields: list[tuple[str, Any, bool]] = [
        ("kind", CACHE_KIND, False),
        ("containerId", container_id, False),
        ("config", base64.b64encode(config).decode("ascii"), False),
        ("ifName", ifname, False),
        ("networkName", network, False),
    ]
    if netns:
        fields.append(("netns", netns, False))
    if cni_args:
        fields.append(("cniArgs", [[k, v] for k, v in cni_args], False))
    if capability_args:
        fields.append(("capabilityArgs", go_numbers(capability_args), True))
    if result:
        fields.append(("result", go_numbers(result), True))
    body = ",".join(
        f"{dumps_compact(key)}:{dumps_compact(value, sort_keys=sort)}"
        for key, value, sort in fields
    )
    return ("{" + body + "}").encode()


def _str_field(obj: dict[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CacheCorruptError(path, f'"{key}" is not a string')
    return value


def decode_entry(
    data: bytes, path: str, network: str = "", container_id: str = "", ifname: str = ""
) -> CachedAttachment:
    """Parse a cache file's bytes; the names fill in what a legacy file does not record."""
    if not data.strip():
        raise CacheCorruptError(path, "the file is empty")
    try:
        obj = loads(data)
    except ValueError as exc:
        raise CacheCorruptError(path, str(exc)) from None
    if not isinstance(obj, dict):
        raise CacheCorruptError(path, "the content is not a JSON object")
    obj = keys.decode(obj, keys.CACHE_ENTRY)  # libcni reads it into a struct
    if obj.get("kind") != CACHE_KIND:
        return CachedAttachment(
            container_id, network, ifname, b"", "", [], {}, obj, path, legacy=True
        )
    raw_config = obj.get("config")
    config = b""
    if raw_config is not None:
        if not isinstance(raw_config, str):
            raise CacheCorruptError(path, '"config" is not a base64 string')
        try:
            config = base64.b64decode(raw_config.replace("\r", "").replace("\n", ""), validate=True)
        except binascii.Error as exc:
            raise CacheCorruptError(path, f'"config" is not valid base64: {exc}') from None
    cni_args: list[tuple[str, str]] = []
    raw_args = obj.get("cniArgs")
    if raw_args is not None:
        if not isinstance(raw_args, list):
            raise CacheCorruptError(path, '"cniArgs" is not a list of [key, value] pairs')
        for pair in raw_args:
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not all(isinstance(p, str) for p in pair)
            ):
                raise CacheCorruptError(path, '"cniArgs" is not a list of [key, value] pairs')
            cni_args.append((pair[0], pair[1]))
    caps = obj.get("capabilityArgs")
    if caps is not None and not isinstance(caps, dict):
        raise CacheCorruptError(path, '"capabilityArgs" is not an object')
    result = obj.get("result")
    if result is not None and not isinstance(result, dict):
        raise CacheCorruptError(path, '"result" is not an object')
    return CachedAttachment(
        container_id=_str_field(obj, "containerId", path) or container_id,
        network=_str_field(obj, "networkName", path) or network,
        ifname=_str_field(obj, "ifName", path) or ifname,
        config=config,
        netns=_str_field(obj, "netns", path),
        cni_args=cni_args,
        capability_args=caps or {},
        result=result or None,
        path=path,
    )


class ResultCache:
    """Cached results and runtime inputs of attachments, under ``<cache_dir>/results``."""

    def __init__(self, cache_dir: str = DEFAULT_CACHE_DIR) -> None:
        self.cache_dir = cache_dir
        self.results_dir = os.path.join(cache_dir, "results")

    def file_path(self, network: str, container_id: str, ifname: str) -> str:
        """The cache file of one attachment; the names are validated first, so none of
        them can point outside the results directory."""
        names.validate_network_name(network)
        names.validate_container_id(container_id)
        names.validate_interface_name(ifname)
        return os.path.join(self.results_dir, f"{network}-{container_id}-{ifname}")

    def save(self, network: NetworkConfigList, rt: RuntimeConf, result: Result) -> None:
        """Record a successful ADD (atomically: temporary file, then rename)."""
        path = self.file_path(network.name, rt.container_id, rt.ifname)
        data = encode_entry(
            network.name,
            rt.container_id,
            rt.ifname,
            network.raw_bytes,
            rt.netns,
            list(rt.args),
            dict(rt.capability_args),
            result,
        )
        try:
            # like Go's MkdirAll(dir, 0700): every directory created gets the mode
            os.makedirs(self.cache_dir, mode=0o700, exist_ok=True)
            os.makedirs(self.results_dir, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=self.results_dir)
        except OSError as exc:
            raise IOFailureError(
                f"failed to create cache directory {self.results_dir}: {exc.strerror or exc}"
            ) from None
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise IOFailureError(
                f"failed to write cache file {path}: {exc.strerror or exc}"
            ) from None

    def load(self, network: str, container_id: str, ifname: str) -> CachedAttachment | None:
        """The cached attachment, or None when there is no cache file.

        Raises ``CacheCorruptError`` for a file that exists but cannot be used.
        """
        path = self.file_path(network, container_id, ifname)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise CacheUnreadableError(path, str(exc.strerror or exc)) from None
        return decode_entry(data, path, network, container_id, ifname)

    def delete(self, network: str, container_id: str, ifname: str) -> None:
        """Remove the cache file; removing a missing file is not an error (nor is a
        cache dir that is not a directory: no file can be below it). On a read-only file
        system unlink fails with EROFS before it looks the name up, so a missing file is
        checked for then: a DEL with nothing cached must succeed there too."""
        path = self.file_path(network, container_id, ifname)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:
            if exc.errno == errno.EROFS and not os.path.lexists(path):
                return
            raise IOFailureError(
                f"failed to remove cache file {path}: {exc.strerror or exc}"
            ) from None

    def attachments(self, container_id: str = "") -> list[CachedAttachment]:
        """Every readable ``cniCacheV1`` attachment, sorted by file name, optionally only
        those of one container. Unusable files are skipped, as the reference does."""
        try:
            file_names = sorted(os.listdir(self.results_dir), key=os.fsencode)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise IOFailureError(
                f"failed to list cache directory {self.results_dir}: {exc.strerror or exc}"
            ) from None
        part = f"-{container_id}-"
        found = []
        for name in file_names:
            if name.startswith("."):  # our own temporary files
                continue
            if container_id:
                pos = name.find(part)
                if pos <= 0 or pos + len(part) >= len(name):
                    continue
            path = os.path.join(self.results_dir, name)
            try:
                with open(path, "rb") as f:
                    entry = decode_entry(f.read(), path)
            except (OSError, CacheCorruptError):
                continue
            if entry.legacy or not entry.ifname or not entry.network:
                continue
            if container_id and entry.container_id != container_id:
                continue
            found.append(entry)
        return found
