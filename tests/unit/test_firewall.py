"""Firewall model, hashing and ipMasq rules: pure tests (no root), checked against the
captured reference output (cni-reference Appendix A/B)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from cnitool_plugins._lib import firewall as fw
from cnitool_plugins._lib import ipmasq
from cnitool_plugins._lib.firewall.detect import CHOICES
from cnitool_plugins._lib.firewall.model import Plan, Rule, parse_save, quote, tokenize

from cnitool.spec.errors import InvalidConfigError

CID = "cnitool-77383ca0a0715733ca6f"

# iptables-save -t nat after the reference bridge (ipMasq) + portmap ADD (Appendix A)
APPENDIX_A = r"""*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-DN-d0b3203be6ffc55cd4087 - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
:CNI-d0b3203be6ffc55cd4087ca5 - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A POSTROUTING -s 10.22.0.2/32 -m comment --comment "name: \"mynet\" id: \"cnitool-77383ca0a0715733ca6f\"" -j CNI-d0b3203be6ffc55cd4087ca5
-A CNI-DN-d0b3203be6ffc55cd4087 -s 10.22.0.0/16 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-d0b3203be6ffc55cd4087 -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-d0b3203be6ffc55cd4087 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.22.0.2:80
-A CNI-DN-d0b3203be6ffc55cd4087 -s 10.22.0.0/16 -d 127.0.0.1/32 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-d0b3203be6ffc55cd4087 -s 127.0.0.1/32 -d 127.0.0.1/32 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-d0b3203be6ffc55cd4087 -d 127.0.0.1/32 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.22.0.2:53
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"mynet\" id: \"cnitool-77383ca0a0715733ca6f\"" -m multiport --dports 8080 -j CNI-DN-d0b3203be6ffc55cd4087
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"mynet\" id: \"cnitool-77383ca0a0715733ca6f\"" -m multiport --dports 5353 -j CNI-DN-d0b3203be6ffc55cd4087
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
-A CNI-d0b3203be6ffc55cd4087ca5 -d 10.22.0.0/16 -m comment --comment "name: \"mynet\" id: \"cnitool-77383ca0a0715733ca6f\"" -j ACCEPT
-A CNI-d0b3203be6ffc55cd4087ca5 ! -d 224.0.0.0/4 -m comment --comment "name: \"mynet\" id: \"cnitool-77383ca0a0715733ca6f\"" -j MASQUERADE
COMMIT
"""

APPENDIX_A_LINES = [ln for ln in APPENDIX_A.splitlines() if ln.startswith("-A ")]


def test_chain_names_match_appendix_b() -> None:
    assert fw.format_chain_name("mynet", CID) == "CNI-d0b3203be6ffc55cd4087ca5"
    assert fw.format_chain_name("mynet", CID, "CNI-DN-") == "CNI-DN-d0b3203be6ffc55cd4087"
    assert fw.format_chain_name("mynet", CID, "CNI-SN-") == "CNI-SN-d0b3203be6ffc55cd4087"
    assert fw.format_hash(15, "bwp", "mynet" + CID) == "bwpd0b3203be6ff"


def test_save_lines_round_trip_through_tokens() -> None:
    state = parse_save(APPENDIX_A, "nat")
    rendered = [r.text() for r in state.all_rules()]
    assert sorted(rendered) == sorted(APPENDIX_A_LINES)
    post = state.rules("POSTROUTING")[1]
    assert post.comment() == f'name: "mynet" id: "{CID}"'
    assert post.target == "CNI-d0b3203be6ffc55cd4087ca5"


def test_tokenize_handles_escapes_and_empty_strings() -> None:
    assert tokenize(r'-m comment --comment "a \"b\" c\'d" -j X') == [
        "-m",
        "comment",
        "--comment",
        'a "b" c\'d',
        "-j",
        "X",
    ]
    assert tokenize('--comment ""') == ["--comment", ""]
    for tok in ("plain", "with space", 'q"uote', "back\\slash", ""):
        assert tokenize(quote(tok)) == [tok]


def test_parse_save_reads_counters() -> None:
    text = "*nat\n:OUTPUT ACCEPT [0:0]\n:X - [0:0]\n[7:420] -A OUTPUT -j X\nCOMMIT\n"
    st = parse_save(text, "nat")
    assert st.counters["OUTPUT"] == [(7, 420)]
    assert st.rules("OUTPUT") == [Rule("OUTPUT", ("-j", "X"))]


def test_plan_is_idempotent_against_its_snapshot() -> None:
    state = parse_save(APPENDIX_A, "nat")
    plan = Plan(state)
    for r in state.all_rules():
        plan.append_unique(r)
    plan.ensure_chain("CNI-HOSTPORT-DNAT")
    assert not plan  # nothing to do: every rule already there


def test_plan_delete_chain_removes_jumps_first_and_only_existing_things() -> None:
    state = parse_save(APPENDIX_A, "nat")
    plan = Plan(state)
    plan.delete_chain("CNI-DN-d0b3203be6ffc55cd4087")
    plan.delete_chain("CNI-does-not-exist")
    kinds = [o.kind for o in plan.ops]
    assert kinds == ["delete", "delete", "flush", "delete_chain"]
    text = plan.restore_text()
    assert text.startswith("*nat\n-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment ")
    assert text.endswith(
        "-F CNI-DN-d0b3203be6ffc55cd4087\n-X CNI-DN-d0b3203be6ffc55cd4087\nCOMMIT\n"
    )
    assert "CNI-DN-d0b3203be6ffc55cd4087" not in plan.state.chains
    assert plan.state.rules("CNI-HOSTPORT-DNAT") == []


def test_plan_insert_unique_and_new_chain_declaration() -> None:
    plan = Plan(parse_save("*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n", "nat"))
    plan.ensure_chain("CNI-HOSTPORT-MASQ")
    rule = Rule("POSTROUTING", ("-m", "comment", "--comment", "x y", "-j", "CNI-HOSTPORT-MASQ"))
    plan.insert_unique(rule, 1)
    plan.insert_unique(rule, 1)
    assert plan.restore_text() == (
        '*nat\n-N CNI-HOSTPORT-MASQ\n-I POSTROUTING 1 -m comment --comment "x y" '
        "-j CNI-HOSTPORT-MASQ\nCOMMIT\n"
    )


def test_ipmasq_rules_are_the_reference_lines() -> None:
    rules = ipmasq.masq_rules("mynet", CID, ["10.22.0.2/16"])
    assert set(rules) == {4}
    lines = [r.text() for r in rules[4]]
    expected = [ln for ln in APPENDIX_A_LINES if "CNI-d0b3203be6ffc55cd4087ca5" in ln]
    assert sorted(lines) == sorted(expected)


def test_ipmasq_ipv6_rules() -> None:
    rules = ipmasq.masq_rules("n", "c", ["fd00:1::5/64"])[6]
    chain = fw.format_chain_name("n", "c")
    assert [r.text() for r in rules] == [
        f'-A {chain} -d fd00:1::/64 -m comment --comment "name: \\"n\\" id: \\"c\\"" -j ACCEPT',
        f'-A {chain} ! -d ff00::/8 -m comment --comment "name: \\"n\\" id: \\"c\\"" -j MASQUERADE',
        f'-A POSTROUTING -s fd00:1::5/128 -m comment --comment "name: \\"n\\" id: \\"c\\"" -j {chain}',
    ]


def test_ipmasq_second_subnet_accept_goes_before_masquerade() -> None:
    rules = ipmasq.masq_rules("n", "c", ["10.0.0.2/24", "10.1.0.2/24"])[4]
    chain = fw.format_chain_name("n", "c")
    plan = Plan(parse_save("*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n", "nat"))
    ipmasq.plan_setup(plan, chain, rules)
    targets = [a[-1] for a in plan.state.chains[chain]]
    assert targets == ["ACCEPT", "ACCEPT", "MASQUERADE"]
    assert len(plan.state.chains["POSTROUTING"]) == 2


def test_ipmasq_bad_address_is_a_clear_error() -> None:
    with pytest.raises(fw.FirewallError, match="invalid address '10.0.0.300/24'"):
        ipmasq.masq_rules("n", "c", ["10.0.0.300/24"])


def test_backend_choice_env_wins_and_bad_values_fail() -> None:
    assert fw.requested("nft", {}) == "nft"
    assert fw.requested("nft", {fw.ENV: "legacy"}) == "legacy"
    assert fw.requested(None, {}) == "auto"
    assert set(CHOICES) == {"auto", "nft", "legacy", "legacy-restore"}
    with pytest.raises(InvalidConfigError, match="unknown iptables backend 'nftables'"):
        fw.requested("nftables", {})
    with pytest.raises(InvalidConfigError, match=fw.ENV):
        fw.requested(None, {fw.ENV: "bogus"})
    with pytest.raises(InvalidConfigError, match="must be a string"):
        fw.requested(3, {})


def test_libiptc_serves_one_family_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # libxtables binds loaded extensions to the first family: the IPv6 lookup of a target
    # already used for IPv4 fails, so the other family must use iptables-legacy-restore
    from cnitool_plugins._lib.firewall import detect, iptc_backend

    try:
        iptc_backend.import_iptc()
    except fw.FirewallError as e:
        pytest.skip(f"python-iptables unusable here: {e}")
    monkeypatch.setattr(iptc_backend, "_claimed_family", None)
    first = detect._legacy(4)
    assert isinstance(first, iptc_backend.IptcBackend)
    with pytest.raises(fw.FirewallError, match="libiptc already serves IPv4"):
        iptc_backend.IptcBackend(6)
    second = detect._legacy(6)
    assert (
        isinstance(second, fw.RestoreBackend) and second.restore_cmd == "ip6tables-legacy-restore"
    )
    assert isinstance(detect._legacy(4), iptc_backend.IptcBackend)


def test_restore_failure_names_the_input_line(monkeypatch: pytest.MonkeyPatch) -> None:
    be = fw.RestoreBackend(4, "nft")
    plan = Plan(parse_save("*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n", "nat"))
    plan.append_unique(Rule("POSTROUTING", ("-m", "nosuch", "-j", "ACCEPT")))

    def failing(argv: list[str], stdin: str | None = None) -> str:
        raise fw.FirewallError("iptables-restore: Error occurred at line: 2")

    monkeypatch.setattr(be, "_run", failing)
    with pytest.raises(fw.FirewallError, match=r"input line 2: -A POSTROUTING -m nosuch -j ACCEPT"):
        be.apply(plan)


class _Mem:
    name = "nft"
    family = 4

    def __init__(self, text: str) -> None:
        self.state = parse_save(text, "nat")
        self.applied: list[str] = []

    def load(
        self, table: str, counters: bool = False, scope: fw.Scope | None = None
    ) -> fw.TableState:
        return self.state.copy()

    def apply(self, plan: Plan) -> None:
        if plan.ops:
            self.applied.append(plan.restore_text())

    def locked(self) -> Any:
        return contextlib.nullcontext()


def test_transaction_that_ends_where_it_started_writes_nothing() -> None:
    be = _Mem(APPENDIX_A)
    dn = "CNI-DN-d0b3203be6ffc55cd4087"

    def rebuild(p: Plan) -> None:
        rules = p.state.rules(dn)
        p.flush_chain(dn)
        for r in rules:
            p.append_unique(r)

    fw.transact(be, "nat", rebuild)
    assert be.applied == []
    fw.transact(be, "nat", lambda p: p.delete_chain(dn))
    assert len(be.applied) == 1


def test_python_iptables_import_spawns_no_process() -> None:
    import subprocess
    import sys

    code = (
        "import subprocess, sys\n"
        "spawned = []\n"
        "real = subprocess.Popen.__init__\n"
        "def spy(self, args, *a, **k):\n"
        "    spawned.append(args)\n"
        "    return real(self, args, *a, **k)\n"
        "subprocess.Popen.__init__ = spy\n"
        "from cnitool_plugins._lib.firewall.iptc_backend import import_iptc\n"
        "try:\n"
        "    import_iptc()\n"
        "except Exception as e:\n"
        "    print('SKIP', e); sys.exit(0)\n"
        "print([a for a in spawned if 'modprobe' not in str(a)])\n"
        "print(sorted(m for m in sys.modules if m.startswith('distutils')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    if out.stdout.startswith("SKIP"):
        pytest.skip(out.stdout)
    # no ldconfig/gcc/ld probing (modprobe of ip_tables is the library's business)
    assert out.stdout.split("\n")[:2] == ["[]", "[]"], out.stdout


def test_python_iptables_import_from_threads_leaves_no_global_change() -> None:
    """Threads importing at once all get the finished module, and the temporary import
    settings (environment, library lookup, hidden distutils) are all undone afterwards."""
    import subprocess
    import sys

    code = (
        "import ctypes.util, os, sys, threading\n"
        "os.environ.pop('XTABLES_LIBDIR', None)\n"
        "original = ctypes.util.find_library\n"
        "from cnitool_plugins._lib.firewall.iptc_backend import import_iptc\n"
        "gate = threading.Barrier(8)\n"
        "got = []\n"
        "def work():\n"
        "    gate.wait()\n"
        "    try:\n"
        "        got.append(hasattr(import_iptc(), 'Table'))\n"
        "    except Exception as e:\n"
        "        got.append(repr(e))\n"
        "threads = [threading.Thread(target=work) for _ in range(8)]\n"
        "for t in threads: t.start()\n"
        "for t in threads: t.join()\n"
        "if any('unusable' in str(g) for g in got):\n"
        "    print('SKIP', got); sys.exit(0)\n"
        "print(got)\n"
        "print(ctypes.util.find_library is original, 'XTABLES_LIBDIR' in os.environ,\n"
        "      'distutils.sysconfig' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    if out.stdout.startswith("SKIP"):
        pytest.skip(out.stdout)
    assert out.stdout.split("\n")[:2] == [str([True] * 8), "True False False"], out.stdout


def _tokenize_by_character(line: str) -> list[str]:
    """The reference tokenizer: one character at a time, as iptables-restore reads."""
    out: list[str] = []
    cur: list[str] = []
    in_quote = have = False
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if in_quote:
            if c == "\\" and i + 1 < n:
                cur.append(line[i + 1])
                i += 2
                continue
            if c == '"':
                in_quote = False
            else:
                cur.append(c)
        elif c == '"':
            in_quote = have = True
        elif c in " \t\n":
            if cur or have:
                out.append("".join(cur))
                cur, have = [], False
        else:
            cur.append(c)
        i += 1
    if cur or have:
        out.append("".join(cur))
    return out


def test_tokenize_agrees_with_the_character_reader() -> None:
    from cnitool_plugins._lib.firewall.model import quote, tokenize
    from hypothesis import given, seed, settings
    from hypothesis import strategies as st

    pieces = st.sampled_from(['"', "\\", " ", "\t", "a", "-j", "x y", '\\"', "é", "\n", ""])

    @seed(7)
    @settings(max_examples=2000, deadline=None, database=None)
    @given(st.lists(pieces, max_size=12).map("".join))
    def same(line: str) -> None:
        assert tokenize(line) == _tokenize_by_character(line)

    same()
    rule = ["-m", "comment", "--comment", 'name: "n" id: "c\\1"', "-j", "X", ""]
    assert tokenize(" ".join(quote(t) for t in rule)) == rule
