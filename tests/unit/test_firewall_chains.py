"""`cnitool chains` grouping, from a captured reference iptables-save (no root)."""

from __future__ import annotations

from cnitool_plugins._lib.firewall.model import parse_save
from test_firewall import APPENDIX_A, CID

from cnitool.cli.chains import collect


def test_reference_chains_are_grouped_by_network_and_container() -> None:
    counted = APPENDIX_A.replace(
        "-A CNI-DN-d0b3203be6ffc55cd4087 -p tcp -m tcp --dport 8080 -j DNAT",
        "[3:180] -A CNI-DN-d0b3203be6ffc55cd4087 -p tcp -m tcp --dport 8080 -j DNAT",
    ).replace("-A CNI-HOSTPORT-DNAT -p tcp", "[3:180] -A CNI-HOSTPORT-DNAT -p tcp")
    state = parse_save(counted, "nat")
    report = collect([(4, "nft", state)])
    assert [n["network"] for n in report["networks"]] == ["mynet"]
    (cont,) = report["networks"][0]["containers"]
    assert cont["containerID"] == CID
    kinds = {c["chain"]: (c["kind"], c["hashVerified"]) for c in cont["chains"]}
    assert kinds == {
        "CNI-DN-d0b3203be6ffc55cd4087": ("portmap dnat", True),
        "CNI-d0b3203be6ffc55cd4087ca5": ("ipMasq", True),
    }
    dn = next(c for c in cont["chains"] if c["kind"] == "portmap dnat")
    assert dn["packets"] == 3 and dn["bytes"] == 180  # through its entry rules
    maps = {
        (m["hostIP"], m["hostPort"], m["protocol"]): (m["podIP"], m["podPort"], m["packets"])
        for m in cont["portMappings"]
    }
    assert maps == {
        ("", 8080, "tcp"): ("10.22.0.2", 80, 3),
        ("127.0.0.1", 5353, "udp"): ("10.22.0.2", 53, 0),
    }
    assert sorted(c["chain"] for c in report["shared"]) == [
        "CNI-HOSTPORT-DNAT",
        "CNI-HOSTPORT-MASQ",
        "CNI-HOSTPORT-SETMARK",
    ]
    assert report["orphans"] == []
    assert collect([(4, "nft", state)], network="other")["networks"] == []


def test_chain_without_comment_is_an_orphan() -> None:
    text = (
        "*nat\n:POSTROUTING ACCEPT [0:0]\n:CNI-0123456789abcdef01234567 - [0:0]\n"
        "-A CNI-0123456789abcdef01234567 -j MASQUERADE\nCOMMIT\n"
    )
    report = collect([(4, "legacy", parse_save(text, "nat"))])
    assert [o["chain"] for o in report["orphans"]] == ["CNI-0123456789abcdef01234567"]
    assert report["networks"] == []


def test_ipv6_mappings_are_read_and_shown_with_brackets() -> None:
    from cnitool.cli.chains import endpoint

    dn = "CNI-DN-d0b3203be6ffc55cd4087"
    text = (
        f"*nat\n:{dn} - [0:0]\n:CNI-HOSTPORT-DNAT - [0:0]\n"
        f'[2:120] -A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \\"mynet\\" '
        f'id: \\"{CID}\\"" -m multiport --dports 9090 -j {dn}\n'
        f"[2:120] -A {dn} -d fd00::1/128 -p udp -m udp --dport 9090 -j DNAT "
        "--to-destination [fd00:22::2]:90\nCOMMIT\n"
    )
    report = collect([(6, "nft", parse_save(text, "nat"))])
    (cont,) = report["networks"][0]["containers"]
    (m,) = cont["portMappings"]
    assert (m["family"], m["hostIP"], m["hostPort"], m["podIP"], m["podPort"]) == (
        6,
        "fd00::1",
        9090,
        "fd00:22::2",
        90,
    )
    assert endpoint(m["hostIP"], m["hostPort"]) == "[fd00::1]:9090"
    assert endpoint(m["podIP"], m["podPort"]) == "[fd00:22::2]:90"
    assert endpoint("", 8080) == "*:8080" and endpoint("10.0.0.2", 80) == "10.0.0.2:80"
