"""`cnitool chains` does work linear in the size of the nat table: counted on synthetic
dumps of N and 2N attachments (operations, not time)."""

from __future__ import annotations

from typing import Any

from cnitool_plugins._lib.firewall import format_chain_name
from cnitool_plugins._lib.firewall.model import Rule, TableState, parse_save

from cnitool.cli.chains import collect


def node_dump(pods: int) -> str:
    """A nat table with ``pods`` attachments, each with a host port and ipMasq."""
    chains = [":PREROUTING ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"]
    chains.append(":CNI-HOSTPORT-DNAT - [0:0]")
    rules = ["-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"]
    for i in range(pods):
        cid = f"pod{i:05d}"
        ip = f"10.{i // 250}.{i % 250}.2"
        dn = format_chain_name("net", cid, "CNI-DN-")
        masq = format_chain_name("net", cid, "CNI-")
        chains += [f":{dn} - [0:0]", f":{masq} - [0:0]"]
        comment = f'-m comment --comment "name: \\"net\\" id: \\"{cid}\\""'
        dnat = f'-m comment --comment "dnat name: \\"net\\" id: \\"{cid}\\""'
        rules += [
            f"-A CNI-HOSTPORT-DNAT -p tcp {dnat} -m multiport --dports {8000 + i} -j {dn}",
            f"-A {dn} -p tcp -m tcp --dport {8000 + i} -j DNAT --to-destination {ip}:80",
            f"-A POSTROUTING -s {ip}/32 {comment} -j {masq}",
            f"-A {masq} -d 10.0.0.0/8 {comment} -j ACCEPT",
            f"-A {masq} ! -d 224.0.0.0/4 {comment} -j MASQUERADE",
        ]
    return "*nat\n" + "\n".join(chains + rules) + "\nCOMMIT\n"


class CountingState(TableState):
    """A TableState that counts the rules it hands out."""

    handed: int = 0

    def rules(self, chain: str) -> list[Rule]:
        out = super().rules(chain)
        self.handed += len(out)
        return out

    def all_rules(self) -> list[Rule]:
        out = super().all_rules()
        self.handed += len(out)
        return out


def work(pods: int) -> tuple[int, dict[str, Any]]:
    parsed = parse_save(node_dump(pods), "nat")
    state = CountingState(parsed.table, parsed.chains, parsed.counters)
    report = collect([(4, "nft", state)])
    return state.handed, report


def test_chains_view_is_linear_in_the_table() -> None:
    small, report = work(100)
    (net,) = report["networks"]
    assert len(net["containers"]) == 100
    assert all(len(c["chains"]) == 2 and c["portMappings"] for c in net["containers"])
    assert all(len(ch["jumps"]) == 1 for c in net["containers"] for ch in c["chains"])
    large, _ = work(200)
    # twice the attachments: about twice the rules looked at (quadratic work gives 4x)
    assert large <= 2.2 * small, (small, large)
