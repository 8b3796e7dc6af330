"""flannel without root: subnet.env parsing and errors, delegate config building, the
scratch file, and DEL through it (delegation replaced by a recorder)."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cnitool_plugins.flannel import subnet_env
from cnitool_plugins.flannel.__main__ import PLUGIN
from cnitool_plugins.flannel.verbs import build_delegate

from cnitool import invoke, skel
from cnitool.spec.errors import CNIError

GOOD = (
    "FLANNEL_NETWORK=10.1.0.0/16\n"
    "FLANNEL_SUBNET=10.1.17.1/24\n"
    "FLANNEL_MTU=1472\n"
    "FLANNEL_IPMASQ=true\n"
)


def test_parse_good_file_normalises_subnets() -> None:
    env = subnet_env.parse(GOOD + "UNRELATED=1\nnot a pair\n")
    assert [str(n) for n in env.networks] == ["10.1.0.0/16"]
    assert str(env.subnet) == "10.1.17.0/24"
    assert env.mtu == 1472 and env.ipmasq is True
    assert env.ip6_subnet is None


def test_parse_dual_stack_and_duplicates() -> None:
    env = subnet_env.parse(
        "FLANNEL_NETWORK=10.1.0.0/16,10.1.0.0/16,10.2.0.0/16\n"
        "FLANNEL_IPV6_NETWORK=fd00:1::/56\nFLANNEL_IPV6_SUBNET=fd00:1:0:5::1/64\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=True\n"
    )
    assert [str(n) for n in env.networks] == ["10.1.0.0/16", "10.2.0.0/16"]
    assert str(env.ip6_subnet) == "fd00:1:0:5::/64"
    assert env.ipmasq is False  # only the exact string "true" is true


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "",
            "x.env is missing FLANNEL_NETWORK, FLANNEL_IPV6_NETWORK, FLANNEL_SUBNET, "
            "FLANNEL_IPV6_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ",
        ),
        (
            "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=1472\n",
            "x.env is missing FLANNEL_IPMASQ",
        ),
        (
            "FLANNEL_IPV6_NETWORK=fd00::/56\nFLANNEL_MTU=1\nFLANNEL_IPMASQ=false\n",
            "x.env is missing FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET",
        ),
        ("FLANNEL_NETWORK=10.1.0.0\n", "FLANNEL_NETWORK: invalid CIDR address: 10.1.0.0"),
        (GOOD.replace("1472", "big"), 'strconv.ParseUint: parsing "big": invalid syntax'),
        (
            GOOD.replace("1472", "-1"),
            'FLANNEL_MTU: strconv.ParseUint: parsing "-1": invalid syntax',
        ),
        (
            GOOD.replace("1472", "4294967296"),
            'strconv.ParseUint: parsing "4294967296": value out of range',
        ),
        (GOOD.replace("1472", "\u0661\u0664"), "invalid syntax"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(subnet_env.SubnetEnvError) as exc:
        subnet_env.parse(text, "x.env")
    assert message in str(exc.value)


def test_delegate_defaults() -> None:
    env = subnet_env.parse(GOOD)
    d = build_delegate({"cniVersion": "1.0.0", "name": "cbr0", "type": "flannel"}, env)
    assert d == {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "type": "bridge",
        "ipMasq": False,
        "mtu": 1472,
        "isGateway": True,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.1.17.0/24"}]],
            "routes": [{"dst": "10.1.0.0/16"}],
        },
    }


def test_delegate_keeps_explicit_values_and_merges_ipam() -> None:
    env = subnet_env.parse(
        GOOD.replace("IPMASQ=true", "IPMASQ=false")
        + "FLANNEL_IPV6_NETWORK=fd00::/56\nFLANNEL_IPV6_SUBNET=fd00:0:0:3::/64\n"
    )
    conf = {
        "name": "cbr0",
        "delegate": {"type": "ptp", "mtu": 1400, "hairpinMode": True},
        "ipam": {
            "dataDir": "/tmp/x",
            "ranges": [[{"subnet": "192.0.2.0/24"}]],
            "routes": [{"dst": "192.0.2.0/24", "gw": "10.1.17.1"}],
        },
        "runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 2}]},
    }
    d = build_delegate(conf, env)
    assert d["type"] == "ptp" and "isGateway" not in d and "cniVersion" not in d
    assert d["ipMasq"] is True and d["mtu"] == 1400 and d["hairpinMode"] is True
    assert d["runtimeConfig"] == conf["runtimeConfig"]
    assert d["ipam"]["dataDir"] == "/tmp/x"
    assert d["ipam"]["ranges"] == [[{"subnet": "10.1.17.0/24"}], [{"subnet": "fd00:0:0:3::/64"}]]
    assert d["ipam"]["routes"] == [
        {"dst": "192.0.2.0/24", "gw": "10.1.17.1"},
        {"dst": "10.1.0.0/16"},
        {"dst": "fd00::/56"},
    ]


@pytest.mark.parametrize(
    ("delegate", "message"),
    [
        ({"type": 3}, "'delegate' dictionary, if present, must have (string) 'type' field"),
        (
            {"name": "x"},
            "'delegate' dictionary must not have 'name' field, it'll be set by flannel",
        ),
        ({"ipam": {}}, "'delegate' dictionary must not have 'ipam' field, it'll be set by flannel"),
    ],
)
def test_delegate_rules(delegate: dict[str, Any], message: str) -> None:
    with pytest.raises(CNIError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_delegate({"name": "n", "delegate": delegate}, subnet_env.parse(GOOD))


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes]] = []

    def add(self, ptype: str, data: bytes, env: Any, stderr: Any = None) -> dict[str, Any]:
        self.calls.append(("ADD", ptype, data))
        return {"cniVersion": "1.0.0", "ips": [{"address": "10.1.17.2/24", "gateway": "10.1.17.1"}]}

    def delete(self, ptype: str, data: bytes, env: Any, stderr: Any = None) -> None:
        self.calls.append(("DEL", ptype, data))


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    r = Recorder()
    monkeypatch.setattr(invoke, "delegate_add", r.add)
    monkeypatch.setattr(invoke, "delegate_del", r.delete)
    return r


def run(verb: str, conf: dict[str, Any], cid: str = "ctr1") -> tuple[Any, int, str]:
    env = {
        "CNI_COMMAND": verb,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
    }
    err = io.StringIO()
    out, code = skel.run(PLUGIN, env, json.dumps(conf).encode(), err)
    return (json.loads(out) if out.strip() else None), code, err.getvalue()


def test_add_writes_scratch_then_delegates_and_del_replays_it(
    rec: Recorder, tmp_path: Path
) -> None:
    sub = tmp_path / "subnet.env"
    sub.write_text(GOOD)
    data_dir = tmp_path / "data"
    conf = {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "type": "flannel",
        "subnetFile": str(sub),
        "dataDir": str(data_dir),
    }
    out, code, err = run("ADD", conf)
    assert code == 0, out
    assert out["ips"][0]["address"] == "10.1.17.2/24"
    scratch = data_dir / "ctr1"
    data = scratch.read_bytes()
    assert rec.calls == [("ADD", "bridge", data)]
    # compact JSON, sorted keys (what the Go plugin writes)
    assert data == (
        b'{"cniVersion":"1.0.0","ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.1.17.0/24"}]],'
        b'"routes":[{"dst":"10.1.0.0/16"}],"type":"host-local"},"isGateway":true,"mtu":1472,'
        b'"name":"cbr0","type":"bridge"}'
    )
    assert stat.S_IMODE(scratch.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert data.decode() in err  # the delegate config is logged
    assert run("CHECK", conf)[1] == 0
    sub.unlink()  # DEL must not need subnet.env
    assert run("DEL", conf)[1] == 0
    assert rec.calls[-1] == ("DEL", "bridge", data)
    assert not scratch.exists()
    # DEL again: no scratch file -> success without delegating
    assert run("DEL", conf)[1] == 0
    assert len(rec.calls) == 2


def test_unparsable_scratch_is_logged_and_removed(rec: Recorder, tmp_path: Path) -> None:
    (tmp_path / "ctr1").write_text("{not json")
    out, code, err = run("DEL", {"cniVersion": "1.0.0", "name": "n", "dataDir": str(tmp_path)})
    assert code == 0 and rec.calls == []
    assert "failed to parse netconf" in err
    assert not (tmp_path / "ctr1").exists()


def test_failed_delegate_del_keeps_scratch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def boom(*a: Any, **k: Any) -> None:
        raise CNIError("bridge exploded", code=11)

    monkeypatch.setattr(invoke, "delegate_del", boom)
    (tmp_path / "ctr1").write_text('{"type":"bridge","name":"n"}')
    out, code, _ = run("DEL", {"cniVersion": "1.0.0", "name": "n", "dataDir": str(tmp_path)})
    assert code == 1 and out["code"] == 11 and "bridge exploded" in out["msg"]
    assert (tmp_path / "ctr1").exists()


def test_missing_subnet_env_error(rec: Recorder, tmp_path: Path) -> None:
    out, code, _ = run(
        "ADD",
        {
            "cniVersion": "1.0.0",
            "name": "n",
            "subnetFile": str(tmp_path / "none.env"),
            "dataDir": str(tmp_path),
        },
    )
    assert code == 1
    assert out["msg"] == (
        f"failed to load flannel 'subnet.env' file: open {tmp_path}/none.env: no such file or "
        "directory. Check the flannel pod log for this node."
    )
    assert rec.calls == [] and not os.listdir(tmp_path)


def test_incomplete_subnet_env_error(rec: Recorder, tmp_path: Path) -> None:
    sub = tmp_path / "subnet.env"
    sub.write_text("FLANNEL_NETWORK=10.1.0.0/16\n")
    out, code, _ = run(
        "ADD",
        {
            "cniVersion": "1.0.0",
            "name": "n",
            "subnetFile": str(sub),
            "dataDir": str(tmp_path / "d"),
        },
    )
    assert code == 1
    assert (
        f"{sub} is missing FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ"
        in out["msg"]
    )


def test_delegate_add_failure_is_wrapped_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, rec: Recorder, tmp_path: Path
) -> None:
    def boom(*a: Any, **k: Any) -> None:
        raise CNIError("failed to allocate for range 0", code=999)

    monkeypatch.setattr(invoke, "delegate_add", boom)
    sub = tmp_path / "subnet.env"
    sub.write_text(GOOD)
    out, code, _ = run(
        "ADD",
        {
            "cniVersion": "1.0.0",
            "name": "n",
            "subnetFile": str(sub),
            "dataDir": str(tmp_path / "d"),
        },
    )
    assert code == 1
    assert out["msg"] == "failed to delegate add: failed to allocate for range 0"
    # the delegate was DELed with the same config, and the scratch file went with it
    # (the reference keeps it until the runtime's DEL)
    assert len(rec.calls) == 1 and rec.calls[0][:2] == ("DEL", "bridge")
    assert json.loads(rec.calls[0][2])["ipam"]["ranges"] == [[{"subnet": "10.1.17.0/24"}]]
    assert os.listdir(tmp_path / "d") == []


def test_failed_delegate_add_and_del_keep_the_scratch_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """When the delegate refuses DEL too, the file stays for the runtime's DEL to replay."""

    def boom(*a: Any, **k: Any) -> None:
        raise CNIError("no such plugin", code=11)

    monkeypatch.setattr(invoke, "delegate_add", boom)
    monkeypatch.setattr(invoke, "delegate_del", boom)
    sub = tmp_path / "subnet.env"
    sub.write_text(GOOD)
    conf = {"cniVersion": "1.0.0", "name": "n", "subnetFile": str(sub), "dataDir": str(tmp_path)}
    out, code, err = run("ADD", conf)
    assert code == 1 and out["msg"] == "failed to delegate add: no such plugin"
    assert f"delegate DEL after the failed ADD failed, {tmp_path}/ctr1 kept" in err
    assert (tmp_path / "ctr1").exists()


