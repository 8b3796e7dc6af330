"""Every installed plugin launcher fed malformed stdin and a broken environment.

Whatever the input, a plugin must answer in the protocol's terms: a failure exits
non-zero and prints a CNI error object (an integer ``code`` and a ``msg``) on stdout, and
no Python traceback ever reaches stderr. Inputs that no plugin may accept must fail.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cnitool import launchers

pytestmark = pytest.mark.root

VERBS = ("ADD", "DEL", "CHECK")
TRACEBACK = "Traceback (most recent call last)"

# plugins whose configuration names an IPAM plugin (or is the IPAM plugin itself)
USES_IPAM = {"bridge", "ptp", "host-local", "macvlan", "ipvlan", "vlan"}
# plugins whose ADD and CHECK work inside CNI_NETNS
ENTERS_NETNS = {"bridge", "ptp", "loopback", "macvlan", "ipvlan", "vlan", "tuning"}


@pytest.fixture(scope="module")
def plugin_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bindir = tmp_path_factory.mktemp("bin")
    actions = launchers.install(str(bindir))
    installed = [a.name for a in actions if a.kind == "launcher" and a.action == "installed"]
    assert sorted(installed) == sorted(PLUGINS), actions
    return bindir


def _installed() -> list[str]:
    return [n for n, pkg in launchers.PLUGINS.items() if launchers.package_available(pkg)]


PLUGINS = _installed()


def _base_config(plugin: str, tmp: Path) -> dict[str, Any]:
    """A configuration the plugin would accept, to be spoiled one key at a time."""
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "badnet", "type": plugin}
    ipam = {
        "type": "host-local",
        "subnet": "10.99.0.0/24",
        "dataDir": str(tmp / "ipam"),
    }
    if plugin in USES_IPAM:
        conf["ipam"] = ipam
    if plugin == "dhcp":  # no daemon listens there: ADD fails, DEL has nothing to release
        conf["ipam"] = {"type": "dhcp", "daemonSocketPath": str(tmp / "dhcp.sock")}
    if plugin == "bridge":
        conf["bridge"] = "cnibad0"
    if plugin == "flannel":
        conf["subnetFile"] = str(tmp / "subnet.env")
        conf["dataDir"] = str(tmp / "flannel")
    if plugin in ("macvlan", "ipvlan", "vlan"):
        conf["master"] = "lo"
    if plugin == "tuning":  # a chained plugin: without a prevResult it never reaches the netns
        conf["dataDir"] = str(tmp / "tuning")
        conf["sysctl"] = {"net.ipv4.conf.IFNAME.arp_filter": "1"}
        conf["prevResult"] = {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
            "ips": [{"interface": 0, "address": "10.99.0.2/24"}],
        }
    return conf


def _spoil(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def apply(conf: dict[str, Any]) -> Any:
        conf[key] = value
        return conf

    return apply


def _nested(depth: int) -> Any:
    obj: Any = 1
    for _ in range(depth):
        obj = [obj]
    return obj


# name -> (stdin builder (bytes, or a function of the base config), who must fail,
#          the CNI code a failure must carry: one for every verb, per verb, or None)
ALL = "all"
VERSION_UNPARSABLE = {"ADD": 1, "DEL": 1, "CHECK": 6}  # CHECK's 0.4.0 gate parses it first
Code = int | dict[str, int] | None
STDIN_CASES: dict[str, tuple[bytes | Callable[[dict[str, Any]], Any], str, Code]] = {
    "empty": (b"", ALL, 6),
    "not-json": (b"this is not json", ALL, 6),
    "truncated": (b'{"cniVersion": "1.0.0", "name": "x"', ALL, 6),
    "array": (b'[{"name": "badnet"}]', ALL, 6),
    "string": (b'"badnet"', ALL, 6),
    "number": (b"42", ALL, 6),
    "invalid-utf8": (b'{"name": "\xff\xfe", "cniVersion": "1.0.0"}', ALL, 6),
    "name-int": (_spoil("name", 5), ALL, 6),
    "name-list": (_spoil("name", ["a"]), ALL, 6),
    "name-path": (_spoil("name", "../etc"), ALL, 7),
    "name-lone-surrogate": (b'{"cniVersion": "1.0.0", "name": "n\\ud800"}', ALL, 7),
    "name-missing": (lambda c: {k: v for k, v in c.items() if k != "name"}, ALL, 7),
    "version-int": (_spoil("cniVersion", 1), ALL, 6),
    "version-junk": (_spoil("cniVersion", "banana"), ALL, VERSION_UNPARSABLE),
    "version-huge": (_spoil("cniVersion", "99999999999999999999.0.0"), ALL, 1),
    "version-float-inf": (lambda c: json.dumps(c).replace('"1.0.0"', "1e999"), ALL, 6),
    "type-int": (_spoil("type", 5), ALL, 999),
    "ipam-string": (_spoil("ipam", "x"), ALL, 999),
    "ipam-list": (_spoil("ipam", ["host-local"]), ALL, 999),
    "ipam-type-int": (_spoil("ipam", {"type": 5}), ALL, 999),
    "prevresult-string": (_spoil("prevResult", "x"), ALL, 999),
    "prevresult-junk": (_spoil("prevResult", {"ips": "x", "interfaces": 7}), "", None),
    "runtimeconfig-string": (_spoil("runtimeConfig", "x"), ALL, 999),
    "args-string": (_spoil("args", "x"), ALL, 999),
    "dns-string": (_spoil("dns", "x"), ALL, 999),
    "mtu-string": (_spoil("mtu", "x"), "", None),
    "mtu-huge": (_spoil("mtu", 10**30), "", None),
    "mtu-negative": (_spoil("mtu", -1), "", None),
    "huge-int": (_spoil("hairpinMode", 10**400), "", None),
    "huge-float": (lambda c: json.dumps(c)[:-1] + ', "mtu": 1e999}', ALL, 6),
    "nan": (lambda c: json.dumps(c)[:-1] + ', "mtu": NaN}', ALL, 6),
    "plugins-junk": (_spoil("plugins", [1, "x", None, {"type": 5}]), "", None),
    "plugins-string": (_spoil("plugins", "x"), "", None),
    "deep-value": (_spoil("deep", _nested(500)), "", None),
    "deep-stdin": (b"[" * 100000 + b"]" * 100000, ALL, 6),
    "deep-object-stdin": (b'{"name": "n", "a": ' * 50000 + b"1" + b"}" * 50000, ALL, 6),
}


def _env(plugin_bin: Path, verb: str, netns: str, **overrides: str | None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": verb,
        "CNI_CONTAINERID": "badinput1",
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(plugin_bin),
    }
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _call(plugin_bin: Path, plugin: str, env: dict[str, str], stdin: bytes) -> tuple[int, str, str]:
    proc = subprocess.run(
        [str(plugin_bin / plugin)],
        input=stdin,
        env=env,
        capture_output=True,
        timeout=60,
    )
    return (
        proc.returncode,
        proc.stdout.decode(),  # a plugin's stdout is UTF-8 JSON, whatever it was fed
        proc.stderr.decode(errors="replace"),
    )


def _check(what: str, rc: int, out: str, err: str, must_fail: bool) -> dict[str, Any] | None:
    """The common assertions; returns the error object when the call failed."""
    assert TRACEBACK not in err, f"{what}: traceback on stderr:\n{err}"
    if must_fail:
        assert rc != 0, f"{what}: accepted (rc 0), stdout {out!r}"
    if rc == 0:
        if out.strip():  # a success prints a result object or nothing
            assert isinstance(json.loads(out), dict), f"{what}: success printed {out!r}"
        return None
    try:
        obj = json.loads(out)
    except ValueError:
        pytest.fail(f"{what}: rc {rc}, stdout is not JSON: {out!r}; stderr {err!r}")
    assert isinstance(obj, dict), f"{what}: error is not an object: {out!r}"
    code = obj.get("code")
    assert isinstance(code, int) and not isinstance(code, bool), f"{what}: bad code in {out!r}"
    assert code > 0, f"{what}: code {code}"
    msg = obj.get("msg")
    assert isinstance(msg, str) and msg, f"{what}: no msg in {out!r}"
    return obj


def _stdin_bytes(case: str, plugin: str, tmp: Path) -> bytes:
    build = STDIN_CASES[case][0]
    if isinstance(build, bytes):
        return build
    out = build(_base_config(plugin, tmp))
    if isinstance(out, str):
        return out.encode()
    return out if isinstance(out, bytes) else json.dumps(out).encode()


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("case", sorted(STDIN_CASES))
@pytest.mark.parametrize("plugin", PLUGINS)
def test_malformed_stdin(
    plugin_bin: Path,
    netns_factory: Callable[[], str],
    tmp_path: Path,
    plugin: str,
    case: str,
    verb: str,
) -> None:
    _, rule, code = STDIN_CASES[case]
    stdin = _stdin_bytes(case, plugin, tmp_path)
    rc, out, err = _call(plugin_bin, plugin, _env(plugin_bin, verb, netns_factory()), stdin)
    must_fail = rule == ALL
    obj = _check(f"{plugin} {verb} {case}", rc, out, err, must_fail)
    if isinstance(code, dict):
        code = code[verb]
    if must_fail and code is not None:
        assert obj is not None and obj["code"] == code, out


# name -> (env overrides, verbs that must fail, expected CNI code or None)
ENV_CASES: dict[str, tuple[dict[str, str | None], tuple[str, ...], int | None]] = {
    "no-containerid": ({"CNI_CONTAINERID": None}, VERBS, 4),
    "no-ifname": ({"CNI_IFNAME": None}, VERBS, 4),
    "no-path": ({"CNI_PATH": None}, VERBS, 4),
    "no-netns": ({"CNI_NETNS": None}, ("ADD", "CHECK"), 4),
    "ifname-path": ({"CNI_IFNAME": "../eth0"}, VERBS, 4),
    "ifname-slash": ({"CNI_IFNAME": "a/b"}, VERBS, 4),
    "ifname-dotdot": ({"CNI_IFNAME": ".."}, VERBS, 4),
    "ifname-long": ({"CNI_IFNAME": "x" * 40}, VERBS, 4),
    "containerid-path": ({"CNI_CONTAINERID": "../../etc/passwd"}, VERBS, 4),
    "containerid-slash": ({"CNI_CONTAINERID": "a/b"}, VERBS, 4),
    "unknown-command": ({"CNI_COMMAND": "FROB"}, VERBS, 4),
    "netns-missing": ({"CNI_NETNS": "/run/netns/does-not-exist"}, (), None),
    "netns-not-a-netns": ({"CNI_NETNS": "/etc/hostname"}, (), None),
    "netns-relative": ({"CNI_NETNS": "relative/ns"}, (), None),
    "args-junk": ({"CNI_ARGS": "a;b=c=d;;="}, (), None),
    # bytes that are not UTF-8 (written here as the surrogates Python reads them as)
    "containerid-not-utf8": ({"CNI_CONTAINERID": "c\udcff"}, VERBS, 4),
    "ifname-not-utf8-long": ({"CNI_IFNAME": "e" * 15 + "\udcff"}, VERBS, 4),
    "ifname-not-utf8": ({"CNI_IFNAME": "e\udcff"}, (), None),
    "netns-not-utf8": ({"CNI_NETNS": "/run/netns/\udcff"}, (), None),
    "args-not-utf8": ({"CNI_ARGS": "IgnoreUnknown=1;K=\udcff"}, (), None),
    "path-not-utf8": ({"CNI_PATH": "/nonexistent/\udcff"}, (), None),
}


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("case", sorted(ENV_CASES))
@pytest.mark.parametrize("plugin", PLUGINS)
def test_bad_environment(
    plugin_bin: Path,
    netns_factory: Callable[[], str],
    tmp_path: Path,
    plugin: str,
    case: str,
    verb: str,
) -> None:
    overrides, fail_verbs, code = ENV_CASES[case]
    stdin = json.dumps(_base_config(plugin, tmp_path)).encode()
    env = _env(plugin_bin, verb, netns_factory(), **overrides)
    must_fail = verb in fail_verbs
    if case.startswith("netns-") and plugin in ENTERS_NETNS and verb in ("ADD", "CHECK"):
        must_fail = True
    rc, out, err = _call(plugin_bin, plugin, env, stdin)
    obj = _check(f"{plugin} {verb} {case}", rc, out, err, must_fail)
    if must_fail and code is not None:
        assert obj is not None and obj["code"] == code, out
    netns = overrides.get("CNI_NETNS")
    if netns and netns.isascii() and plugin in ENTERS_NETNS and verb == "ADD":
        assert obj is not None and netns in obj["msg"], out


@pytest.mark.parametrize("plugin", PLUGINS)
def test_del_with_vanished_netns_succeeds(plugin_bin: Path, tmp_path: Path, plugin: str) -> None:
    """A runtime tears a sandbox down after its namespace is gone: DEL must still work."""
    stdin = json.dumps(_base_config(plugin, tmp_path)).encode()
    env = _env(plugin_bin, "DEL", "/run/netns/does-not-exist")
    rc, out, err = _call(plugin_bin, plugin, env, stdin)
    assert TRACEBACK not in err, err
    assert rc == 0, out


@pytest.mark.parametrize("plugin", PLUGINS)
def test_no_command_prints_about_and_version_ignores_stdin(
    plugin_bin: Path, tmp_path: Path, plugin: str
) -> None:
    env = _env(plugin_bin, "", "/run/netns/does-not-exist", CNI_COMMAND=None)
    rc, out, err = _call(plugin_bin, plugin, env, b"this is not json")
    assert (rc, out) == (0, ""), (out, err)
    assert "CNI protocol versions supported: " in err and TRACEBACK not in err

    env = _env(plugin_bin, "VERSION", "", CNI_CONTAINERID=None, CNI_IFNAME=None)
    rc, out, err = _call(plugin_bin, plugin, env, b"[" * 100000)
    assert rc == 0 and TRACEBACK not in err, (out, err)
    assert "1.0.0" in json.loads(out)["supportedVersions"]
