"""cnitool.skel: the plugin-side protocol checks, outputs and error mapping."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest

from cnitool import skel
from cnitool.spec.errors import CNIError, TryAgainLaterError

ALL_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

RESULT_11: dict[str, Any] = {
    "cniVersion": "1.1.0",
    "interfaces": [{"name": "eth0", "mac": "0a:58:0a:16:00:02", "sandbox": "/run/netns/x"}],
    "ips": [{"interface": 0, "address": "10.22.0.2/16", "gateway": "10.22.0.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
}


class Recorder:
    """A plugin whose verbs record the CmdArgs they got."""

    def __init__(self, result: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, skel.CmdArgs]] = []
        self.result = result if result is not None else RESULT_11

    def add(self, args: skel.CmdArgs) -> dict[str, Any]:
        self.calls.append(("ADD", args))
        return self.result

    def verb(self, name: str) -> skel.VerbFunc:
        def call(args: skel.CmdArgs) -> None:
            self.calls.append((name, args))

        return call

    def plugin(
        self,
        versions: tuple[str, ...] = ALL_VERSIONS,
        about: str = "CNI test plugin v1",
        with_gc_status: bool = True,
    ) -> skel.Plugin:
        return skel.Plugin(
            name="test",
            versions=versions,
            about=about,
            add=self.add,
            check=self.verb("CHECK"),
            delete=self.verb("DEL"),
            gc=self.verb("GC") if with_gc_status else None,
            status=self.verb("STATUS") if with_gc_status else None,
        )


def full_env(command: str, **extra: str) -> dict[str, str]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "ctr1",
        "CNI_NETNS": "/run/netns/ctr1",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "K=V",
        "CNI_PATH": "/opt/cni/bin",
    }
    env.update(extra)
    return env


def conf(version: str = "1.0.0", **extra: Any) -> bytes:
    obj: dict[str, Any] = {"cniVersion": version, "name": "mynet", "type": "test"}
    obj.update(extra)
    return json.dumps(obj).encode()


def call(plugin: skel.Plugin, env: Mapping[str, str], stdin: bytes = b"") -> tuple[bytes, int, str]:
    err = io.StringIO()
    out, code = skel.run(plugin, env, stdin, err)
    return out, code, err.getvalue()


def error_of(out: bytes) -> dict[str, Any]:
    obj = json.loads(out)
    assert isinstance(obj, dict)
    return obj


# --- environment presence table -------------------------------------------------------

ENV_ROWS = [
    # (verb, variables present besides CNI_COMMAND, expected missing list or None)
    ("ADD", {}, "CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH"),
    ("ADD", {"CNI_NETNS": "/n", "CNI_IFNAME": "eth0"}, "CNI_CONTAINERID,CNI_PATH"),
    ("ADD", {"CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0", "CNI_PATH": "/p"}, "CNI_NETNS"),
    ("CHECK", {"CNI_CONTAINERID": "c", "CNI_NETNS": "/n", "CNI_PATH": "/p"}, "CNI_IFNAME"),
    ("CHECK", {}, "CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH"),
    ("DEL", {}, "CNI_CONTAINERID,CNI_IFNAME,CNI_PATH"),
    ("DEL", {"CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0", "CNI_PATH": "/p"}, None),
    ("GC", {}, "CNI_PATH"),
    ("GC", {"CNI_PATH": "/p"}, None),
    ("STATUS", {}, "CNI_PATH"),
    ("STATUS", {"CNI_PATH": "/p"}, None),
    ("VERSION", {}, None),
]


@pytest.mark.parametrize(("verb", "present", "missing"), ENV_ROWS)
def test_env_presence_table(verb: str, present: dict[str, str], missing: str | None) -> None:
    rec = Recorder()
    env = {"CNI_COMMAND": verb, **present}
    out, code, _ = call(rec.plugin(), env, conf("1.1.0"))
    if missing is None:
        assert code == 0, out
    else:
        assert code == 1
        assert error_of(out) == {
            "code": 4,
            "msg": f"required env variables [{missing}] missing",
        }
        assert rec.calls == []


def test_missing_env_error_bytes_match_reference() -> None:
    env = {"CNI_COMMAND": "ADD", "CNI_NETNS": "/n", "CNI_IFNAME": "eth0"}
    out, code, _ = call(Recorder().plugin(), env, conf())
    assert code == 1
    assert out == (
        b'{\n    "code": 4,\n    "msg": "required env variables [CNI_CONTAINERID,CNI_PATH] missing"\n}'
    )


def test_invalid_container_id_is_code_4_when_required() -> None:
    out, code, _ = call(Recorder().plugin(), full_env("ADD", CNI_CONTAINERID="-bad id"), conf())
    assert code == 1
    err = error_of(out)
    assert err["code"] == 4
    assert "containerID" in err["msg"]


def test_container_id_not_validated_when_not_required() -> None:
    rec = Recorder()
    out, code, _ = call(
        rec.plugin(),
        {"CNI_COMMAND": "GC", "CNI_PATH": "/p", "CNI_CONTAINERID": "-x"},
        conf("1.1.0"),
    )
    assert (out, code) == (b"", 0)
    assert rec.calls[0][0] == "GC"


@pytest.mark.parametrize("ifname", ["a" * 16, "a/b", "a b", ".."])
def test_invalid_ifname_is_code_4(ifname: str) -> None:
    out, code, _ = call(Recorder().plugin(), full_env("ADD", CNI_IFNAME=ifname), conf())
    assert code == 1
    assert error_of(out)["code"] == 4


def test_undecodable_env_bytes_give_a_readable_error() -> None:
    # os.environ keeps bytes that are not UTF-8 as surrogates
    bad = b"c\xff".decode(errors="surrogateescape")
    out, code, _ = call(Recorder().plugin(), full_env("ADD", CNI_CONTAINERID=bad), conf())
    assert code == 1
    assert out.decode() == (
        '{\n    "code": 4,\n    "msg": "invalid characters in containerID",'
        '\n    "details": "c\\ufffd"\n}'
    )
    long_name = ("e" * 15 + "\xff").encode("latin-1").decode(errors="surrogateescape")
    out, code, _ = call(Recorder().plugin(), full_env("ADD", CNI_IFNAME=long_name), conf())
    assert error_of(out)["msg"] == "interface name is too long"


# --- stdin pre-validation -------------------------------------------------------------


@pytest.mark.parametrize("verb", ["ADD", "CHECK", "DEL", "GC", "STATUS"])
def test_empty_stdin_is_code_6_for_every_verb_but_version(verb: str) -> None:
    out, code, _ = call(Recorder().plugin(), full_env(verb), b"")
    assert code == 1
    assert error_of(out) == {
        "code": 6,
        "msg": "error unmarshall network config: unexpected end of JSON input",
    }


@pytest.mark.parametrize(
    "stdin",
    [
        b"{not json",
        b"[1, 2]",
        b'"x"',
        b'{"name": 5}',
        b"\xff\xfe",
        b"[" * 100000 + b"]" * 100000,
        b'{"name": "n", "a": ' * 50000 + b"1" + b"}" * 50000,
        b'{"name": "n", "mtu": 1e999}',
        b'{"name": "n", "mtu": NaN}',
    ],
)
def test_undecodable_stdin_is_code_6(stdin: bytes) -> None:
    out, code, _ = call(Recorder().plugin(), full_env("ADD"), stdin)
    assert code == 1
    err = error_of(out)
    assert err["code"] == 6
    assert err["msg"].startswith("error unmarshall network config: ")


@pytest.mark.parametrize(
    ("stdin", "kind"), [(b"[1, 2]", "array"), (b'"x"', "string"), (b"4", "number")]
)
def test_non_object_stdin_names_its_json_type(stdin: bytes, kind: str) -> None:
    out, _, _ = call(Recorder().plugin(), full_env("ADD"), stdin)
    assert error_of(out)["msg"] == (
        f"error unmarshall network config: expected a JSON object, got {kind}"
    )


@pytest.mark.parametrize("stdin", [b"{}", b'{"cniVersion": "1.0.0"}', b'{"name": ""}', b"null"])
def test_missing_name_is_code_7(stdin: bytes) -> None:
    out, code, _ = call(Recorder().plugin(), full_env("DEL"), stdin)
    assert code == 1
    assert error_of(out) == {"code": 7, "msg": "missing network name"}


def test_bad_network_name_is_code_7_naming_it() -> None:
    out, code, _ = call(
        Recorder().plugin(), full_env("ADD"), b'{"cniVersion":"1.0.0","name":"my net"}'
    )
    assert code == 1
    err = error_of(out)
    assert err["code"] == 7
    assert err["details"] == "my net"


def test_unknown_command_is_code_4() -> None:
    out, code, _ = call(Recorder().plugin(), full_env("FOO"), conf())
    assert code == 1
    assert error_of(out) == {"code": 4, "msg": "unknown CNI_COMMAND: FOO"}


def test_unknown_command_with_empty_stdin_reports_decoding_first() -> None:
    out, code, _ = call(Recorder().plugin(), full_env("FOO"), b"")
    assert code == 1
    assert error_of(out)["code"] == 6


# --- version reconciliation ------------------------------------------------------------


@pytest.mark.parametrize("verb", ["ADD", "DEL"])
def test_add_del_need_exact_version(verb: str) -> None:
    rec = Recorder()
    out, code, _ = call(rec.plugin(versions=("0.3.1", "1.0.0")), full_env(verb), conf("9.9.9"))
    assert code == 1
    assert error_of(out) == {
        "code": 1,
        "msg": "incompatible CNI versions",
        "details": 'config is "9.9.9", plugin supports ["0.3.1" "1.0.0"]',
    }
    assert rec.calls == []


def test_missing_cni_version_means_0_1_0() -> None:
    rec = Recorder()
    out, code, _ = call(rec.plugin(versions=("1.0.0",)), full_env("DEL"), b'{"name":"n"}')
    assert code == 1
    assert error_of(out)["details"] == 'config is "0.1.0", plugin supports ["1.0.0"]'
    out, code, _ = call(rec.plugin(), full_env("DEL"), b'{"name":"n"}')
    assert (out, code) == (b"", 0)
    assert rec.calls[0][1].cni_version == "0.1.0"


def test_version_near_miss_is_not_accepted() -> None:
    out, code, _ = call(Recorder().plugin(versions=("1.0.0",)), full_env("ADD"), conf("1.0"))
    assert code == 1
    assert error_of(out)["code"] == 1


@pytest.mark.parametrize(
    ("verb", "config_version", "versions", "msg"),
    [
        ("CHECK", "0.3.1", ALL_VERSIONS, "config version does not allow CHECK"),
        ("CHECK", "0.4.0", ("0.3.0", "0.3.1"), "plugin version does not allow CHECK"),
        ("GC", "1.0.0", ALL_VERSIONS, "config version does not allow GC"),
        ("GC", "1.1.0", ("0.4.0", "1.0.0"), "plugin version does not allow GC"),
        ("STATUS", "1.0.0", ALL_VERSIONS, "config version does not allow STATUS"),
        ("STATUS", "1.1.0", ("1.0.0",), "plugin version does not allow STATUS"),
    ],
)
def test_gated_verbs(verb: str, config_version: str, versions: tuple[str, ...], msg: str) -> None:
    rec = Recorder()
    out, code, _ = call(rec.plugin(versions=versions), full_env(verb), conf(config_version))
    assert code == 1
    assert error_of(out) == {"code": 1, "msg": msg}
    assert rec.calls == []


def test_gated_verb_still_needs_exact_version() -> None:
    # 1.0.0 passes the CHECK gate (plugin has a version >= it) but is not listed
    out, code, _ = call(
        Recorder().plugin(versions=("0.4.0", "1.1.0")), full_env("CHECK"), conf("1.0.0")
    )
    assert code == 1
    assert error_of(out)["msg"] == "incompatible CNI versions"


def test_gated_verb_with_unparsable_version_is_code_6() -> None:
    out, code, _ = call(Recorder().plugin(), full_env("CHECK"), conf("one.two"))
    assert code == 1
    assert error_of(out)["code"] == 6


def test_gated_verb_tolerates_bogus_plugin_version() -> None:
    rec = Recorder()
    out, code, _ = call(rec.plugin(versions=("0.-42.0", "1.0.0")), full_env("CHECK"), conf("1.0.0"))
    assert (out, code) == (b"", 0)
    assert [c[0] for c in rec.calls] == ["CHECK"]


@pytest.mark.parametrize("verb", ["GC", "STATUS"])
def test_missing_gc_status_function_is_success(verb: str) -> None:
    rec = Recorder()
    env = {"CNI_COMMAND": verb, "CNI_PATH": "/p"}
    out, code, err = call(rec.plugin(with_gc_status=False), env, conf("1.1.0"))
    assert (out, code, err) == (b"", 0, "")
    assert rec.calls == []


# --- VERSION and the about text ----------------------------------------------------------


def test_version_output_bytes() -> None:
    out, code, _ = call(
        Recorder().plugin(versions=("0.3.1", "1.0.0")), {"CNI_COMMAND": "VERSION"}, b"garbage"
    )
    assert code == 0
    assert out == b'{"cniVersion":"1.1.0","supportedVersions":["0.3.1","1.0.0"]}\n'


def test_empty_command_prints_about_to_stderr() -> None:
    out, code, err = call(Recorder().plugin(versions=("0.4.0", "1.0.0")), {}, b"")
    assert (out, code) == (b"", 0)
    assert err == "CNI test plugin v1\nCNI protocol versions supported: 0.4.0, 1.0.0\n"


def test_empty_command_without_about_is_code_4() -> None:
    out, code, err = call(Recorder().plugin(about=""), {"CNI_COMMAND": ""}, b"")
    assert code == 1
    assert error_of(out) == {"code": 4, "msg": "required env variables [CNI_COMMAND] missing"}
    assert err == ""


# --- dispatch and CmdArgs --------------------------------------------------------------


def test_cmd_args_carry_the_call() -> None:
    rec = Recorder()
    env = MappingProxyType(full_env("DEL", CNI_NETNS="", CNI_NETNS_OVERRIDE="True", OTHER="x"))
    stdin = conf("0.4.0", extra={"k": 1})
    err = io.StringIO()
    out, code = skel.run(rec.plugin(), env, stdin, err)
    assert (out, code) == (b"", 0)
    verb, args = rec.calls[0]
    assert verb == "DEL"
    assert args.command == "DEL"
    assert (args.container_id, args.netns, args.ifname) == ("ctr1", "", "eth0")
    assert (args.args, args.path) == ("K=V", "/opt/cni/bin")
    assert args.netns_override is True
    assert args.stdin_data == stdin
    assert args.env["OTHER"] == "x"
    assert args.stderr is err
    assert args.config()["extra"] == {"k": 1}
    assert args.cni_version == "0.4.0"


def test_run_leaves_process_environment_alone() -> None:
    before = dict(os.environ)
    call(Recorder().plugin(), full_env("ADD"), conf())
    assert dict(os.environ) == before


def test_add_in_own_netns_is_refused_before_the_plugin_runs() -> None:
    rec = Recorder()
    out, code, _ = call(rec.plugin(), full_env("ADD", CNI_NETNS="/proc/self/ns/net"), conf())
    assert code == 1
    assert error_of(out) == {
        "code": 8,
        "msg": "plugin's netns and netns from CNI_NETNS should not be the same",
    }
    assert rec.calls == []
    env = full_env("ADD", CNI_NETNS="/proc/self/ns/net", CNI_NETNS_OVERRIDE="1")
    out, code, _ = call(rec.plugin(), env, conf())
    assert code == 0
    assert len(rec.calls) == 1


# --- ADD output --------------------------------------------------------------------------


def test_add_prints_result_in_config_version_without_newline() -> None:
    out, code, _ = call(Recorder().plugin(), full_env("ADD"), conf("1.0.0"))
    assert code == 0
    assert not out.endswith(b"\n")
    assert out.startswith(b'{\n    "cniVersion": "1.0.0",\n')
    obj = json.loads(out)
    assert obj["ips"] == [{"interface": 0, "address": "10.22.0.2/16", "gateway": "10.22.0.1"}]


def test_add_result_converted_to_0_3_1() -> None:
    out, code, _ = call(Recorder().plugin(), full_env("ADD"), conf("0.3.1"))
    assert code == 0
    obj = json.loads(out)
    assert obj["cniVersion"] == "0.3.1"
    assert obj["ips"] == [
        {"version": "4", "interface": 0, "address": "10.22.0.2/16", "gateway": "10.22.0.1"}
    ]
    assert obj["interfaces"] == [
        {"name": "eth0", "mac": "0a:58:0a:16:00:02", "sandbox": "/run/netns/x"}
    ]


def test_add_result_converted_to_0_2_0() -> None:
    out, code, _ = call(Recorder().plugin(), full_env("ADD"), conf("0.2.0"))
    assert code == 0
    obj = json.loads(out)
    assert obj == {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.22.0.2/16", "gateway": "10.22.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
    }


def test_add_result_without_ips_cannot_become_0_2_0() -> None:
    rec = Recorder({"cniVersion": "1.1.0", "interfaces": [{"name": "lo"}]})
    out, code, _ = call(rec.plugin(), full_env("ADD"), conf("0.2.0"))
    assert code == 1
    assert "no valid IP addresses" in error_of(out)["msg"]


def test_raw_output_and_exit_code() -> None:
    plugin = skel.Plugin(
        name="raw",
        versions=ALL_VERSIONS,
        about="",
        add=lambda a: skel.RawOutput(b"verbatim", 3),
        delete=lambda a: skel.RawOutput(b"{}"),
    )
    assert skel.run(plugin, full_env("ADD"), conf(), io.StringIO()) == (b"verbatim", 3)
    assert skel.run(plugin, full_env("DEL"), conf(), io.StringIO()) == (b"{}", 0)


# --- exception mapping -----------------------------------------------------------------


def raising(exc: BaseException) -> skel.Plugin:
    def add(args: skel.CmdArgs) -> dict[str, Any]:
        raise exc

    return skel.Plugin(name="boom", versions=ALL_VERSIONS, about="", add=add)


def test_cni_error_keeps_its_code_and_details() -> None:
    out, code, _ = call(raising(TryAgainLaterError("busy", "lock held")), full_env("ADD"), conf())
    assert code == 1
    assert out == b'{\n    "code": 11,\n    "msg": "busy",\n    "details": "lock held"\n}'


def test_plain_cni_error_is_999() -> None:
    out, _, _ = call(raising(CNIError("plain")), full_env("ADD"), conf())
    assert error_of(out) == {"code": 999, "msg": "plain"}


def test_other_exception_is_999_without_traceback() -> None:
    out, code, err = call(raising(RuntimeError("boom happened")), full_env("ADD"), conf())
    assert code == 1
    assert error_of(out) == {"code": 999, "msg": "boom happened"}
    assert "Traceback" not in err


def test_traceback_only_with_pycni_debug() -> None:
    env = full_env("ADD", PYCNI_DEBUG="1")
    out, code, err = call(raising(RuntimeError("boom")), env, conf())
    assert error_of(out) == {"code": 999, "msg": "boom"}
    assert "Traceback" in err
    assert "RuntimeError: boom" in err


def test_exception_without_message_names_its_type() -> None:
    out, _, _ = call(raising(KeyError()), full_env("ADD"), conf())
    assert error_of(out) == {"code": 999, "msg": "KeyError"}


def test_json_decode_error_in_plugin_is_code_6() -> None:
    try:
        json.loads("{")
    except json.JSONDecodeError as exc:
        decode_error = exc
    out, _, _ = call(raising(decode_error), full_env("ADD"), conf())
    assert error_of(out)["code"] == 6


# --- main(): the process boundary ------------------------------------------------------


class _BrokenStdin:
    class buffer:  # noqa: N801 - mimics sys.stdin.buffer
        @staticmethod
        def read(size: int = -1) -> bytes:
            raise OSError(5, "Input/output error")


def _capture_stdout(monkeypatch: pytest.MonkeyPatch) -> io.BytesIO:
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw))
    return raw


def test_main_stdin_read_error_is_code_5(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in full_env("ADD").items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(sys, "stdin", _BrokenStdin())
    raw = _capture_stdout(monkeypatch)
    assert skel.main(Recorder().plugin()) == 1
    err = json.loads(raw.getvalue())
    assert err["code"] == 5
    assert err["msg"].startswith("error reading from stdin: ")


def test_main_refuses_stdin_over_the_limit_unparsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """More than MAX_JSON_BYTES on stdin is a decoding error, and the plugin never runs."""
    from cnitool.spec.jsonfmt import MAX_JSON_BYTES

    for k, v in full_env("ADD").items():
        monkeypatch.setenv(k, v)
    body = conf("1.0.0")
    padded = body[:-1] + b', "x": "' + b"a" * MAX_JSON_BYTES + b'"}'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(padded)))
    raw = _capture_stdout(monkeypatch)
    rec = Recorder()
    assert skel.main(rec.plugin()) == 1
    err = json.loads(raw.getvalue())
    assert err["code"] == 6
    assert err["msg"] == f"error reading from stdin: stdin is larger than {MAX_JSON_BYTES} bytes"
    assert rec.calls == []


def test_main_runs_with_process_env_and_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in full_env("ADD").items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(conf("1.0.0"))))
    raw = _capture_stdout(monkeypatch)
    rec = Recorder()
    assert skel.main(rec.plugin()) == 0
    assert json.loads(raw.getvalue())["cniVersion"] == "1.0.0"
    assert rec.calls[0][1].container_id == "ctr1"


def test_main_version_does_not_read_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNI_COMMAND", "VERSION")
    monkeypatch.setattr(sys, "stdin", _BrokenStdin())
    raw = _capture_stdout(monkeypatch)
    assert skel.main(Recorder().plugin(versions=("1.0.0",))) == 0
    assert raw.getvalue() == b'{"cniVersion":"1.1.0","supportedVersions":["1.0.0"]}\n'


# --- the record types --------------------------------------------------------------------


def test_records_are_immutable_and_compare_by_value() -> None:
    a = skel.RawOutput(b"x", exit_code=2)
    assert a == skel.RawOutput(data=b"x", exit_code=2)
    assert a != skel.RawOutput(b"x")
    assert hash(a) == hash(skel.RawOutput(b"x", 2))
    assert repr(a) == "RawOutput(data=b'x', exit_code=2)"
    with pytest.raises(AttributeError):
        a.data = b"y"  # type: ignore[misc]
    p = skel.Plugin(name="p", versions=("1.0.0",), about="")
    assert (p.add, p.gc, p.dynamic_versions) == (None, None, None)
    with pytest.raises(TypeError):
        skel.Plugin(name="p", versions=("1.0.0",), about="", nonsense=1)  # type: ignore[call-arg]


def test_cmd_args_hashable_despite_env() -> None:
    err = io.StringIO()
    fields = dict(
        command="ADD",
        container_id="c",
        netns="/n",
        ifname="eth0",
        args="",
        path="/p",
        netns_override=False,
        stdin_data=b"{}",
        env={"A": "1"},
        stderr=err,
    )
    a = skel.CmdArgs(**fields)  # type: ignore[arg-type]
    b = skel.CmdArgs(**fields)  # type: ignore[arg-type]
    assert a == b and hash(a) == hash(b)