def test_flannel_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import cnitool_plugins.flannel.__main__, cnitool_plugins.flannel.verbs;"
        "bad=[m for m in ('pyroute2','iptc','click','rich') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_del_without_scratch_loads_no_delegation_or_address_code(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import io, json, sys\n"
        "from cnitool import skel\n"
        "from cnitool_plugins.flannel.__main__ import PLUGIN\n"
        "env = {'CNI_COMMAND': 'DEL', 'CNI_CONTAINERID': 'c', 'CNI_NETNS': '/x',"
        " 'CNI_IFNAME': 'eth0', 'CNI_PATH': '/x'}\n"
        f"conf = {{'cniVersion': '1.0.0', 'name': 'n', 'dataDir': {str(tmp_path)!r}}}\n"
        "out, rc = skel.run(PLUGIN, env, json.dumps(conf).encode(), io.StringIO())\n"
        "mods = ('cnitool.invoke', 'ipaddress', 'subprocess', 'cnitool_plugins.flannel.subnet_env')\n"
        "print(rc, sorted(m for m in mods if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0 []", out.stdout


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory", "too-large"])
def test_subnet_file_must_be_a_small_regular_file(tmp_path: Path, kind: str) -> None:
    """Refused at once: a FIFO would block the ADD, /dev/zero would fill the memory."""
    import subprocess
    import sys

    sub = tmp_path / "subnet.env"
    if kind == "fifo":
        os.mkfifo(sub)
    elif kind == "dev-zero":
        sub = Path("/dev/zero")
    elif kind == "directory":
        sub.mkdir()
    else:
        sub.write_text(GOOD + "#" * subnet_env.MAX_BYTES)
    data_dir = tmp_path / "data"
    conf = {"cniVersion": "1.0.0", "name": "n", "subnetFile": str(sub), "dataDir": str(data_dir)}
    env = {
        "PATH": os.environ["PATH"],
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "ctr1",
        "CNI_NETNS": "/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "cnitool_plugins.flannel"],
        input=json.dumps(conf).encode(),
        env=env,
        capture_output=True,
        timeout=60,  # a guard only: the fixed plugin answers at once
        preexec_fn=_limit_memory,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    reason = (
        f"larger than {subnet_env.MAX_BYTES} bytes" if kind == "too-large" else "not a regular file"
    )
    assert out == {
        "code": 999,
        "msg": f"failed to load flannel 'subnet.env' file: read {sub}: {reason}. "
        "Check the flannel pod log for this node.",
    }
    assert not data_dir.exists()


def test_a_delegate_that_is_not_found_leaves_no_scratch_file(tmp_path: Path) -> None:
    """The delegate never ran, so there is nothing to DEL: the scratch file goes at once
    (with no delegate to replay it, a kept file would stay for good)."""
    sub = tmp_path / "subnet.env"
    sub.write_text(GOOD)
    conf = {"cniVersion": "1.0.0", "name": "n", "subnetFile": str(sub)}
    out, code, _ = run("ADD", {**conf, "dataDir": str(tmp_path / "d")})
    assert code == 1
    assert out["msg"].startswith('failed to delegate add: failed to find plugin "bridge"')
    assert os.listdir(tmp_path / "d") == []
