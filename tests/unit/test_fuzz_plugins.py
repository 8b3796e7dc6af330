"""Fuzzing every plugin's input: config keys and values, CNI_* variables, CNI_ARGS and
prevResult, generated from each plugin's own field list (``_lib/shapes``), Go-cased
keys included.

Every case must end as the protocol says: exit 0 with a valid result (ADD) or nothing
else wrong, or exit 1 with exactly one CNI error object on stdout; never a traceback. A
successful ADD is followed by a DEL of the same request, after which nothing may be left
in the plugin's state directories (leases, hints, scratch files, backups, temp files).

State directories, the subnet file and CNI_PATH are always redirected to a temp dir; the
netns paths name nothing, so the plugins stop before touching the kernel. The seed is
fixed (the same cases in every CI run); ``PYCNI_FUZZ_EXAMPLES=5000 pytest -k fuzz`` runs
a longer, freshly randomised campaign by hand (``PYCNI_FUZZ_LOG=file`` also writes every
case and its outcome there). The figures are printed at the end of the run.
"""

from __future__ import annotations

import io
import json
import os
import string
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cnitool_plugins._lib import shapes
from cnitool_plugins.dhcp import config as dhcp_config
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from cnitool import skel
from cnitool.spec import keys, results

EXAMPLES = int(os.environ.get("PYCNI_FUZZ_EXAMPLES", "0") or 0)
RANDOM = EXAMPLES > 0
EXAMPLES = EXAMPLES or 120
SEED = 20261203  # the cases CI runs, the same every time
# plugin -> [cases, exit 0, CNI errors, protocol failures, leaks]
FIGURES: dict[str, Counter[str]] = {}

