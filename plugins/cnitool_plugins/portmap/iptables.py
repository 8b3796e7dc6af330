"""Applying the portmap layout: one transaction per table and family, either backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from cnitool.spec.errors import CNIError, ErrorList

from .._lib import firewall as fw
from .config import PortMapConf
from .rules import (
    OLD_SNAT,
    TOP_DNAT,
    ChainSpec,
    IPInterface,
    dnat_chain_name,
    dnat_comment,
    old_snat_chain_name,
    setup_chains,
)


def plan_setup(plan: fw.Plan, chains: Sequence[ChainSpec]) -> None:
    for spec in chains:
        own = spec.name.startswith("CNI-DN-")
        if own:
            # start the container's chain afresh and drop its old entry rules
            plan.flush_chain(spec.name)
            plan.delete_jumps_to(spec.name, [TOP_DNAT])
        else:
            plan.ensure_chain(spec.name)
        for r in spec.rules:
            plan.append_unique(r)
        for r in spec.entry_rules:
            if spec.prepend_entry:
                plan.insert_unique(r, 1)
            else:
                plan.append_unique(r)


def plan_teardown(plan: fw.Plan, network: str, container_id: str) -> None:
    comment = dnat_comment(network, container_id)
    plan.delete_where(TOP_DNAT, lambda r: r.comment() == comment)
    plan.delete_chain(dnat_chain_name(network, container_id))
    old = old_snat_chain_name(network, container_id)
    plan.delete_jumps_to(old, [OLD_SNAT, "POSTROUTING"])
    plan.delete_chain(old)


def setup_scope(chains: Sequence[ChainSpec]) -> fw.Scope:
    """What an ADD or CHECK reads: the chains it fills, and of the chains holding their
    entry rules only the rules that name one of them."""
    names = tuple(spec.name for spec in chains)
    entry = tuple(dict.fromkeys(r.chain for spec in chains for r in spec.entry_rules))
    # CNI-HOSTPORT-DNAT is both: its own rules are entry rules of the containers' chains
    full = tuple(n for n in names if n not in entry)
    return fw.Scope(full=full, search=entry, needles=names, exist=names)


def teardown_scopes(network: str, container_id: str) -> tuple[fw.Scope, fw.Scope]:
    """The whole-table scope of a DEL, and the narrow one tried first: only
    ``CNI-HOSTPORT-DNAT`` is listed (the container's entry rules there tell that its chain
    exists) and the pre-0.7 SNAT chain is asserted absent in the same commit."""
    dn = dnat_chain_name(network, container_id)
    old = old_snat_chain_name(network, container_id)
    needles = (dn, old, container_id)
    scope = fw.Scope(full=(dn, old), search=(TOP_DNAT, OLD_SNAT, "POSTROUTING"), needles=needles)
    narrow = fw.Scope(search=(TOP_DNAT,), needles=needles, exist=(dn,), absent=(old,), narrow=True)
    return scope, narrow


def forward_ports(conf: PortMapConf, net: IPInterface) -> None:
    backend = fw.choose(net.version, conf.backend or "auto")
    chains = setup_chains(conf, net)
    fw.transact(backend, "nat", lambda p: plan_setup(p, chains), scope=setup_scope(chains))


def unforward_ports(conf: PortMapConf, log: TextIO | None = None) -> None:
    """Remove the container's chains and rules in both families and both backends (where
    their tables exist), found by chain name and by comment; mappings are not needed."""
    choice = conf.backend or "auto"
    skipped = ErrorList()  # families or backends that could not be read
    failed = ErrorList()  # teardowns that were tried and failed
    usable = 0
    for fam in (4, 6):
        try:
            backends = fw.teardown_backends(fam, choice)
        except fw.FirewallError as e:
            skipped.add(CNIError(f"ipv{fam}: {e}"))
            continue
        scope, narrow = teardown_scopes(conf.name, conf.container_id)
        for i, be in enumerate(backends):
            try:
                # the other backend's table is mostly empty: one whole read is cheapest
                fw.transact(
                    be,
                    "nat",
                    lambda p: plan_teardown(p, conf.name, conf.container_id),
                    scope=scope,
                    narrow=None if i else narrow,
                )
                usable += 1
            except fw.TableUnavailable as e:
                # like the reference: a family whose nat table cannot be read is skipped
                # (an IPv6-less node must not fail every DEL)
                skipped.add(CNIError(f"ipv{fam} nat table not usable ({be.name}): {e}"))
            except fw.FirewallError as e:
                usable += 1
                failed.add(CNIError(f"could not teardown ipv{fam} dnat ({be.name}): {e}"))
    if log is not None:
        for err in (*skipped, *failed):
            print(err, file=log)
    if usable == 0:
        raise CNIError("neither iptables nor ip6tables usable", skipped.text())
    if failed:
        first, *rest = failed
        raise CNIError(str(first), "; ".join(str(e) for e in rest))


def _loose_match(want: fw.Rule, have: Sequence[fw.Rule]) -> bool:
    """Entry rules with user conditions are compared by comment, target and ports only
    (iptables may reorder the condition tokens)."""
    ports = want.args[want.args.index("--dports") + 1]
    for r in have:
        if r.comment() == want.comment() and r.target == want.target and ports in r.args:
            return True
    return False


def check_ports(conf: PortMapConf, net: IPInterface) -> None:
    fam = "ipv4" if net.version == 4 else "ipv6"
    backend = fw.choose(net.version, conf.backend or "auto")
    state = backend.load("nat", scope=setup_scope(setup_chains(conf, net)))
    name = dnat_chain_name(conf.name, conf.container_id)
    if not state.has_chain(name):
        raise CNIError(f"could not check {fam} dnat: chain {name} not found")
    conditions = conf.conditions_v6 if net.version == 6 else conf.conditions_v4
    for spec in setup_chains(conf, net):
        if not state.has_chain(spec.name):
            raise CNIError(f"could not check {fam} dnat: chain {spec.name} not found in table nat")
        for r in spec.rules:
            if not state.has_rule(r):
                raise CNIError(
                    f"could not check {fam} dnat: rule {' '.join(r.args)} in chain {r.chain} "
                    "not found in table nat"
                )
        for r in spec.entry_rules:
            ok = state.has_rule(r)
            if not ok and conditions and r.chain == TOP_DNAT:
                ok = _loose_match(r, state.rules(TOP_DNAT))
            if not ok:
                raise CNIError(
                    f"could not check {fam} dnat: rule {' '.join(r.args)} in chain {r.chain} "
                    "not found in table nat"
                )
