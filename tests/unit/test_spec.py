"""Errors, versions, names and CNI_ARGS: the small spec pieces every other part relies on."""

from __future__ import annotations

import pytest

from cnitool.spec import args, errors, jsonfmt, names, version


def test_error_json_matches_reference_print() -> None:
    err = errors.IncompatibleVersionError(
        "incompatible CNI versions", 'config is "9.9.9", plugin supports ["0.1.0"]'
    )
    assert err.to_json() == (
        "{\n"
        '    "code": 1,\n'
        '    "msg": "incompatible CNI versions",\n'
        '    "details": "config is \\"9.9.9\\", plugin supports [\\"0.1.0\\"]"\n'
        "}"
    )
    assert str(err) == 'incompatible CNI versions; config is "9.9.9", plugin supports ["0.1.0"]'


def test_error_without_details_omits_key_and_round_trips() -> None:
    err = errors.InvalidConfigError("missing network name")
    assert err.to_dict() == {"code": 7, "msg": "missing network name"}
    back = errors.CNIError.from_dict(err.to_dict())
    assert (back.code, back.msg, back.details) == (7, "missing network name", "")


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"code": 7, "msg": None, "details": None}, (7, "", "")),
        ({"msg": "x"}, (0, "x", "")),
        ({"code": True, "msg": "x"}, (0, "x", "")),
        ({"code": "7", "msg": "x", "details": "d"}, (0, "x", "d")),
    ],
)
def test_error_from_plugin_output_reads_null_and_odd_fields(
    obj: dict[str, object], expected: tuple[int, str, str]
) -> None:
    err = errors.CNIError.from_dict(obj)
    assert (err.code, err.msg, err.details) == expected
    assert "None" not in str(err)


def test_json_uses_go_escaping() -> None:
    assert (
        jsonfmt.dumps_compact({"m": "a<b>&c\u2028é"}) == '{"m":"a\\u003cb\\u003e\\u0026c\\u2028é"}'
    )
    # bytes that were not UTF-8 (os.environ keeps them as surrogates) print as U+FFFD
    bad = b"c\xff\xfe".decode(errors="surrogateescape")
    assert jsonfmt.dumps_compact({"m": bad}) == '{"m":"c\\ufffd\\ufffd"}'
    assert jsonfmt.dumps_indent([bad]).encode() == b'[\n    "c\\ufffd\\ufffd"\n]'
    assert jsonfmt.dumps_compact({"b": 1, "a": 2}, sort_keys=True) == '{"a":2,"b":1}'


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("[" * 5000 + "]" * 5000, "JSON nested too deeply"),
        ('{"a": 1e999}', "number 1e999 is out of range"),
        ("[-1E400]", "number -1E400 is out of range"),
        ("[NaN]", "NaN is not valid JSON"),
        ("Infinity", "Infinity is not valid JSON"),
        ("{", "Expecting property name"),
    ],
)
def test_json_loads_rejects_what_go_rejects(text: str, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        jsonfmt.loads(text)
    assert jsonfmt.loads('{"a": [1.5, 10000000000000000000000]}') == {
        "a": [1.5, 10000000000000000000000]
    }


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("", (0, 1, 0)), ("1", (1, 0, 0)), ("0.4", (0, 4, 0)), ("1.1.0", (1, 1, 0))],
)
def test_version_parse(text: str, parsed: tuple[int, int, int]) -> None:
    assert version.parse(text) == parsed


@pytest.mark.parametrize("bad", ["1.2.3.4", "a.b", "1.-1.0", "1..0", "\u0663.0.0", "1.\u00b2.0"])
def test_version_parse_rejects(bad: str) -> None:
    with pytest.raises(errors.CNIError):
        version.parse(bad)


def test_version_compare() -> None:
    assert version.gte("0.4.0", "0.4.0")
    assert version.gte("1.0.0", "0.4.0")
    assert not version.gte("0.3.1", "0.4.0")
    assert version.gt("1.1.0", "1.0.0")


