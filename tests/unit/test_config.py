"""Network configuration discovery and parsing (libcni's lookup and validation rules)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cnitool.libcni import config as cfg
from cnitool.spec.errors import InvalidConfigError


def write(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj) + "\n")
    return path


def conflist(name: str, *types: str, **extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": name, "plugins": [{"type": t} for t in types], **extra}


def load_error(tmp_path: Path, name: str = "net") -> str:
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load_conf_list(str(tmp_path), name)
    assert info.value.code == 7
    return str(info.value)


# --------------------------------------------------------------------------- conf_files


def test_conf_files_exact_extension_non_recursive_sorted(tmp_path: Path) -> None:
    for name in ("b.conflist", "a.conflist", "A.conflist", "x.conflist.bak", "c.conf", "d.json"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "dir.conflist").mkdir()
    (tmp_path / "dir.conflist" / "inner.conflist").write_text("{}")
    os.symlink(tmp_path / "a.conflist", tmp_path / "link.conflist")
    got = cfg.conf_files(str(tmp_path), [".conflist"])
    assert [os.path.basename(p) for p in got] == [
        "A.conflist",
        "a.conflist",
        "b.conflist",
        "link.conflist",
    ]
    both = cfg.conf_files(str(tmp_path), [".conf", ".json"])
    assert [os.path.basename(p) for p in both] == ["c.conf", "d.json"]


def test_conf_files_missing_dir_is_empty(tmp_path: Path) -> None:
    assert cfg.conf_files(str(tmp_path / "nope"), [".conflist"]) == []


# --------------------------------------------------------------------------- lookup


def test_load_conflist_by_name_keeps_file_bytes(tmp_path: Path) -> None:
    write(tmp_path / "10-a.conflist", conflist("a", "bridge"))
    path = write(tmp_path / "20-b.conflist", conflist("b", "bridge", "portmap"))
    net = cfg.load_conf_list(str(tmp_path), "b")
    assert net.name == "b"
    assert net.cni_version == "1.0.0"
    assert [p.type for p in net.plugins] == ["bridge", "portmap"]
    assert net.raw_bytes == path.read_bytes()
    assert net.path == str(path)
    assert all(p.source == str(path) for p in net.plugins)


def test_same_name_first_lexical_file_wins(tmp_path: Path) -> None:
    write(tmp_path / "20-new.conflist", conflist("net", "ptp"))
    write(tmp_path / "10-old.conflist", conflist("net", "bridge"))
    assert cfg.load_conf_list(str(tmp_path), "net").plugins[0].type == "bridge"
    entries = cfg.scan_dir(str(tmp_path))
    assert [(os.path.basename(e.path), e.shadowed_by) for e in entries] == [
        ("10-old.conflist", None),
        ("20-new.conflist", str(tmp_path / "10-old.conflist")),
    ]


def test_conflist_beats_single_conf_even_when_sorted_later(tmp_path: Path) -> None:
    write(tmp_path / "00-single.conf", {"cniVersion": "0.4.0", "name": "net", "type": "ptp"})
    write(tmp_path / "99-list.conflist", conflist("net", "bridge"))
    assert cfg.load_conf_list(str(tmp_path), "net").plugins[0].type == "bridge"
    entries = cfg.scan_dir(str(tmp_path))
    assert [e.kind for e in entries] == ["conflist", "conf"]
    assert entries[1].shadowed_by == str(tmp_path / "99-list.conflist")


def test_single_conf_is_wrapped_like_go(tmp_path: Path) -> None:
    path = write(
        tmp_path / "10-x.json",
        '{"type": "bridge", "name": "net", "cniVersion": "0.3.1", "mtu": 1.5e3,\n'
        ' "ipam": {"type": "host-local", "subnet": "10.1.0.0/16"}, "capabilities": {"a": true}}\n',
    )
    net = cfg.load_conf_list(str(tmp_path), "net")
    # Go marshals the wrapper map: compact, keys sorted everywhere, float64 numbers
    assert net.raw_bytes == (
        b'{"cniVersion":"0.3.1","name":"net","plugins":[{"capabilities":{"a":true},'
        b'"cniVersion":"0.3.1","ipam":{"subnet":"10.1.0.0/16","type":"host-local"},'
        b'"mtu":1500,"name":"net","type":"bridge"}]}'
    )
    assert net.cni_version == "0.3.1"
    assert net.plugins[0].capabilities == {"a": True}
    assert net.plugins[0].source == str(path)
    assert net.path == str(path)


def test_single_conf_without_type_breaks_the_fallback(tmp_path: Path) -> None:
    # a conflist saved as .conf has no top-level "type"
    write(tmp_path / "10-list.conf", conflist("other", "bridge"))
    write(tmp_path / "20-net.conf", {"name": "net", "type": "bridge"})
    msg = load_error(tmp_path)
    assert "10-list.conf" in msg and "missing 'type'" in msg


def test_not_found_and_no_configs_messages(tmp_path: Path) -> None:
    assert load_error(tmp_path) == f"no net configurations found in {tmp_path}"
    assert isinstance(
        pytest.raises(cfg.NoConfigsFoundError, cfg.load_conf_list, str(tmp_path), "x").value,
        InvalidConfigError,
    )
    write(tmp_path / "a.conflist", conflist("a", "bridge"))
    assert load_error(tmp_path, "nope") == f'no net configuration with name "nope" in {tmp_path}'
    write(tmp_path / "b.conf", {"name": "b", "type": "bridge"})
    with pytest.raises(cfg.NetworkNotFoundError):
        cfg.load_conf_list(str(tmp_path), "nope")


def test_bad_file_before_match_aborts_after_match_ignored(tmp_path: Path) -> None:
    write(tmp_path / "20-good.conflist", conflist("net", "bridge"))
    write(tmp_path / "30-bad.conflist", "{not json")
    assert cfg.load_conf_list(str(tmp_path), "net").plugins[0].type == "bridge"
    write(tmp_path / "10-bad.conflist", '{"name": "x",\n  "plugins": [}\n')
    msg = load_error(tmp_path)
    assert msg.startswith(str(tmp_path / "10-bad.conflist") + ": ")
    assert "line 2 column" in msg


def test_scan_dir_reports_every_file_without_raising(tmp_path: Path) -> None:
    write(tmp_path / "10-bad.conflist", "[1, 2]")
    write(tmp_path / "20-ok.conflist", conflist("ok", "bridge"))
    write(tmp_path / "30-empty.conflist", "")
    write(tmp_path / "40-single.conf", {"name": "single", "type": "macvlan"})
    entries = cfg.scan_dir(str(tmp_path))
    assert [os.path.basename(e.path) for e in entries] == [
        "10-bad.conflist",
        "20-ok.conflist",
        "30-empty.conflist",
        "40-single.conf",
    ]
    assert entries[0].network is None and entries[0].error is not None
    assert "10-bad.conflist" in entries[0].error and "array" in entries[0].error
    assert entries[1].network is not None and entries[1].network.name == "ok"
    assert entries[2].error is not None and "30-empty.conflist" in entries[2].error
    assert entries[3].network is not None and entries[3].network.plugins[0].type == "macvlan"
    assert cfg.scan_dir(str(tmp_path / "missing")) == []


# --------------------------------------------------------------------------- fields


def parse(obj: Any, conf_dir: Path | None = None) -> cfg.NetworkConfigList:
    data = (obj if isinstance(obj, str) else json.dumps(obj)).encode()
    return cfg.conf_list_from_bytes(
        data, "/etc/cni/net.d/x.conflist", str(conf_dir) if conf_dir else None
    )


def parse_error(obj: Any, conf_dir: Path | None = None) -> str:
    with pytest.raises(cfg.ConfigError) as info:
        parse(obj, conf_dir)
    msg = str(info.value)
    assert msg.startswith("/etc/cni/net.d/x.conflist: "), msg
    return msg


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("true", True), ("TRUE", True), ("False", False)],
)
@pytest.mark.parametrize("key", ["disableCheck", "disableGC", "loadOnlyInlinedPlugins"])
def test_bool_fields_accept_bools_and_strings(key: str, value: Any, expected: bool) -> None:
    net = parse(conflist("n", "bridge", **{key: value}))
    attr = {"disableCheck": "disable_check", "disableGC": "disable_gc"}.get(
        key, "load_only_inlined_plugins"
    )
    assert getattr(net, attr) is expected


@pytest.mark.parametrize(
    ("value", "shown"), [(1, "number 1"), ("yes", 'string "yes"'), (None, "null")]
)
def test_bool_fields_reject_other_values(value: Any, shown: str) -> None:
    msg = parse_error(conflist("n", "bridge", disableCheck=value))
    assert '"disableCheck"' in msg and shown in msg


def test_name_required_and_string() -> None:
    assert 'missing required key "name"' in parse_error({"plugins": [{"type": "x"}]})
    msg = parse_error({"name": 5, "plugins": [{"type": "x"}]})
    assert '"name" must be a string' in msg and "number 5" in msg
    msg = parse_error({"name": "n", "cniVersion": 1.0, "plugins": [{"type": "x"}]})
    assert '"cniVersion" must be a string' in msg


def test_top_level_must_be_object_and_json_errors_name_position() -> None:
    assert "got array" in parse_error("[]")
    msg = parse_error('{"name": "n",\n"plugins": [{"type": "x"},]}')
    assert "line 2 column" in msg
    assert "NaN is not valid JSON" in parse_error(
        '{"name": "n", "mtu": NaN, "plugins": [{"type": "x"}]}'
    )
    assert "number 1e999 is out of range" in parse_error(
        '{"name": "n", "mtu": 1e999, "plugins": [{"type": "x"}]}'
    )
    assert "nested too deeply" in parse_error('{"name": "n", "x": ' + "[" * 5000 + "]" * 5000 + "}")


def test_plugins_validation() -> None:
    assert "no plugins in list" in parse_error({"name": "n", "plugins": []})
    assert '"plugins" must be a list' in parse_error({"name": "n", "plugins": {"type": "x"}})
    assert "plugins[1]: missing 'type'" in parse_error(
        {"name": "n", "plugins": [{"type": "x"}, {"ipam": {}}]}
    )
    assert "plugins[0]: missing 'type'" in parse_error({"name": "n", "plugins": [{"type": ""}]})
    msg = parse_error({"name": "n", "plugins": [{"type": 7}]})
    assert 'plugins[0]: "type" must be a string, got number 7' in msg
    assert "must be a JSON object" in parse_error({"name": "n", "plugins": ["bridge"]})


@pytest.mark.parametrize("ptype", ["../bin/ls", "/usr/bin/id", "sub/bridge"])
def test_plugin_type_with_path_separator_rejected(ptype: str) -> None:
    msg = parse_error({"name": "n", "plugins": [{"type": ptype}]})
    assert f'invalid plugin type "{ptype}"' in msg


def test_capabilities_must_be_object_of_bools() -> None:
    net = parse(
        {
            "name": "n",
            "plugins": [{"type": "portmap", "capabilities": {"portMappings": True, "x": False}}],
        }
    )
    assert net.plugins[0].capabilities == {"portMappings": True, "x": False}
    msg = parse_error({"name": "n", "plugins": [{"type": "p", "capabilities": ["portMappings"]}]})
    assert '"capabilities" must be an object of booleans, got array' in msg
    msg = parse_error(
        {"name": "n", "plugins": [{"type": "p", "capabilities": {"portMappings": "true"}}]}
    )
    assert 'capability "portMappings" must be true or false, got string "true"' in msg


def test_ipam_and_dns_shapes_checked() -> None:
    assert '"ipam" must be an object' in parse_error(
        {"name": "n", "plugins": [{"type": "b", "ipam": "host-local"}]}
    )
    msg = parse_error({"name": "n", "plugins": [{"type": "b", "dns": {"nameservers": "1.1.1.1"}}]})
    assert '"dns"."nameservers" must be a list of strings' in msg


def test_unknown_keys_are_kept_verbatim() -> None:
    net = parse(
        {
            "name": "n",
            "cniVersion": "1.0.0",
            "x-vendor": {"k": [1]},
            "plugins": [{"type": "b", "extra": 1.25}],
        }
    )
    assert net.plugins[0].raw == {"type": "b", "extra": 1.25}


# --------------------------------------------------------------------------- cniVersions


@pytest.mark.parametrize(
    ("version", "versions", "expected"),
    [
        ("1.0.0", ["0.4.0", "1.1.0"], "1.1.0"),
        ("1.1.0", ["0.3.1"], "1.1.0"),
        ("", ["0.3.1", "1.0.0"], "1.0.0"),
        ("1.0.0", ["1.2.0", "9.0.0"], "1.0.0"),  # newer than this library: ignored
        ("2.0.0", ["0.4.0"], "0.4.0"),  # an unusable cniVersion is not kept
        ("2.0.0", [], "2.0.0"),
        ("0.4.0", ["1.0"], "1.0"),  # missing parts are zeros
    ],
)
def test_cni_versions_pick_highest_supported(
    version: str, versions: list[str], expected: str
) -> None:
    net = parse(
        {"name": "n", "cniVersion": version, "cniVersions": versions, "plugins": [{"type": "b"}]}
    )
    assert net.cni_version == expected
    assert net.cni_versions == versions


def test_cni_versions_errors() -> None:
    msg = parse_error({"name": "n", "cniVersions": ["1.0.0", "x.y"], "plugins": [{"type": "b"}]})
    assert 'invalid "cniVersions" entry "x.y" at index 1' in msg
    assert '"cniVersions"[0] must be a string' in parse_error(
        {"name": "n", "cniVersions": [1], "plugins": [{"type": "b"}]}
    )
    assert '"cniVersions" must be a list' in parse_error(
        {"name": "n", "cniVersions": "1.0.0", "plugins": [{"type": "b"}]}
    )
    assert 'invalid "cniVersion" "abc"' in parse_error(
        {"name": "n", "cniVersion": "abc", "cniVersions": ["1.0.0"], "plugins": [{"type": "b"}]}
    )


def test_without_cni_versions_the_version_is_taken_as_written() -> None:
    assert (
        parse({"name": "n", "cniVersion": "9.9.9", "plugins": [{"type": "b"}]}).cni_version
        == "9.9.9"
    )
    assert parse({"name": "n", "plugins": [{"type": "b"}]}).cni_version == ""


# --------------------------------------------------------------------------- drop-ins


def test_dropins_appended_after_inlined_plugins(tmp_path: Path) -> None:
    write(tmp_path / "10-net.conflist", conflist("net", "bridge"))
    write(tmp_path / "net" / "20-tuning.conf", {"type": "tuning", "mtu": 1400})
    write(
        tmp_path / "net" / "10-portmap.conf",
        {"type": "portmap", "capabilities": {"portMappings": True}},
    )
    write(tmp_path / "net" / "30-ignored.json", {"type": "nope"})
    (tmp_path / "net" / "sub.conf").mkdir()
    net = cfg.load_conf_list(str(tmp_path), "net")
    assert [p.type for p in net.plugins] == ["bridge", "portmap", "tuning"]
    assert net.plugins[1].source == str(tmp_path / "net" / "10-portmap.conf")
    assert net.plugins[1].capabilities == {"portMappings": True}
    # the cached config stays the list file's own bytes
    assert net.raw_bytes == (tmp_path / "10-net.conflist").read_bytes()


def test_dropins_only_list(tmp_path: Path) -> None:
    write(tmp_path / "10-net.conflist", {"cniVersion": "1.1.0", "name": "net"})
    write(tmp_path / "net" / "a.conf", {"type": "bridge"})
    assert [p.type for p in cfg.load_conf_list(str(tmp_path), "net").plugins] == ["bridge"]


def test_load_only_inlined_skips_dropins(tmp_path: Path) -> None:
    write(tmp_path / "10-net.conflist", conflist("net", "bridge", loadOnlyInlinedPlugins="True"))
    write(tmp_path / "net" / "a.conf", {"type": "portmap"})
    assert [p.type for p in cfg.load_conf_list(str(tmp_path), "net").plugins] == ["bridge"]


def test_load_only_inlined_without_plugins_key(tmp_path: Path) -> None:
    write(tmp_path / "10-net.conflist", {"name": "net", "loadOnlyInlinedPlugins": True})
    msg = load_error(tmp_path)
    assert "10-net.conflist" in msg and 'no "plugins" key' in msg


def test_no_plugins_anywhere(tmp_path: Path) -> None:
    write(tmp_path / "10-net.conflist", {"name": "net"})
    msg = load_error(tmp_path)
    assert "10-net.conflist" in msg and "no plugin configs found" in msg


def test_bad_dropin_is_named(tmp_path: Path) -> None:
    write(tmp_path / "10-net.conflist", conflist("net", "bridge"))
    write(tmp_path / "net" / "bad.conf", '{"type": "portmap",}')
    msg = load_error(tmp_path)
    assert str(tmp_path / "net" / "bad.conf") in msg


def test_pathlike_network_name_cannot_pick_a_dropin_dir(tmp_path: Path) -> None:
    write(tmp_path / "10-net.conflist", conflist("../elsewhere", "bridge"))
    msg = load_error(tmp_path, "../elsewhere")
    assert "drop-in" in msg and "10-net.conflist" in msg
    # inlined-only lists do not look at a directory, so they load (ADD validates the name)
    write(
        tmp_path / "10-net.conflist",
        conflist("../elsewhere", "bridge", loadOnlyInlinedPlugins=True),
    )
    assert cfg.load_conf_list(str(tmp_path), "../elsewhere").name == "../elsewhere"


def test_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    os.symlink(tmp_path / "missing-target", tmp_path / "10-dangling.conflist")
    msg = load_error(tmp_path)
    assert "10-dangling.conflist" in msg


def test_scan_dir_marks_files_a_broken_earlier_file_blocks(tmp_path: Path) -> None:
    write(tmp_path / "10-ok.conflist", conflist("ok", "bridge"))
    write(tmp_path / "20-bad.conflist", "{")
    write(tmp_path / "30-later.conflist", conflist("later", "bridge"))
    write(tmp_path / "40-single.conf", {"name": "single", "type": "ptp"})
    entries = {os.path.basename(e.path): e for e in cfg.scan_dir(str(tmp_path))}
    bad = str(tmp_path / "20-bad.conflist")
    assert entries["10-ok.conflist"].blocked_by is None
    assert entries["20-bad.conflist"].blocked_by is None
    assert entries["30-later.conflist"].blocked_by == bad
    assert entries["40-single.conf"].blocked_by == bad
    # and that is what a lookup does
    assert cfg.load_conf_list(str(tmp_path), "ok").name == "ok"
    for name in ("later", "single"):
        assert "20-bad.conflist" in load_error(tmp_path, name)


def test_broken_single_conf_blocks_only_later_single_confs(tmp_path: Path) -> None:
    write(tmp_path / "10-bad.conf", {"name": "bad"})
    write(tmp_path / "20-good.conf", {"name": "good", "type": "ptp"})
    write(tmp_path / "90-list.conflist", conflist("list", "bridge"))
    entries = {os.path.basename(e.path): e for e in cfg.scan_dir(str(tmp_path))}
    assert entries["90-list.conflist"].blocked_by is None
    assert entries["20-good.conf"].blocked_by == str(tmp_path / "10-bad.conf")
    assert cfg.load_conf_list(str(tmp_path), "list").name == "list"
    assert "10-bad.conf" in load_error(tmp_path, "good")


def test_conf_file_over_the_limit_is_refused_unparsed(tmp_path: Path) -> None:
    """A file past MAX_JSON_BYTES is a config error naming the file, read no further."""
    from cnitool.spec.jsonfmt import MAX_JSON_BYTES

    path = tmp_path / "10-big.conflist"
    body = b'{"cniVersion":"1.0.0","name":"big","plugins":[{"type":"x"}],"x":"'
    path.write_bytes(body + b"a" * MAX_JSON_BYTES + b'"}')
    with pytest.raises(cfg.ConfigError) as err:
        cfg.conf_list_from_file(str(path))
    assert str(err.value) == f"error reading {path}: the file is larger than {MAX_JSON_BYTES} bytes"
    path.write_bytes(body + b'"}')
    assert cfg.conf_list_from_file(str(path)).name == "big"
