"""The bridge's ipMasq and portmap read and tokenize only what they touch: counted on
synthetic nat tables of N and 2N attachments (operations, not time)."""

from __future__ import annotations

from typing import Any

import pytest
from cnitool_plugins._lib import firewall as fw
from cnitool_plugins._lib import ipmasq
from cnitool_plugins._lib.firewall import model
from cnitool_plugins.portmap import iptables
from cnitool_plugins.portmap.config import PortMapConf, parse_config
from cnitool_plugins.portmap.rules import dnat_chain_name, old_snat_chain_name
from nat_mem import MemBackend
from test_chains_scale import node_dump

N = 150


class Node:
    """A node's nat table (``pods`` attachments on network "net") and the work counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, pods: int) -> None:
        self.be = MemBackend(4, node_dump(pods))
        self.tokenized = 0
        real = model.tokenize

        def counting(line: str) -> list[str]:
            self.tokenized += 1
            return real(line)

        monkeypatch.setattr(model, "tokenize", counting)
        monkeypatch.setattr(fw, "choose", lambda fam, choice="auto": self.be)
        monkeypatch.setattr(
            fw, "teardown_backends", lambda fam, choice="auto": [self.be] if fam == 4 else []
        )

    def reset(self) -> None:
        self.tokenized = 0
        self.be.reads.clear()
        self.be.applied.clear()


def portmap_conf(cid: str, ip: str) -> PortMapConf:
    raw: dict[str, Any] = {
        "cniVersion": "1.0.0",
        "name": "net",
        "type": "portmap",
        "runtimeConfig": {"portMappings": [{"hostPort": 9000, "containerPort": 80}]},
        "prevResult": {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
            "ips": [{"interface": 0, "address": f"{ip}/8"}],
        },
    }
    return parse_config(raw, cid, "eth0", "ADD")


def ip_of(pod: int) -> str:
    return f"10.{pod // 250}.{pod % 250}.2"


def portmap_add_new(monkeypatch: pytest.MonkeyPatch, pods: int) -> tuple[int, list[str]]:
    node = Node(monkeypatch, pods)
    node.reset()
    conf = portmap_conf("newpod", "10.200.0.2")
    assert conf.cont_net4 is not None
    iptables.forward_ports(conf, conf.cont_net4)
    dn = dnat_chain_name("net", "newpod")
    assert len(node.be.state.rules(dn)) == 3
    assert len([r for r in node.be.state.rules("CNI-HOSTPORT-DNAT") if r.target == dn]) == 1
    return node.tokenized, list(node.be.reads)


def test_portmap_add_tokenizes_the_same_at_n_and_2n(monkeypatch: pytest.MonkeyPatch) -> None:
    small, reads = portmap_add_new(monkeypatch, N)
    large, _ = portmap_add_new(monkeypatch, 2 * N)
    assert reads == ["save"]  # one read of the table, filtered before tokenizing
    assert small == large < 10


def portmap_del(monkeypatch: pytest.MonkeyPatch, pods: int) -> tuple[int, list[str], int]:
    node = Node(monkeypatch, pods)
    before = len(node.be.lines())
    node.reset()
    conf = portmap_conf("pod00007", ip_of(7))
    iptables.unforward_ports(conf)
    dn = dnat_chain_name("net", "pod00007")
    assert not node.be.state.has_chain(dn)
    assert not any("pod00007" in ln and "dnat" in ln for ln in node.be.lines())
    assert len(node.be.lines()) == before - 2  # its entry rule and its DNAT rule
    assert len(node.be.applied) == 1
    return node.tokenized, list(node.be.reads), len(node.be.applied)


def test_portmap_del_lists_one_chain_at_n_and_2n(monkeypatch: pytest.MonkeyPatch) -> None:
    small, reads, _ = portmap_del(monkeypatch, N)
    large, reads_2n, _ = portmap_del(monkeypatch, 2 * N)
    assert reads == reads_2n == ["CNI-HOSTPORT-DNAT"]  # no whole-table read
    assert small == large == 1
    # the commit asserts that the pre-0.7 SNAT chain does not exist
    node = Node(monkeypatch, 3)
    node.reset()
    iptables.unforward_ports(portmap_conf("pod00001", ip_of(1)))
    sn = old_snat_chain_name("net", "pod00001")
    assert f"-N {sn}\n-X {sn}" in node.be.applied[0]


def test_portmap_del_finds_an_old_snat_chain_on_the_whole_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = Node(monkeypatch, 5)
    sn = old_snat_chain_name("net", "pod00002")
    node.be.state.chains[sn] = [("-j", "MASQUERADE")]
    node.be.state.chains["CNI-HOSTPORT-SNAT"] = [("-s", "10.0.2.2/32", "-j", sn)]
    node.reset()
    iptables.unforward_ports(portmap_conf("pod00002", ip_of(2)))
    assert node.be.reads == ["CNI-HOSTPORT-DNAT", "save"]
    assert not node.be.state.has_chain(sn)
    assert not node.be.state.has_chain(dnat_chain_name("net", "pod00002"))
    assert node.be.state.rules("CNI-HOSTPORT-SNAT") == []


def test_portmap_repeated_del_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    node = Node(monkeypatch, 5)
    conf = portmap_conf("pod00003", ip_of(3))
    iptables.unforward_ports(conf)
    node.reset()
    before = node.be.lines()
    iptables.unforward_ports(conf)
    assert node.be.applied == [] and node.be.lines() == before
    assert node.be.reads == ["CNI-HOSTPORT-DNAT", "save"]  # nothing found: made sure


def test_portmap_del_of_a_chain_without_entry_rule_still_removes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = Node(monkeypatch, 3)
    dn = dnat_chain_name("net", "pod00001")
    node.be.state.chains["CNI-HOSTPORT-DNAT"] = [
        a for a in node.be.state.chains["CNI-HOSTPORT-DNAT"] if dn not in a
    ]
    node.reset()
    iptables.unforward_ports(portmap_conf("pod00001", ip_of(1)))
    assert not node.be.state.has_chain(dn)
    assert node.be.reads == ["CNI-HOSTPORT-DNAT", "save"]


def test_the_other_backend_is_read_whole_once(monkeypatch: pytest.MonkeyPatch) -> None:
    node = Node(monkeypatch, 3)
    other = MemBackend(4)
    monkeypatch.setattr(
        fw, "teardown_backends", lambda fam, choice="auto": [node.be, other] if fam == 4 else []
    )
    iptables.unforward_ports(portmap_conf("pod00001", ip_of(1)))
    ipmasq.teardown_ip_masq("net", "pod00001", [f"{ip_of(1)}/8"])
    assert other.reads == ["save", "save"] and other.applied == []


def portmap_check(monkeypatch: pytest.MonkeyPatch, pods: int) -> int:
    node = Node(monkeypatch, pods)
    conf = portmap_conf("newpod", "10.200.0.2")
    assert conf.cont_net4 is not None
    iptables.forward_ports(conf, conf.cont_net4)
    node.reset()
    iptables.check_ports(conf, conf.cont_net4)
    return node.tokenized


def test_portmap_check_tokenizes_the_same_at_n_and_2n(monkeypatch: pytest.MonkeyPatch) -> None:
    assert portmap_check(monkeypatch, N) == portmap_check(monkeypatch, 2 * N) < 10


def masq_add(monkeypatch: pytest.MonkeyPatch, pods: int, cid: str, ip: str) -> Node:
    node = Node(monkeypatch, pods)
    node.reset()
    ipmasq.setup_ip_masq("net", cid, [f"{ip}/8"])
    chain = fw.format_chain_name("net", cid)
    assert len(node.be.state.rules(chain)) == 2
    assert len([r for r in node.be.state.rules("POSTROUTING") if r.target == chain]) == 1
    return node


def test_ipmasq_add_of_a_new_chain_reads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for pods in (N, 2 * N):
        node = masq_add(monkeypatch, pods, "newpod", "10.200.0.2")
        assert node.be.reads == [] and node.tokenized == 0 and len(node.be.applied) == 1


def test_ipmasq_add_over_an_existing_chain_reads_only_it(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = []
    for pods in (N, 2 * N):
        node = masq_add(monkeypatch, pods, "pod00004", ip_of(4))
        assert node.be.reads == ["save"]
        assert node.be.applied == []  # refused "-N", then nothing left to do
        counts.append(node.tokenized)
    assert counts[0] == counts[1] == 3  # its two rules and its POSTROUTING jump


def test_ipmasq_del_lists_postrouting_only(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = []
    for pods in (N, 2 * N):
        node = Node(monkeypatch, pods)
        chain = fw.format_chain_name("net", "pod00005")
        before = len(node.be.lines())
        node.reset()
        ipmasq.teardown_ip_masq("net", "pod00005", [f"{ip_of(5)}/8"])
        assert node.be.reads == ["POSTROUTING"]
        assert not node.be.state.has_chain(chain)
        assert len(node.be.lines()) == before - 3
        counts.append(node.tokenized)
        # again: the chain is looked for, and nothing is written
        node.reset()
        ipmasq.teardown_ip_masq("net", "pod00005", [f"{ip_of(5)}/8"])
        assert node.be.reads == ["POSTROUTING", chain] and node.be.applied == []
    assert counts[0] == counts[1] == 1


def test_ipmasq_del_of_a_chain_without_jump_still_removes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = Node(monkeypatch, 3)
    chain = fw.format_chain_name("net", "lonely")
    node.be.state.chains[chain] = [("-j", "MASQUERADE")]
    ipmasq.teardown_ip_masq("net", "lonely", ["10.9.0.2/8"])
    assert not node.be.state.has_chain(chain)


def test_scoped_parse_tokenizes_only_kept_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    text = node_dump(N)
    chain = fw.format_chain_name("net", "pod00009")
    scope = fw.Scope(full=(chain,), search=("POSTROUTING",), needles=(chain,))
    seen: list[str] = []
    real = model.tokenize
    monkeypatch.setattr(model, "tokenize", lambda line: seen.append(line) or real(line))
    state = model.parse_save(text, "nat", scope)
    assert len(seen) == 3 and set(state.chains) == {chain, "POSTROUTING"}
    full = model.parse_save(text, "nat")
    assert state.chains[chain] == full.chains[chain]
    assert state.chains["POSTROUTING"] == [a for a in full.chains["POSTROUTING"] if chain in a]