def test_check_supported_message_matches_reference() -> None:
    with pytest.raises(errors.CNIError) as info:
        version.check_supported("9.9.9", ("0.1.0", "0.2.0"))
    assert info.value.code == 1
    assert info.value.details == 'config is "9.9.9", plugin supports ["0.1.0" "0.2.0"]'
    version.check_supported("", ("0.1.0",))  # empty means 0.1.0


def test_check_gates() -> None:
    with pytest.raises(errors.CNIError, match="config version does not allow CHECK"):
        version.check_at_least("0.3.1", version.ALL, "0.4.0", "CHECK")
    with pytest.raises(errors.CNIError, match="plugin version does not allow GC"):
        version.check_at_least("1.1.0", ("0.4.0", "1.0.0"), "1.1.0", "GC")
    version.check_at_least("1.0.0", version.ALL, "0.4.0", "CHECK")


@pytest.mark.parametrize("cid", ["abc", "a.b-c_d", "cnitool-20c433bb2b1d6ede56d6"])
def test_container_id_ok(cid: str) -> None:
    names.validate_container_id(cid)


@pytest.mark.parametrize(("cid", "code"), [("", 3), ("../x", 4), ("-a", 4), ("a/b", 4), ("a b", 4)])
def test_container_id_bad(cid: str, code: int) -> None:
    with pytest.raises(errors.CNIError) as info:
        names.validate_container_id(cid)
    assert info.value.code == code


@pytest.mark.parametrize("ifname", ["", ".", "..", "a/b", "a:b", "a b", "x" * 16])
def test_ifname_bad(ifname: str) -> None:
    with pytest.raises(errors.CNIError) as info:
        names.validate_interface_name(ifname)
    assert info.value.code == 4


def test_network_name() -> None:
    names.validate_network_name("cni0")
    for bad in ("", "../etc", "a/b"):
        with pytest.raises(errors.CNIError) as info:
            names.validate_network_name(bad)
        assert info.value.code == 7


def test_cni_args_strict_like_go() -> None:
    assert args.load_args("IP=10.0.0.5", ("IP",)) == {"IP": "10.0.0.5"}
    with pytest.raises(errors.CNIError, match=r'ARGS: unknown args \["ip=10.0.0.5"\]'):
        args.load_args("ip=10.0.0.5", ("IP",))
    assert args.load_args("IgnoreUnknown=1;K8S_POD_NAME=foo;IP=1.2.3.4", ("IP",)) == {
        "IP": "1.2.3.4"
    }
    with pytest.raises(errors.CNIError, match='invalid pair "a=b=c"'):
        args.split_pairs("a=b=c")
    with pytest.raises(errors.CNIError, match='invalid pair ""'):
        args.split_pairs("a=b;")
    assert args.join_pairs([("A", "1"), ("B", "2")]) == "A=1;B=2"


@pytest.mark.parametrize(
    ("conf", "key"),
    [
        ({"type": 5}, '"type" must be a string'),
        ({"ipam": "x"}, '"ipam" must be an object'),
        ({"ipam": {"type": ["host-local"]}}, '"ipam.type" must be a string'),
        ({"dns": {"nameservers": "8.8.8.8"}}, '"dns.nameservers" must be an array of strings'),
        ({"dns": {"domain": 1}}, '"dns.domain" must be a string'),
        ({"capabilities": {"portMappings": "yes"}}, '"capabilities" must be an object of booleans'),
        ({"prevResult": []}, '"prevResult" must be an object'),
    ],
)
def test_netconf_wrong_types_fail_like_the_reference(conf: dict[str, object], key: str) -> None:
    from cnitool.spec import netconf

    with pytest.raises(errors.CNIError) as info:
        netconf.check_types({"name": "n", **conf})
    assert info.value.code == 999
    assert info.value.msg.startswith(f"failed to load netconf: {key}")


def test_netconf_accepts_nulls_and_plugin_keys() -> None:
    from cnitool.spec import netconf

    netconf.check_types(
        {
            "name": "n",
            "type": "bridge",
            "ipam": None,
            "dns": {"nameservers": ["10.0.0.1"]},
            "capabilities": {"portMappings": True},
            "mtu": "plugin's own key",
        }
    )