PLUGINS = {
    "bridge": shapes.BRIDGE,
    "ptp": shapes.PTP,
    "macvlan": shapes.MACVLAN,
    "ipvlan": shapes.IPVLAN,
    "vlan": shapes.VLAN,
    "loopback": keys.NETCONF,
    "host_local": shapes.HOST_LOCAL,
    "portmap": shapes.PORTMAP,
    "tuning": shapes.TUNING,
    "flannel": shapes.FLANNEL,
    "dhcp": dhcp_config.SHAPE,
}
VERBS = ("ADD", "CHECK", "DEL", "STATUS", "GC", "VERSION", "", "BOGUS")
VERSIONS = ("0.1.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", "", "9.9.9", "1.0")
SUBNET_ENV = "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=24)
    | st.sampled_from(["10.1.0.0/24", "10.1.0.5", "fd00::/64", "02:00:00:00:00:01", "eth0"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=16,
)


def sensible(name: str) -> Any:
    """Values a key usually holds, so cases reach past the type checks."""
    table: dict[str, Any] = {
        "mtu": st.integers(-1, 70000),
        "vlan": st.integers(-1, 5000),
        "markMasqBit": st.integers(-1, 40),
        "bcqueuelen": st.integers(-1, 2**33),
        "txQLen": st.integers(-1, 2**33),
        "mode": st.sampled_from(["bridge", "private", "vepa", "passthru", "l2", ""]),
        "bridge": st.sampled_from(["cni0", "br-fuzz", "x" * 16, "a/b", ""]),
        "master": st.sampled_from(["eth0", "nope0", ""]),
        "mac": st.sampled_from(["02:00:00:00:00:01", "0200.0000.0001", "zz", ""]),
        "sysctl": st.dictionaries(
            st.sampled_from(["net.ipv4.conf.IFNAME.arp_notify", "net/../../x", "kernel.x"]),
            st.text(max_size=5),
            max_size=2,
        ),
        "portMappings": st.lists(
            st.fixed_dictionaries(
                {
                    "hostPort": st.integers(-1, 70000),
                    "containerPort": st.integers(-1, 70000),
                    "protocol": st.sampled_from(["tcp", "udp", "sctp", "icmp"]),
                }
            ),
            max_size=3,
        ),
    }
    return table.get(name, st.nothing())


def value_for(name: str, field: keys.Kind) -> Any:
    if isinstance(field, keys.Shape):
        return st.one_of(config_of(field), json_values)
    return st.one_of(sensible(name), json_values)


def config_of(shape: keys.Shape, most: int = 0) -> Any:
    """Objects with any subset of the shape's fields (at most ``most``, when given; some
    Go-cased) plus stray keys."""
    names = sorted(shape.fields)

    @st.composite
    def build(draw: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        size = most or len(names)
        for name in draw(st.lists(st.sampled_from(names), max_size=size, unique=True)):
            key = name if draw(st.booleans()) else name[:1].upper() + name[1:]
            out[key] = draw(value_for(name, shape.fields[name]))
        out.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
        return out

    return build()


# valid requests that random changes start from, so that cases also get past the checks
PREV_OK = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "sandbox": "/nonexistent/netns"}],
    "ips": [{"address": "10.1.0.5/24", "interface": 0, "gateway": "10.1.0.1"}],
}
BASES: dict[str, dict[str, Any]] = {
    "host_local": {
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.1.0.0/28"}], [{"subnet": "fd00::/120"}]],
            "routes": [{"dst": "0.0.0.0/0"}],
        }
    },
    "portmap": {
        "capabilities": {"portMappings": True},
        "prevResult": PREV_OK,
        "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80}]},
    },
    "tuning": {"prevResult": PREV_OK, "mtu": 1400},
    "bridge": {"ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}},
    "ptp": {"ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}},
    "macvlan": {"master": "eth0", "ipam": {}},
    "ipvlan": {"master": "eth0", "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}},
    "vlan": {
        "master": "eth0",
        "vlanId": 5,
        "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"},
    },
    "loopback": {},
    "flannel": {},
    "dhcp": {"ipam": {"type": "dhcp", "request": [{"option": "host-name"}]}},
}


def overlay(base: Any, changes: Any) -> Any:
    """``base`` with ``changes`` merged in, objects key by key."""
    if not (isinstance(base, dict) and isinstance(changes, dict)):
        return changes
    out = dict(base)
    for key, value in changes.items():
        out[key] = overlay(base.get(key), value) if key in base else value
    return out


def pin_dhcp_socket(conf: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """Point the dhcp plugin's daemon socket at ``tmp``, where nothing listens (one
    ``ipam`` key is kept; a non-object one stays as it is)."""
    found = [k for k in conf if keys.fold(k) == "ipam"]
    if not found:
        return conf
    ipam = conf[found[-1]]
    for key in found:
        del conf[key]
    if isinstance(ipam, dict):
        ipam = {k: v for k, v in ipam.items() if keys.fold(k) != "daemonsocketpath"}
        ipam["daemonSocketPath"] = str(tmp / "dhcp.sock")
    conf["ipam"] = ipam
    return conf


def pin(conf: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """Point every state location at ``tmp`` (whatever the case generated)."""
    conf = {k: v for k, v in conf.items() if keys.fold(k) not in ("datadir", "subnetfile")}
    conf["dataDir"] = str(tmp / "data")
    conf["subnetFile"] = str(tmp / "subnet.env")
    ipam = next((v for k, v in conf.items() if keys.fold(k) == "ipam"), None)
    if isinstance(ipam, dict):
        for k in [k for k in ipam if keys.fold(k) == "datadir"]:
            del ipam[k]
        ipam["dataDir"] = str(tmp / "leases")
    return conf


def check_protocol(verb: str, out: bytes, code: int, err: str) -> str:
    """'' when the output is what the protocol allows, else what is wrong."""
    if "Traceback" in err:
        return "traceback on stderr"
    if code == 1:
        try:
            obj = json.loads(out)
        except ValueError:
            return f"exit 1 without a JSON error: {out[:200]!r}"
        if not (isinstance(obj, dict) and isinstance(obj.get("code"), int)):
            return f"exit 1 without an error code: {obj!r}"
        if not isinstance(obj.get("msg"), str):
            return f"error without a message: {obj!r}"
        return ""
    if code != 0:
        return f"exit {code}"
    if verb == "ADD" and out.strip():
        try:
            results.parse_result(out)
        except Exception as exc:  # noqa: BLE001 - reported as the finding
            return f"ADD printed an invalid result: {exc}"
    if verb == "VERSION":
        obj = json.loads(out)
        if not isinstance(obj.get("supportedVersions"), list):
            return f"bad VERSION answer {obj!r}"
    return ""


# host-local's lock and round-robin position stay after the last DEL, as with Go's
KEPT = ("lock", "last_reserved_ip.0", "last_reserved_ip.1")


def left_behind(tmp: Path) -> list[str]:
    """Files in the state directories, but the ones host-local keeps by design."""
    found = []
    for sub in ("data", "leases"):
        root = tmp / sub
        for path in root.rglob("*") if root.exists() else []:
            if path.is_file() and path.name not in KEPT:
                found.append(str(path.relative_to(tmp)))
    return sorted(found)


def run(plugin: Any, env: dict[str, str], stdin: bytes) -> tuple[bytes, int, str]:
    err = io.StringIO()
    out, code = skel.run(plugin, env, stdin, err)
    return out, code, err.getvalue()


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_fuzz_plugin_inputs(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    import importlib

    plugin = importlib.import_module(f"cnitool_plugins.{name}.__main__").PLUGIN
    figures = FIGURES.setdefault(name, Counter())
    findings: list[str] = []

    printable = st.text(alphabet=string.printable, max_size=30)
    envs = st.fixed_dictionaries(
        {
            "CNI_COMMAND": st.sampled_from(VERBS),
            "CNI_CONTAINERID": st.one_of(st.sampled_from(["c1", "x" * 300]), printable),
            # never a namespace that exists: the plugins must stop before the kernel
            "CNI_NETNS": st.sampled_from(["/nonexistent/netns", "", "relative/netns"]),
            "CNI_IFNAME": st.one_of(st.sampled_from(["eth0", "eth%d", "x" * 16, "a/b"]), printable),
            "CNI_ARGS": st.one_of(
                st.sampled_from(
                    ["", "IP=10.1.0.9", "MAC=02:00:00:00:00:02", "IgnoreUnknown=1;A=b"]
                ),
                printable,
            ),
        }
    )
    prev = st.one_of(
        st.none(),
        st.just(
            {
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "eth0", "sandbox": "/nonexistent/netns"}],
                "ips": [{"address": "10.1.0.5/24", "interface": 0, "gateway": "10.1.0.1"}],
            }
        ),
        json_values,
    )

    shape = PLUGINS[name]
    mutated = st.builds(overlay, st.just(BASES[name]), config_of(shape, most=2))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        conf=st.one_of(config_of(shape), mutated),
        env=envs,
        version=st.sampled_from(VERSIONS),
        prev_result=prev,
        raw=st.sampled_from([None, b"", b"{", b"[]", b"null", b'{"name": 5}', b"\xff\xfe"]),
    )
    def case(
        conf: dict[str, Any],
        env: dict[str, str],
        version: str,
        prev_result: Any,
        raw: bytes | None,
    ) -> None:
        tmp = tmp_path_factory.mktemp("fuzz")
        (tmp / "subnet.env").write_text(SUBNET_ENV)
        conf = pin(conf, tmp)
        if name == "dhcp":  # never a real daemon's socket: nothing listens in tmp
            conf = pin_dhcp_socket(conf, tmp)
        conf.setdefault("name", "fuzznet")
        conf.setdefault("cniVersion", version)
        if prev_result is not None and "prevResult" not in conf:
            conf["prevResult"] = prev_result
        stdin = raw if raw is not None else json.dumps(conf).encode()
        call_env = {**env, "CNI_PATH": str(tmp / "bin")}
        out, code, err = run(plugin, call_env, stdin)
        figures["cases"] += 1
        if os.environ.get("PYCNI_FUZZ_LOG"):
            with open(os.environ["PYCNI_FUZZ_LOG"], "a") as log:
                log.write(f"{name} {env} {stdin[:200]!r} -> {code} {out[:120]!r}\n")
        figures["exit 0" if code == 0 else "CNI error"] += 1
        problem = check_protocol(env["CNI_COMMAND"], out, code, err)
        if not problem and env["CNI_COMMAND"] == "ADD" and code == 0:
            figures["ADD ok"] += 1
            out, code, err = run(plugin, {**call_env, "CNI_COMMAND": "DEL"}, stdin)
            problem = check_protocol("DEL", out, code, err) or (
                f"DEL after ADD failed: {out!r}" if code else ""
            )
        # a failed ADD, an ADD and its DEL, any DEL: none leaves anything behind
        if not problem and env["CNI_COMMAND"] in ("ADD", "DEL"):
            leftovers = left_behind(tmp)
            if leftovers:
                figures["leaks"] += 1
                problem = f"left behind {leftovers}"
        if problem:
            figures["failures"] += 1
            findings.append(f"{env} {stdin[:300]!r}: {problem}")

    if not RANDOM:
        case = seed(SEED)(case)  # the same cases in every CI run
    case()
    assert findings == [], "\n".join(findings[:5])
