"""flannel ADD/DEL: build the delegate config, keep it in a scratch file, delegate."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from cnitool import skel
from cnitool.spec.errors import CNIError, InvalidConfigError
from cnitool.spec.jsonfmt import dumps_compact

from .._lib import statefile
from .._lib.netconf import typed

if TYPE_CHECKING:
    from .subnet_env import SubnetEnv

# ipaddress, subnet_env and cnitool.invoke are imported where needed: a DEL without a
# scratch file (every repeated DEL) needs none of them

DEFAULT_SUBNET_FILE = "/run/flannel/subnet.env"
DEFAULT_DATA_DIR = "/var/lib/cni/flannel"


def _str_key(conf: dict[str, Any], key: str, default: str) -> str:
    return str(typed(conf, key, str, "", error=InvalidConfigError)) or default


def _obj_key(conf: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = typed(conf, key, dict, None, error=InvalidConfigError)
    return None if value is None else dict(value)


def _routes(ipam: dict[str, Any]) -> list[dict[str, Any]]:
    import ipaddress

    raw = ipam.get("routes")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidConfigError(
            f"failed to assemble Delegate IPAM: failed to read IPAM routes: ipam.routes must be a list, got {raw!r}"
        )
    out: list[dict[str, Any]] = []
    for i, r in enumerate(raw):
        try:
            if not isinstance(r, dict):
                raise ValueError(f"not an object: {r!r}")
            route: dict[str, Any] = {"dst": str(ipaddress.ip_interface(str(r.get("dst", ""))))}
            if r.get("gw"):
                route["gw"] = str(ipaddress.ip_address(str(r["gw"])))
            for k in ("mtu", "advmss", "priority", "table", "scope"):
                if r.get(k):
                    route[k] = r[k]
        except ValueError as e:
            raise InvalidConfigError(
                f"failed to assemble Delegate IPAM: failed to read IPAM routes: ipam.routes[{i}]: {e}"
            ) from None
        out.append(route)
    return out


def delegate_ipam(ipam_in: dict[str, Any] | None, env: SubnetEnv) -> dict[str, Any]:
    ipam = dict(ipam_in or {})
    ipam.setdefault("type", "host-local")
    ranges: list[list[dict[str, str]]] = []
    if env.subnet is not None:
        ranges.append([{"subnet": str(env.subnet)}])
    if env.ip6_subnet is not None:
        ranges.append([{"subnet": str(env.ip6_subnet)}])
    ipam["ranges"] = ranges
    routes = _routes(ipam)
    routes += [{"dst": str(n)} for n in env.networks]
    routes += [{"dst": str(n)} for n in env.ip6_networks]
    ipam["routes"] = routes
    return ipam


def build_delegate(conf: dict[str, Any], env: SubnetEnv) -> dict[str, Any]:
    """The delegate's network config, following the reference rules."""
    delegate = _obj_key(conf, "delegate")
    if delegate is None:
        delegate = {}
    else:
        if "type" in delegate and not isinstance(delegate["type"], str):
            raise InvalidConfigError(
                "'delegate' dictionary, if present, must have (string) 'type' field"
            )
        if "name" in delegate:
            raise InvalidConfigError(
                "'delegate' dictionary must not have 'name' field, it'll be set by flannel"
            )
        if "ipam" in delegate:
            raise InvalidConfigError(
                "'delegate' dictionary must not have 'ipam' field, it'll be set by flannel"
            )
    if conf.get("runtimeConfig") is not None:
        delegate["runtimeConfig"] = conf["runtimeConfig"]
    delegate["name"] = conf.get("name", "")
    delegate.setdefault("type", "bridge")
    delegate.setdefault("ipMasq", not env.ipmasq)
    delegate.setdefault("mtu", env.mtu)
    if delegate["type"] == "bridge":
        delegate.setdefault("isGateway", True)
    if conf.get("cniVersion"):
        delegate["cniVersion"] = conf["cniVersion"]
    delegate["ipam"] = delegate_ipam(_obj_key(conf, "ipam"), env)
    return delegate


