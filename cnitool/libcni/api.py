"""Run a network configuration list against one attachment (libcni's ``CNIConfig``).

ADD runs the plugins in list order, feeding each the previous result; CHECK and DEL
use the cached final result; GC deletes stale cached attachments and then asks each
plugin to collect garbage; STATUS asks each plugin whether it is ready. What each
plugin receives on stdin is built by ``build_request`` exactly as libcni builds it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ..invoke import exec as _exec
from ..invoke import forked
from ..invoke.exec import PluginExecError, StderrSink, VersionInfo, build_env, write_stderr
from ..invoke.find import find_in_path
from ..spec import jsonfmt, keys, names, results
from ..spec import version as cniversion
from ..spec.errors import CNIError, ErrorList, IncompatibleVersionError, InvalidConfigError
from ..spec.jsonfmt import go_numbers
from ..spec.results import Result
from .cache import CachedAttachment, ResultCache
from .config import NetworkConfigList, PluginConf
from .runtime import RuntimeConf

VERB_OF_COMMAND = {
    "ADD": "add",
    "CHECK": "check",
    "DEL": "delete",
    "STATUS": "status",
    "GC": "gc",
    "VERSION": "version",
}


class PluginExecutor(Protocol):
    """How plugins are found and run (replaceable in tests)."""

    def find(self, plugin_type: str, paths: Sequence[str]) -> str: ...

    def exec(self, plugin_path: str, stdin: bytes, env: Mapping[str, str]) -> bytes: ...

    def version_info(self, plugin_path: str, env: Mapping[str, str]) -> VersionInfo: ...


class SubprocessExecutor:
    """Finds plugins on the search path and runs them as child processes."""

    def __init__(self, *, timeout: float | None = None, stderr: StderrSink = None) -> None:
        self.timeout = timeout
        self.stderr = stderr

    def find(self, plugin_type: str, paths: Sequence[str]) -> str:
        return find_in_path(plugin_type, paths)

    def exec(self, plugin_path: str, stdin: bytes, env: Mapping[str, str]) -> bytes:
        package = forked.package_of(plugin_path)
        if package is not None:  # in a warm cnitool: a fork of it runs our plugin
            return forked.run(
                plugin_path, package, stdin, env, timeout=self.timeout, stderr=self.stderr
            )
        return _exec.exec_plugin(plugin_path, stdin, env, timeout=self.timeout, stderr=self.stderr)

    def version_info(self, plugin_path: str, env: Mapping[str, str]) -> VersionInfo:
        return _exec.get_version_info(
            plugin_path, env=env, timeout=self.timeout, stderr=self.stderr
        )


class PluginErrors(PluginExecError):
    """Several plugins failed in one operation (GC, validation); all are listed."""

    def __init__(self, verb: str, errors: ErrorList) -> None:
        first = errors.errors[0]
        details = first.details if isinstance(first, CNIError) else ""
        msg = first.msg if isinstance(first, CNIError) else str(first)
        super().__init__(msg, details, code=errors.code(), verb=verb)
        self.error_list = errors

    @property
    def errors(self) -> list[Exception]:
        return self.error_list.errors

    def __str__(self) -> str:
        return self.error_list.text()


def _raise_all(verb: str, errors: ErrorList) -> None:
    """One failure as it is; several as one :class:`PluginErrors` listing them all."""
    if len(errors) == 1:
        raise errors.errors[0]
    if errors:
        raise PluginErrors(verb, errors)


def _plugin_name(plugin: PluginConf) -> str:
    name = keys.get(plugin.raw, "name", "")
    return name if isinstance(name, str) else ""


def _wrap(err: CNIError, plugin: PluginConf, verb: str) -> PluginExecError:
    return PluginExecError.wrap(err, plugin=plugin.type, verb=verb, name=_plugin_name(plugin))


class CNIConfig:
    """Plugin search path + result cache: the entry point for list operations."""

    def __init__(
        self,
        paths: Sequence[str],
        cache_dir: str = "/var/lib/cni",
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stderr: StderrSink = None,
        executor: PluginExecutor | None = None,
    ) -> None:
        self.paths = [p for p in paths if p]
        self.cache_dir = cache_dir
        self.timeout = timeout
        self.env = env
        self.stderr = stderr
        self.executor: PluginExecutor = executor or SubprocessExecutor(
            timeout=timeout, stderr=stderr
        )
        self.cache = ResultCache(cache_dir)

    # ------------------------------------------------------------------ building blocks

    def _base_env(self) -> dict[str, str]:
        return dict(os.environ if self.env is None else self.env)

    def _env(self, command: str, rt: RuntimeConf | None) -> dict[str, str]:
        return self.plugin_env(command, rt)

    def plugin_env(
        self, command: str, rt: RuntimeConf | None, *, inherit: bool = True
    ) -> dict[str, str]:
        """The environment a plugin runs with for ``command``: this process's (or the
        configured) environment plus the CNI_* variables; with ``inherit`` False, the
        CNI_* variables alone (what ``--dry-run`` shows)."""
        base = self._base_env() if inherit else {}
        if rt is None:
            return build_env(command, path=os.pathsep.join(self.paths), base=base)
        return build_env(
            command,
            rt.container_id,
            rt.netns,
            rt.ifname,
            rt.cni_args(),
            os.pathsep.join(self.paths),
            base=base,
        )

    def _warn(self, text: str) -> None:
        write_stderr(self.stderr, (text.rstrip("\n") + "\n").encode())

    def build_request(
        self,
        net: NetworkConfigList,
        plugin: PluginConf,
        rt: RuntimeConf | None,
        *,
        prev_result: Result | None = None,
        verb: str = "ADD",
        valid_attachments: Sequence[tuple[str, str]] | None = None,
    ) -> bytes:
        """The stdin bytes ``plugin`` gets for ``verb`` (ADD, CHECK, DEL, STATUS, GC).

        Compact JSON with keys sorted (libcni re-marshals a Go map). ``name`` and
        ``cniVersion`` come from the list; ADD/CHECK/DEL add ``prevResult`` (when there
        is one) and ``runtimeConfig`` = the capability args the plugin declares true;
        a static ``runtimeConfig`` is kept when none apply; ``capabilities`` stays.
        GC adds ``cni.dev/valid-attachments`` (and its legacy twin ``cni.dev/attachments``)
        when a list of valid attachments is given.
        """
        verb = verb.upper()
        obj: dict[str, Any] = dict(plugin.raw)
        obj["name"] = net.name
        obj["cniVersion"] = net.cni_version
        runtime_config: dict[str, Any] = {}
        if verb in ("ADD", "CHECK", "DEL"):
            if prev_result is not None:
                obj["prevResult"] = prev_result
            if rt is not None:
                for cap, enabled in plugin.capabilities.items():
                    if enabled and cap in rt.capability_args:
                        runtime_config[cap] = rt.capability_args[cap]
            if runtime_config:
                obj["runtimeConfig"] = runtime_config
        elif verb == "GC":
            if valid_attachments is not None:
                attachments = [
                    {"containerID": cid, "ifname": ifname} for cid, ifname in valid_attachments
                ]
                obj["cni.dev/valid-attachments"] = attachments
                obj["cni.dev/attachments"] = attachments
        elif verb not in ("STATUS",):
            raise CNIError(f"cannot build a request for unknown verb {verb!r}")
        # libcni re-marshals through a map: everything sorted, except that a prevResult
        # keeps the result's own field order unless runtimeConfig forced a second pass
        ordered: dict[str, Any] = {}
        for key in sorted(obj):
            if key == "prevResult" and not runtime_config:
                ordered[key] = obj[key]
            else:
                ordered[key] = go_numbers(obj[key], sort_keys=True)
        return jsonfmt.dumps_compact(ordered).encode()

    def find_plugin(self, plugin: PluginConf, verb: str) -> str:
        """The executable of ``plugin`` on the search path; a missing one is reported as
        that plugin's failure of ``verb``."""
        try:
            return self.executor.find(plugin.type, self.paths)
        except CNIError as exc:
            raise _wrap(exc, plugin, verb) from None

    def find_plugins(self, net: NetworkConfigList, verb: str) -> list[str]:
        """Every plugin of the list, found before any runs: a missing one fails cleanly,
        with nothing to undo."""
        return [self.find_plugin(plugin, verb) for plugin in net.plugins]

    def version_info_at(self, plugin_path: str) -> VersionInfo:
        """The VERSION answer of the executable at ``plugin_path``."""
        return self.executor.version_info(plugin_path, self._base_env())

    def _run(
        self,
        net: NetworkConfigList,
        plugin: PluginConf,
        rt: RuntimeConf | None,
        command: str,
        prev_result: Result | None = None,
        valid_attachments: Sequence[tuple[str, str]] | None = None,
    ) -> bytes:
        verb = VERB_OF_COMMAND[command]
        path = self.find_plugin(plugin, verb)
        stdin = self.build_request(
            net,
            plugin,
            rt,
            prev_result=prev_result,
            verb=command,
            valid_attachments=valid_attachments,
        )
        env = self._env(command, rt)
        try:
            return self.executor.exec(path, stdin, env)
        except CNIError as exc:
            raise _wrap(exc, plugin, verb) from None

    @staticmethod
    def _validate_names(net: NetworkConfigList, rt: RuntimeConf) -> None:
        names.validate_container_id(rt.container_id)
        names.validate_network_name(net.name)
        names.validate_interface_name(rt.ifname)

    # ------------------------------------------------------------------ cache access

    def get_cached_result(self, net: NetworkConfigList, rt: RuntimeConf) -> Result | None:
        """The cached final ADD result converted to the list's version (None if none)."""
        self._validate_names(net, rt)
        cached = self.cache.load(net.name, rt.container_id, rt.ifname)
        if cached is None or cached.result is None:
            return None
        return results.convert(cached.result, net.cni_version)

    def cached_attachments(self, container_id: str = "") -> list[CachedAttachment]:
        return self.cache.attachments(container_id)

    # ------------------------------------------------------------------ list operations

    def add_network_list(self, net: NetworkConfigList, rt: RuntimeConf) -> Result | None:
        """ADD every plugin in order, chaining results; cache and return the final one.

        Stops at the first failure (``PluginExecError``); undoing what earlier plugins
        did is the caller's job (call ``del_network_list``).
        """
        self._validate_names(net, rt)
        self._validate_version(net)
        result: Result | None = None
        for plugin in net.plugins:
            out = self._run(net, plugin, rt, "ADD", prev_result=result)
            try:
                result = results.parse_result(out, net.cni_version)
            except CNIError as exc:
                raise _wrap(exc, plugin, "add") from None
        try:
            self.cache.save(net, rt, result if result is not None else {})
        except CNIError as exc:
            raise CNIError(
                f'failed to set network "{net.name}" cached result: {exc}', code=exc.code
            ) from None
        return result

    def check_network_list(self, net: NetworkConfigList, rt: RuntimeConf) -> None:
        """CHECK every plugin in order against the cached result (spec >= 0.4.0)."""
        if not cniversion.gte(net.cni_version, "0.4.0"):
            raise IncompatibleVersionError(
                f'configuration version "{net.cni_version}" does not support the CHECK command'
            )
        if net.disable_check:
            return
        self._validate_names(net, rt)
        try:
            cached = self.get_cached_result(net, rt)
        except CNIError as exc:
            raise CNIError(
                f'failed to get network "{net.name}" cached result: {exc}', code=exc.code
            ) from None
        for plugin in net.plugins:
            self._run(net, plugin, rt, "CHECK", prev_result=cached)

    def del_network_list(self, net: NetworkConfigList, rt: RuntimeConf) -> None:
        """DEL every plugin in reverse order; drop the cache entry once all succeeded.

        From 0.4.0 on each plugin gets the cached result as ``prevResult``; an unreadable
        cache entry is reported on stderr and DEL goes on without it. Works with no cache
        entry at all (after a failed ADD, or a second DEL).
        """
        self._validate_names(net, rt)
        cached = self._cached_for_del(net, rt)
        for plugin in reversed(net.plugins):
            self._run(net, plugin, rt, "DEL", prev_result=cached)
        self.cache.delete(net.name, rt.container_id, rt.ifname)

    def rollback_add(self, net: NetworkConfigList, rt: RuntimeConf) -> ErrorList:
        """Undo a failed or interrupted ADD: DEL every plugin in reverse order, going on
        past failures (one plugin refusing DEL must not leave the others' interfaces and
        leases behind); the cache entry, if any, goes once every DEL succeeded. Returns
        the failures, empty when the chain is gone."""
        errors = ErrorList()
        try:
            self._validate_names(net, rt)
        except CNIError as exc:
            errors.add(exc)
            return errors
        cached = self._cached_for_del(net, rt)
        for plugin in reversed(net.plugins):
            errors.run(self._run, net, plugin, rt, "DEL", prev_result=cached)
        if not errors:
            errors.run(self.cache.delete, net.name, rt.container_id, rt.ifname)
        return errors

    @staticmethod
    def _validate_version(net: NetworkConfigList) -> None:
        """An ADD needs a list version it can compare: with any other, the attachment it
        made could not be deleted or checked through the same list."""
        try:
            cniversion.parse(cniversion.normalize(net.cni_version))
        except CNIError as exc:
            raise InvalidConfigError(
                f'network "{net.name}": invalid cniVersion "{net.cni_version}": {exc}'
            ) from None

    def _cached_for_del(self, net: NetworkConfigList, rt: RuntimeConf) -> Result | None:
        """The cached result a DEL passes on (0.4.0 on); an unreadable one, or a list
        version that cannot be compared, is reported on stderr and DEL goes on without it
        (a DEL must work with what the ADD was given)."""
        try:
            if not cniversion.gte(net.cni_version, "0.4.0"):
                return None
        except CNIError as exc:
            self._warn(f"warning: DEL without the cached result: {exc}")
            return None
        try:
            return self.get_cached_result(net, rt)
        except CNIError as exc:
            path = self.cache.file_path(net.name, rt.container_id, rt.ifname)
            self._warn(f"warning: ignoring unreadable cached result {path}: {exc}")
            return None

    def get_status_network_list(self, net: NetworkConfigList) -> None:
        """STATUS every plugin in order (spec >= 1.1.0); the first error is raised."""
        if not cniversion.gte(net.cni_version, "1.1.0"):
            return
        for plugin in net.plugins:
            self._run(net, plugin, None, "STATUS")

    def gc_network_list(
        self,
        net: NetworkConfigList,
        valid_attachments: Sequence[tuple[str, str]] | None,
        step: Callable[[str], None] | None = None,
    ) -> None:
        """Remove stale attachments of this network, then GC each plugin (spec >= 1.1.0).

        Every cached attachment of the network not in ``valid_attachments`` (all of them
        when it is None) gets a full DEL with its cached netns, args and capability
        args. Failures do not stop the rest; one error lists them all. ``step`` is told
        each attachment (``<container ID> <ifname>``) before its DEL, then ``GC``.
        """
        if net.disable_gc:
            return
        errors = ErrorList()
        valid = {(cid, ifname) for cid, ifname in (valid_attachments or ())}
        try:
            attachments = self.cache.attachments("")
        except CNIError as exc:
            self._warn(f"warning: not deleting stale attachments: {exc}")
            attachments = []
        for att in attachments:
            if att.network != net.name or (att.container_id, att.ifname) in valid:
                continue
            if step is not None:
                step(f"{att.container_id} {att.ifname}")
            rt = RuntimeConf(
                container_id=att.container_id,
                netns=att.netns,
                ifname=att.ifname,
                args=list(att.cni_args),
                capability_args=dict(att.capability_args),
            )
            try:
                self.del_network_list(net, rt)
            except CNIError as exc:
                errors.add(
                    PluginExecError(
                        f"failed to delete stale attachment {att.container_id} {att.ifname}: {exc}",
                        code=exc.code,
                    )
                )
        if cniversion.gte(net.cni_version, "1.1.0"):
            if step is not None:
                step("GC")
            for plugin in net.plugins:
                try:
                    self._run(net, plugin, None, "GC", valid_attachments=valid_attachments)
                except CNIError as exc:
                    errors.add(exc)
        _raise_all("gc", errors)

    # ------------------------------------------------------------------ versions

    def get_version_info(self, plugin_type: str) -> VersionInfo:
        """The VERSION answer of the plugin ``plugin_type`` on the search path."""
        return self.version_info_at(self.executor.find(plugin_type, self.paths))

    def validate_network_list(self, net: NetworkConfigList) -> list[str]:
        """Check every plugin supports the list's version; return the enabled capabilities.

        All plugins are asked; one error lists every plugin that failed.
        """
        wanted = cniversion.normalize(net.cni_version)
        errors = ErrorList()
        caps: set[str] = set()
        for plugin in net.plugins:
            try:
                info = self.get_version_info(plugin.type)
                if wanted not in info.supported_versions:
                    listed = ", ".join(info.supported_versions)
                    raise IncompatibleVersionError(
                        f"plugin {plugin.type} does not support config version "
                        f'"{wanted}" (it supports {listed})'
                    )
            except CNIError as exc:
                errors.add(_wrap(exc, plugin, "version"))
            caps.update(cap for cap, enabled in plugin.capabilities.items() if enabled)
        _raise_all("version", errors)
        return sorted(caps)
