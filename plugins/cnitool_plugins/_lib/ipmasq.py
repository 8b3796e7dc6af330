"""IP masquerade for bridge/ptp ``ipMasq: true`` (iptables, the reference layout).

Per container a chain ``CNI-<hash>`` in table ``nat`` (``format_chain_name``) holding, per
address, ``-d <subnet> -j ACCEPT`` and ``! -d <multicast> -j MASQUERADE``, entered from
``POSTROUTING`` by ``-s <address> -j CNI-<hash>``; every rule carries the comment
``name: "<network>" id: "<containerID>"`` (its first 255 bytes, see ``masq_comment``). Chains made by the Go plugins are removed by
teardown and vice versa.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cnitool.spec.errors import ErrorList

from . import firewall as fw
from .firewall.names import format_chain_name

if TYPE_CHECKING:
    from cnitool.skel import CmdArgs

    from .steps import Rollback

MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}


# iptables keeps the first 255 bytes of a comment (XT_MAX_COMMENT_LEN less its NUL) and
# drops the rest without a word; iptables-restore, though, refuses a line whose argument
# passes 1,023 bytes, so a long container ID failed here where the Go plugins succeed
MAX_COMMENT_BYTES = 255


def masq_comment(network: str, container_id: str) -> str:
    """The rules' comment, cut as iptables stores it (so it reads back as written).

    A long container ID leaves a comment without its closing quote, byte for byte what
    the Go plugins' rules hold; each side's DEL finds the other's rules (by chain name).
    """
    text = f'name: "{network}" id: "{container_id}"'
    return text.encode()[:MAX_COMMENT_BYTES].decode(errors="ignore")


def _parse(ips: Sequence[str]) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    out = []
    for ip in ips:
        try:
            out.append(ipaddress.ip_interface(ip))
        except ValueError as e:
            raise fw.FirewallError(f"ipMasq: invalid address {ip!r}: {e}") from e
    return out


def masq_rules(network: str, container_id: str, ips: Sequence[str]) -> dict[int, list[fw.Rule]]:
    """The rules per family, in the order the reference plugin appends them."""
    chain = format_chain_name(network, container_id)
    comment = masq_comment(network, container_id)
    out: dict[int, list[fw.Rule]] = {}
    for ipi in _parse(ips):
        fam = ipi.version
        host = f"{ipi.ip}/{ipi.max_prefixlen}"
        rules = out.setdefault(fam, [])
        rules.append(
            fw.Rule(
                chain,
                ("-d", str(ipi.network), "-m", "comment", "--comment", comment, "-j", "ACCEPT"),
            )
        )
        rules.append(
            fw.Rule(
                chain,
                (
                    "!",
                    "-d",
                    MULTICAST[fam],
                    "-m",
                    "comment",
                    "--comment",
                    comment,
                    "-j",
                    "MASQUERADE",
                ),
            )
        )
        rules.append(
            fw.Rule("POSTROUTING", ("-s", host, "-m", "comment", "--comment", comment, "-j", chain))
        )
    return out


def plan_setup(plan: fw.Plan, chain: str, rules: Sequence[fw.Rule]) -> None:
    plan.ensure_chain(chain)
    for r in rules:
        if r.chain == chain and r.target == "ACCEPT":
            # keep every "don't touch my subnet" rule ahead of the MASQUERADE one
            existing = plan.state.chains.get(chain, [])
            masq = [i for i, a in enumerate(existing) if "MASQUERADE" in a]
            if masq and r.args not in existing:
                plan.insert_unique(r, masq[0] + 1)
                continue
        plan.append_unique(r)


def masq_scope(chain: str) -> fw.Scope:
    """What an ipMasq transaction reads: the container's chain, and of POSTROUTING only
    the jumps to it."""
    return fw.Scope(full=(chain,), search=("POSTROUTING",), needles=(chain,))


def setup_ip_masq(
    network: str, container_id: str, ips: Sequence[str], *, backend: str | None = None
) -> None:
    """Masquerade traffic from the container's addresses leaving their subnets.

    The chain is new in the common case: the rules are then written without reading the
    table (the commit's ``-N`` fails when it exists, and the read-plan-write path runs)."""
    chain = format_chain_name(network, container_id)
    choice = fw.requested(backend)
    scope = masq_scope(chain)
    for fam, rules in masq_rules(network, container_id, ips).items():

        def plan(p: fw.Plan, rules: list[fw.Rule] = rules) -> None:
            plan_setup(p, chain, rules)

        be = fw.choose(fam, choice)
        if not fw.transact_new(be, "nat", plan):
            fw.transact(be, "nat", plan, scope=scope)


def teardown_ip_masq(
    network: str, container_id: str, ips: Sequence[str] = (), *, backend: str | None = None
) -> None:
    """Remove the container's masquerade chain and every POSTROUTING jump to it.

    Looks in both families (only those of ``ips`` when given) and in both iptables backends
    where their tables exist; keeps going past errors and reports them together.
    """
    chain = format_chain_name(network, container_id)
    families = sorted({i.version for i in _parse(ips)}) or [4, 6]
    choice = fw.requested(backend)
    errors = ErrorList()

    def plan(p: fw.Plan) -> None:
        p.delete_jumps_to(chain, ["POSTROUTING"])
        p.delete_chain(chain)

    scope = masq_scope(chain)
    # the jumps read from POSTROUTING tell that the chain exists; only without one is the
    # chain itself listed
    narrow = fw.Scope(search=("POSTROUTING",), needles=(chain,), exist=(chain,), narrow=True)

    for fam in families:
        try:
            backends = fw.teardown_backends(fam, choice)
        except fw.FirewallError as e:
            errors.add(e)
            continue
        for i, be in enumerate(backends):
            try:
                # the other backend's table is mostly empty: one whole read is cheapest
                fw.transact(be, "nat", plan, scope=scope, narrow=None if i else narrow)
            except fw.TableUnavailable:
                continue  # nothing can have been set up where the table cannot be read
            except fw.FirewallError as e:
                errors.add(fw.FirewallError(f"{be.name} ipv{fam}: {e}"))
    if errors:
        raise fw.FirewallError("failed to tear down ipMasq: " + errors.text())


# -- the plugins' steps (bridge, ptp) ---------------------------------------------------
def setup_masq(
    network: str,
    container_id: str,
    cidrs: list[str],
    backend: str | None,
    *,
    undo: Rollback,
) -> None:
    """ADD: masquerade traffic from ``cidrs``; the teardown is added to ``undo``."""
    setup_ip_masq(network, container_id, cidrs, backend=backend)
    undo.add(teardown_ip_masq, network, container_id, cidrs, backend=backend)


def teardown_masq(
    cmd: CmdArgs, raw: Mapping[str, Any], cidrs: list[str], backend: str | None
) -> None:
    """DEL: remove the container's ipMasq chain and the POSTROUTING jumps to it.

    The chain is named from the network and the container ID, so it is found even when
    the netns, the link and prevResult are all gone (the reference then leaks it, e.g.
    after a reboot where the runtime passes no netns). The addresses, from the deleted link
    or else from ``prevResult``, only narrow the families searched."""
    from .ipam import prev_cidrs

    cidrs = cidrs or prev_cidrs(raw, cmd.ifname)
    network = str(raw.get("name", ""))
    teardown_ip_masq(network, cmd.container_id, cidrs, backend=backend)