def scratch_path(data_dir: str, container_id: str) -> str:
    return os.path.join(data_dir, container_id)


def save_scratch(data_dir: str, container_id: str, data: bytes) -> None:
    """Write the delegate config whole (a later DEL needs all of it, or nothing)."""
    path = scratch_path(data_dir, container_id)
    try:
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
    except OSError as e:
        raise CNIError(f"failed to write scratch netconf {data_dir}: {e.strerror}") from e
    try:
        statefile.write(path, data)
    except OSError as e:
        raise CNIError(f"failed to write scratch netconf {path}: {e.strerror}") from e


def cmd_add(cmd: skel.CmdArgs) -> dict[str, Any]:
    from cnitool import invoke

    from . import subnet_env

    conf = cmd.config()
    subnet_file = _str_key(conf, "subnetFile", DEFAULT_SUBNET_FILE)
    data_dir = _str_key(conf, "dataDir", DEFAULT_DATA_DIR)
    try:
        env = subnet_env.load(subnet_file)
    except subnet_env.SubnetEnvError as e:
        raise CNIError(
            f"failed to load flannel 'subnet.env' file: {e}. Check the flannel pod log for this node."
        ) from None
    delegate = build_delegate(conf, env)
    data = dumps_compact(delegate, sort_keys=True).encode()
    print(data.decode(), file=cmd.stderr)
    save_scratch(data_dir, cmd.container_id, data)
    try:
        return invoke.delegate_add(str(delegate["type"]), data, cmd.env, cmd.stderr)
    except CNIError as e:
        path = scratch_path(data_dir, cmd.container_id)
        ran = not isinstance(e, invoke.PluginNotFoundError)
        _undo_delegate(cmd, str(delegate["type"]), data, path, ran)
        raise CNIError(f"failed to delegate add: {e}", code=e.code) from e


def _undo_delegate(cmd: skel.CmdArgs, ptype: str, data: bytes, path: str, ran: bool) -> None:
    """After a failed delegate ADD: DEL the delegate with the same config (undoing what it
    made before failing), then remove the scratch file, so a failed ADD leaves nothing.
    When that DEL fails too, the file stays: the runtime's DEL replays it. A delegate
    that could not be found never ran: there is nothing to undo."""
    from cnitool import invoke

    try:
        if ran:
            invoke.delegate_del(ptype, data, cmd.env, cmd.stderr)
    except CNIError as e:
        print(f"delegate DEL after the failed ADD failed, {path} kept: {e}", file=cmd.stderr)
        return
    try:
        statefile.remove(path)
    except OSError as e:
        print(f"cannot remove {path}: {e.strerror}", file=cmd.stderr)


def cmd_check(cmd: skel.CmdArgs) -> None:
    """CHECK: nothing to check, like the reference plugin (its delegate is not asked)."""


def cmd_del(cmd: skel.CmdArgs) -> None:
    conf = cmd.config()
    data_dir = _str_key(conf, "dataDir", DEFAULT_DATA_DIR)
    path = scratch_path(data_dir, cmd.container_id)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        statefile.discard_temp(path)  # a crash may have left it while writing the file
        return  # never added, or already deleted
    except OSError as e:
        raise CNIError(f"failed to read scratch netconf {path}: {e.strerror}") from e
    try:
        obj = json.loads(data)
        ptype = obj.get("type") if isinstance(obj, dict) else None
        if not isinstance(ptype, str) or not ptype:
            raise ValueError('no string "type"')
    except ValueError as e:
        print(f"failed to parse netconf {path}: {e}", file=cmd.stderr)
        statefile.remove(path)
        return
    from cnitool import invoke

    invoke.delegate_del(ptype, data, cmd.env, cmd.stderr)
    statefile.remove(path)
