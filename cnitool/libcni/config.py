"""Finding and parsing network configuration files, with the reference's lookup rules.

A network is looked up by name in a config directory: first every ``*.conflist`` in
byte-wise lexical order (each parsed fully, drop-in plugins included), then the older
single-plugin ``*.conf``/``*.json`` files, which are wrapped into a one-plugin list. The
first file whose ``name`` matches wins; a broken file met before the match stops the
lookup with an error naming that file, as libcni does, so a typo never silently makes an
older file win. ``scan_dir`` reports every candidate file instead of stopping, for
listings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..spec import keys
from ..spec import version as cni_version
from ..spec.errors import CNIError, InvalidConfigError
from ..spec.jsonfmt import dumps_compact, go_numbers, loads, read_bounded, type_name

CONFLIST_EXTENSIONS = (".conflist",)
CONF_EXTENSIONS = (".conf", ".json")
DROPIN_EXTENSIONS = (".conf",)
_BOOL_KEYS = ("disableCheck", "disableGC", "loadOnlyInlinedPlugins")


class ConfigError(InvalidConfigError):
    """A network configuration that cannot be used; the message names file and problem."""


class NoConfigsFoundError(ConfigError):
    """The directory holds no configuration file at all."""

    def __init__(self, directory: str) -> None:
        super().__init__(f"no net configurations found in {directory}")
        self.directory = directory


class NetworkNotFoundError(ConfigError):
    """No configuration file in the directory has the requested network name."""

    def __init__(self, directory: str, name: str) -> None:
        super().__init__(f'no net configuration with name "{name}" in {directory}')
        self.directory = directory
        self.name = name


@dataclass
class PluginConf:
    """One plugin object of a list: its ``type``, the object as written, its capabilities."""

    type: str
    raw: dict[str, Any]
    capabilities: dict[str, bool]
    source: str | None


@dataclass
class NetworkConfigList:
    """A parsed network configuration list.

    ``cni_version`` is the version in effect (the highest usable entry of
    ``cniVersions`` when that key is present); ``cni_versions`` lists that key's
    entries as written. ``raw_bytes`` are the list's bytes as loaded: what the result
    cache stores and what a runtime would hash.
    """

    name: str
    cni_version: str
    cni_versions: list[str]
    disable_check: bool
    disable_gc: bool
    load_only_inlined_plugins: bool
    plugins: list[PluginConf]
    raw_bytes: bytes
    path: str | None


@dataclass
class ConfEntry:
    """One candidate file of a config directory, as ``scan_dir`` saw it."""

    path: str
    kind: str  # "conflist" or "conf"
    network: NetworkConfigList | None
    error: str | None
    shadowed_by: str | None = None
    # an earlier broken file that makes a by-name lookup fail before reaching this one
    blocked_by: str | None = None


# ---------------------------------------------------------------------------- helpers


def _where(path: str | None) -> str:
    return f"{path}: " if path else ""


def _show(value: Any) -> str:
    """A value for an error message: its JSON type and (shortened) JSON text."""
    if value is None:
        return "null"
    text = dumps_compact(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type_name(value)} {text}"


def _parse_json(data: bytes, path: str | None, what: str) -> Any:
    try:
        return loads(data)
    except ValueError as exc:  # JSONDecodeError (line/column), bad UTF-8, too deep
        raise ConfigError(f"{_where(path)}error parsing {what}: {exc}") from None


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return read_bounded(f, "the file")
    except OSError as exc:
        raise ConfigError(f"error reading {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # more than MAX_JSON_BYTES: refused before it is parsed
        raise ConfigError(f"error reading {path}: {exc}") from None


def conf_files(directory: str, extensions: Sequence[str]) -> list[str]:
    """Files directly in ``directory`` whose last extension is one of ``extensions``.

    Directories are skipped (symlinks to files count), ``x.conflist.bak`` does not match
    ``.conflist``, and a missing directory gives an empty list. Sorted byte-wise.
    """
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise ConfigError(f"error reading {directory}: {exc.strerror or exc}") from None
    found = []
    for entry in entries:
        try:
            if entry.is_dir():
                continue
        except OSError:
            continue
        if os.path.splitext(entry.name)[1] in extensions:
            found.append(os.path.join(directory, entry.name))
    return sorted(found, key=os.fsencode)


# ---------------------------------------------------------------------------- plugins


def _plugin_from_obj(obj: Any, where: str, source: str | None) -> PluginConf:
    """Validate one plugin object; ``where`` prefixes error messages."""
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}a plugin configuration must be a JSON object, got {_show(obj)}")
    raw = obj
    # the fields libcni decodes into its NetConf struct, so matched as Go matches them
    # (``"Type"`` names the plugin too); the plugin gets the object as written
    obj = keys.decode(raw, keys.NETCONF)
    for key in ("name", "cniVersion"):
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f'{where}"{key}" must be a string, got {_show(value)}')
    ptype = obj.get("type")
    if ptype is None or ptype == "":
        raise ConfigError(f"{where}missing 'type'")
    if not isinstance(ptype, str):
        raise ConfigError(f'{where}"type" must be a string, got {_show(ptype)}')
    if "/" in ptype:
        raise ConfigError(
            f'{where}invalid plugin type "{ptype}": a type is a file name in CNI_PATH '
            "and must not contain '/'"
        )
    caps_raw = obj.get("capabilities")
    capabilities: dict[str, bool] = {}
    if caps_raw is not None:
        if not isinstance(caps_raw, dict):
            raise ConfigError(
                f'{where}"capabilities" must be an object of booleans, got {_show(caps_raw)}'
            )
        for cap, enabled in caps_raw.items():
            if enabled is None:
                continue
            if not isinstance(enabled, bool):
                raise ConfigError(
                    f'{where}capability "{cap}" must be true or false, got {_show(enabled)}'
                )
            capabilities[cap] = enabled
    ipam = obj.get("ipam")
    if ipam is not None:
        if not isinstance(ipam, dict):
            raise ConfigError(f'{where}"ipam" must be an object, got {_show(ipam)}')
        itype = ipam.get("type")
        if itype is not None and not isinstance(itype, str):
            raise ConfigError(f'{where}"ipam"."type" must be a string, got {_show(itype)}')
    dns = obj.get("dns")
    if dns is not None:
        if not isinstance(dns, dict):
            raise ConfigError(f'{where}"dns" must be an object, got {_show(dns)}')
        for key in ("nameservers", "search", "options"):
            items = dns.get(key)
            if items is not None and (
                not isinstance(items, list) or not all(isinstance(i, str) for i in items)
            ):
                raise ConfigError(
                    f'{where}"dns"."{key}" must be a list of strings, got {_show(items)}'
                )
        domain = dns.get("domain")
        if domain is not None and not isinstance(domain, str):
            raise ConfigError(f'{where}"dns"."domain" must be a string, got {_show(domain)}')
    return PluginConf(type=ptype, raw=raw, capabilities=capabilities, source=source)


def conf_from_bytes(data: bytes, path: str | None = None) -> PluginConf:
    """Parse a single plugin object (a ``.conf``/``.json`` file or a drop-in file)."""
    obj = _parse_json(data, path, "configuration")
    return _plugin_from_obj(obj, _where(path), path)


def conf_from_file(path: str) -> PluginConf:
    return conf_from_bytes(_read(path), path)


def _dropin_plugins(conf_dir: str, name: str, path: str | None) -> list[PluginConf]:
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise ConfigError(
            f"{_where(path)}network name {dumps_compact(name)} cannot name a drop-in plugin "
            'directory; set "loadOnlyInlinedPlugins": true or fix the name'
        )
    return [conf_from_file(f) for f in conf_files(os.path.join(conf_dir, name), DROPIN_EXTENSIONS)]


# ---------------------------------------------------------------------------- lists


def _read_bool(raw: dict[str, Any], key: str, where: str) -> bool:
    value = raw.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.lower()
        if low == "true":
            return True
        if low == "false":
            return False
    raise ConfigError(
        f'{where}"{key}" must be a boolean (or the string "true"/"false"), got {_show(value)}'
    )


def _effective_version(raw: dict[str, Any], version: str, where: str) -> tuple[str, list[str]]:
    """Apply ``cniVersions``: the highest entry this library supports, with ``cniVersion``."""
    if "cniVersions" not in raw:
        return version, []
    listed = raw["cniVersions"]
    if not isinstance(listed, list):
        raise ConfigError(f'{where}"cniVersions" must be a list of strings, got {_show(listed)}')
    usable: list[str] = []
    for i, entry in enumerate(listed):
        if not isinstance(entry, str):
            raise ConfigError(f'{where}"cniVersions"[{i}] must be a string, got {_show(entry)}')
        try:
            if not cni_version.gt(entry, cni_version.CURRENT):
                usable.append(entry)
        except CNIError as exc:
            raise ConfigError(
                f'{where}invalid "cniVersions" entry "{entry}" at index {i}: {exc}'
            ) from None
    if version:
        try:
            if not cni_version.gt(version, cni_version.CURRENT):
                usable.append(version)
        except CNIError as exc:
            raise ConfigError(f'{where}invalid "cniVersion" "{version}": {exc}') from None
    if usable:
        version = max(usable, key=cni_version.parse)
    return version, list(listed)


def conf_list_from_bytes(
    data: bytes, path: str | None = None, conf_dir: str | None = None
) -> NetworkConfigList:
    """Parse a network configuration list.

    With ``conf_dir`` (the directory the list was found in) the drop-in plugins in
    ``<conf_dir>/<name>/*.conf`` are appended unless ``loadOnlyInlinedPlugins`` is set.
    A list that ends up with no plugin is an error.
    """
    where = _where(path)
    raw = _parse_json(data, path, "configuration list")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where}a network configuration list must be a JSON object, got {_show(raw)}"
        )
    if "name" not in raw:
        raise ConfigError(f'{where}missing required key "name"')
    name = raw["name"]
    if not isinstance(name, str):
        raise ConfigError(f'{where}"name" must be a string, got {_show(name)}')
    version = raw.get("cniVersion", "")
    if not isinstance(version, str):
        raise ConfigError(f'{where}"cniVersion" must be a string, got {_show(version)}')
    version, versions = _effective_version(raw, version, where)
    disable_check = _read_bool(raw, "disableCheck", where)
    disable_gc = _read_bool(raw, "disableGC", where)
    only_inlined = _read_bool(raw, "loadOnlyInlinedPlugins", where)

    plugins: list[PluginConf] = []
    if "plugins" in raw:
        listed = raw["plugins"]
        if not isinstance(listed, list):
            raise ConfigError(f'{where}"plugins" must be a list of objects, got {_show(listed)}')
        if not listed:
            raise ConfigError(f'{where}"plugins" is an empty list (no plugins in list)')
        for i, obj in enumerate(listed):
            plugins.append(_plugin_from_obj(obj, f"{where}plugins[{i}]: ", path))
    elif only_inlined:
        raise ConfigError(f'{where}"loadOnlyInlinedPlugins" is true but there is no "plugins" key')

    dropin_dir = None
    if conf_dir is not None and not only_inlined:
        dropin_dir = os.path.join(conf_dir, name)
        plugins.extend(_dropin_plugins(conf_dir, name, path))
    if not plugins:
        hint = f" and no drop-in files {dropin_dir}/*.conf" if dropin_dir else ""
        raise ConfigError(f'{where}no plugin configs found (no "plugins" key{hint})')

    return NetworkConfigList(
        name=name,
        cni_version=version,
        cni_versions=versions,
        disable_check=disable_check,
        disable_gc=disable_gc,
        load_only_inlined_plugins=only_inlined,
        plugins=plugins,
        raw_bytes=bytes(data),
        path=path,
    )


def conf_list_from_file(path: str) -> NetworkConfigList:
    """Parse a ``.conflist`` file, drop-ins from the directory beside it included."""
    return conf_list_from_bytes(_read(path), path, os.path.dirname(path) or ".")


def conf_list_from_conf(conf: PluginConf, raw_bytes: bytes | None = None) -> NetworkConfigList:
    """Wrap a single-plugin config into a one-plugin list, as libcni upconverts it.

    ``raw_bytes`` are the single config's own bytes (``conf.raw`` is used when absent).
    The list's bytes are ``{"cniVersion","name","plugins":[<object>]}`` marshalled the
    way Go marshals a map (compact, keys sorted), so cache files match the reference.
    """
    obj = conf.raw if raw_bytes is None else _parse_json(raw_bytes, conf.source, "configuration")
    wrapped = {
        "cniVersion": keys.get(obj, "cniVersion") or "",
        "name": keys.get(obj, "name") or "",
        "plugins": [obj],
    }
    data = dumps_compact(go_numbers(wrapped), sort_keys=True).encode()
    net = conf_list_from_bytes(data, conf.source)
    for plugin in net.plugins:
        plugin.source = conf.source
    return net


def _conf_file_as_list(path: str) -> NetworkConfigList:
    """A ``.conf``/``.json`` file wrapped into a one-plugin list."""
    return conf_list_from_conf(conf_from_file(path))


def load_conf_list(directory: str, name: str) -> NetworkConfigList:
    """The network called ``name`` in ``directory`` (see the module docstring for the rules)."""
    lists = conf_files(directory, CONFLIST_EXTENSIONS)
    for path in lists:
        net = conf_list_from_file(path)
        if net.name == name:
            return net
    singles = conf_files(directory, CONF_EXTENSIONS)
    if not singles:
        if lists:
            raise NetworkNotFoundError(directory, name)
        raise NoConfigsFoundError(directory)
    for path in singles:
        conf = conf_from_file(path)
        if (keys.get(conf.raw, "name") or "") == name:
            return conf_list_from_conf(conf)
    raise NetworkNotFoundError(directory, name)


def scan_dir(directory: str) -> list[ConfEntry]:
    """Every candidate file of ``directory`` in lookup order, parsed or with its error.

    A file whose network name was already provided by an earlier file is marked
    ``shadowed_by`` that file: ``load_conf_list`` would never return it. A file after
    a broken one is marked ``blocked_by`` it: a lookup stops at the broken file first
    (a broken ``.conflist`` blocks everything after it, ``.conf``/``.json`` included).
    """
    entries: list[ConfEntry] = []
    owners: dict[str, str] = {}
    broken_list: str | None = None
    broken_single: str | None = None
    candidates = [(p, "conflist") for p in conf_files(directory, CONFLIST_EXTENSIONS)]
    candidates += [(p, "conf") for p in conf_files(directory, CONF_EXTENSIONS)]
    for path, kind in candidates:
        blocked_by = broken_list or broken_single
        try:
            net = conf_list_from_file(path) if kind == "conflist" else _conf_file_as_list(path)
        except CNIError as exc:
            entries.append(ConfEntry(path, kind, None, str(exc), None, blocked_by))
            if kind == "conflist":
                broken_list = broken_list or path
            else:
                broken_single = broken_single or path
            continue
        entries.append(ConfEntry(path, kind, net, None, owners.get(net.name), blocked_by))
        owners.setdefault(net.name, path)
    return entries
