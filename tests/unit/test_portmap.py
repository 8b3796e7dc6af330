"""portmap without root: rules from objects vs the reference capture, config errors,
and ADD/CHECK/DEL against an in-memory iptables backend."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from cnitool_plugins._lib import firewall as fw
from cnitool_plugins._lib.firewall.model import Plan, TableState, parse_save
from cnitool_plugins.portmap import iptables, rules
from cnitool_plugins.portmap import verbs as commands
from cnitool_plugins.portmap.__main__ import PLUGIN
from cnitool_plugins.portmap.config import container_nets, parse_config
from nat_mem import MemBackend
from test_firewall import APPENDIX_A, APPENDIX_A_LINES, CID

from cnitool import skel

PREV = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "cni0", "mac": "aa:bb:cc:dd:ee:ff"},
        {"name": "veth404c9fa6", "mac": "aa:bb:cc:dd:ee:01"},
        {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/var/run/netns/cnictest"},
    ],
    "ips": [{"interface": 2, "address": "10.22.0.2/16", "gateway": "10.22.0.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
}
MAPPINGS = [
    {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
    {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
]


def conf(**extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "cniVersion": "1.0.0",
        "name": "mynet",
        "type": "portmap",
        "capabilities": {"portMappings": True},
        "runtimeConfig": {"portMappings": MAPPINGS},
        "prevResult": PREV,
    }
    c.update(extra)
    return c


@pytest.fixture
def mem(monkeypatch: pytest.MonkeyPatch) -> dict[int, MemBackend]:
    backends = {4: MemBackend(4), 6: MemBackend(6)}
    monkeypatch.setattr(fw, "choose", lambda fam, choice="auto": backends[fam])
    monkeypatch.setattr(fw, "teardown_backends", lambda fam, choice="auto": [backends[fam]])
    monkeypatch.setattr(commands, "routable_host_if", lambda ip: "")
    monkeypatch.setattr(commands.shutil, "which", lambda name: None)  # no conntrack
    return backends


def run(verb: str, config: dict[str, Any], cid: str = CID) -> tuple[Any, int, str]:
    env = {
        "CNI_COMMAND": verb,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/run/netns/does-not-matter",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
    }
    err = io.StringIO()
    out, code = skel.run(PLUGIN, env, json.dumps(config).encode(), err)
    return (json.loads(out) if out.strip() else None), code, err.getvalue()


def portmap_lines() -> list[str]:
    return [ln for ln in APPENDIX_A_LINES if "CNI-d0b3203be6ffc55cd4087ca5" not in ln]


def test_rules_for_the_reference_capture_are_identical() -> None:
    pc = parse_config(conf(), CID, "eth0", "ADD")
    assert pc.cont_net4 is not None
    lines = []
    for spec in rules.setup_chains(pc, pc.cont_net4):
        lines += [r.text() for r in spec.rules + spec.entry_rules]
    assert sorted(lines) == sorted(portmap_lines())
    dn = rules.dnat_chain(pc, pc.cont_net4)
    # order inside the chain: hairpin mark, localhost mark, DNAT, per mapping
    assert [r.text() for r in dn.rules] == [
        ln for ln in APPENDIX_A_LINES if ln.startswith("-A CNI-DN-")
    ]


def test_add_check_del_in_memory(mem: dict[int, MemBackend]) -> None:
    out, code, _ = run("ADD", conf())
    assert code == 0
    assert out["ips"] == PREV["ips"] and out["cniVersion"] == "1.0.0"
    assert sorted(mem[4].lines()) == sorted(portmap_lines())
    assert len(mem[4].applied) == 1  # one transaction for the whole table
    assert mem[6].applied == []  # IPv4-only pod: ip6tables untouched
    # a second ADD changes nothing and writes nothing
    assert run("ADD", conf())[1] == 0
    assert len(mem[4].applied) == 1
    assert sorted(mem[4].lines()) == sorted(portmap_lines())
    # CHECK of an IPv4-only pod passes (the reference also checks ip6tables and fails)
    assert run("CHECK", conf())[1] == 0
    # DEL without the mappings removes the container's chain and entry rules
    no_maps = conf()
    del no_maps["runtimeConfig"]
    assert run("DEL", no_maps)[1] == 0
    left = mem[4].lines()
    assert not any("CNI-DN-" in ln for ln in left)
    assert mem[4].state.has_chain("CNI-HOSTPORT-DNAT")
    assert len(left) == 5  # the 3 entry rules + MASQ + SETMARK rules stay, as in the reference
    out, code, _ = run("CHECK", conf())
    assert code == 1 and "chain CNI-DN-d0b3203be6ffc55cd4087 not found" in out["msg"]
    assert run("DEL", conf())[1] == 0  # repeated DEL is fine


def test_check_reports_a_missing_rule(mem: dict[int, MemBackend]) -> None:
    assert run("ADD", conf())[1] == 0
    dn = "CNI-DN-d0b3203be6ffc55cd4087"
    mem[4].state.chains[dn].pop()  # lose the udp DNAT rule
    out, code, _ = run("CHECK", conf())
    assert code == 1
    assert "--to-destination 10.22.0.2:53 in chain CNI-DN-" in out["msg"]


def test_del_removes_rules_made_by_the_reference_plugin(mem: dict[int, MemBackend]) -> None:
    mem[4].state = parse_save(APPENDIX_A, "nat")
    assert run("DEL", conf(runtimeConfig={}))[1] == 0
    left = mem[4].lines()
    assert not any("CNI-DN-" in ln for ln in left)
    # the ipMasq chain is the bridge's business, not portmap's
    assert any("CNI-d0b3203be6ffc55cd4087ca5" in ln for ln in left)


def test_no_mappings_echoes_prev_result_and_touches_nothing(mem: dict[int, MemBackend]) -> None:
    out, code, _ = run("ADD", conf(runtimeConfig={"portMappings": []}))
    assert code == 0 and out["ips"] == PREV["ips"]
    assert mem[4].applied == [] and mem[6].applied == []


def test_dual_stack_ipv6_rules(mem: dict[int, MemBackend]) -> None:
    prev = json.loads(json.dumps(PREV))
    prev["ips"].append({"interface": 2, "address": "fd00:22::2/64", "gateway": "fd00:22::1"})
    maps = [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 9090, "containerPort": 90, "protocol": "tcp", "hostIP": "fd00::1"},
        {"hostPort": 9191, "containerPort": 91, "protocol": "tcp", "hostIP": "10.0.0.1"},
    ]
    assert run("ADD", conf(prevResult=prev, runtimeConfig={"portMappings": maps}))[1] == 0
    dn = "CNI-DN-d0b3203be6ffc55cd4087"
    v6 = [r.text() for r in mem[6].state.rules(dn)]
    assert v6 == [
        f"-A {dn} -s fd00:22::/64 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK",
        f"-A {dn} -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:22::2]:80",
        f"-A {dn} -s fd00:22::/64 -d fd00::1/128 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK",
        f"-A {dn} -d fd00::1/128 -p tcp -m tcp --dport 9090 -j DNAT --to-destination [fd00:22::2]:90",
    ]
    v4 = [r.text() for r in mem[4].state.rules(dn)]
    assert not any("9090" in ln for ln in v4) and any("-d 10.0.0.1/32" in ln for ln in v4)
    assert run("CHECK", conf(prevResult=prev, runtimeConfig={"portMappings": maps}))[1] == 0


def test_options_snat_masqall_markbit_external_chain() -> None:
    def dn(**kw: Any) -> list[str]:
        pc = parse_config(conf(**kw), CID, "eth0", "ADD")
        assert pc.cont_net4 is not None
        return [" ".join(r.args) for r in rules.dnat_chain(pc, pc.cont_net4).rules]

    assert all("SETMARK" not in r for r in dn(snat=False))
    masq_all = dn(masqAll=True)
    assert masq_all[0] == "-p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK"
    assert not any("127.0.0.1/32 -p tcp" in r for r in masq_all)
    assert dn(externalSetMarkChain="KUBE-MARK-MASQ")[0].endswith("-j KUBE-MARK-MASQ")
    pc = parse_config(conf(markMasqBit=0), CID, "eth0", "ADD")
    assert pc.cont_net4 is not None
    chains = {c.name: c for c in rules.setup_chains(pc, pc.cont_net4)}
    assert chains["CNI-HOSTPORT-SETMARK"].rules[0].args[-1] == "0x1/0x1"
    pc = parse_config(conf(externalSetMarkChain="KUBE-MARK-MASQ"), CID, "eth0", "ADD")
    assert pc.cont_net4 is not None
    names = [c.name for c in rules.setup_chains(pc, pc.cont_net4)]
    assert "CNI-HOSTPORT-SETMARK" not in names and "CNI-HOSTPORT-MASQ" not in names


def test_ports_are_chunked_by_15_and_protocols_sorted() -> None:
    maps = [{"hostPort": 1000 + i, "containerPort": 80, "protocol": "udp"} for i in range(17)]
    maps.append({"hostPort": 80, "containerPort": 80, "protocol": "TCP"})
    pc = parse_config(conf(runtimeConfig={"portMappings": maps}), CID, "eth0", "ADD")
    assert pc.cont_net4 is not None
    entry = rules.dnat_chain(pc, pc.cont_net4).entry_rules
    ports = [r.args[r.args.index("--dports") + 1] for r in entry]
    protos = [r.args[1] for r in entry]
    assert protos == ["tcp", "udp", "udp"]
    assert ports[1] == ",".join(str(1000 + i) for i in range(15)) and ports[2] == "1015,1016"


def test_conditions_are_appended_to_the_entry_rules() -> None:
    pc = parse_config(conf(conditionsV4=["!", "-s", "192.0.2.0/24"]), CID, "eth0", "ADD")
    assert pc.cont_net4 is not None
    entry = rules.dnat_chain(pc, pc.cont_net4).entry_rules[0]
    assert entry.args[-5:] == ("!", "-s", "192.0.2.0/24", "-j", "CNI-DN-d0b3203be6ffc55cd4087")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80}]}},
            "Invalid host port number: 0",
        ),
        (
            {"runtimeConfig": {"portMappings": [{"hostPort": 70000, "containerPort": 80}]}},
            "Invalid host port number: 70000",
        ),
        (
            {"runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": -1}]}},
            "Invalid container port number: -1",
        ),
        (
            {
                "runtimeConfig": {
                    "portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "icmp"}]
                }
            },
            "protocol 'icmp' is not one of tcp, udp, sctp",
        ),
        (
            {"runtimeConfig": {"portMappings": [{"hostPort": "80", "containerPort": 80}]}},
            "hostPort must be an integer",
        ),
        (
            {
                "runtimeConfig": {
                    "portMappings": [{"hostPort": 80, "containerPort": 80, "hostIP": "nope"}]
                }
            },
            "hostIP 'nope' is not an IP address",
        ),
        (
            {"markMasqBit": 5, "externalSetMarkChain": "KUBE-MARK-MASQ"},
            "Cannot specify externalSetMarkChain and markMasqBit",
        ),
        ({"markMasqBit": 32}, "MasqMarkBit must be between 0 and 31"),
        ({"snat": "yes"}, '"snat" must be a boolean'),
        ({"conditionsV4": ["ip", "saddr", "1.2.3.4"]}, "nftables syntax"),
        ({"backend": "nftables"}, "backend 'nftables' is not supported"),
        ({"iptablesBackend": "ebtables"}, "unknown iptables backend 'ebtables'"),
        ({"iptablesBackend": 5}, '"iptablesBackend" must be a string, got 5'),
        ({"prevResult": None}, "must be called as chained plugin"),
    ],
)
def test_bad_input_gives_a_cni_error(
    mem: dict[int, MemBackend], extra: dict[str, Any], message: str
) -> None:
    c = conf(**extra)
    if c.get("prevResult") is None:
        del c["prevResult"]
    out, code, err = run("ADD", c)
    assert code == 1, out
    assert message in out["msg"]
    assert out["code"] == 7
    assert "Traceback" not in err
    assert mem[4].applied == []


def test_container_nets_skip_host_interfaces() -> None:
    res = {
        "interfaces": [
            {"name": "cni0"},
            {"name": "eth0", "sandbox": "/x"},
            {"name": "eth1", "sandbox": "/x"},
        ],
        "ips": [
            {"interface": 0, "address": "10.0.0.1/24"},
            {"interface": 2, "address": "10.1.0.2/24"},
            {"interface": 1, "address": "10.2.0.2/24"},
            {"address": "fd00::2/64"},
        ],
    }
    v4, v6 = container_nets(res, "eth0")
    assert str(v4) == "10.2.0.2/24" and str(v6) == "fd00::2/64"


def test_routable_host_if_uses_longest_prefix(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ipaddress

    route = tmp_path / "route"
    route.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "cni0\t0000160A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
    )
    monkeypatch.setattr(commands, "ROUTE_FILES", (str(route),))
    assert commands.routable_host_if(ipaddress.IPv4Address("10.22.0.2")) == "cni0"
    assert commands.routable_host_if(ipaddress.IPv4Address("192.0.2.1")) == "eth0"


def test_del_with_broken_mappings_still_cleans(mem: dict[int, MemBackend]) -> None:
    assert run("ADD", conf())[1] == 0
    bad = conf(runtimeConfig={"portMappings": [{"hostPort": 0, "containerPort": 0}]})
    assert run("DEL", bad)[1] == 0
    assert not any("CNI-DN-" in ln for ln in mem[4].lines())


def test_teardown_plan_is_one_transaction_per_table(mem: dict[int, MemBackend]) -> None:
    mem[4].state = parse_save(APPENDIX_A, "nat")
    pc = parse_config(conf(), CID, "eth0", "DEL")
    iptables.unforward_ports(pc)
    assert len(mem[4].applied) == 1
    assert mem[6].applied == []  # nothing of this container in ip6tables: nothing written


def test_check_with_conditions_matches_reordered_entry_rules(mem: dict[int, MemBackend]) -> None:
    c = conf(conditionsV4=["-m", "addrtype", "!", "--src-type", "LOCAL"])
    assert run("ADD", c)[1] == 0
    # iptables may print the condition tokens elsewhere in the rule than we wrote them
    st = mem[4].state
    entry = st.chains["CNI-HOSTPORT-DNAT"]
    moved = []
    for args in entry:
        a = list(args)
        i = a.index("addrtype") - 1
        cond = a[i : i + 5]
        del a[i : i + 5]
        moved.append(tuple(cond + a))
    st.chains["CNI-HOSTPORT-DNAT"] = moved
    assert run("CHECK", c)[1] == 0
    st.chains["CNI-HOSTPORT-DNAT"] = moved[:1]  # the udp entry rule is gone
    out, code, _ = run("CHECK", c)
    assert code == 1 and "--dports 5353" in out["msg"]


def test_portmap_version_and_add_paths_stay_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import cnitool_plugins.portmap.__main__ as m;"
        "import cnitool_plugins.portmap.verbs;"
        "print(sorted(x for x in ('pyroute2','iptc','click','rich') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_failed_add_removes_what_it_wrote(
    mem: dict[int, MemBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    prev = json.loads(json.dumps(PREV))
    prev["ips"].append({"interface": 2, "address": "fd00:22::2/64", "gateway": "fd00:22::1"})

    def refuse(plan: Plan) -> None:
        raise fw.FirewallError("ip6tables-restore: line 3 failed")

    monkeypatch.setattr(mem[6], "apply", refuse)
    out, code, err = run("ADD", conf(prevResult=prev))
    assert code == 1 and "line 3 failed" in out["msg"]
    assert len(mem[4].applied) == 2  # the IPv4 rules, then their removal
    assert not any("CNI-DN-" in ln or "dnat name" in ln for ln in mem[4].lines())


def test_del_skips_a_family_whose_table_cannot_be_read(
    mem: dict[int, MemBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. a node without IPv6 nat: the reference skips ip6tables then, so must we
    mem[4].state = parse_save(APPENDIX_A, "nat")

    def unreadable(table: str, counters: bool = False, scope: fw.Scope | None = None) -> TableState:
        raise fw.FirewallError("ip6tables-nft-save not found in PATH")

    monkeypatch.setattr(mem[6], "load", unreadable)
    out, code, err = run("DEL", conf(runtimeConfig={}))
    assert code == 0, out
    assert not any("CNI-DN-" in ln for ln in mem[4].lines())
    assert "ipv6 nat table not usable" in err
    monkeypatch.setattr(mem[4], "load", unreadable)
    out, code, _ = run("DEL", conf(runtimeConfig={}))
    assert code == 1 and out["msg"] == "neither iptables nor ip6tables usable"


def test_del_reports_a_failed_write(
    mem: dict[int, MemBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    mem[4].state = parse_save(APPENDIX_A, "nat")

    def refuse(plan: Plan) -> None:
        raise fw.FirewallError("iptables-restore: line 2 failed")

    monkeypatch.setattr(mem[4], "apply", refuse)
    out, code, _ = run("DEL", conf(runtimeConfig={}))
    assert code == 1 and out["msg"].startswith("could not teardown ipv4 dnat (nft)")


def test_containerd_go_cased_port_mappings(mem: dict[int, MemBackend]) -> None:
    """The exact request containerd's CRI sends: libcni's sorted compact JSON with go-cni's
    untagged PortMapping struct, so HostPort/ContainerPort/Protocol/HostIP."""
    stdin = (
        b'{"capabilities":{"portMappings":true},"cniVersion":"1.0.0","name":"mynet",'
        b'"prevResult":' + json.dumps(PREV, separators=(",", ":")).encode() + b","
        b'"runtimeConfig":{"portMappings":['
        b'{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":""},'
        b'{"HostPort":5353,"ContainerPort":53,"Protocol":"udp","HostIP":"127.0.0.1"}]},'
        b'"type":"portmap"}'
    )
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": CID,
        "CNI_NETNS": "/run/netns/does-not-matter",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
    }
    out, code = skel.run(PLUGIN, env, stdin, io.StringIO())
    assert code == 0, out
    assert sorted(mem[4].lines()) == sorted(portmap_lines())
    out, code = skel.run(PLUGIN, {**env, "CNI_COMMAND": "CHECK"}, stdin, io.StringIO())
    assert code == 0, out
    out, code = skel.run(PLUGIN, {**env, "CNI_COMMAND": "DEL"}, stdin, io.StringIO())
    assert code == 0, out
    assert not any("CNI-DN-" in ln for ln in mem[4].lines())
